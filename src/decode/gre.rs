//! GRE (RFC 2784 with the RFC 2890 key and sequence number, RFC 1701 routing bit), enhanced
//! GRE of PPTP (RFC 2637, protocol 0x880b), and the ERSPAN headers that GRE carries (types
//! I, II and III, as in draft-foschiano-erspan). Field names are scapy 2.5's (`GRE`,
//! `GRE_PPTP`, contrib `ERSPAN_II`, `ERSPAN_III`, `ERSPAN_PlatformSpecific`).

use super::{bytes, ethernet, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// GRE protocol values that lead somewhere other than the EtherType table.
pub const PROTO_TRANSPARENT_ETHERNET: u16 = 0x6558;
/// GRE protocol type of ERSPAN types I and II.
pub const PROTO_ERSPAN_I_II: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
pub const PROTO_ERSPAN_III: u16 = 0x22eb;
/// GRE protocol type of PPP (PPTP).
pub const PROTO_PPP: u16 = 0x880b;

/// A GRE header as captured (4 to 16 bytes); `pptp` for the enhanced header of PPTP.
#[derive(Clone, Copy, Debug)]
pub struct Gre<'a> {
    /// The header as captured.
    pub bytes: &'a [u8],
    /// The enhanced header of PPTP (version 1).
    pub pptp: bool,
}

impl<'a> Gre<'a> {
    fn bit(&self, byte: usize, shift: u8) -> u8 {
        (bytes::byte(self.bytes, byte) >> shift) & 1
    }
    /// The checksum-present bit.
    pub fn chksum_present(&self) -> u8 {
        self.bit(0, 7)
    }
    /// The routing-present bit.
    pub fn routing_present(&self) -> u8 {
        self.bit(0, 6)
    }
    /// The key-present bit.
    pub fn key_present(&self) -> u8 {
        self.bit(0, 5)
    }
    /// The sequence-number-present bit.
    pub fn seqnum_present(&self) -> u8 {
        self.bit(0, 4)
    }
    /// The strict-source-route bit.
    pub fn strict_route_source(&self) -> u8 {
        self.bit(0, 3)
    }
    /// Recursion control (3 bits).
    pub fn recursion_control(&self) -> u8 {
        bytes::byte(self.bytes, 0) & 7
    }
    /// PPTP only: the acknowledgment-number bit (the first of GRE's flag bits).
    pub fn acknum_present(&self) -> u8 {
        self.bit(1, 7)
    }
    /// The flag bits between the recursion control and the version: 5 in GRE, 4 in PPTP.
    pub fn flags(&self) -> u8 {
        let b = bytes::byte(self.bytes, 1) >> 3;
        if self.pptp {
            b & 0x0f
        } else {
            b
        }
    }
    /// Version (0: GRE, 1: PPTP's enhanced GRE).
    pub fn version(&self) -> u8 {
        bytes::byte(self.bytes, 1) & 7
    }
    /// Protocol type of the payload (an EtherType).
    pub fn proto(&self) -> u16 {
        bytes::be16(self.bytes, 2)
    }
    /// The 32-bit words after the first, in header order.
    pub fn word(&self, index: usize) -> u32 {
        bytes::be32(self.bytes, 4 + 4 * index)
    }
}

