//! HTTP/1.x request and response heads (RFC 9112) on TCP ports 80 and 8080, one segment at a
//! time as scapy 2.5's `HTTPRequest` / `HTTPResponse` read them (no stream reassembly).
//!
//! A segment is HTTP when its first line (up to the first CRLF) matches scapy's patterns:
//! `METHOD SP target SP HTTP/d.d` for one of the eight RFC 9110 methods, or
//! `HTTP/d.d SP ddd SP reason`. The head runs to the first blank line (or the end of the
//! segment); what follows is the body, left raw. Header lines are kept as bytes and walked
//! again by the encoder, so the layer is two words and nothing is copied.

use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// Most header lines accepted in one head; a head with more is left raw (it would cost the
/// encoder a quadratic walk).
pub const MAX_HEADER_LINES: usize = 256;

const METHODS: [&[u8]; 8] = [
    b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE", b"CONNECT",
];

/// An HTTP/1.x request or response head.
#[derive(Clone, Copy, Debug)]
pub struct Http<'a> {
    /// From the first line through the blank line that ends the head (or the segment).
    pub head: &'a [u8],
    /// A response (status line) rather than a request.
    pub response: bool,
}

/// scapy's header fields of a request after `Method`, `Path`, `Http_Version`, in its order.
pub const REQUEST_HEADERS: [&str; 56] = [
    "A_IM",
    "Accept",
    "Accept_Charset",
    "Accept_Datetime",
    "Accept_Encoding",
    "Accept_Language",
    "Access_Control_Request_Headers",
    "Access_Control_Request_Method",
    "Authorization",
    "Cache_Control",
    "Connection",
    "Content_Length",
    "Content_MD5",
    "Content_Type",
    "Cookie",
    "DNT",
    "Date",
    "Expect",
    "Forwarded",
    "From",
    "Front_End_Https",
    "HTTP2_Settings",
    "Host",
    "If_Match",
    "If_Modified_Since",
    "If_None_Match",
    "If_Range",
    "If_Unmodified_Since",
    "Keep_Alive",
    "Max_Forwards",
    "Origin",
    "Permanent",
    "Pragma",
    "Proxy_Authorization",
    "Proxy_Connection",
    "Range",
    "Referer",
    "Save_Data",
    "TE",
    "Upgrade",
    "Upgrade_Insecure_Requests",
    "User_Agent",
    "Via",
    "Warning",
    "X_ATT_DeviceId",
    "X_Correlation_ID",
    "X_Csrf_Token",
    "X_Forwarded_For",
    "X_Forwarded_Host",
    "X_Forwarded_Proto",
    "X_Http_Method_Override",
    "X_Request_ID",
    "X_Requested_With",
    "X_UIDH",
    "X_Wap_Profile",
    "Unknown_Headers",
];

/// scapy's header fields of a response after `Http_Version`, `Status_Code`, `Reason_Phrase`.
pub const RESPONSE_HEADERS: [&str; 62] = [
    "Accept_Patch",
    "Accept_Ranges",
    "Access_Control_Allow_Credentials",
    "Access_Control_Allow_Headers",
    "Access_Control_Allow_Methods",
    "Access_Control_Allow_Origin",
    "Access_Control_Expose_Headers",
    "Access_Control_Max_Age",
    "Age",
    "Allow",
    "Alt_Svc",
    "Cache_Control",
    "Connection",
    "Content_Disposition",
    "Content_Encoding",
    "Content_Language",
    "Content_Length",
    "Content_Location",
    "Content_MD5",
    "Content_Range",
    "Content_Security_Policy",
    "Content_Type",
    "Date",
    "Delta_Base",
    "ETag",
    "Expires",
    "IM",
    "Keep_Alive",
    "Last_Modified",
    "Link",
    "Location",
    "P3P",
    "Permanent",
    "Pragma",
    "Proxy_Authenticate",
    "Public_Key_Pins",
    "Refresh",
    "Retry_After",
    "Server",
    "Set_Cookie",
    "Status",
    "Strict_Transport_Security",
    "Timing_Allow_Origin",
    "Tk",
    "Trailer",
    "Transfer_Encoding",
    "Upgrade",
    "Vary",
    "Via",
    "WWW_Authenticate",
    "Warning",
    "X_Content_Duration",
    "X_Content_Security_Policy",
    "X_Content_Type_Options",
    "X_Correlation_ID",
    "X_Frame_Options",
    "X_Powered_By",
    "X_Request_ID",
    "X_UA_Compatible",
    "X_WebKit_CSP",
    "X_XSS_Protection",
    "Unknown_Headers",
];

