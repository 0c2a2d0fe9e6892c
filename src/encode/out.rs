//! A write cursor over a pre-sized byte slice.
//!
//! Appending to a `Vec<u8>` field by field re-reads and re-stores the vector's length around
//! every write (the bytes written may alias it, as far as the compiler knows). The encoder
//! instead writes through a slice with the position in a local, checks room with one slice
//! bound per write, and never panics: a write that does not fit is skipped but still counted,
//! so the caller learns the exact size needed and encodes again into a larger buffer.

/// Cursor over `buf`; `pos` may run past the end (see [`Out::overflowed`]).
pub struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Out<'a> {
    /// A cursor at the start of `buf`.
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Out<'a> {
        Out { buf, pos: 0 }
    }

    /// Bytes written (or that would have been written).
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when nothing has been written.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// True when some write did not fit; the output is then incomplete.
    #[inline(always)]
    pub fn overflowed(&self) -> bool {
        self.pos > self.buf.len()
    }

    /// Appends one byte (counted even when it does not fit).
    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        if let Some(d) = self.buf.get_mut(self.pos) {
            *d = b;
        }
        self.pos += 1;
    }

    /// Appends `s` (counted even when it does not fit; then nothing of it is written).
    #[inline(always)]
    pub fn extend_from_slice(&mut self, s: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.pos..self.pos + s.len()) {
            d.copy_from_slice(s);
        }
        self.pos += s.len();
    }

    /// Appends the first `n` bytes of `block` (`n` at most `N`). When all `N` bytes fit, the
    /// whole block is copied (one fixed-size copy, no length-dependent loop) and only `n`
    /// count: the bytes after them are room that later writes overwrite, never output (every
    /// user of `Out` takes `len()` bytes). Counted even when it does not fit, as
    /// [`Out::extend_from_slice`].
    #[inline(always)]
    pub fn extend_padded<const N: usize>(&mut self, block: &[u8; N], n: usize) {
        let n = n.min(N);
        match self
            .buf
            .get_mut(self.pos..)
            .and_then(|r| r.first_chunk_mut::<N>())
        {
            Some(d) => *d = *block,
            None => copy_tail(self.buf, self.pos, block.get(..n).unwrap_or(&[])),
        }
        self.pos += n;
    }

    /// The next `n` bytes to fill in place (`None` if they do not fit); the cursor moves past
    /// them either way.
    #[inline(always)]
    pub fn window(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.pos;
        self.pos += n;
        self.buf.get_mut(start..start + n)
    }
}

/// The end of a buffer too short for a whole padded block: `s` at `pos` if it fits, else
/// nothing. Cold and out of line: inlined, this length-dependent copy (a `memcpy` call) sat in
/// the middle of every padded write and filled the instruction cache with code that runs at
/// most once per buffer.
#[cold]
#[inline(never)]
fn copy_tail(buf: &mut [u8], pos: usize, s: &[u8]) {
    if let Some(d) = buf.get_mut(pos..pos + s.len()) {
        d.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_counted_not_written() {
        let mut buf = [0u8; 4];
        let mut o = Out::new(&mut buf);
        o.extend_from_slice(b"abc");
        o.extend_from_slice(b"de");
        o.push(b'f');
        assert!(o.overflowed());
        assert_eq!(o.len(), 6);
        assert!(o.window(3).is_none());
        assert_eq!(&buf, b"abc\0");
    }

    #[test]
    fn padded_writes_count_only_their_length() {
        let block = *b"12345678";
        // Room for the whole block: copied whole, three bytes counted, the next write lands
        // right after them.
        let mut buf = [0u8; 12];
        let mut o = Out::new(&mut buf);
        o.extend_padded(&block, 3);
        o.extend_from_slice(b"ab");
        assert_eq!(o.len(), 5);
        assert!(!o.overflowed());
        assert_eq!(&buf[..5], b"123ab");
        // Room for the counted bytes but not the block: the exact bytes only.
        let mut buf = [0u8; 4];
        let mut o = Out::new(&mut buf);
        o.extend_padded(&block, 4);
        assert!(!o.overflowed());
        assert_eq!(&buf, b"1234");
        // No room: counted, nothing written.
        let mut buf = [0u8; 4];
        let mut o = Out::new(&mut buf);
        o.extend_from_slice(b"xy");
        o.extend_padded(&block, 3);
        assert_eq!(o.len(), 5);
        assert!(o.overflowed());
        assert_eq!(&buf, b"xy\0\0");
    }
}
