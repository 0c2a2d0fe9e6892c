//! ICMP for IPv4 (RFC 792, 950, 1191). The fields after type/code/checksum depend on the type,
//! exactly as scapy 2.5's conditional fields lay them out. Error messages (types 3, 4, 5, 11,
//! 12) quote the offending datagram, decoded as `iperror` and friends.

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// Types whose 4 bytes after the checksum are identifier and sequence number.
pub const ID_SEQ_TYPES: [u8; 10] = [0, 8, 13, 14, 15, 16, 17, 18, 37, 38];

/// Bytes scapy's ICMP layer occupies for `icmp_type`.
pub fn header_len(icmp_type: u8) -> usize {
    let mut n = 4;
    if ID_SEQ_TYPES.contains(&icmp_type) {
        n += 4;
    }
    match icmp_type {
        13 | 14 => n += 12,
        5 => n += 4,
        12 => n += 2,
        3 => n += 4,
        11 => n += 2,
        17 | 18 => n += 4,
        _ => {}
    }
    n + unused_len(icmp_type)
}

/// Size of scapy's trailing `unused` field: 2 (short), 4 (int) or 0 (empty bytes).
pub fn unused_len(icmp_type: u8) -> usize {
    match icmp_type {
        11 | 12 => 2,
        0 | 3 | 5 | 8 | 13..=18 => 0,
        _ => 4,
    }
}

/// Error types whose payload is the quoted IP datagram.
pub fn quotes_datagram(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// An ICMP header (RFC 792).
#[derive(Clone, Copy, Debug)]
pub struct Icmp<'a> {
    /// The header bytes, exactly `header_len(type)` long.
    pub bytes: &'a [u8],
    /// Inside another ICMP error (scapy `ICMPerror`).
    pub quoted: bool,
}

impl Icmp<'_> {
    /// Message type.
    pub fn icmp_type(&self) -> u8 {
        self.bytes[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.bytes[1]
    }
    /// The big-endian `u16` at `at` of the header (0 past the end).
    pub fn be16(&self, at: usize) -> u16 {
        bytes::be16(self.bytes, at)
    }
    /// The big-endian `u32` at `at` of the header (0 past the end).
    pub fn be32(&self, at: usize) -> u32 {
        bytes::be32(self.bytes, at)
    }
    /// The byte at `at` of the header (0 past the end).
    pub fn byte(&self, at: usize) -> u8 {
        bytes::byte(self.bytes, at)
    }
}

pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, quoted: bool) -> Next {
    let rest = cur.rest();
    let Some(&t) = rest.first() else {
        return fail(pkt, LayerName::Icmp, ErrorKind::Truncated);
    };
    let len = header_len(t);
    let Some(bytes) = rest.get(..len) else {
        return fail(pkt, LayerName::Icmp, ErrorKind::Truncated);
    };
    if !push(pkt, Layer::Icmp(Icmp { bytes, quoted })) {
        return Next::Stop;
    }
    cur.advance(len);
    if quotes_datagram(t) {
        Next::Ipv4 { quoted: true }
    } else {
        Next::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        for t in 0..=255u8 {
            let n = header_len(t);
            assert!((4..=20).contains(&n), "type {t}: {n}");
        }
        assert_eq!(header_len(0), 8);
        assert_eq!(header_len(3), 8);
        assert_eq!(header_len(13), 20);
        assert_eq!(header_len(17), 12);
        assert_eq!(header_len(37), 12);
        assert_eq!(header_len(9), 8);
    }
}