/// The three first-line fields, in scapy's order.
pub const REQUEST_LINE: [&str; 3] = ["Method", "Path", "Http_Version"];
/// The three status-line fields, in scapy's order.
pub const STATUS_LINE: [&str; 3] = ["Http_Version", "Status_Code", "Reason_Phrase"];

impl<'a> Http<'a> {
    /// The first line, without its CRLF.
    pub fn first_line(&self) -> &'a [u8] {
        let end = find_crlf(self.head).unwrap_or(self.head.len());
        &self.head[..end]
    }

    /// The first line's three parts as scapy splits them (`re.split(rb"\s+", line.strip(),
    /// 2)`), or `None` when it has fewer than three.
    pub fn first_line_parts(&self) -> Option<[&'a [u8]; 3]> {
        first_line_parts(self.first_line())
    }

    /// Header lines after the first line that have a colon: (name as written, value trimmed).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        self.headers_at().map(|(_, name, value)| (name, value))
    }

    /// As [`Http::headers`], with the offset of each line in `head` (for [`Http::line_at`]).
    pub fn headers_at(&self) -> impl Iterator<Item = (usize, &'a [u8], &'a [u8])> + Clone {
        let head = self.head;
        let mut at = find_crlf(head).map_or(head.len(), |i| i + 2);
        std::iter::from_fn(move || loop {
            let rest = head.get(at..).filter(|r| !r.is_empty())?;
            let line_at = at;
            let line = match find_crlf(rest) {
                Some(i) => {
                    at += i + 2;
                    &rest[..i]
                }
                None => {
                    at = head.len();
                    rest
                }
            };
            if let Some((name, value)) = split_header(line) {
                return Some((line_at, name, value));
            }
        })
    }

    /// The header line starting at `at` (an offset from [`Http::headers_at`]).
    pub fn line_at(&self, at: usize) -> Option<(&'a [u8], &'a [u8])> {
        let rest = self.head.get(at..)?;
        split_header(&rest[..find_crlf(rest).unwrap_or(rest.len())])
    }

    /// [`Http::first_line`] and [`Http::headers_at`] in one pass over the head: calls
    /// `header(line_at, name, value_at, value)` for each header line with a colon, in order
    /// (`value_at` is the offset of the trimmed value in `head`), and returns the first line.
    ///
    /// The head is read eight bytes at a time: each word gives the positions of its LFs and
    /// colons at once (SWAR), so the bytes between them cost nothing each, and there is no
    /// search to set up per line.
    #[inline]
    pub fn scan(&self, mut header: impl FnMut(usize, &'a [u8], usize, &'a [u8])) -> &'a [u8] {
        let head = self.head;
        let n = head.len();
        let mut first_line = head;
        let mut first = true;
        let mut start = 0;
        let mut colon = usize::MAX;
        let mut line_end = |start: usize, end: usize, colon: usize, first: bool| {
            if first {
                first_line = &head[..end];
            } else if colon < end {
                let value = &head[colon + 1..end];
                let lead = value.iter().take_while(|&&b| is_space(b)).count();
                let value = trim(value);
                header(start, &head[start..colon], colon + 1 + lead, value);
            }
        };
        let mut at = 0;
        while at < n {
            let word = match head.get(at..).and_then(|r| r.first_chunk::<8>()) {
                Some(w) => u64::from_le_bytes(*w),
                None => tail_word(head, at),
            };
            let mut hits = swar_eq(word, b'\n') | swar_eq(word, b':');
            while hits != 0 {
                let k = at + (hits.trailing_zeros() / 8) as usize;
                hits &= hits - 1;
                if head[k] == b':' {
                    colon = colon.min(k);
                } else if k > start && head[k - 1] == b'\r' {
                    line_end(start, k - 1, colon, first);
                    first = false;
                    start = k + 1;
                    colon = usize::MAX;
                }
            }
            at += 8;
        }
        if start < n {
            line_end(start, n, colon, first);
        }
        first_line
    }
}

