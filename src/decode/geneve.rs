//! GENEVE (RFC 8926) over UDP port 6081, with its TLV options, as scapy 2.5's contrib
//! `GENEVE` and `GeneveOptions` read them.

use super::{bytes, fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// UDP port of GENEVE (RFC 8926).
pub const UDP_PORT: u16 = 6081;

/// A GENEVE header and its options (`8 + optionlen * 4` bytes).
#[derive(Clone, Copy, Debug)]
pub struct Geneve<'a> {
    /// The header and its options.
    pub bytes: &'a [u8],
}

impl<'a> Geneve<'a> {
    /// Version (2 bits).
    pub fn version(&self) -> u8 {
        bytes::byte(self.bytes, 0) >> 6
    }
    /// Length of the options in 4-byte words.
    pub fn optionlen(&self) -> u8 {
        bytes::byte(self.bytes, 0) & 0x3f
    }
    /// The OAM bit.
    pub fn oam(&self) -> u8 {
        bytes::byte(self.bytes, 1) >> 7
    }
    /// The critical-options bit.
    pub fn critical(&self) -> u8 {
        (bytes::byte(self.bytes, 1) >> 6) & 1
    }
    /// The six reserved bits after the flags.
    pub fn reserved(&self) -> u8 {
        bytes::byte(self.bytes, 1) & 0x3f
    }
    /// Protocol type of the payload (an EtherType).
    pub fn proto(&self) -> u16 {
        bytes::be16(self.bytes, 2)
    }
    /// Virtual network identifier (24 bits).
    pub fn vni(&self) -> u32 {
        bytes::be32(self.bytes, 4) >> 8
    }
    /// The reserved byte after the VNI.
    pub fn reserved2(&self) -> u8 {
        bytes::byte(self.bytes, 7)
    }
    /// The options, validated at decode time to tile the option area exactly.
    pub fn options(&self) -> GeneveOptions<'a> {
        GeneveOptions {
            rest: self.bytes.get(8..).unwrap_or(&[]),
        }
    }
}

/// One option: class, type, the 3 reserved bits, length in 4-byte words, data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class.
    pub classid: u16,
    /// Option type.
    pub opt_type: u8,
    /// The three reserved bits.
    pub reserved: u8,
    /// Length of the data in 4-byte words.
    pub length: u8,
    /// Option data.
    pub data: &'a [u8],
}

/// Iterator over GENEVE options ([`Geneve::options`]).
#[derive(Clone, Debug)]
pub struct GeneveOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for GeneveOptions<'a> {
    type Item = Result<GeneveOption<'a>, ErrorKind>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        if r.len() < 4 {
            self.rest = &[];
            return Some(Err(ErrorKind::BadLength));
        }
        let length = r[3] & 0x1f;
        let end = 4 + usize::from(length) * 4;
        let Some(data) = r.get(4..end) else {
            self.rest = &[];
            return Some(Err(ErrorKind::BadLength));
        };
        self.rest = &r[end..];
        Some(Ok(GeneveOption {
            classid: u16::from_be_bytes([r[0], r[1]]),
            opt_type: r[2],
            reserved: r[3] >> 5,
            length,
            data,
        }))
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(&first) = rest.first() else {
        return Next::Stop;
    };
    let len = 8 + usize::from(first & 0x3f) * 4;
    let Some(hdr) = rest.get(..len) else {
        return fail(pkt, LayerName::Geneve, ErrorKind::Truncated);
    };
    let g = Geneve { bytes: hdr };
    // Options that do not tile their area (an option running past it) make the header
    // malformed: it is left as raw rather than shown with a guessed option list.
    if g.options().any(|o| o.is_err()) {
        return fail(pkt, LayerName::Geneve, ErrorKind::BadLength);
    }
    if !push(pkt, Layer::Geneve(g)) {
        return Next::Stop;
    }
    cur.advance(len);
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    match g.proto() {
        0x6558 => Next::Ether,
        0x0800 => Next::Ipv4 { quoted: false },
        0x86dd => Next::Ipv6 { quoted: false },
        _ => Next::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_tile_or_fail() {
        let g = Geneve {
            bytes: &[
                2, 0, 0x65, 0x58, 0, 0, 1, 0, 0x01, 0x02, 0x80, 1, 1, 2, 3, 4,
            ],
        };
        let o: Vec<_> = g.options().collect();
        assert_eq!(
            o,
            [Ok(GeneveOption {
                classid: 0x0102,
                opt_type: 0x80,
                reserved: 0,
                length: 1,
                data: &[1, 2, 3, 4]
            })]
        );
        let bad = Geneve {
            bytes: &[1, 0, 0x65, 0x58, 0, 0, 1, 0, 0x01, 0x02, 0x80, 1],
        };
        assert!(bad.options().any(|o| o.is_err()));
    }
}
