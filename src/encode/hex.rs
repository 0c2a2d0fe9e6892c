//! Table-driven text formatting through an [`Out`] cursor: hex, decimal, MAC and IP
//! addresses, JSON strings.

use super::out::{Fixed, Out};

/// Lower-case hex digit pairs for every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    t
};

/// Inputs at least this long go to the SIMD writer; shorter ones (MAC-sized fields, option
/// bytes, the tail of a DNS record) are written inline by table, where a call and the CPU
/// feature test would cost more than the bytes.
const SIMD_MIN: usize = 16;

/// Appends `bytes` as lower-case hex.
///
/// Long inputs (payloads) use `const_hex`, which picks AVX2, SSSE3 or NEON code at run time
/// (the CPU's features are detected once and cached by std, then read with one atomic load
/// per call); [`hex_scalar`] writes the short ones and is the oracle of the SIMD code in the
/// tests.
#[inline]
pub fn push_hex(out: &mut Out<'_>, bytes: &[u8]) {
    let Some(dst) = out.window(bytes.len() * 2) else {
        return;
    };
    if bytes.len() < SIMD_MIN {
        for (pair, &b) in dst.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
    } else {
        hex_simd(dst, bytes);
    }
}

/// `dst` (exactly twice as long as `bytes`) filled with the hex of `bytes` by the SIMD code.
#[inline(never)]
fn hex_simd(dst: &mut [u8], bytes: &[u8]) {
    if const_hex::encode_to_slice(bytes, dst).is_err() {
        // Only a length mismatch is an error, and `dst` comes from `Out::window` with exactly
        // this length; should it ever happen, the bytes are still written, never left stale.
        hex_scalar(dst, bytes);
    }
}