/// The bytes of `head` from `at` (fewer than eight) in the low bytes of a word, zeros above
/// (a zero byte is neither LF nor colon).
fn tail_word(head: &[u8], at: usize) -> u64 {
    let rest = head.len().saturating_sub(at);
    match head.last_chunk::<8>() {
        Some(w) if rest > 0 => u64::from_le_bytes(*w) >> (8 * (8 - rest.min(8))),
        _ => {
            let mut w = [0u8; 8];
            for (d, &b) in w.iter_mut().zip(head.get(at..).unwrap_or(&[])) {
                *d = b;
            }
            u64::from_le_bytes(w)
        }
    }
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// The high bit of each byte of `x` that equals `b` (exact: no carry crosses a byte).
#[inline(always)]
const fn swar_eq(x: u64, b: u8) -> u64 {
    let v = x ^ splat(b);
    !(((v & LOW7) + LOW7) | v) & HIGH
}

/// A word of a header name folded as scapy's names compare: ASCII upper-case letters to lower
/// case, `-` to `_`, every other byte as it is (SWAR; bytes from 0x80 up are left alone).
#[inline(always)]
const fn fold_word(x: u64) -> u64 {
    let low = x & LOW7;
    // High bit set in a byte below 0x80 whose value is 0x41..=0x5a.
    let upper = (low + splat(0x80 - 0x41)) & !(low + splat(0x80 - 0x5b)) & !x & HIGH;
    let x = x | (upper >> 2);
    // `-` (0x2d) XOR 0x72 is `_` (0x5f).
    x ^ ((swar_eq(x, b'-') >> 7) * 0x72)
}

/// Words of a folded name (see [`fold_word`]), zero-padded.
type NameWords = [u64; NAME_LEN_SLOTS / 8];

/// `name` (shorter than [`NAME_LEN_SLOTS`]) folded into zero-padded words: whole words
/// loaded as they are, the last part word from an overlapping load of the last eight bytes
/// (or, in a name shorter than eight, two overlapping four-byte loads), no byte loop.
#[inline(always)]
fn name_words(name: &[u8]) -> NameWords {
    let mut words = [0u64; NAME_LEN_SLOTS / 8];
    let mut chunks = name.chunks_exact(8);
    for (w, c) in words.iter_mut().zip(&mut chunks) {
        if let Some(c) = c.first_chunk::<8>() {
            *w = fold_word(u64::from_le_bytes(*c));
        }
    }
    let part = chunks.remainder().len();
    if part > 0 {
        let n = name.len();
        let word = if let Some(last) = name.last_chunk::<8>() {
            u64::from_le_bytes(*last) >> (8 * (8 - part))
        } else if let (Some(a), Some(b)) = (name.first_chunk::<4>(), name.last_chunk::<4>()) {
            u64::from(u32::from_le_bytes(*a)) | (u64::from(u32::from_le_bytes(*b)) << (8 * (n - 4)))
        } else {
            name.iter()
                .enumerate()
                .fold(0, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
        };
        if let Some(w) = words.get_mut(n / 8) {
            *w = fold_word(word);
        }
    }
    words
}

/// Field name `i` as [`field_index`] numbers them: the first line's three fields, then
/// `table`'s (at compile time).
pub(crate) const fn field_name<'a>(
    line_fields: &[&'a str; 3],
    table: &[&'a str],
    i: usize,
) -> &'a [u8] {
    if i < 3 {
        line_fields[i].as_bytes()
    } else {
        table[i - 3].as_bytes()
    }
}

/// [`name_words`] of every field name (numbered as [`field_index`] returns them), at
/// compile time; names are ASCII letters, digits and `_`.
const fn table_words(line_fields: &[&str; 3], table: &[&str]) -> [NameWords; 3 + 64] {
    let mut t = [[0u64; NAME_LEN_SLOTS / 8]; 3 + 64];
    let mut i = 0;
    while i < 3 + table.len() {
        let name = field_name(line_fields, table, i);
        let mut j = 0;
        while j < name.len() {
            t[i][j / 8] |= (name[j] as u64) << (8 * (j % 8));
            j += 1;
        }
        let mut k = 0;
        while k < NAME_LEN_SLOTS / 8 {
            t[i][k] = fold_word(t[i][k]);
            k += 1;
        }
        i += 1;
    }
    t
}

static REQUEST_WORDS: [NameWords; 3 + 64] = table_words(&REQUEST_LINE, &REQUEST_HEADERS);
static RESPONSE_WORDS: [NameWords; 3 + 64] = table_words(&STATUS_LINE, &RESPONSE_HEADERS);

/// A first line's three parts as scapy splits them (see [`Http::first_line_parts`]).
pub fn first_line_parts(first_line: &[u8]) -> Option<[&[u8]; 3]> {
    let line = trim(first_line);
    let mut parts = [&line[..0]; 3];
    let mut rest = line;
    for part in parts.iter_mut().take(2) {
        let end = rest.iter().position(|&b| is_space(b))?;
        *part = &rest[..end];
        let skip = rest[end..].iter().take_while(|&&b| is_space(b)).count();
        rest = &rest[end + skip..];
    }
    parts[2] = rest;
    Some(parts)
}

fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], trim(&line[colon + 1..])))
}

