//! NTP (RFC 5905) on UDP port 123: the fixed 48-byte header that scapy 2.5 shows as
//! `NTPHeader`. Control (mode 6) and private (mode 7) messages, and anything shorter than
//! the header, stay raw, as scapy's dispatcher leaves them to other classes. Extension fields
//! and the MAC after the header are raw too.

use super::bytes::be32;
use super::{push, Cursor, Layer, Next, Packet};

/// Size of the fixed NTP header; scapy's `_NTP_PACKET_MIN_SIZE`.
pub const HEADER_BYTES: usize = 48;

/// An NTP header (RFC 5905).
#[derive(Clone, Copy, Debug)]
pub struct Ntp<'a> {
    /// Exactly [`HEADER_BYTES`] bytes.
    pub hdr: &'a [u8],
}

impl Ntp<'_> {
    /// Leap indicator (2 bits).
    pub fn leap(&self) -> u8 {
        self.byte(0) >> 6
    }
    /// Version (3 bits).
    pub fn version(&self) -> u8 {
        (self.byte(0) >> 3) & 7
    }
    /// Mode (3 bits: 3 client, 4 server, ...).
    pub fn mode(&self) -> u8 {
        self.byte(0) & 7
    }
    /// Stratum.
    pub fn stratum(&self) -> u8 {
        self.byte(1)
    }
    /// Poll interval, log2 seconds.
    pub fn poll(&self) -> u8 {
        self.byte(2)
    }
    /// Precision, log2 seconds, as the unsigned byte on the wire.
    pub fn precision(&self) -> u8 {
        self.byte(3)
    }
    /// Root delay, 16.16 fixed point as on the wire.
    pub fn delay(&self) -> u32 {
        be32(self.hdr, 4)
    }
    /// Root dispersion, 16.16 fixed point as on the wire.
    pub fn dispersion(&self) -> u32 {
        be32(self.hdr, 8)
    }
    /// Reference ID (4 bytes).
    pub fn ref_id(&self) -> &[u8] {
        self.hdr.get(12..16).unwrap_or(&[])
    }
    /// The four timestamps (reference, origin, receive, transmit), 32.32 fixed point.
    pub fn timestamp(&self, index: usize) -> u64 {
        let at = 16 + 8 * index;
        (u64::from(be32(self.hdr, at)) << 32) | u64::from(be32(self.hdr, at + 4))
    }
    fn byte(&self, at: usize) -> u8 {
        self.hdr.get(at).copied().unwrap_or(0)
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let Some(hdr) = cur.rest().get(..HEADER_BYTES) else {
        return Next::Stop;
    };
    if matches!(hdr[0] & 7, 6 | 7) {
        return Next::Stop;
    }
    if push(pkt, Layer::Ntp(Ntp { hdr })) {
        cur.advance(HEADER_BYTES);
    }
    Next::Stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let mut h = [0u8; 48];
        h[0] = 0x23; // leap 0, version 4, mode 3
        h[1] = 1;
        h[2] = 6;
        h[3] = 0xec;
        h[4..8].copy_from_slice(&0x0001_8000u32.to_be_bytes());
        h[12..16].copy_from_slice(b"GPS\0");
        h[40..48].copy_from_slice(&0xe9a0_0000_8000_0000u64.to_be_bytes());
        let n = Ntp { hdr: &h };
        assert_eq!((n.leap(), n.version(), n.mode()), (0, 4, 3));
        assert_eq!((n.stratum(), n.poll(), n.precision()), (1, 6, 0xec));
        assert_eq!(n.delay(), 0x0001_8000);
        assert_eq!(n.ref_id(), b"GPS\0");
        assert_eq!(n.timestamp(3), 0xe9a0_0000_8000_0000);
        assert_eq!(n.timestamp(0), 0);
    }
}
