//! IPv4 (RFC 791) with options. Inside an ICMP error the same header is scapy's `IPerror`.

use super::{fail, note, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The fixed 20-byte IPv4 header.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct Ipv4Hdr {
    /// Version (high 4 bits) and header length in words (low 4 bits).
    pub version_ihl: u8,
    /// Type of service (DSCP and ECN).
    pub tos: u8,
    /// Total length of the datagram in bytes.
    pub total_len: U16,
    /// Identification.
    pub id: U16,
    /// Flags (3 bits) and fragment offset (13 bits).
    pub flags_frag: U16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload (6: TCP, 17: UDP, ...).
    pub proto: u8,
    /// Header checksum.
    pub chksum: U16,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
}

impl Ipv4Hdr {
    /// Version (4 for a well-formed header).
    pub fn version(&self) -> u8 {
        self.version_ihl >> 4
    }
    /// Header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.version_ihl & 0x0f
    }
    /// The three flag bits (reserved, DF, MF) as scapy's integer.
    pub fn flags(&self) -> u16 {
        self.flags_frag.get() >> 13
    }
    /// Fragment offset in 8-byte units.
    pub fn frag(&self) -> u16 {
        self.flags_frag.get() & 0x1fff
    }
}

/// A decoded IPv4 header. Kept to two words so a [`Packet`] stays small to move around.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4<'a> {
    /// The fixed header followed by the option bytes as captured (`ihl * 4 - 20` of them
    /// unless cut short); always at least 20 bytes.
    pub bytes: &'a [u8],
    /// Quoted inside an ICMP error (scapy `IPerror`).
    pub quoted: bool,
}

impl<'a> Ipv4<'a> {
    /// The fixed header and the options.
    pub fn split(&self) -> Option<(&'a Ipv4Hdr, &'a [u8])> {
        Ipv4Hdr::ref_from_prefix(self.bytes).ok()
    }
}

pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, quoted: bool) -> Next {
    let Ok((hdr, rest)) = Ipv4Hdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Ip, ErrorKind::Truncated);
    };
    let hdr_len = usize::from(hdr.ihl()) * 4;
    let opt_len = hdr_len.saturating_sub(20);
    let options = rest.get(..opt_len).unwrap_or(rest);
    if !push(
        pkt,
        Layer::Ipv4(Ipv4 {
            bytes: cur.rest().get(..20 + options.len()).unwrap_or(&[]),
            quoted,
        }),
    ) {
        return Next::Stop;
    }
    cur.advance(20 + options.len());
    if hdr_len < 20 {
        return fail(pkt, LayerName::Ip, ErrorKind::BadLength);
    }
    if options.len() < opt_len {
        return fail(pkt, LayerName::Ip, ErrorKind::Truncated);
    }
    let total = usize::from(hdr.total_len.get());
    if total >= hdr_len {
        cur.limit(total - hdr_len);
    } else {
        note(pkt, LayerName::Ip, ErrorKind::BadLength);
    }
    if hdr.frag() != 0 && hdr.proto != 41 {
        // A non-first fragment: its payload is not a transport header. (scapy binds IPv6
        // in IPv4 without looking at the fragment offset; so do we.)
        return Next::Stop;
    }
    Next::IpProto {
        proto: hdr.proto,
        quoted,
    }
}

/// Where an IPv4 protocol number leads (first fragments and unfragmented packets only).
pub(crate) fn by_proto(proto: u8, quoted: bool) -> Next {
    match proto {
        1 => Next::Icmp { quoted },
        4 => Next::Ipv4 { quoted },
        6 => Next::Tcp { quoted },
        17 => Next::Udp { quoted },
        // IPv6 in IPv4, also inside an ICMP error, is a plain IPv6 header (as in scapy).
        41 => Next::Ipv6 { quoted: false },
        // GRE (RFC 2784) and MPLS in IP (RFC 4023); scapy binds neither inside an ICMP error.
        47 if !quoted => Next::Gre,
        super::mpls::IP_PROTO_MPLS if !quoted => Next::Mpls,
        _ => Next::Stop,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, ErrorKind, Layer, LayerName, LinkType};

    fn ip(ihl: u8, total: u16, proto: u8, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0x40 | ihl,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ];
        v.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn options_and_padding() {
        let mut f = ip(6, 28, 99, &[1, 1, 1, 0]);
        f.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        let p = decode(LinkType::Ipv4, &f);
        let Some(Layer::Ipv4(l)) = p.layers().next() else {
            panic!()
        };
        let (hdr, options) = l.split().unwrap();
        assert_eq!(options, &[1, 1, 1, 0]);
        assert_eq!(hdr.flags(), 2);
        assert_eq!(p.raw, &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(p.padding, &[0xee]);
        assert!(p.error.is_none());
    }

    #[test]
    fn truncated_options() {
        let f = ip(15, 60, 6, &[1, 1]);
        let p = decode(LinkType::Ipv4, &f);
        assert_eq!(p.layer_count(), 1);
        let e = p.error.unwrap();
        assert_eq!((e.layer, e.kind), (LayerName::Ip, ErrorKind::Truncated));
    }

    #[test]
    fn bad_ihl() {
        let f = ip(3, 20, 6, &[]);
        let p = decode(LinkType::Ipv4, &f);
        assert_eq!(p.error.unwrap().kind, ErrorKind::BadLength);
    }
}