/// The index of scapy's field a header name fills in a request (`response` false) or a
/// response: `0..3` the first-line fields, then `3 + i` for the `i`th of
/// [`REQUEST_HEADERS`] / [`RESPONSE_HEADERS`]; `None` for an unknown header. Only the
/// fields whose names have the written name's length are compared (a table of bit masks
/// made at compile time), each by comparing the folded name's five words with the field's
/// folded at compile time (`fold_word`), so a known header costs a fold and one or two
/// word comparisons, not a byte loop per candidate.
pub fn field_index(written: &[u8], response: bool) -> Option<usize> {
    let w = trim(written);
    let (masks, fields) = if response {
        (&RESPONSE_NAME_LENGTHS, &RESPONSE_WORDS)
    } else {
        (&REQUEST_NAME_LENGTHS, &REQUEST_WORDS)
    };
    let by_length = *masks.get(w.len())?;
    if by_length == 0 {
        return None;
    }
    let words = name_words(w);
    // Of those, only the fields whose first letter the folded name's first byte has (the low
    // five bits of a lower-case letter number it): most names leave one candidate.
    let by_first = if response {
        &RESPONSE_FIRST_LETTERS
    } else {
        &REQUEST_FIRST_LETTERS
    };
    let mut candidates = by_length & by_first[(words[0] & 0x1f) as usize];
    // Lowest bit first: the first field in scapy's order wins, as a linear scan would.
    while candidates != 0 {
        let i = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        let field = fields.get(i)?;
        let differ = field
            .iter()
            .zip(&words)
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        if differ == 0 {
            return Some(i);
        }
    }
    None
}

/// Longest field name (32, `Access_Control_Allow_Credentials`) plus one, rounded up.
const NAME_LEN_SLOTS: usize = 40;

/// Bit `i` of entry `n` is set when field `i` (numbered as [`field_index`] returns them)
/// has a name of `n` bytes. Every table fits in 128 bits (3 + 62 fields at most).
const fn name_lengths(line_fields: &[&str; 3], table: &[&str]) -> [u128; NAME_LEN_SLOTS] {
    let mut masks = [0u128; NAME_LEN_SLOTS];
    let mut i = 0;
    while i < 3 + table.len() {
        let len = field_name(line_fields, table, i).len();
        // Every name is shorter than NAME_LEN_SLOTS (a longer one fails the build here).
        masks[len] |= 1u128 << i;
        i += 1;
    }
    masks
}

/// Bit `i` of entry `c` is set when field `i` (numbered as [`field_index`] returns them)
/// starts with the letter whose lower case has `c` in its low five bits (every name starts
/// with a letter).
const fn first_letters(line_fields: &[&str; 3], table: &[&str]) -> [u128; 32] {
    let mut masks = [0u128; 32];
    let mut i = 0;
    while i < 3 + table.len() {
        let name = field_name(line_fields, table, i);
        masks[((name[0] | 0x20) & 0x1f) as usize] |= 1u128 << i;
        i += 1;
    }
    masks
}

static REQUEST_FIRST_LETTERS: [u128; 32] = first_letters(&REQUEST_LINE, &REQUEST_HEADERS);
static RESPONSE_FIRST_LETTERS: [u128; 32] = first_letters(&STATUS_LINE, &RESPONSE_HEADERS);

static REQUEST_NAME_LENGTHS: [u128; NAME_LEN_SLOTS] = name_lengths(&REQUEST_LINE, &REQUEST_HEADERS);
static RESPONSE_NAME_LENGTHS: [u128; NAME_LEN_SLOTS] =
    name_lengths(&STATUS_LINE, &RESPONSE_HEADERS);