/// Fills `dst` with the lower-case hex of `bytes` (two digits per byte, as many as both
/// lengths allow) without SIMD intrinsics: 16-byte blocks by branch-free arithmetic on
/// fixed-size arrays, the rest by table. The reference the SIMD writer is tested against.
pub fn hex_scalar(dst: &mut [u8], bytes: &[u8]) {
    let mut src_blocks = bytes.chunks_exact(16);
    let mut dst_blocks = dst.chunks_exact_mut(32);
    for (s, d) in (&mut src_blocks).zip(&mut dst_blocks) {
        if let Ok(block) = <&[u8; 16]>::try_from(s) {
            d.copy_from_slice(&hex_block(block));
        }
    }
    let tail = src_blocks.remainder();
    for (pair, &b) in dst_blocks.into_remainder().chunks_exact_mut(2).zip(tail) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// 16 bytes to 32 hex digits with branch-free arithmetic on fixed-size arrays, which the
/// compiler turns into vector instructions.
#[inline]
fn hex_block(block: &[u8; 16]) -> [u8; 32] {
    let digit = |n: u8| n + b'0' + u8::from(n > 9) * (b'a' - b'0' - 10);
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    for i in 0..16 {
        hi[i] = digit(block[i] >> 4);
        lo[i] = digit(block[i] & 0x0f);
    }
    let mut text = [0u8; 32];
    for i in 0..16 {
        text[2 * i] = hi[i];
        text[2 * i + 1] = lo[i];
    }
    text
}

/// Appends a 6-byte MAC address as `aa:bb:cc:dd:ee:ff` in one fixed-size copy.
#[inline]
pub fn push_mac6(out: &mut Out<'_>, mac: &[u8; 6]) {
    let Some(text) = out.window(17) else {
        return;
    };
    for (i, &b) in mac.iter().enumerate() {
        let pair = HEX_PAIRS[usize::from(b)];
        text[3 * i] = pair[0];
        text[3 * i + 1] = pair[1];
        if i < 5 {
            text[3 * i + 2] = b':';
        }
    }
}

/// Writes the hex digits of a 6-byte MAC address into `text` at `at` (the colons between
/// them are the caller's: a template already holds them).
#[inline(always)]
pub fn fill_mac6<const K: usize>(text: &mut [u8; K], at: usize, mac: &[u8; 6]) {
    if let Some(t) = text.get_mut(at..at + 17) {
        for (i, &b) in mac.iter().enumerate() {
            let pair = HEX_PAIRS[usize::from(b)];
            t[3 * i] = pair[0];
            t[3 * i + 1] = pair[1];
        }
    }
}

/// Appends a MAC address as `aa:bb:cc:dd:ee:ff` (any length; bytes joined by colons).
#[inline]
pub fn push_mac(out: &mut Out<'_>, mac: &[u8]) {
    if let Ok(m) = <&[u8; 6]>::try_from(mac) {
        push_mac6(out, m);
        return;
    }
    for (i, &b) in mac.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.extend_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// "00" to "99", for writing two decimal digits at a time.
static DEC_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// A number written in decimal, by the writer its type calls for: header fields come as
/// `u8`, `u16` or `u32`, and knowing the width at compile time lets each field take the
/// cheapest code without a branch on its value (a table for bytes, five digits for 16-bit
/// fields, inline; 32- and 64-bit numbers through the shared out-of-line writer).
pub trait Decimal: Copy {
    /// Appends `self` in decimal.
    fn push_to(self, out: &mut Out<'_>);
    /// Appends `self` in decimal to a fixed window (one padded block: 4 bytes for a `u8`, 8
    /// for a `u16`, 16 for a `u32`, 24 for a `u64`).
    fn put_to<const N: usize>(self, w: &mut Fixed<'_, N>);
}

impl Decimal for u8 {
    #[inline(always)]
    fn push_to(self, out: &mut Out<'_>) {
        push_u8(out, self);
    }
    #[inline(always)]
    fn put_to<const N: usize>(self, w: &mut Fixed<'_, N>) {
        let entry = U8_DECIMAL[usize::from(self)];
        w.put_padded(&entry.to_le_bytes(), (entry >> 24) as usize);
    }
}

impl Decimal for u16 {
    #[inline(always)]
    fn push_to(self, out: &mut Out<'_>) {
        push_u16(out, self);
    }
    #[inline(always)]
    fn put_to<const N: usize>(self, w: &mut Fixed<'_, N>) {
        let (text, digits) = u16_text(self);
        w.put_padded(&text.to_le_bytes(), digits);
    }
}

impl Decimal for u32 {
    #[inline(always)]
    fn push_to(self, out: &mut Out<'_>) {
        push_u32(out, self);
    }
    #[inline(always)]
    fn put_to<const N: usize>(self, w: &mut Fixed<'_, N>) {
        let text = match u8::try_from(self) {
            Ok(b) => {
                let entry = U8_DECIMAL[usize::from(b)];
                u128::from(entry & 0x00ff_ffff) | (u128::from(entry >> 24) << 120)
            }
            Err(_) => u32_text_long(self),
        };
        w.put_padded(&text.to_le_bytes(), (text >> 120) as usize);
    }
}

impl Decimal for u64 {
    #[inline(always)]
    fn push_to(self, out: &mut Out<'_>) {
        push_u64(out, self);
    }
    #[inline(always)]
    fn put_to<const N: usize>(self, w: &mut Fixed<'_, N>) {
        match u32::try_from(self) {
            Ok(n) => n.put_to(w),
            Err(_) => {
                let digits = self.checked_ilog10().unwrap_or(0) as usize + 1;
                let mut text = [0u8; 24];
                fill_pairs_u64(&mut text[..digits.min(24)], self);
                w.put_padded(&text, digits);
            }
        }
    }
}

/// A 16-bit value's decimal text in the low bytes of a word (little-endian) and its digit
/// count: below 256 by the byte table, else five digits by constant divisions with the
/// leading zeros shifted out.
#[inline(always)]
fn u16_text(v: u16) -> (u64, usize) {
    match u8::try_from(v) {
        Ok(b) => {
            let entry = U8_DECIMAL[usize::from(b)];
            (u64::from(entry & 0x00ff_ffff), (entry >> 24) as usize)
        }
        Err(_) => {
            let n = u32::from(v);
            let digits = 1
                + usize::from(n >= 10)
                + usize::from(n >= 100)
                + usize::from(n >= 1_000)
                + usize::from(n >= 10_000);
            (
                five_digits(n / 10_000, n % 10_000) >> (8 * (5 - digits)),
                digits,
            )
        }
    }
}

/// A 32-bit value's decimal text in the low ten bytes (little-endian) with its digit count
/// in the top byte; out of line, for the values of 256 and above (sequence numbers, TTLs).
#[inline(never)]
fn u32_text_long(n: u32) -> u128 {
    u32_text(n)
}

/// A 32-bit value's decimal text in the low ten bytes (little-endian) with its digit count
/// in the top byte: up to five digits by constant divisions and the pair table, more (TCP
/// sequence numbers, seconds since 1970) as two digits by table and eight by SWAR
/// arithmetic ([`eight_digits`]); the leading zeros shifted out.
#[inline(always)]
fn u32_text(n: u32) -> u128 {
    let digits = digit_count(n);
    let text = if digits <= 5 {
        u128::from(five_digits(n / 10_000, n % 10_000) >> (8 * (5 - digits)))
    } else {
        let (top, rest) = (n / 100_000_000, n % 100_000_000);
        let text = u128::from(u16::from_le_bytes(DEC_PAIRS[top as usize]))
            | (u128::from(eight_digits(rest)) << 16);
        text >> (8 * (10 - digits.min(10)))
    };
    text | ((digits as u128) << 120)
}

/// The eight decimal digits of `n` (below 10^8, zero-padded) as text in a word, the most
/// significant first in memory (little-endian), computed in lanes of one register: the two
/// halves of four digits, then their hundreds and the rest in 16-bit lanes, then tens and
/// units in bytes. A division by 100 in a lane is a multiplication by 10,486 and a shift by
/// 20 (exact below 10,000), by 10 one by 103 and a shift by 10 (exact below 100); no product
/// leaves its lane.
#[inline(always)]
fn eight_digits(n: u32) -> u64 {
    let x = u64::from(n / 10_000) | (u64::from(n % 10_000) << 32);
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let y = hundreds | ((x - hundreds * 100) << 16);
    let tens = ((y * 103) >> 10) & 0x000f_000f_000f_000f;
    let z = tens | ((y - tens * 10) << 8);
    z + 0x3030_3030_3030_3030
}

/// Appends `v` in decimal with the writer of its type (see [`Decimal`]).
#[inline(always)]
pub fn push_dec<T: Decimal>(out: &mut Out<'_>, v: T) {
    v.push_to(out);
}

/// Every byte value in decimal (one to three digits, little-endian in the low three bytes)
/// with its digit count in the top byte.
static U8_DECIMAL: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u32;
        t[i] = if b >= 100 {
            (b'0' as u32 + b / 100)
                | ((b'0' as u32 + b / 10 % 10) << 8)
                | ((b'0' as u32 + b % 10) << 16)
                | (3 << 24)
        } else if b >= 10 {
            (b'0' as u32 + b / 10) | ((b'0' as u32 + b % 10) << 8) | (2 << 24)
        } else {
            (b'0' as u32 + b) | (1 << 24)
        };
        i += 1;
    }
    t
};

/// Appends a byte value in decimal: one table load and one 4-byte padded copy (the byte
/// after the digits is room, see [`Out::extend_padded`]); no branch on the value.
#[inline(always)]
pub fn push_u8(out: &mut Out<'_>, v: u8) {
    let entry = U8_DECIMAL[usize::from(v)];
    out.extend_padded(&entry.to_le_bytes(), (entry >> 24) as usize);
}

/// Appends a 16-bit value in decimal: below 256 by the byte table (inline), else the digit
/// count by four comparisons, all five digits by constant divisions (multiplications) and
/// two pair loads, the leading zeros shifted out, one 8-byte padded copy.
#[inline(always)]
pub fn push_u16(out: &mut Out<'_>, v: u16) {
    match u8::try_from(v) {
        Ok(b) => push_u8(out, b),
        Err(_) => push_u16_wide(out, v),
    }
}

#[inline(always)]
fn push_u16_wide(out: &mut Out<'_>, v: u16) {
    let n = u32::from(v);
    let digits = 1
        + usize::from(n >= 10)
        + usize::from(n >= 100)
        + usize::from(n >= 1_000)
        + usize::from(n >= 10_000);
    let shifted = five_digits(n / 10_000, n % 10_000) >> (8 * (5 - digits));
    out.extend_padded(&shifted.to_le_bytes(), digits);
}

/// Appends a 32-bit value in decimal (the shared out-of-line writer).
#[inline(always)]
pub fn push_u32(out: &mut Out<'_>, v: u32) {
    match u8::try_from(v) {
        Ok(b) => push_u8(out, b),
        Err(_) => push_u32_long(out, v),
    }
}

#[inline(never)]
fn push_u32_long(out: &mut Out<'_>, v: u32) {
    push_u32_padded(out, v);
}

/// Appends an integer in decimal.
///
/// Numbers below 100 (most header fields) take an inlined path; longer ones a shared one.
#[inline(always)]
pub fn push_u64(out: &mut Out<'_>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
    } else if v < 100 {
        out.extend_from_slice(&DEC_PAIRS[v as usize]);
    } else {
        push_u64_long(out, v);
    }
}

#[inline(never)]
fn push_u64_long(out: &mut Out<'_>, v: u64) {
    match u32::try_from(v) {
        // Most numbers fit 32 bits: no branch on their length there.
        Ok(n) => push_u32_padded(out, n),
        Err(_) => {
            let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
            if let Some(window) = out.window(digits) {
                fill_pairs_u64(window, v);
            }
        }
    }
}

/// Lemire's digit count table: for a number whose highest set bit is bit `i`, adding entry
/// `i` carries into the upper 32 bits exactly its count of decimal digits (entry `i` is
/// `(k + 1) << 32` minus `10^k` when `10^k` falls among those numbers, else `k << 32`).
static DIGIT_COUNT: [u64; 32] = {
    let mut t = [0u64; 32];
    let mut i = 0;
    while i < 32 {
        // Digits of the smallest number with this highest bit, and the next power of ten.
        let low = 1u64 << i;
        let mut k = 1u64;
        let mut p = 10u64;
        while p <= low {
            k += 1;
            p *= 10;
        }
        let high = (1u64 << (i + 1)) - 1;
        t[i] = if p <= high {
            ((k + 1) << 32) - p
        } else {
            k << 32
        };
        i += 1;
    }
    t
};

/// Decimal digits of `n` (1 for 0), without a branch.
#[inline(always)]
fn digit_count(n: u32) -> usize {
    let bit = 31 - (n | 1).leading_zeros() as usize;
    ((u64::from(n) + DIGIT_COUNT[bit & 31]) >> 32) as usize
}

/// Five decimal digits as text in the low five bytes of a word (little-endian): `top` (one
/// digit) then `rest` (below 10,000) zero-padded to four; built in a register, not in memory.
#[inline(always)]
fn five_digits(top: u32, rest: u32) -> u64 {
    let (hi, lo) = (
        u16::from_le_bytes(DEC_PAIRS[(rest / 100) as usize]),
        u16::from_le_bytes(DEC_PAIRS[(rest % 100) as usize]),
    );
    u64::from(b'0' + top as u8) | (u64::from(hi) << 8) | (u64::from(lo) << 24)
}

/// Appends `n` in decimal: all five or ten digits computed with constant divisions into a
/// register (zero-padded on the left), the leading zeros shifted out, then one padded copy.
#[inline(always)]
fn push_u32_padded(out: &mut Out<'_>, n: u32) {
    let text = u32_text(n);
    out.extend_padded(&text.to_le_bytes(), (text >> 120) as usize);
}

/// Fills `window` (exactly as long as the number has digits) two digits per division.
#[inline(always)]
fn fill_pairs_u64(window: &mut [u8], mut n: u64) {
    let mut i = window.len();
    while i >= 2 {
        let pair = DEC_PAIRS[(n % 100) as usize];
        n /= 100;
        i -= 2;
        window[i] = pair[0];
        window[i + 1] = pair[1];
    }
    if i == 1 {
        window[0] = b'0' + n as u8;
    }
}

/// Appends exactly nine digits of `n` (zero-padded; `n` below 10^9, else its low nine), for
/// the nanosecond part of a timestamp: the top digit and eight by SWAR arithmetic
/// (`eight_digits`) in one 16-byte padded block.
#[inline(always)]
pub fn put_nine_digits<const N: usize>(w: &mut Fixed<'_, N>, n: u32) {
    let n = n % 1_000_000_000;
    let text = u128::from(b'0' + (n / 100_000_000) as u8)
        | (u128::from(eight_digits(n % 100_000_000)) << 8);
    w.put_padded(&text.to_le_bytes(), 9);
}

/// Every byte value in decimal followed by a dot (little-endian in the low bytes), with the
/// count of those bytes (digits and dot) in the top byte.
static OCTETS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u32;
        t[i] = if b >= 100 {
            digit(b / 100)
                | (digit(b / 10 % 10) << 8)
                | (digit(b % 10) << 16)
                | ((b'.' as u32) << 24)
        } else if b >= 10 {
            digit(b / 10) | (digit(b % 10) << 8) | ((b'.' as u32) << 16)
        } else {
            digit(b) | ((b'.' as u32) << 8)
        };
        i += 1;
    }
    t
};

