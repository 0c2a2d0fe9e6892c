//! UDP (RFC 768). Inside an ICMP error the header is scapy's `UDPerror`.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct UdpHdr {
    pub sport: U16,
    pub dport: U16,
    pub len: U16,
    pub chksum: U16,
}

#[derive(Clone, Copy, Debug)]
pub struct Udp<'a> {
    pub hdr: &'a UdpHdr,
    pub quoted: bool,
}

/// UDP ports whose payload is DNS: DNS itself and multicast DNS (RFC 6762).
fn is_dns_port(port: u16) -> bool {
    port == 53 || port == 5353
}

pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, quoted: bool) -> Next {
    let Ok((hdr, _)) = UdpHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Udp, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Udp(Udp { hdr, quoted })) {
        return Next::Stop;
    }
    cur.advance(8);
    let len = usize::from(hdr.len.get());
    if len >= 8 {
        cur.limit(len - 8);
    } else {
        // A length below the header size: like scapy, the last (8 - len) bytes become
        // padding.
        let keep = cur.rest().len().saturating_sub(8 - len);
        cur.limit(keep);
        super::note(pkt, LayerName::Udp, ErrorKind::BadLength);
    }
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    if is_dns_port(hdr.sport.get()) || is_dns_port(hdr.dport.get()) {
        Next::Dns { tcp: false }
    } else {
        Next::Stop
    }
}
