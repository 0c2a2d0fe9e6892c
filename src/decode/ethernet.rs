//! Link layers: Ethernet II, 802.1Q / 802.1ad tags, Linux cooked capture v1 and v2, BSD
//! loopback. EtherType dispatch is shared by all of them.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType (TPID) of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType (TPID) of an 802.1ad tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of PPPoE discovery.
pub const ETHERTYPE_PPPOE_DISCOVERY: u16 = 0x8863;
/// EtherType of a PPPoE session.
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;

/// Ethernet II header (IEEE 802.3 clause 3.1.1 with an EtherType).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct EtherHdr {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// EtherType, or a length (802.3) when below 0x0600.
    pub ether_type: U16,
}

/// The four bytes after the TPID of an 802.1Q / 802.1ad tag: TCI then the inner EtherType.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct VlanHdr {
    /// Tag control information: priority, DEI, VLAN ID.
    pub tci: U16,
    /// EtherType of what follows the tag.
    pub ether_type: U16,
}

impl VlanHdr {
    /// Priority code point (3 bits).
    pub fn prio(&self) -> u16 {
        self.tci.get() >> 13
    }
    /// Drop eligible indicator (scapy calls it `id`).
    pub fn dei(&self) -> u16 {
        (self.tci.get() >> 12) & 1
    }
    /// VLAN identifier (12 bits).
    pub fn vlan(&self) -> u16 {
        self.tci.get() & 0x0fff
    }
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL), 16 bytes.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct SllHdr {
    /// Packet type (0: to us, 4: sent by us, ...).
    pub pkttype: U16,
    /// ARPHRD_* type of the link-layer address.
    pub lladdrtype: U16,
    /// Length of the link-layer address.
    pub lladdrlen: U16,
    /// Link-layer source address, zero-padded to 8 bytes.
    pub src: [u8; 8],
    /// Protocol (an EtherType).
    pub proto: U16,
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2), 20 bytes.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct Sll2Hdr {
    /// Protocol (an EtherType).
    pub proto: U16,
    /// Reserved, 0.
    pub reserved: U16,
    /// Interface index.
    pub ifindex: U32,
    /// ARPHRD_* type of the link-layer address.
    pub lladdrtype: U16,
    /// Packet type (0: to us, 4: sent by us, ...).
    pub pkttype: u8,
    /// Length of the link-layer address.
    pub lladdrlen: u8,
    /// Link-layer source address, zero-padded to 8 bytes.
    pub src: [u8; 8],
}

/// Where an EtherType leads.
#[inline]
pub(crate) fn next_for_ether_type(t: u16) -> Next {
    match t {
        ETHERTYPE_IPV4 => Next::Ipv4 { quoted: false },
        ETHERTYPE_IPV6 => Next::Ipv6 { quoted: false },
        ETHERTYPE_ARP => Next::Arp,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ => Next::EtherType(t),
        super::mpls::ETHERTYPE_MPLS_UNICAST | super::mpls::ETHERTYPE_MPLS_MULTICAST => Next::Mpls,
        ETHERTYPE_PPPOE_DISCOVERY => Next::Pppoe { discovery: true },
        ETHERTYPE_PPPOE_SESSION => Next::Pppoe { discovery: false },
        _ => Next::Stop,
    }
}

// Inlined into the walk (decode_into), as LLVM did by itself until the walk's cold over-limit
// code tipped its size estimate (callgrind, decode of mixed.pcap: 827.5 -> 821.7 instructions
// per packet with tcp, dns and decode_ether inlined again; 805.5 before that code).
#[inline(always)]
pub(crate) fn decode_ether<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, _)) = EtherHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Ether, ErrorKind::Truncated);
    };
    let t = hdr.ether_type.get();
    if t <= 1500 {
        // IEEE 802.3 with a length instead of an EtherType (scapy's `Dot3`); its LLC payload
        // is not decoded, and bytes beyond the length are padding.
        if !push(pkt, Layer::Dot3(hdr)) {
            return Next::Stop;
        }
        cur.advance(14);
        cur.limit(usize::from(t));
        return Next::Stop;
    }
    if !push(pkt, Layer::Ether(hdr)) {
        return Next::Stop;
    }
    cur.advance(14);
    next_for_ether_type(t)
}

/// Called with the EtherType that announced a VLAN tag (0x8100 or 0x88a8).
pub(crate) fn by_ether_type<'a>(tpid: u16, cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, _)) = VlanHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Dot1q, ErrorKind::Truncated);
    };
    if !push(
        pkt,
        Layer::Vlan {
            hdr,
            ad: tpid == ETHERTYPE_QINQ,
        },
    ) {
        return Next::Stop;
    }
    cur.advance(4);
    let t = hdr.ether_type.get();
    if t <= 1500 {
        // An 802.3 length: the payload (LLC) is that long, the rest is padding.
        cur.limit(usize::from(t));
        return Next::Stop;
    }
    next_for_ether_type(t)
}

pub(crate) fn decode_sll<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, _)) = SllHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Sll, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Sll(hdr)) {
        return Next::Stop;
    }
    cur.advance(16);
    next_for_ether_type(hdr.proto.get())
}

pub(crate) fn decode_sll2<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, _)) = Sll2Hdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Sll2, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Sll2(hdr)) {
        return Next::Stop;
    }
    cur.advance(20);
    next_for_ether_type(hdr.proto.get())
}