/// The ASCII digit `d`.
const fn digit(d: u32) -> u32 {
    b'0' as u32 + d
}

/// Length of each [`OCTETS`] entry (digits and dot).
static OCTET_LENS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i >= 100 {
            4
        } else if i >= 10 {
            3
        } else {
            2
        };
        i += 1;
    }
    t
};

/// Appends a dotted-quad IPv4 address: the four octets' texts from a table, shifted into
/// place in one 128-bit register (no branch per digit count, and no byte stores to memory
/// that a wider load would then have to wait for), then one padded copy.
#[inline]
pub fn push_ipv4(out: &mut Out<'_>, a: &[u8; 4]) {
    let (text, n) = ipv4_text(a);
    out.extend_padded(&text.to_le_bytes(), n);
}

/// [`push_ipv4`] into a fixed window (one 16-byte block).
#[inline(always)]
pub fn put_ipv4<const N: usize>(w: &mut Fixed<'_, N>, a: &[u8; 4]) {
    let (text, n) = ipv4_text(a);
    w.put_padded(&text.to_le_bytes(), n);
}

/// A dotted-quad address's text in the low bytes of a 128-bit word, and its length.
#[inline(always)]
fn ipv4_text(a: &[u8; 4]) -> (u128, usize) {
    let mut text = 0u128;
    let mut n = 0u32;
    for &b in a {
        text |= u128::from(OCTETS[usize::from(b)]) << (8 * n);
        n += u32::from(OCTET_LENS[usize::from(b)]);
    }
    // Without the last octet's dot.
    (text, n as usize - 1)
}

