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

    /// Runs `f` on a [`Fixed`] window of the next `N` bytes and moves the cursor past what
    /// it wrote: one room check for a run of writes whose total (padding included) is at most
    /// `N` by construction, such as a header layer's fixed fields. When fewer than `N` bytes
    /// are left, `f` writes into a stack copy, copied out if it fits (counted either way, as
    /// [`Out::extend_from_slice`]).
    #[inline(always)]
    pub fn fixed<const N: usize>(&mut self, f: impl FnOnce(&mut Fixed<'_, N>)) {
        let mut spare: Option<[u8; N]> = None;
        let window = match self
            .buf
            .get_mut(self.pos..)
            .and_then(|r| r.first_chunk_mut::<N>())
        {
            Some(w) => w,
            None => {
                near_buffer_end();
                spare.insert([0; N])
            }
        };
        let mut w = Fixed {
            buf: window,
            pos: 0,
        };
        f(&mut w);
        let n = w.pos;
        if let Some(s) = &spare {
            copy_tail(self.buf, self.pos, s.get(..n).unwrap_or(s));
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

/// A write cursor over a window of exactly `N` bytes (see [`Out::fixed`]). Every write is a
/// block of a size known at compile time placed at `min(pos, N - K)`, so the compiler proves
/// it in bounds and emits no check and no branch; the caller keeps the total of its writes
/// within `N` (a write past it would land early and overwrite text, which the debug
/// assertions catch in the tests, never out of bounds and never a panic).
pub struct Fixed<'b, const N: usize> {
    buf: &'b mut [u8; N],
    pos: usize,
}

impl<const N: usize> Fixed<'_, N> {
    /// Bytes written so far.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when nothing has been written.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// The `K` bytes at the cursor (`None` never happens: `K <= N` is checked at compile
    /// time and the start clamped to `N - K`, which lets the compiler drop the check).
    #[inline(always)]
    fn at<const K: usize>(&mut self) -> Option<&mut [u8; K]> {
        const { assert!(K <= N, "a write larger than its fixed window") };
        debug_assert!(self.pos + K <= N, "fixed window of {N} bytes overrun");
        let at = self.pos.min(N - K);
        self.buf
            .get_mut(at..)
            .and_then(|r| r.first_chunk_mut::<K>())
    }

    /// The next `K` bytes to fill in place; `fill` returns how many of them count (at most
    /// `K`; the others are room for the next write, as in [`Fixed::put_padded`]).
    #[inline(always)]
    pub fn slot<const K: usize>(&mut self, fill: impl FnOnce(&mut [u8; K]) -> usize) {
        let n = match self.at::<K>() {
            Some(d) => fill(d),
            None => 0,
        };
        debug_assert!(n <= K);
        self.pos += n;
    }

    /// Appends `s`.
    #[inline(always)]
    pub fn put<const K: usize>(&mut self, s: &[u8; K]) {
        self.put_padded(s, K);
    }

    /// Appends the first `n` bytes of `block` (`n` at most `K`): the whole block is copied,
    /// the bytes after the first `n` are room for the next write (as [`Out::extend_padded`]).
    #[inline(always)]
    pub fn put_padded<const K: usize>(&mut self, block: &[u8; K], n: usize) {
        debug_assert!(n <= K);
        if let Some(d) = self.at::<K>() {
            *d = *block;
        }
        self.pos += n;
    }
}

/// Marks the path it is called on as cold, so the compiler places that code (filling a
/// stack window with zeros) away from the hot writes.
#[cold]
#[inline(never)]
fn near_buffer_end() {}

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
    fn fixed_windows_write_in_place_or_what_fits() {
        let write = |w: &mut Fixed<'_, 16>| {
            w.put(b"ab");
            w.put_padded(b"cdefgh\0\0", 6);
            w.slot::<4>(|t| {
                *t = *b"ijkl";
                3
            });
            w.put_padded(b"mn\0\0", 1);
        };
        // Room for the window: written in place, the padding is room the next write reuses.
        let mut buf = [0u8; 20];
        let mut o = Out::new(&mut buf);
        o.fixed(write);
        o.push(b'z');
        assert_eq!(o.len(), 13);
        assert!(!o.overflowed());
        assert_eq!(&buf[..13], b"abcdefghijkmz");
        // Less room than the window but enough for what is written: exactly that.
        let mut buf = [0u8; 12];
        let mut o = Out::new(&mut buf);
        o.fixed(write);
        assert_eq!(o.len(), 12);
        assert!(!o.overflowed());
        assert_eq!(&buf, b"abcdefghijkm");
        // Not enough room: counted, nothing written (as `extend_from_slice`).
        let mut buf = [0u8; 11];
        let mut o = Out::new(&mut buf);
        o.fixed(write);
        assert_eq!(o.len(), 12);
        assert!(o.overflowed());
        assert_eq!(&buf, &[0; 11]);
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
