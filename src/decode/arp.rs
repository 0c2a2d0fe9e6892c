//! ARP (RFC 826) for any hardware/protocol address sizes.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The fixed part of an ARP message; the four addresses follow, sized by `hwlen`/`plen`.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct ArpHdr {
    pub hwtype: U16,
    pub ptype: U16,
    pub hwlen: u8,
    pub plen: u8,
    pub op: U16,
}

#[derive(Clone, Copy, Debug)]
pub struct Arp<'a> {
    pub hdr: &'a ArpHdr,
    pub hwsrc: &'a [u8],
    pub psrc: &'a [u8],
    pub hwdst: &'a [u8],
    pub pdst: &'a [u8],
}

/// How an ARP address is shown (scapy's MultipleTypeField choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrForm {
    Mac,
    Ipv4,
    Ipv6,
    Bytes,
}

impl Arp<'_> {
    pub fn hw_form(&self) -> AddrForm {
        if self.hdr.hwtype.get() == 1 && self.hdr.hwlen == 6 {
            AddrForm::Mac
        } else {
            AddrForm::Bytes
        }
    }
    pub fn proto_form(&self) -> AddrForm {
        match (self.hdr.ptype.get(), self.hdr.plen) {
            (0x0800, 4) => AddrForm::Ipv4,
            (0x86dd, 16) => AddrForm::Ipv6,
            _ => AddrForm::Bytes,
        }
    }
}

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
    let (hwsrc, rest) = rest.split_at(hl);
    let (psrc, rest) = rest.split_at(pl);
    let (hwdst, rest) = rest.split_at(hl);
    let pdst = &rest[..pl];
    if !push(
        pkt,
        Layer::Arp(Arp {
            hdr,
            hwsrc,
            psrc,
            hwdst,
            pdst,
        }),
    ) {
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
        assert_eq!(a.psrc, &[192, 0, 2, 1]);
        assert_eq!(a.pdst, &[192, 0, 2, 2]);
        assert_eq!(p.raw.len(), 0);
        assert_eq!(p.padding.len(), 18);
    }
}
