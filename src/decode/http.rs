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
        let end = find(self.head, b"\r\n").unwrap_or(self.head.len());
        &self.head[..end]
    }

    /// The first line's three parts as scapy splits them (`re.split(rb"\s+", line.strip(),
    /// 2)`), or `None` when it has fewer than three.
    pub fn first_line_parts(&self) -> Option<[&'a [u8]; 3]> {
        let line = trim(self.first_line());
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

    /// Header lines after the first line that have a colon: (name as written, value trimmed).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        self.headers_at().map(|(_, name, value)| (name, value))
    }

    /// As [`Http::headers`], with the offset of each line in `head` (for [`Http::line_at`]).
    pub fn headers_at(&self) -> impl Iterator<Item = (usize, &'a [u8], &'a [u8])> + Clone {
        let head = self.head;
        let mut at = find(head, b"\r\n").map_or(head.len(), |i| i + 2);
        std::iter::from_fn(move || loop {
            let rest = head.get(at..).filter(|r| !r.is_empty())?;
            let line_at = at;
            let line = match find(rest, b"\r\n") {
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
        split_header(&rest[..find(rest, b"\r\n").unwrap_or(rest.len())])
    }
}

fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], trim(&line[colon + 1..])))
}

/// The index of scapy's field a header name fills: `0..3` the first-line fields, then
/// `3 + i` for `table[i]`; `None` for an unknown header.
pub fn field_index(written: &[u8], line_fields: &[&str; 3], table: &[&str]) -> Option<usize> {
    let w = trim(written);
    line_fields
        .iter()
        .chain(table.iter())
        .position(|f| f.len() == w.len() && same_name(w, f))
}

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

/// First `needle` (CRLF or CRLFCRLF) in `hay`, by memchr's SIMD search: every HTTP segment
/// is searched for both on the decode path.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// scapy's `$`: the end, or just before a final newline; `.` matches anything but `\n`.
fn line_body(line: &[u8]) -> Option<&[u8]> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    (!body.contains(&b'\n')).then_some(body)
}

/// `^(?:OPTIONS|GET|...|CONNECT) (?:.+?) HTTP/\d\.\d$`
fn is_request_line(line: &[u8]) -> bool {
    let Some(l) = line_body(line) else {
        return false;
    };
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

/// `^HTTP/\d\.\d \d\d\d .*$`
fn is_status_line(line: &[u8]) -> bool {
    let Some(l) = line_body(line) else {
        return false;
    };
    l.len() >= 13
        && l.starts_with(b"HTTP/")
        && is_digit(l[5])
        && l[6] == b'.'
        && is_digit(l[7])
        && l[8] == b' '
        && l[9..12].iter().all(|&b| is_digit(b))
        && l[12] == b' '
}

/// A cheap first look: the payload starts with a method and a space, or with `HTTP/`.
pub fn may_start_http(payload: &[u8]) -> bool {
    payload.starts_with(b"HTTP/")
        || METHODS
            .iter()
            .any(|m| payload.len() > m.len() && payload.starts_with(m) && payload[m.len()] == b' ')
}

/// Whether a TCP payload starts with an HTTP/1.x request or status line (scapy's test).
pub fn looks_like_http(payload: &[u8]) -> Option<bool> {
    // Both patterns fix the first bytes: a body segment is turned away without a scan.
    if !may_start_http(payload) {
        return None;
    }
    let crlf = find(payload, b"\r\n")?;
    let line = &payload[..crlf];
    if is_request_line(line) {
        Some(false)
    } else if is_status_line(line) {
        Some(true)
    } else {
        None
    }
}

pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(response) = looks_like_http(rest) else {
        return Next::Stop;
    };
    let head_len = find(rest, b"\r\n\r\n").map_or(rest.len(), |i| i + 4);
    let http = Http {
        head: &rest[..head_len],
        response,
    };
    // A head has at most one header line per LF (plus a last one without): counting LFs is
    // one SIMD pass, and only a head with that many lines is walked line by line.
    if memchr::memchr_iter(b'\n', http.head).count() >= MAX_HEADER_LINES
        && http.headers().nth(MAX_HEADER_LINES).is_some()
    {
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
}