/// Appends an IPv6 address the way glibc's `inet_ntop` prints it (see [`ipv6_text`]).
pub fn push_ipv6(out: &mut Out<'_>, a: &[u8; 16]) {
    // A window of twice the room: writes start in its first half (see `Fixed`).
    out.fixed::<128>(|w| w.slot(|t| ipv6_text(t, a)));
}

/// Room [`ipv6_text`] writes in: the longest text (39 bytes) and the padding of its last
/// 8-byte block.
pub const IPV6_TEXT_ROOM: usize = 48;

/// Writes an IPv6 address at the start of `t` the way glibc's `inet_ntop` prints it (RFC
/// 5952 style: lower case, no leading zeros, the longest run of two or more zero groups as
/// `::`, the first run on ties), with the embedded-IPv4 forms `::a.b.c.d` and
/// `::ffff:a.b.c.d`; returns its length. Each group is one 8-byte block (its separator and
/// hex digits, made in a register), so no write depends on the length of the one before but
/// through the position.
#[inline]
pub fn ipv6_text(t: &mut [u8; IPV6_TEXT_ROOM], a: &[u8; 16]) -> usize {
    let mut words = [0u16; 8];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
    }
    // Longest run of zero words (length >= 2), the first on ties.
    let (mut best_start, mut best_len) = (8usize, 0usize);
    let mut run = 0usize;
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            run += 1;
            if run > best_len {
                best_len = run;
                best_start = i + 1 - run;
            }
        } else {
            run = 0;
        }
    }
    if best_len < 2 {
        best_start = 8;
        best_len = 0;
    }
    // glibc: an address starting with 6 zero words or 5 zero words then ffff ends in dotted
    // IPv4 (`::a.b.c.d`, `::ffff:a.b.c.d`).
    if best_start == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
        let prefix: &[u8] = if best_len == 6 { b"::" } else { b"::ffff:" };
        let (text, n) = ipv4_text(&[a[12], a[13], a[14], a[15]]);
        if let Some(d) = t.get_mut(..prefix.len()) {
            d.copy_from_slice(prefix);
        }
        if let Some(d) = t.get_mut(prefix.len()..prefix.len() + 16) {
            d.copy_from_slice(&text.to_le_bytes());
        }
        return prefix.len() + n;
    }
    let mut pos = 0usize;
    let mut put = |block: u64, n: usize| {
        // At most 8 groups of 5 bytes: `pos` stays below 40.
        let at = pos.min(IPV6_TEXT_ROOM - 8);
        if let Some(d) = t.get_mut(at..).and_then(|r| r.first_chunk_mut::<8>()) {
            *d = block.to_le_bytes();
        }
        pos += n;
    };
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            // `::` in place of the run (the second colon is the next group's separator, or
            // written here when the run ends the address).
            i += best_len;
            put(
                u64::from(u16::from_le_bytes(*b"::")),
                1 + usize::from(i == 8),
            );
            continue;
        }
        let (digits, n) = hex_group(words[i]);
        if i == 0 {
            put(digits, n);
        } else {
            put(u64::from(b':') | (digits << 8), n + 1);
        }
        i += 1;
    }
    pos
}

