//! ARP (RFC 826) for any hardware/protocol address sizes.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The fixed part of an ARP message; the four addresses follow, sized by `hwlen`/`plen`.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct ArpHdr {
    /// Hardware type (1: Ethernet).
    pub hwtype: U16,
    /// Protocol type (an EtherType; 0x0800: IPv4).
    pub ptype: U16,
    /// Hardware address length in bytes.
    pub hwlen: u8,
    /// Protocol address length in bytes.
    pub plen: u8,
    /// Operation (1: request, 2: reply).
    pub op: U16,
}

/// An ARP message (RFC 826): the fixed part and the four addresses.
#[derive(Clone, Copy, Debug)]
pub struct Arp<'a> {
    /// The fixed part.
    pub hdr: &'a ArpHdr,
    /// The four addresses, `2 * (hwlen + plen)` bytes.
    pub addrs: &'a [u8],
}

impl<'a> Arp<'a> {
    fn addr(&self, index: usize) -> &'a [u8] {
        let hl = usize::from(self.hdr.hwlen);
        let pl = usize::from(self.hdr.plen);
        let (start, len) = match index {
            0 => (0, hl),
            1 => (hl, pl),
            2 => (hl + pl, hl),
            _ => (2 * hl + pl, pl),
        };
        self.addrs.get(start..start + len).unwrap_or(&[])
    }
    /// Sender hardware address (empty when cut).
    pub fn hwsrc(&self) -> &'a [u8] {
        self.addr(0)
    }
    /// Sender protocol address (empty when cut).
    pub fn psrc(&self) -> &'a [u8] {
        self.addr(1)
    }
    /// Target hardware address (empty when cut).
    pub fn hwdst(&self) -> &'a [u8] {
        self.addr(2)
    }
    /// Target protocol address (empty when cut).
    pub fn pdst(&self) -> &'a [u8] {
        self.addr(3)
    }
}

/// How an ARP address is shown (scapy's MultipleTypeField choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrForm {
    /// A MAC address (`aa:bb:cc:dd:ee:ff`).
    Mac,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// Bytes, as scapy shows a string.
    Bytes,
}

impl Arp<'_> {
    /// How the hardware addresses are shown: MAC for Ethernet with 6-byte addresses.
    pub fn hw_form(&self) -> AddrForm {
        if self.hdr.hwtype.get() == 1 && self.hdr.hwlen == 6 {
            AddrForm::Mac
        } else {
            AddrForm::Bytes
        }
    }
    /// How the protocol addresses are shown: by protocol type and length.
    pub fn proto_form(&self) -> AddrForm {
        match (self.hdr.ptype.get(), self.hdr.plen) {
            (0x0800, 4) => AddrForm::Ipv4,
            (0x86dd, 16) => AddrForm::Ipv6,
            _ => AddrForm::Bytes,
        }
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Ok((hdr, rest)) = ArpHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Arp, ErrorKind::Truncated);
    };
    let hl = usize::from(hdr.hwlen);
    let pl = usize::from(hdr.plen);
    let need = 2 * (hl + pl);
    if rest.len() < need {
        return fail(pkt, LayerName::Arp, ErrorKind::Truncated);
    }
    let addrs = &rest[..need];
    if !push(pkt, Layer::Arp(Arp { hdr, addrs })) {
        return Next::Stop;
    }
    cur.advance(8 + need);
    // ARP has no payload; what follows (Ethernet minimum-size fill) is padding.
    cur.limit(0);
    Next::Stop
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, Layer, LinkType};

    #[test]
    fn request_with_trailer() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 192, 0, 2, 1]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 2]);
        f.extend_from_slice(&[0u8; 18]);
        let p = decode(LinkType::Ethernet, &f);
        let arp = p.layers().nth(1).unwrap();
        let Layer::Arp(a) = arp else { panic!() };
        assert_eq!(a.psrc(), &[192, 0, 2, 1]);
        assert_eq!(a.pdst(), &[192, 0, 2, 2]);
        assert_eq!(p.raw.len(), 0);
        assert_eq!(p.padding.len(), 18);
    }
}