fn same_name(trimmed: &[u8], field: &str) -> bool {
    trimmed.iter().zip(field.bytes()).all(|(&a, b)| {
        let a = if a == b'-' { b'_' } else { a };
        a.eq_ignore_ascii_case(&b)
    })
}

/// Whether a header name as written is scapy's field `field` (names compared with `-` read
/// as `_`, surrounding whitespace ignored, ASCII case folded).
pub fn name_matches(written: &[u8], field: &str) -> bool {
    let w = trim(written);
    w.len() == field.len() && same_name(w, field)
}

/// Python's `bytes.isspace` set, which `re`'s `\s` and `bytes.strip` use.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Offset of the first CRLF in `hay`. Every CRLF ends at an LF, so the first LF that follows
/// a CR is the first CRLF: memchr's SIMD search for one byte, with no searcher to set up
/// (`memmem::find` builds one per call, which cost more than the search on these short
/// lines).
fn find_crlf(hay: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', hay)
        .find(|&lf| lf > 0 && hay[lf - 1] == b'\r')
        .map(|lf| lf - 1)
}

/// The head's length (through the first CRLFCRLF, or all of `seg` when there is none) and
/// the number of LFs in it, in one pass over the LFs (each CRLFCRLF ends at one).
fn head_len_and_lfs(seg: &[u8]) -> (usize, usize) {
    let mut lfs = 0;
    for lf in memchr::memchr_iter(b'\n', seg) {
        lfs += 1;
        if lf >= 3 && seg[lf - 3..lf] == *b"\r\n\r" {
            return (lf + 1, lfs);
        }
    }
    (seg.len(), lfs)
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// scapy's `$`: the end, or just before a final newline; `.` matches anything but `\n`.
fn line_body(line: &[u8]) -> Option<&[u8]> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    (!body.contains(&b'\n')).then_some(body)
}

/// `^(?:OPTIONS|GET|...|CONNECT) (?:.+?) HTTP/\d\.\d$` on a line without LF (see
/// [`line_body`]).
fn is_request_line(l: &[u8]) -> bool {
    let Some(method) = METHODS.iter().find(|m| l.starts_with(m)) else {
        return false;
    };
    let rest = &l[method.len()..];
    if rest.first() != Some(&b' ') || rest.len() < 1 + 1 + 9 {
        return false;
    }
    let tail = &rest[rest.len() - 9..];
    tail.starts_with(b" HTTP/") && is_digit(tail[6]) && tail[7] == b'.' && is_digit(tail[8])
}

/// `^HTTP/\d\.\d \d\d\d .*$` on a line without LF (see [`line_body`]).
fn is_status_line(l: &[u8]) -> bool {
    l.len() >= 13
        && l.starts_with(b"HTTP/")
        && is_digit(l[5])
        && l[6] == b'.'
        && is_digit(l[7])
        && l[8] == b' '
        && l[9..12].iter().all(|&b| is_digit(b))
        && l[12] == b' '
}

/// A cheap first look: the payload starts with a method and a space, or with `HTTP/`. The
/// first byte picks the one method (or `HTTP/`) it can be, so a body segment costs one
/// comparison.
pub fn may_start_http(payload: &[u8]) -> bool {
    let method: &[u8] = match payload.first() {
        Some(b'G') => b"GET",
        Some(b'P') if payload.get(1) == Some(&b'O') => b"POST",
        Some(b'P') => b"PUT",
        Some(b'H') if payload.starts_with(b"HTTP/") => return true,
        Some(b'H') => b"HEAD",
        Some(b'O') => b"OPTIONS",
        Some(b'D') => b"DELETE",
        Some(b'T') => b"TRACE",
        Some(b'C') => b"CONNECT",
        _ => return false,
    };
    payload.len() > method.len() && payload.starts_with(method) && payload[method.len()] == b' '
}