/// A 16-bit group in lower-case hex without leading zeros (one to four digits, in the low
/// bytes of a word), and its digit count; branch-free.
#[inline(always)]
fn hex_group(w: u16) -> (u64, usize) {
    let x = u32::from(w);
    // One nibble per byte, the most significant first in memory (little-endian).
    let nibbles =
        ((x >> 12) & 0xf) | (((x >> 8) & 0xf) << 8) | (((x >> 4) & 0xf) << 16) | ((x & 0xf) << 24);
    // `'0' + v`, plus 39 more for `a`..`f` (bit 4 of `v + 6` is set exactly when `v > 9`).
    let ascii = nibbles + 0x3030_3030 + (((nibbles + 0x0606_0606) >> 4) & 0x0101_0101) * 39;
    let digits = (32 - (x | 1).leading_zeros() as usize).div_ceil(4);
    (u64::from(ascii) >> (8 * (4 - digits)), digits)
}

/// Appends bytes as the contents of a JSON string, each byte one character U+0000..U+00FF
/// (latin-1): printable ASCII as is, `"` and `\` escaped, everything else as `\u00XX`.
///
/// Inlined: DNS names call it once per label, and out of line the cursor lives in memory.
/// Most strings (labels, header values) need no escape: they are checked and copied a word
/// at a time by `push_if_clean`; only a string with a byte to escape takes the run-by-run
/// writer.
#[inline]
pub fn push_latin1_escaped(out: &mut Out<'_>, bytes: &[u8]) {
    if !push_if_clean(out, bytes, needs_escape) {
        push_latin1_escaped_runs(out, bytes);
    }
}

/// [`push_latin1_escaped`] for a string with something to escape: runs of printable ASCII
/// are found eight bytes at a time where they can and copied in one piece, the bytes to
/// escape written one by one.
#[inline(never)]
fn push_latin1_escaped_runs(out: &mut Out<'_>, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..).and_then(|r| r.first_chunk::<8>()) {
            if !needs_escape(u64::from_le_bytes(*chunk)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        start = i;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&HEX_PAIRS[usize::from(b)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The low seven bits of every byte of a word (SWAR escape checks).
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
/// The high bit of every byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte of a word.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// The high bit set in every byte of `x` equal to `b` (its XOR with `b` is zero), clear in
/// the others.
#[inline(always)]
const fn bytes_equal(x: u64, b: u8) -> u64 {
    let v = x ^ splat(b);
    !(((v & LOW7) + LOW7) | v)
}

/// Whether any of the eight bytes of `x` is outside printable ASCII (below 0x20, 0x7f and
/// above) or is `"` or `\\` (SWAR: every test works on all eight bytes at once, with the
/// high bits masked off so no carry crosses a byte).
#[inline(always)]
fn needs_escape(x: u64) -> bool {
    let low = x & LOW7;
    // High bit set in a byte that is 0x7f or more: its own high bit, or its low seven bits
    // plus one carry into it.
    let high_or_del = x | (low + splat(1));
    // High bit clear in a byte whose low seven bits are below 0x20 (then set: the byte is a
    // control character, or was caught above).
    let control = !(low + splat(0x80 - 0x20));
    (high_or_del | control | bytes_equal(x, b'"') | bytes_equal(x, b'\\')) & HIGH != 0
}

/// Appends a UTF-8 string as the contents of a JSON string (control characters, `"` and `\`
/// escaped). A string with nothing to escape (the usual case) is checked and copied a word at
/// a time (`push_if_clean`).
#[inline]
pub fn push_str_escaped(out: &mut Out<'_>, s: &str) {
    push_utf8_escaped(out, s.as_bytes());
}

/// [`push_str_escaped`] on the string's bytes (the tests give it any bytes).
#[inline(always)]
fn push_utf8_escaped(out: &mut Out<'_>, s: &[u8]) {
    if !push_if_clean(out, s, needs_str_escape) {
        push_str_escaped_bytes(out, s);
    }
}

/// [`push_str_escaped`] byte by byte, for a string with something to escape.
#[inline(never)]
fn push_str_escaped_bytes(out: &mut Out<'_>, s: &[u8]) {
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&HEX_PAIRS[usize::from(b)]);
            }
            _ => out.push(b),
        }
    }
}

/// Whether any of the eight bytes of `x` must be escaped in a JSON string holding UTF-8: a
/// control character (below 0x20), `"` or `\\` (bytes from 0x7f up pass as they are). SWAR as
/// [`needs_escape`].
#[inline(always)]
fn needs_str_escape(x: u64) -> bool {
    let low = x & LOW7;
    // High bit clear in a byte whose low seven bits are below 0x20; `!x` keeps only the
    // bytes that are below 0x80 themselves.
    let control = !(low + splat(0x80 - 0x20)) & !x;
    (control | bytes_equal(x, b'"') | bytes_equal(x, b'\\')) & HIGH != 0
}