/// BSD loopback: a 4-byte protocol family in the byte order of the host that captured.
/// scapy shows the first byte as `type`; the family is read in either byte order.
pub(crate) fn decode_loopback<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(family) = rest.get(..4) else {
        return fail(pkt, LayerName::Loopback, ErrorKind::Truncated);
    };
    let shown = u32::from(family[0]);
    if !push(pkt, Layer::Loopback(shown)) {
        return Next::Stop;
    }
    cur.advance(4);
    // Little-endian hosts put the family in byte 0, big-endian ones in byte 3.
    let af = if family[0] != 0 { family[0] } else { family[3] };
    match af {
        // AF_INET everywhere; 0 is what scapy also maps to IPv4.
        0 | 2 => Next::Ipv4 { quoted: false },
        // AF_INET6: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
        10 | 24 | 28 | 30 => Next::Ipv6 { quoted: false },
        _ => Next::Stop,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, Layer, LinkType};

    #[test]
    fn ethernet_vlan_stack() {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0xe0, 0x0a, 0x08, 0x06]);
        let p = decode(LinkType::Ethernet, &f);
        let layers: Vec<_> = p.layers().collect();
        assert_eq!(layers.len(), 3);
        match layers[1] {
            Layer::Vlan { hdr, ad } => {
                assert!(*ad);
                assert_eq!((hdr.prio(), hdr.dei(), hdr.vlan()), (1, 0, 100));
            }
            other => panic!("{other:?}"),
        }
        match layers[2] {
            Layer::Vlan { hdr, ad } => {
                assert!(!*ad);
                assert_eq!((hdr.prio(), hdr.dei(), hdr.vlan()), (7, 0, 10));
            }
            other => panic!("{other:?}"),
        }
        // ARP announced but no bytes left: truncated.
        assert_eq!(p.error.unwrap().layer, crate::decode::LayerName::Arp);
    }

    /// Ethernet and `tags` 802.1Q tags, then `rest` after the last tag's EtherType 0x0800.
    fn tagged(tags: usize, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for i in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0, i as u8 + 1]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn a_stack_deeper_than_the_layer_limit_is_flagged_over_limit() {
        use crate::decode::{ErrorKind, LayerName, MAX_LAYERS};
        let ip = [
            0x45u8, 0, 0, 20, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        let f = tagged(20, &ip);
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), MAX_LAYERS);
        let e = p.error.expect("flagged");
        assert_eq!((e.layer, e.kind), (LayerName::Dot1q, ErrorKind::OverLimit));
        // The 16th layer is the 15th tag; the five tags after it and the IPv4 header are raw.
        assert_eq!(p.raw.len(), 5 * 4 + ip.len());
        // Exactly 16 layers and nothing after them: whole, no error.
        let f = tagged(MAX_LAYERS - 1, &[]);
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), MAX_LAYERS);
        assert!(p.raw.is_empty());
        assert!(p.error.is_none(), "{:?}", p.error);
        // One layer fewer than the limit: the IPv4 header is the 16th layer, no error.
        let f = tagged(MAX_LAYERS - 2, &ip);
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), MAX_LAYERS);
        assert!(p.error.is_none(), "{:?}", p.error);
        // IPv4 as the 16th layer, then bytes that no layer would take (protocol 253): raw
        // without the limit too, so not flagged.
        let mut ip253 = ip;
        ip253[9] = 253;
        ip253[3] = 28;
        let mut rest = ip253.to_vec();
        rest.extend_from_slice(b"8 bytes!");
        let f = tagged(MAX_LAYERS - 2, &rest);
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), MAX_LAYERS);
        assert_eq!(p.raw, b"8 bytes!");
        assert!(p.error.is_none(), "{:?}", p.error);
        // TCP to port 80 as the 16th layer: a payload that is not HTTP stays raw, unflagged;
        // an HTTP request (a 17th layer) is flagged, naming the TCP layer.
        for (payload, flagged) in [
            (&b"not a request"[..], false),
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], true),
        ] {
            let mut l3 = ip;
            l3[9] = 6;
            let total = (20 + 20 + payload.len()) as u16;
            l3[2..4].copy_from_slice(&total.to_be_bytes());
            let mut rest = l3.to_vec();
            rest.extend_from_slice(&[0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18]);
            rest.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
            rest.extend_from_slice(payload);
            let f = tagged(MAX_LAYERS - 3, &rest);
            let p = decode(LinkType::Ethernet, &f);
            assert_eq!(p.layer_count(), MAX_LAYERS);
            assert_eq!(p.raw, payload);
            let want = flagged.then_some((LayerName::Tcp, ErrorKind::OverLimit));
            assert_eq!(p.error.map(|e| (e.layer, e.kind)), want, "{payload:?}");
            // Without the tags, the same bytes decode to HTTP only when flagged above.
            let mut eth = vec![0xffu8; 6];
            eth.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
            eth.extend_from_slice(&rest);
            let whole = decode(LinkType::Ethernet, &eth);
            assert_eq!(whole.layer_count(), 3 + usize::from(flagged), "{payload:?}");
        }
    }

    #[test]
    fn short_ethernet_is_raw() {
        let f = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let p = decode(LinkType::Ethernet, &f);
        assert_eq!(p.layer_count(), 0);
        assert_eq!(p.raw, &f);
        assert!(p.error.is_some());
    }

    #[test]
    fn loopback_both_byte_orders() {
        let mut le = vec![2u8, 0, 0, 0];
        le.extend_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        let p = decode(LinkType::Null, &le);
        assert_eq!(p.layer_count(), 2);
        let mut be = vec![0u8, 0, 0, 2];
        be.extend_from_slice(&le[4..]);
        let p = decode(LinkType::Null, &be);
        assert_eq!(p.layer_count(), 2);
    }
}