/// Whether a TCP payload starts with an HTTP/1.x request or status line (scapy's test).
pub fn looks_like_http(payload: &[u8]) -> Option<bool> {
    // Both patterns fix the first bytes: a body segment is turned away without a scan.
    if !may_start_http(payload) {
        return None;
    }
    // Usually the first LF ends the first CRLF, and the line before it holds no LF: then
    // the line is checked as it is. Otherwise scapy's `$` rules apply (`line_body`).
    let first_lf = memchr::memchr(b'\n', payload)?;
    let line = match first_lf.checked_sub(1) {
        Some(cr) if payload[cr] == b'\r' => &payload[..cr],
        _ => line_body(&payload[..find_crlf(payload)?])?,
    };
    if is_request_line(line) {
        Some(false)
    } else if is_status_line(line) {
        Some(true)
    } else {
        None
    }
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(response) = looks_like_http(rest) else {
        return Next::Stop;
    };
    let (head_len, lfs) = head_len_and_lfs(rest);
    let http = Http {
        head: &rest[..head_len],
        response,
    };
    // A head has at most one header line per LF (plus a last one without): the LFs were
    // counted while looking for its end, and only a head with that many lines is walked line
    // by line.
    if lfs >= MAX_HEADER_LINES && http.headers().nth(MAX_HEADER_LINES).is_some() {
        return fail(pkt, LayerName::Http, ErrorKind::BadRecord);
    }
    if push(pkt, Layer::Http(http)) {
        cur.advance(head_len);
    }
    Next::Stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_like_scapy() {
        assert_eq!(looks_like_http(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(
            looks_like_http(b"GET /a b HTTP/1.0\r\nHost: x\r\n\r\n"),
            Some(false)
        );
        assert_eq!(looks_like_http(b"GET / HTTP/1.1\n\r\n"), Some(false));
        assert_eq!(looks_like_http(b"GET / HTTP/1.1"), None);
        assert_eq!(looks_like_http(b"GET  HTTP/1.1\r\n"), None);
        assert_eq!(looks_like_http(b"get / HTTP/1.1\r\n"), None);
        assert_eq!(looks_like_http(b"PATCH / HTTP/1.1\r\n"), None);
        assert_eq!(looks_like_http(b"HTTP/1.1 200 OK\r\n"), Some(true));
        assert_eq!(looks_like_http(b"HTTP/1.1 200 \r\n"), Some(true));
        assert_eq!(looks_like_http(b"HTTP/1.1 200\r\n"), None);
        assert_eq!(looks_like_http(b"HTTP/2 200 OK\r\n"), None);
    }

    #[test]
    fn parts_and_headers() {
        let h = Http {
            head: b"GET /a b HTTP/1.0\r\nHost:  x \r\nno colon\r\nUser-Agent: u:v\r\n\r\n",
            response: false,
        };
        assert_eq!(
            h.first_line_parts().unwrap(),
            [&b"GET"[..], b"/a", b"b HTTP/1.0"]
        );
        let v: Vec<_> = h.headers().collect();
        assert_eq!(v, [(&b"Host"[..], &b"x"[..]), (b"User-Agent", b"u:v")]);
        assert!(name_matches(b" user-AGENT", "User_Agent"));
        let s = Http {
            head: b"HTTP/1.1 200\r\n",
            response: true,
        };
        assert!(s.first_line_parts().is_none());
    }

    /// The plain rule `field_index` must keep: the first of scapy's fields, in order, whose
    /// name matches (`name_matches`, a byte loop).
    fn field_index_linear(written: &[u8], response: bool) -> Option<usize> {
        let (line, table): (&[&str; 3], &[&str]) = if response {
            (&STATUS_LINE, &RESPONSE_HEADERS)
        } else {
            (&REQUEST_LINE, &REQUEST_HEADERS)
        };
        line.iter()
            .chain(table)
            .position(|f| name_matches(written, f))
    }

    /// The first line and header lines by the line-at-a-time iterators, for `scan`.
    /// A first line and its header lines (offset, name, value).
    type Lines = (Vec<u8>, Vec<(usize, Vec<u8>, Vec<u8>)>);

    fn lines_by_iterators(h: &Http<'_>) -> Lines {
        let headers = h
            .headers_at()
            .map(|(at, n, v)| (at, n.to_vec(), v.to_vec()))
            .collect();
        (h.first_line().to_vec(), headers)
    }

    fn lines_by_scan(h: &Http<'_>) -> Lines {
        let mut headers = Vec::new();
        let first = h.scan(|at, n, value_at, v| {
            assert_eq!(&h.head[value_at..value_at + v.len()], v);
            headers.push((at, n.to_vec(), v.to_vec()));
        });
        (first.to_vec(), headers)
    }

    #[test]
    fn every_field_name_found_in_any_spelling() {
        for response in [false, true] {
            let (line, table): (&[&str; 3], &[&str]) = if response {
                (&STATUS_LINE, &RESPONSE_HEADERS)
            } else {
                (&REQUEST_LINE, &REQUEST_HEADERS)
            };
            assert_eq!(table.last(), Some(&"Unknown_Headers"));
            for (i, f) in line.iter().chain(table).enumerate() {
                let want = field_index_linear(f.as_bytes(), response);
                assert_eq!(want.map(|w| w <= i), Some(true));
                for spelling in [
                    f.to_string(),
                    f.to_ascii_lowercase(),
                    f.to_ascii_uppercase(),
                    f.replace('_', "-"),
                    format!(" \t{}\r ", f.to_ascii_lowercase().replace('_', "-")),
                ] {
                    assert_eq!(
                        field_index(spelling.as_bytes(), response),
                        want,
                        "{spelling}"
                    );
                }
                // One byte changed anywhere (to a neighbour, a non-ASCII byte or a space):
                // unknown, or the linear rule's answer.
                let b = f.as_bytes();
                for at in 0..b.len() {
                    for c in [
                        b[at] ^ 0x01,
                        b[at] | 0x80,
                        b[at] ^ 0x20,
                        b'-',
                        b'@',
                        b'[',
                        b'`',
                    ] {
                        let mut v = b.to_vec();
                        v[at] = c;
                        assert_eq!(
                            field_index(&v, response),
                            field_index_linear(&v, response),
                            "{v:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(field_index(b"Host:", false), None);
        assert_eq!(field_index(&[b'a'; 60], false), None);
        assert_eq!(field_index(b"", true), None);
    }

    #[test]
    fn scan_equals_iterators() {
        for head in [
            &b""[..],
            b"GET / HTTP/1.1",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\nHost: a\r\nX:\r\n:y\r\n no colon\r\nA: b\nc: d\r\r\n",
            b"\r\n\r\nA:b",
            b"\n\r\nA:b:c",
            b"HTTP/1.1 200 OK\r\nServer:   x  \r\nContent-Length: 12345678901234567890",
        ] {
            let h = Http {
                head,
                response: false,
            };
            assert_eq!(lines_by_scan(&h), lines_by_iterators(&h), "{head:?}");
        }
    }

    proptest::proptest! {
        /// Heads made of the bytes that matter to the line and colon rules (and others), at
        /// any length and alignment: `scan` equals the iterators.
        #[test]
        fn scan_equals_iterators_any_head(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(&b"\r\n"[..]),
                    proptest::strategy::Just(&b"\r"[..]),
                    proptest::strategy::Just(&b"\n"[..]),
                    proptest::strategy::Just(&b":"[..]),
                    proptest::strategy::Just(&b" "[..]),
                    proptest::strategy::Just(&b"Host"[..]),
                    proptest::strategy::Just(&b"user-agent"[..]),
                    proptest::strategy::Just(&b"\xff\x0b"[..]),
                ],
                0..60,
            ),
            align in 0usize..8,
        ) {
            let mut buf = vec![b'x'; align];
            for p in &pieces {
                buf.extend_from_slice(p);
            }
            let h = Http { head: &buf[align..], response: false };
            proptest::prop_assert_eq!(lines_by_scan(&h), lines_by_iterators(&h));
        }

        /// Any name (a field name respelled, or random bytes): the folded-word comparison
        /// equals the byte loop.
        #[test]
        fn field_index_equals_linear(
            pick in 0usize..70,
            flips in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            random in proptest::collection::vec(proptest::num::u8::ANY, 0..45),
            response: bool,
        ) {
            let table: &[&str] = if response { &RESPONSE_HEADERS } else { &REQUEST_HEADERS };
            let mut name = match table.get(pick) {
                Some(f) => f.as_bytes().to_vec(),
                None => random,
            };
            for (b, f) in name.iter_mut().zip(&flips) {
                match f % 8 {
                    0 => *b ^= 0x20,
                    1 if *b == b'_' => *b = b'-',
                    2 => *b = f | 0x80,
                    _ => {}
                }
            }
            proptest::prop_assert_eq!(
                field_index(&name, response),
                field_index_linear(&name, response)
            );
        }
    }
}