/// Appends `bytes` as they are and returns true when no byte of them needs an escape by
/// `dirty` (a test of eight bytes at once, see [`needs_escape`]); else writes nothing and
/// returns false.
///
/// Up to 16 bytes are read as two overlapping words from the ends (no byte loop, no copy into
/// a padded buffer), put together in order in a register and written with one padded store
/// ([`Out::extend_padded`]); the bytes read twice are the same bytes, so OR-ing the words
/// rebuilds the string. Longer strings are checked word by word and copied with one
/// `extend_from_slice`.
#[inline(always)]
fn push_if_clean<F: Fn(u64) -> bool>(out: &mut Out<'_>, bytes: &[u8], dirty: F) -> bool {
    let n = bytes.len();
    if n > 16 {
        return push_long_if_clean(out, bytes, dirty);
    }
    if let (Some(a), Some(b)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        // 8..=16 bytes: `b` starts at n - 8.
        let (a, b) = (u64::from_le_bytes(*a), u64::from_le_bytes(*b));
        if dirty(a) || dirty(b) {
            return false;
        }
        let text = u128::from(a) | (u128::from(b) << (8 * (n - 8)));
        out.extend_padded(&text.to_le_bytes(), n);
    } else if let (Some(a), Some(b)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        // 4..=7 bytes.
        let (a, b) = (u32::from_le_bytes(*a), u32::from_le_bytes(*b));
        if dirty(u64::from(a) | (u64::from(b) << 32)) {
            return false;
        }
        let text = u64::from(a) | (u64::from(b) << (8 * (n - 4)));
        out.extend_padded(&text.to_le_bytes(), n);
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        // 1..=3 bytes: the first, middle and last cover them all; the rest of the word is
        // filled with a letter so only these bytes are tested.
        let mid = bytes.get(n / 2).copied().unwrap_or(first);
        let text = u64::from(first)
            | (u64::from(mid) << (8 * (n / 2)))
            | (u64::from(last) << (8 * (n - 1)));
        if dirty(text | (0x6161_6161_6161_6161 << (8 * n))) {
            return false;
        }
        out.extend_padded(&text.to_le_bytes(), n);
    }
    true
}

