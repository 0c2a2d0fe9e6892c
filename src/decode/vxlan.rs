//! VXLAN (RFC 7348) with the VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe) and Group Policy
//! (draft-smith-vxlan-group-policy) flag variants, laid out as scapy 2.5's `VXLAN` reads them.
//! Carried over UDP on the ports scapy binds (4789 the IANA port, 4790 VXLAN-GPE, 6633, 8472
//! the Linux default, 48879 Cisco ACI).

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// `flags` bits scapy names `NextProtocol` (VXLAN-GPE P bit) and `G` (group policy).
const FLAG_NEXT_PROTOCOL: u8 = 0x04;
const FLAG_GROUP_POLICY: u8 = 0x80;

/// Destination ports scapy 2.5 binds VXLAN to.
const DPORTS: [u16; 5] = [4789, 4790, 6633, 8472, 48879];
/// Source ports scapy 2.5 binds VXLAN to.
const SPORTS: [u16; 4] = [4789, 4790, 6633, 8472];

/// Whether a UDP datagram between these ports carries VXLAN.
#[inline]
pub fn is_vxlan_port(sport: u16, dport: u16) -> bool {
    DPORTS.contains(&dport) || SPORTS.contains(&sport)
}

/// A VXLAN header: 8 bytes, or 11 when both the next-protocol and the group-policy flags are
/// set (scapy then reads both conditional field groups).
#[derive(Clone, Copy, Debug)]
pub struct Vxlan<'a> {
    /// The header bytes.
    pub bytes: &'a [u8],
}

impl<'a> Vxlan<'a> {
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        bytes::byte(self.bytes, 0)
    }
    /// The next-protocol flag (VXLAN-GPE) is set.
    pub fn has_next_protocol(&self) -> bool {
        self.flags() & FLAG_NEXT_PROTOCOL != 0
    }
    /// The group-policy flag (VXLAN-GBP) is set.
    pub fn has_group_policy(&self) -> bool {
        self.flags() & FLAG_GROUP_POLICY != 0
    }
    /// Offset of `vni` (after the conditional fields).
    fn vni_at(&self) -> usize {
        header_len(self.flags()) - 4
    }
    /// VXLAN network identifier (24 bits).
    pub fn vni(&self) -> u32 {
        bytes::be32(self.bytes, self.vni_at()) >> 8
    }
    /// The reserved byte after the VNI.
    pub fn reserved2(&self) -> u8 {
        bytes::byte(self.bytes, self.vni_at() + 3)
    }
}

/// Header length for a flags byte: the flag byte, then 3 bytes of conditional fields per
/// variant present (or the 3 reserved bytes when neither is), then vni and reserved2.
pub fn header_len(flags: u8) -> usize {
    let np = flags & FLAG_NEXT_PROTOCOL != 0;
    let gp = flags & FLAG_GROUP_POLICY != 0;
    let middle = match (np, gp) {
        (true, true) => 6,
        _ => 3,
    };
    1 + middle + 4
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(&flags) = rest.first() else {
        return Next::Stop;
    };
    let len = header_len(flags);
    let Some(hdr) = rest.get(..len) else {
        return fail(pkt, LayerName::Vxlan, ErrorKind::Truncated);
    };
    let v = Vxlan { bytes: hdr };
    if !push(pkt, Layer::Vxlan(v)) {
        return Next::Stop;
    }
    cur.advance(len);
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    if !v.has_next_protocol() {
        return Next::Ether;
    }
    // VXLAN-GPE next protocol: 1 IPv4, 2 IPv6, 0 and 3 Ethernet, 4 NSH (not decoded).
    match bytes::byte(hdr, 3) {
        0 | 3 => Next::Ether,
        1 => Next::Ipv4 { quoted: false },
        2 => Next::Ipv6 { quoted: false },
        _ => Next::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_flags() {
        assert_eq!(header_len(0x08), 8);
        assert_eq!(header_len(0x0c | FLAG_NEXT_PROTOCOL), 8);
        assert_eq!(header_len(0x88), 8);
        assert_eq!(header_len(0x8c), 11);
        let v = Vxlan {
            bytes: &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0x07],
        };
        assert_eq!((v.vni(), v.reserved2()), (0x12_3456, 7));
        assert!(is_vxlan_port(40000, 4789) && is_vxlan_port(8472, 1) && !is_vxlan_port(1, 2));
    }
}
