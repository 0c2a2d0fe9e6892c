//! UDP (RFC 768). Inside an ICMP error the header is scapy's `UDPerror`.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The 8-byte UDP header (RFC 768).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct UdpHdr {
    /// Source port.
    pub sport: U16,
    /// Destination port.
    pub dport: U16,
    /// Length of header and payload in bytes.
    pub len: U16,
    /// Checksum (0: none).
    pub chksum: U16,
}

/// A decoded UDP header.
#[derive(Clone, Copy, Debug)]
pub struct Udp<'a> {
    /// The header.
    pub hdr: &'a UdpHdr,
    /// Quoted inside an ICMP error (scapy `UDPerror`).
    pub quoted: bool,
}

/// UDP ports whose payload is DNS: DNS itself and multicast DNS (RFC 6762).
fn is_dns_port(port: u16) -> bool {
    port == 53 || port == 5353
}

/// The application layers scapy 2.5 binds to UDP ports besides DNS: NTP on 123 (either
/// side), BOOTP/DHCP on 67 <-> 68 and 67 -> 67 (relay to server).
///
/// scapy tries its bindings in the order they were made and takes the first that matches; a
/// port bound earlier to a protocol decoded nowhere here (Kerberos 88 before BOOTP; DHCPv6,
/// HSRP, IKE, L2TP, CLDAP, LLMNR, MGCP, Mobile IP, NetBIOS and NetFlow before NTP) leaves the
/// payload raw, as the oracle sees it. The same bindings serve `UDPerror` inside ICMP errors.
fn app_by_ports(sport: u16, dport: u16) -> Option<Next> {
    let either = |p: u16| sport == p || dport == p;
    if either(88) {
        return None;
    }
    if matches!((sport, dport), (68, 67) | (67, 68) | (67, 67)) {
        return Some(Next::Bootp);
    }
    let bound_before_ntp = matches!(dport, 546 | 547 | 138)
        || [
            1985, 2029, 4500, 500, 1701, 389, 5355, 2727, 434, 137, 2055, 2056, 9995, 9996, 6343,
        ]
        .iter()
        .any(|&p| either(p));
    (either(123) && !bound_before_ntp).then_some(Next::Ntp)
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
    let (sport, dport) = (hdr.sport.get(), hdr.dport.get());
    if is_dns_port(sport) || is_dns_port(dport) {
        return Next::Dns { tcp: false };
    }
    if let Some(next) = app_by_ports(sport, dport) {
        return next;
    }
    // Tunnels (also inside an ICMP error, where scapy's UDPerror shares UDP's bindings).
    if super::vxlan::is_vxlan_port(sport, dport) {
        return Next::Vxlan;
    }
    if dport == super::geneve::UDP_PORT {
        return Next::Geneve;
    }
    if dport == super::mpls::UDP_PORT {
        return Next::Mpls;
    }
    Next::Stop
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, Layer, LinkType};

    fn udp_in_ipv4(
        sport: u16,
        dport: u16,
        udp_len: u16,
        payload: &[u8],
        trailer: &[u8],
    ) -> Vec<u8> {
        let total = 20 + 8 + payload.len() as u16;
        let mut f = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f.extend_from_slice(trailer);
        f
    }

    #[test]
    fn length_splits_payload_and_padding() {
        // UDP says 8 + 3 bytes; the IP payload has 5: two bytes of UDP-level padding, then
        // the IP trailer.
        let f = udp_in_ipv4(4000, 9999, 11, b"abcde", &[0xee]);
        let p = decode(LinkType::Ipv4, &f);
        assert!(matches!(p.layers().nth(1), Some(Layer::Udp(_))));
        assert_eq!(p.raw, b"abc");
        assert_eq!(p.padding, &[b'd', b'e', 0xee]);
        assert!(p.error.is_none());
    }

    #[test]
    fn short_length_is_flagged_and_trims_like_scapy() {
        let f = udp_in_ipv4(4000, 9999, 6, b"abcde", &[]);
        let p = decode(LinkType::Ipv4, &f);
        assert_eq!(p.raw, b"abc");
        assert_eq!(p.padding, b"de");
        assert_eq!(p.error.unwrap().kind, crate::decode::ErrorKind::BadLength);
    }

    #[test]
    fn application_ports_in_scapy_order() {
        let mut ntp = vec![0x23u8];
        ntp.resize(48, 0);
        let layers = |s: u16, d: u16| {
            let f = udp_in_ipv4(s, d, 8 + 48, &ntp, &[]);
            decode(LinkType::Ipv4, &f).layer_count()
        };
        assert_eq!(layers(40000, 123), 3);
        assert_eq!(layers(123, 123), 3);
        // NetFlow (2055) and NetBIOS (137) are bound before NTP in scapy: raw.
        assert_eq!(layers(2055, 123), 2);
        assert_eq!(layers(123, 137), 2);
        // BOOTP wants both ports; 236 bytes at least.
        let bootp = vec![1u8; 240];
        let f = udp_in_ipv4(68, 67, 8 + 240, &bootp, &[]);
        assert!(matches!(
            decode(LinkType::Ipv4, &f).layers().nth(2),
            Some(Layer::Bootp(_))
        ));
        let f = udp_in_ipv4(68, 99, 8 + 240, &bootp, &[]);
        assert_eq!(decode(LinkType::Ipv4, &f).layer_count(), 2);
    }

    #[test]
    fn dns_ports() {
        let mut dns = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        dns.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
        for (s, d) in [(5353, 5353), (40000, 53), (53, 40000)] {
            let f = udp_in_ipv4(s, d, 8 + dns.len() as u16, &dns, &[]);
            let p = decode(LinkType::Ipv4, &f);
            assert!(matches!(p.layers().nth(2), Some(Layer::Dns(_))), "{s}->{d}");
        }
        let f = udp_in_ipv4(40000, 5355, 8 + dns.len() as u16, &dns, &[]);
        assert_eq!(decode(LinkType::Ipv4, &f).layer_count(), 2);
    }
}