/// [`push_if_clean`] for more than 16 bytes: each whole word, then the last eight bytes.
#[inline(never)]
fn push_long_if_clean<F: Fn(u64) -> bool>(out: &mut Out<'_>, bytes: &[u8], dirty: F) -> bool {
    let word = |w: &[u8; 8]| u64::from_le_bytes(*w);
    let clean = !bytes
        .chunks_exact(8)
        .filter_map(|w| w.first_chunk::<8>())
        .chain(bytes.last_chunk::<8>())
        .any(|w| dirty(word(w)));
    if clean {
        out.extend_from_slice(bytes);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a cursor over a large buffer and returns what it wrote.
    fn text(f: impl FnOnce(&mut Out<'_>)) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut o = Out::new(&mut buf);
        f(&mut o);
        assert!(!o.overflowed());
        let n = o.len();
        buf.truncate(n);
        buf
    }

    fn v6(s: &str) -> String {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        String::from_utf8(text(|o| push_ipv6(o, &a.octets()))).unwrap()
    }

    #[test]
    fn ipv6_like_glibc() {
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("2001:db8::1"), "2001:db8::1");
        assert_eq!(v6("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
        assert_eq!(v6("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
        assert_eq!(v6("::192.0.2.1"), "::192.0.2.1");
        assert_eq!(v6("fe80::"), "fe80::");
        assert_eq!(v6("ff02::1:ff00:1"), "ff02::1:ff00:1");
        assert_eq!(v6("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(v6("0:0:1::"), "0:0:1::");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(
            v6("abcd:ef01:2345:6789:a:bc:def:f00"),
            "abcd:ef01:2345:6789:a:bc:def:f00"
        );
        // Against the standard library (RFC 5952 as glibc, which differs only for `::a.b.c.d`):
        // addresses of many zero groups, in every arrangement.
        let groups = [0u16, 0, 0, 1, 0x9, 0xab, 0xf00, 0xffff, 0x1234];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut w = [0u16; 8];
            for g in &mut w {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *g = groups[(state % groups.len() as u64) as usize];
            }
            let a = std::net::Ipv6Addr::from(w);
            if w[..6] == [0; 6] && w[6] != 0 {
                continue;
            }
            assert_eq!(v6(&a.to_string()), a.to_string(), "{w:x?}");
        }
    }

    #[test]
    fn numbers_and_long_hex() {
        for v in [
            0u64,
            9,
            10,
            99,
            100,
            12345,
            65535,
            4294967295,
            4294967296,
            u64::MAX,
        ] {
            assert_eq!(text(|o| push_u64(o, v)), v.to_string().as_bytes());
        }
        // Every digit count's edges, and a spread of other 32-bit numbers (the padded path).
        let mut p = 1u64;
        while p <= 10_000_000_000 {
            for v in [p - 1, p, p + 1, 2 * p, 9 * p + (p - 1)] {
                assert_eq!(text(|o| push_u64(o, v)), v.to_string().as_bytes());
            }
            p *= 10;
        }
        for i in 0..20_000u64 {
            let v = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i % 40)) & 0xffff_ffff;
            assert_eq!(text(|o| push_u64(o, v)), v.to_string().as_bytes());
        }
        for shift in 0..32 {
            let v = 1u64 << shift;
            for w in [v - 1, v, v + 1] {
                assert_eq!(text(|o| push_u64(o, w)), w.to_string().as_bytes());
            }
        }
        for v in [
            0u32,
            7,
            1234,
            99_999_999,
            100_000_000,
            123_456_789,
            999_999_999,
        ] {
            let nine = text(|o| o.fixed::<16>(|w| put_nine_digits(w, v)));
            assert_eq!(nine, format!("{v:09}").as_bytes());
        }
        // Only the low nine digits of a larger value.
        let nine = text(|o| o.fixed::<16>(|w| put_nine_digits(w, 1_000_000_042)));
        assert_eq!(nine, b"000000042");
        // The SWAR eight digits: a spread of values with every digit at every place, and the
        // lane edges (each half and each pair at 0, 99, 100, 9999).
        let mut n = 0u32;
        while n < 100_000_000 {
            for v in [n, n + 99, n + 100, n + 9_999 % (100_000_000 - n)] {
                assert_eq!(eight_digits(v).to_le_bytes(), *format!("{v:08}").as_bytes());
            }
            n += 9_973;
        }
        for v in [0, 9_999, 10_000, 99_990_000, 99_999_999] {
            assert_eq!(eight_digits(v).to_le_bytes(), *format!("{v:08}").as_bytes());
        }
        // The typed writers against the standard library, every value of the small types.
        for v in 0..=u8::MAX {
            assert_eq!(text(|o| push_dec(o, v)), v.to_string().as_bytes());
        }
        for v in 0..=u16::MAX {
            assert_eq!(text(|o| push_dec(o, v)), v.to_string().as_bytes());
        }
        for i in 0..20_000u32 {
            let v = i.wrapping_mul(0x9e37_79b9) >> (i % 32);
            assert_eq!(text(|o| push_dec(o, v)), v.to_string().as_bytes());
        }
        for v in [0u32, 9, 10, 65_535, 65_536, 99_999, 100_000, u32::MAX] {
            assert_eq!(text(|o| push_dec(o, v)), v.to_string().as_bytes());
        }
        // Exactly the digits' room left: the padded copies fall back to the counted bytes.
        for v in [0u16, 7, 42, 255, 999, 65_535] {
            let want = v.to_string();
            let mut buf = vec![0u8; want.len()];
            let mut o = Out::new(&mut buf);
            push_dec(&mut o, v);
            if let Ok(b) = u8::try_from(v) {
                push_dec(&mut o, b);
            }
            assert!(o.overflowed() == (v <= 255));
            assert_eq!(o.len(), want.len() * if v <= 255 { 2 } else { 1 });
            assert_eq!(buf, want.as_bytes());
        }
        // Latin-1 escaping, eight bytes at a time where it can: every byte value at every
        // position of a chunk, against the byte-by-byte rule.
        let escape_one = |b: u8| -> Vec<u8> {
            match b {
                b'"' => b"\\\"".to_vec(),
                b'\\' => b"\\\\".to_vec(),
                0x20..=0x7e => vec![b],
                _ => format!("\\u00{b:02x}").into_bytes(),
            }
        };
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut input = b"abcdefghijklmnopqrs".to_vec();
                input[at] = b;
                let want: Vec<u8> = input.iter().flat_map(|&c| escape_one(c)).collect();
                assert_eq!(
                    text(|o| push_latin1_escaped(o, &input)),
                    want,
                    "{b:#x} at {at}"
                );
            }
        }
        assert_eq!(text(|o| push_ipv4(o, &[0, 9, 10, 255])), b"0.9.10.255");
        let bytes: Vec<u8> = (0..=255u8).chain(0..40).collect();
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(text(|o| push_hex(o, &bytes)), want.as_bytes());
        assert_eq!(
            text(|o| push_mac6(o, &[0, 1, 0xab, 0xcd, 0xef, 0xff])),
            b"00:01:ab:cd:ef:ff"
        );
    }

    /// The hex of `bytes` by the plainest rule (a nibble's digit from a string), independent
    /// of both writers.
    fn hex_reference(bytes: &[u8]) -> Vec<u8> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        bytes
            .iter()
            .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
            .collect()
    }

    /// The SIMD paths this CPU offers (what `push_hex` may run here), for the test's message.
    fn simd_paths() -> &'static str {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // 32-byte AVX2 blocks, then one 16-byte SSSE3 block, then scalar bytes.
                return "avx2+ssse3+scalar tail";
            }
            if std::arch::is_x86_feature_detected!("ssse3") {
                return "ssse3+scalar tail";
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return "neon+scalar tail";
            }
        }
        "scalar"
    }

    /// xorshift64*: reproducible test bytes without a dependency.
    fn random_bytes(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// `push_hex` (SIMD for long inputs, on whichever path the CPU offers) equals the scalar
    /// writer and the plain rule for every length 0..=4096, from every alignment of the source
    /// (offset = length mod 64) and at an odd position in the output. With AVX2, the lengths
    /// cover the 32-byte blocks, the 16-byte SSSE3 block (length mod 32 >= 16) and every
    /// scalar tail length; the SSSE3-only and NEON paths are the same calls.
    #[test]
    fn simd_hex_equals_scalar_every_length() {
        let src = random_bytes(4096 + 64, 0x9e37_79b9_7f4a_7c15);
        let mut buf = vec![0u8; 3 + 2 * 4096];
        let mut scalar = vec![0u8; 2 * 4096];
        for len in 0..=4096usize {
            let off = len % 64;
            let input = &src[off..off + len];
            let want = hex_reference(input);
            hex_scalar(&mut scalar[..2 * len], input);
            assert_eq!(&scalar[..2 * len], &want[..], "scalar, length {len}");
            let mut o = Out::new(&mut buf);
            o.extend_from_slice(b"abc");
            push_hex(&mut o, input);
            assert_eq!(o.len(), 3 + 2 * len);
            assert!(!o.overflowed());
            assert_eq!(
                &buf[3..3 + 2 * len],
                &want[..],
                "push_hex ({}), length {len}",
                simd_paths()
            );
        }
        // All byte values, in and across SIMD lanes.
        let every: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(text(|o| push_hex(o, &every)), hex_reference(&every));
    }

    proptest::proptest! {
        /// Random bytes and lengths at a random output position: SIMD equals scalar, and a
        /// buffer too short for the hex gets nothing written but the full length counted.
        #[test]
        fn simd_hex_equals_scalar(
            input in proptest::collection::vec(proptest::num::u8::ANY, 0..=4096),
            at in 0usize..40,
        ) {
            let mut buf = vec![0u8; at + 2 * input.len()];
            let mut o = Out::new(&mut buf);
            o.extend_from_slice(&vec![b'x'; at]);
            push_hex(&mut o, &input);
            proptest::prop_assert_eq!(o.len(), at + 2 * input.len());
            let mut scalar = vec![0u8; 2 * input.len()];
            hex_scalar(&mut scalar, &input);
            proptest::prop_assert_eq!(&buf[at..], &scalar[..]);
            proptest::prop_assert_eq!(&scalar, &hex_reference(&input));
            if !input.is_empty() {
                let mut short = vec![0u8; at + 2 * input.len() - 1];
                let mut o = Out::new(&mut short);
                o.extend_from_slice(&vec![b'x'; at]);
                push_hex(&mut o, &input);
                proptest::prop_assert!(o.overflowed());
                proptest::prop_assert_eq!(o.len(), at + 2 * input.len());
                proptest::prop_assert!(short[at..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn hex_and_strings() {
        let got = text(|o| {
            push_hex(o, &[0, 0xab, 0x7f]);
            push_mac(o, &[1, 2, 0xfe]);
            push_latin1_escaped(o, b"a\"\\\x01\xe9");
        });
        assert_eq!(got, b"00ab7f01:02:fea\\\"\\\\\\u0001\\u00e9");
    }

    /// The byte-by-byte latin-1 rule, the oracle of `push_latin1_escaped`.
    fn latin1_bytewise(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for &b in bytes {
            match b {
                b'"' => v.extend_from_slice(b"\\\""),
                b'\\' => v.extend_from_slice(b"\\\\"),
                0x20..=0x7e => v.push(b),
                _ => v.extend_from_slice(format!("\\u00{b:02x}").as_bytes()),
            }
        }
        v
    }

    /// The byte-by-byte JSON rule for UTF-8 text, the oracle of `push_str_escaped`.
    fn utf8_bytewise(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for &b in bytes {
            match b {
                b'"' => v.extend_from_slice(b"\\\""),
                b'\\' => v.extend_from_slice(b"\\\\"),
                0x00..=0x1f => v.extend_from_slice(format!("\\u00{b:02x}").as_bytes()),
                _ => v.push(b),
            }
        }
        v
    }

    /// Runs both escapers on `input` written after `at` bytes, into a roomy buffer and into
    /// one of exactly the needed size (the padded stores' fallback), against the oracles.
    fn check_escapers(input: &[u8], at: usize) {
        type Escaper = fn(&mut Out<'_>, &[u8]);
        type Oracle = fn(&[u8]) -> Vec<u8>;
        let escapers: [(Escaper, Oracle); 2] = [
            (push_latin1_escaped, latin1_bytewise),
            (push_utf8_escaped, utf8_bytewise),
        ];
        for (escape, oracle) in escapers {
            let want = oracle(input);
            for room in [at + want.len() + 64, at + want.len()] {
                let mut buf = vec![0u8; room];
                let mut o = Out::new(&mut buf);
                o.extend_from_slice(&vec![b'x'; at]);
                escape(&mut o, input);
                assert!(!o.overflowed());
                assert_eq!(o.len(), at + want.len(), "{input:?} at {at}");
                assert_eq!(&buf[at..at + want.len()], &want[..], "{input:?} at {at}");
            }
            if !want.is_empty() {
                // One byte short: counted in full, the output incomplete.
                let mut buf = vec![0u8; at + want.len() - 1];
                let mut o = Out::new(&mut buf);
                o.extend_from_slice(&vec![b'x'; at]);
                escape(&mut o, input);
                assert!(o.overflowed());
                assert_eq!(o.len(), at + want.len());
            }
        }
    }

    /// Every length 0..=64 at several source alignments, with every byte value at every
    /// position of an otherwise clean string: the word-at-a-time paths (1..=3, 4..=7,
    /// 8..=16 and longer) equal the byte loops.
    #[test]
    fn escapers_equal_bytewise_every_byte_length_and_alignment() {
        let clean: Vec<u8> = (0..80u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=64usize {
            for align in [0usize, 1, 3, 7] {
                let mut src = clean.clone();
                check_escapers(&src[align..align + len], align);
                for pos in 0..len {
                    for b in 0..=255u8 {
                        src[align + pos] = b;
                        let input = &src[align..align + len];
                        let run = |escape: fn(&mut Out<'_>, &[u8])| {
                            let mut buf = vec![0u8; 6 * len + 16];
                            let mut o = Out::new(&mut buf);
                            escape(&mut o, input);
                            let n = o.len();
                            buf.truncate(n);
                            buf
                        };
                        let (l, u) = (run(push_latin1_escaped), run(push_utf8_escaped));
                        assert_eq!(l, latin1_bytewise(input), "{b:#x} at {pos} of {len}");
                        assert_eq!(u, utf8_bytewise(input), "{b:#x} at {pos} of {len}");
                    }
                    src[align + pos] = clean[align + pos];
                }
            }
        }
        assert_eq!(
            text(|o| push_str_escaped(o, "é\"\u{1}")),
            "é\\\"\\u0001".as_bytes()
        );
    }

    proptest::proptest! {
        /// Random bytes (biased towards printable ASCII, so long clean runs occur), random
        /// alignment and output position, every room case: the escapers equal their oracles.
        #[test]
        fn escapers_equal_bytewise(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => proptest::num::u8::ANY,
                ],
                0..=64,
            ),
            at in 0usize..20,
            align in 0usize..8,
        ) {
            let mut src = vec![b'.'; align];
            src.extend_from_slice(&input);
            check_escapers(&src[align..], at);
        }
    }
}
