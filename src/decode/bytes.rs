//! Bounds-checked big-endian reads at an offset: 0 where the bytes are missing, never a panic.
//! Used by the layers whose fields sit at type-dependent offsets (ICMP, ICMPv6, ND options).

/// The byte at `at`, or 0 past the end.
#[inline]
pub fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// The big-endian `u16` at `at`, or 0 when it is not all there.
#[inline]
pub fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// The big-endian `u32` at `at`, or 0 when it is not all there.
#[inline]
pub fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_missing_bytes() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(
            (byte(&b, 4), be16(&b, 1), be32(&b, 1)),
            (5, 0x0203, 0x0203_0405)
        );
        assert_eq!((byte(&b, 5), be16(&b, 4), be32(&b, 2)), (0, 0, 0));
    }
}