/// Header length of a GRE header with this first word.
fn gre_len(b0: u8, b1: u8, pptp: bool) -> usize {
    let bit = |shift: u8| usize::from((b0 >> shift) & 1);
    if pptp {
        // payload_len and call_id, then sequence and acknowledgment numbers.
        8 + 4 * bit(4) + 4 * usize::from(b1 >> 7)
    } else {
        // checksum+offset (when the checksum or routing bit is set), key, sequence number.
        let c_or_r = bit(7) | bit(6);
        4 + 4 * c_or_r + 4 * bit(5) + 4 * bit(4)
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    if rest.len() < 4 {
        return fail(pkt, LayerName::Gre, ErrorKind::Truncated);
    }
    let proto = u16::from_be_bytes([rest[2], rest[3]]);
    // scapy picks the PPTP header by the protocol alone, whatever the version says.
    let pptp = proto == PROTO_PPP;
    let len = gre_len(rest[0], rest[1], pptp);
    let Some(hdr) = rest.get(..len) else {
        return fail(pkt, LayerName::Gre, ErrorKind::Truncated);
    };
    let g = Gre { bytes: hdr, pptp };
    if !push(pkt, Layer::Gre(g)) {
        return Next::Stop;
    }
    cur.advance(len);
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    if pptp {
        return Next::Ppp;
    }
    if g.routing_present() == 1 {
        // RFC 1701 source routing entries (deprecated by RFC 2784) are not decoded.
        return Next::Stop;
    }
    match proto {
        PROTO_TRANSPARENT_ETHERNET => Next::Ether,
        PROTO_ERSPAN_I_II if g.seqnum_present() == 1 => Next::Erspan(ErspanKind::II),
        // ERSPAN type I has no sequence number and no ERSPAN header: Ethernet follows.
        PROTO_ERSPAN_I_II => Next::Erspan(ErspanKind::I),
        PROTO_ERSPAN_III => Next::Erspan(ErspanKind::III),
        // PPPoE inside GRE is not a thing; everything else is looked up as an EtherType.
        ethernet::ETHERTYPE_PPPOE_DISCOVERY | ethernet::ETHERTYPE_PPPOE_SESSION => Next::Stop,
        t => ethernet::next_for_ether_type(t),
    }
}

/// Which ERSPAN header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErspanKind {
    /// Type I: no header of its own (scapy `ERSPAN_I`, no fields).
    I,
    /// Type II: 8 bytes.
    II,
    /// Type III: 12 bytes, then an 8-byte platform-specific sub-header when `o` is set.
    III,
    /// The platform-specific sub-header of type III.
    PlatformSpecific,
}

impl ErspanKind {
    /// The layer's JSON key (`erspan_ii`, ...).
    pub fn key(self) -> &'static str {
        match self {
            ErspanKind::I => "erspan_i",
            ErspanKind::II => "erspan_ii",
            ErspanKind::III => "erspan_iii",
            ErspanKind::PlatformSpecific => "erspan_platformspecific",
        }
    }
    /// Length of this header in bytes.
    pub fn header_len(self) -> usize {
        match self {
            ErspanKind::I => 0,
            ErspanKind::II | ErspanKind::PlatformSpecific => 8,
            ErspanKind::III => 12,
        }
    }
}

/// An ERSPAN header.
#[derive(Clone, Copy, Debug)]
pub struct Erspan<'a> {
    /// Which header.
    pub kind: ErspanKind,
    /// The header bytes ([`ErspanKind::header_len`] of them).
    pub bytes: &'a [u8],
}

impl<'a> Erspan<'a> {
    /// The big-endian `u16` at `at` (0 past the end).
    pub fn be16(&self, at: usize) -> u16 {
        bytes::be16(self.bytes, at)
    }
    /// The big-endian `u32` at `at` (0 past the end).
    pub fn be32(&self, at: usize) -> u32 {
        bytes::be32(self.bytes, at)
    }
    /// The byte at `at` (0 past the end).
    pub fn byte(&self, at: usize) -> u8 {
        bytes::byte(self.bytes, at)
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode_erspan<'a>(
    kind: ErspanKind,
    cur: &mut Cursor<'a>,
    pkt: &mut Packet<'a>,
) -> Next {
    let len = kind.header_len();
    let Some(hdr) = cur.rest().get(..len) else {
        return fail(pkt, LayerName::Erspan, ErrorKind::Truncated);
    };
    let e = Erspan { kind, bytes: hdr };
    if !push(pkt, Layer::Erspan(e)) {
        return Next::Stop;
    }
    cur.advance(len);
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    if kind == ErspanKind::III && e.byte(11) & 1 == 1 {
        return Next::Erspan(ErspanKind::PlatformSpecific);
    }
    // The mirrored frame: scapy reads Ethernet whatever type III's frame-type field says.
    Next::Ether
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        assert_eq!(gre_len(0x00, 0, false), 4);
        assert_eq!(gre_len(0xb0, 0, false), 16);
        assert_eq!(gre_len(0x40, 0, false), 8);
        assert_eq!(gre_len(0x30, 0x81, true), 16);
        assert_eq!(gre_len(0x20, 0x01, true), 8);
    }
}
