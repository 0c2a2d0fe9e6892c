//! IPv6 (RFC 8200) and its extension headers: hop-by-hop options, routing, fragment and
//! destination options. Inside an ICMPv6 error the header is scapy's `IPerror6`.

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The fixed 40-byte IPv6 header (RFC 8200).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct Ipv6Hdr {
    /// version (4 bits), traffic class (8), flow label (20).
    pub vtf: U32,
    /// Payload length in bytes.
    pub plen: U16,
    /// Next header.
    pub nh: u8,
    /// Hop limit.
    pub hlim: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

impl Ipv6Hdr {
    /// Version (6 for a well-formed header).
    pub fn version(&self) -> u32 {
        self.vtf.get() >> 28
    }
    /// Traffic class.
    pub fn tc(&self) -> u32 {
        (self.vtf.get() >> 20) & 0xff
    }
    /// Flow label (20 bits).
    pub fn fl(&self) -> u32 {
        self.vtf.get() & 0x000f_ffff
    }
}

/// A decoded IPv6 header.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6<'a> {
    /// The fixed header.
    pub hdr: &'a Ipv6Hdr,
    /// Quoted inside an ICMPv6 error (scapy `IPerror6`).
    pub quoted: bool,
}

/// Which extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtKind {
    /// Hop-by-hop options (next header 0).
    HopByHop,
    /// Routing (next header 43).
    Routing,
    /// Fragment (next header 44).
    Fragment,
    /// Destination options (next header 60).
    DestOpt,
}

impl ExtKind {
    /// The layer's JSON key.
    pub fn key(self) -> &'static str {
        match self {
            ExtKind::HopByHop => "ipv6exthdrhopbyhop",
            ExtKind::Routing => "ipv6exthdrrouting",
            ExtKind::Fragment => "ipv6exthdrfragment",
            ExtKind::DestOpt => "ipv6exthdrdestopt",
        }
    }
}

/// An extension header; `bytes` is the whole header as captured (at least 8 bytes for
/// fragment headers, at least 2 for the others).
#[derive(Clone, Copy, Debug)]
pub struct ExtHeader<'a> {
    /// Which extension header.
    pub kind: ExtKind,
    /// The header as captured.
    pub bytes: &'a [u8],
}

impl<'a> ExtHeader<'a> {
    /// Next header.
    pub fn nh(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }
    /// The header extension length field as on the wire (8-byte units after the first 8).
    pub fn len_field(&self) -> u8 {
        self.bytes.get(1).copied().unwrap_or(0)
    }
    /// Options of hop-by-hop / destination-options headers.
    pub fn options(&self) -> &'a [u8] {
        self.bytes.get(2..).unwrap_or(&[])
    }
    /// Routing header: routing type, segments left, the 32-bit reserved word.
    pub fn routing_fields(&self) -> (u8, u8, u32) {
        let b = self.bytes;
        (bytes::byte(b, 2), bytes::byte(b, 3), bytes::be32(b, 4))
    }
    /// Routing header: the addresses (whole 16-byte chunks after the first 8 bytes).
    pub fn addresses(&self) -> impl Iterator<Item = &'a [u8]> {
        self.bytes.get(8..).unwrap_or(&[]).chunks_exact(16)
    }
    /// Fragment header: (res1, offset, res2, m, id).
    pub fn fragment_fields(&self) -> (u8, u16, u8, u8, u32) {
        let b = self.bytes;
        let get = |i: usize| b.get(i).copied().unwrap_or(0);
        let off_m = u16::from_be_bytes([get(2), get(3)]);
        let id = u32::from_be_bytes([get(4), get(5), get(6), get(7)]);
        (
            get(1),
            off_m >> 3,
            ((off_m >> 1) & 3) as u8,
            (off_m & 1) as u8,
            id,
        )
    }
}

pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, quoted: bool) -> Next {
    let Ok((hdr, _)) = Ipv6Hdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Ipv6, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Ipv6(Ipv6 { hdr, quoted })) {
        return Next::Stop;
    }
    cur.advance(40);
    // The payload length bounds everything after the fixed header (RFC 8200 section 3);
    // jumbograms (plen 0 with a hop-by-hop Jumbo option) are not handled.
    cur.limit(usize::from(hdr.plen.get()));
    Next::Ipv6Nh { nh: hdr.nh, quoted }
}

/// Where an IPv6 next-header value leads; extension headers are decoded here.
pub(crate) fn by_next_header<'a>(
    nh: u8,
    quoted: bool,
    cur: &mut Cursor<'a>,
    pkt: &mut Packet<'a>,
) -> Next {
    let kind = match nh {
        0 => ExtKind::HopByHop,
        43 => ExtKind::Routing,
        44 => ExtKind::Fragment,
        60 => ExtKind::DestOpt,
        4 if !quoted => return Next::Ipv4 { quoted: false },
        6 => return Next::Tcp { quoted },
        17 => return Next::Udp { quoted },
        41 if !quoted => return Next::Ipv6 { quoted: false },
        47 if !quoted => return Next::Gre,
        super::mpls::IP_PROTO_MPLS if !quoted => return Next::Mpls,
        58 => return Next::Icmpv6,
        _ => return Next::Stop,
    };
    let rest = cur.rest();
    if rest.len() < 2 || (kind != ExtKind::HopByHop && kind != ExtKind::DestOpt && rest.len() < 8) {
        return fail(pkt, LayerName::Ipv6Ext, ErrorKind::Truncated);
    }
    if kind == ExtKind::Routing && rest[2] == 4 {
        // Segment Routing (RFC 8754) is not decoded: left as raw.
        return Next::Stop;
    }
    let len = match kind {
        ExtKind::Fragment => 8,
        _ => (usize::from(rest[1]) + 1) * 8,
    };
    let options_only = matches!(kind, ExtKind::HopByHop | ExtKind::DestOpt);
    let bytes = match rest.get(..len) {
        Some(b) => b,
        // Options headers cut short keep the options that are there; routing and fragment
        // headers cut short are not shown at all (scapy does the same).
        None if options_only => rest,
        None => return fail(pkt, LayerName::Ipv6Ext, ErrorKind::Truncated),
    };
    if !push(pkt, Layer::Ipv6Ext(ExtHeader { kind, bytes })) {
        return Next::Stop;
    }
    cur.advance(bytes.len());
    if bytes.len() < len {
        return fail(pkt, LayerName::Ipv6Ext, ErrorKind::Truncated);
    }
    if kind == ExtKind::Fragment {
        let (_, offset, _, _, _) = ExtHeader { kind, bytes }.fragment_fields();
        if offset != 0 {
            return Next::Stop;
        }
    }
    // After an extension header the next layer is looked up as for plain IPv6, even inside
    // an ICMPv6 error (scapy's extension-header classes do not know they are quoted).
    Next::Ipv6Nh {
        nh: rest[0],
        quoted: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::{decode, Layer, LinkType};

    #[test]
    fn ext_chain() {
        let mut f = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        f.extend_from_slice(&[0u8; 32]);
        // hop-by-hop (8 bytes) -> fragment (8 bytes) -> UDP (8 bytes)
        f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let p = decode(LinkType::Ipv6, &f);
        let l: Vec<_> = p.layers().collect();
        assert_eq!(l.len(), 4, "{l:?}");
        let Layer::Ipv6Ext(frag) = l[2] else { panic!() };
        assert_eq!(frag.fragment_fields(), (0, 0, 0, 1, 7));
        assert!(p.error.is_none());
    }
}
