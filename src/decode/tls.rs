//! TLS (RFC 8446, RFC 5246) handshake records carrying a ClientHello or ServerHello, one TCP
//! segment at a time as scapy 2.5's `TLS` layer reads them (no stream reassembly).
//!
//! Only the first record of a segment is decoded, and only when it is a handshake record
//! whose first message is a complete ClientHello or (pre-1.3 layout) ServerHello with
//! self-consistent lengths; anything after that message (further handshake messages,
//! further records) is raw. The layer keeps borrowed slices; the encoder walks the
//! extensions again through [`Extensions`].

use super::bytes::be16;
use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// Record content type of a handshake (RFC 8446 section 5.1).
pub const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake type of a ClientHello.
pub const CLIENT_HELLO: u8 = 1;
/// Handshake type of a ServerHello.
pub const SERVER_HELLO: u8 = 2;

/// Most extensions accepted in one hello; a hello with more is left raw (the encoder's
/// walks over them are bounded by this).
pub const MAX_EXTENSIONS: usize = 256;

/// One slice (the 5-byte record header, then the hello message) keeps [`Layer`] at its size:
/// every frame's `Packet` holds [`super::MAX_LAYERS`] of them.
#[derive(Clone, Copy, Debug)]
pub struct Tls<'a> {
    /// The record header and the hello message (4-byte handshake header and body).
    pub bytes: &'a [u8],
}

/// A hello's fields, located once (all offsets are inside `msg`, checked at decode time).
#[derive(Clone, Copy, Debug)]
pub struct Hello<'a> {
    /// Handshake type ([`CLIENT_HELLO`] or [`SERVER_HELLO`]).
    pub msgtype: u8,
    /// Handshake message length (24 bits).
    pub msglen: u32,
    /// Legacy version of the hello.
    pub version: u16,
    /// 32 bytes: scapy splits them into `gmt_unix_time` (4) and `random_bytes` (28).
    pub random: &'a [u8],
    /// Session ID.
    pub sid: &'a [u8],
    /// ClientHello: the cipher suite list bytes; ServerHello: the chosen suite (2 bytes).
    pub ciphers: &'a [u8],
    /// ClientHello: the compression method list; ServerHello: the one chosen (1 byte).
    pub comp: &'a [u8],
    /// The extension block after its 2-byte length, or `None` when the hello ends after
    /// the compression methods.
    pub ext: Option<&'a [u8]>,
}

impl<'a> Tls<'a> {
    /// The 5-byte record header.
    pub fn record(&self) -> &'a [u8] {
        self.bytes.get(..5).unwrap_or(&[])
    }
    /// The hello message.
    pub fn msg(&self) -> &'a [u8] {
        self.bytes.get(5..).unwrap_or(&[])
    }
    /// Record content type ([`CONTENT_HANDSHAKE`]).
    pub fn content_type(&self) -> u8 {
        self.record().first().copied().unwrap_or(0)
    }
    /// Record version.
    pub fn record_version(&self) -> u16 {
        be16(self.record(), 1)
    }
    /// Record length.
    pub fn record_len(&self) -> u16 {
        be16(self.record(), 3)
    }
    /// The hello's fields (always `Some` for a decoded layer).
    pub fn hello(&self) -> Option<Hello<'a>> {
        parse_hello(self.msg()).ok()
    }
}

impl<'a> Hello<'a> {
    /// True for a ClientHello.
    pub fn is_client(&self) -> bool {
        self.msgtype == CLIENT_HELLO
    }
    /// The cipher suites, in order (one for a ServerHello).
    pub fn ciphers(&self) -> impl Iterator<Item = u16> + 'a {
        self.ciphers
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
    /// The extensions, in order.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            rest: self.ext.unwrap_or(&[]),
        }
    }
}

/// One extension: its type and data (after the 4-byte type/length header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    /// Extension type.
    pub ext_type: u16,
    /// Extension data.
    pub data: &'a [u8],
}

/// Iterates an extension block (validated at decode time; a cut extension ends the walk).
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        let h = self.rest.get(..4)?;
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let data = self.rest.get(4..4 + len)?;
        let ext_type = u16::from_be_bytes([h[0], h[1]]);
        self.rest = &self.rest[4 + len..];
        Some(Extension { ext_type, data })
    }
}

/// Extension types shown field by field (the rest show as `type`, `len`, `val`).
pub const EXT_SERVER_NAME: u16 = 0;
/// Extension type: supported groups.
pub const EXT_SUPPORTED_GROUPS: u16 = 10;
/// Extension type: EC point formats.
pub const EXT_EC_POINT_FORMATS: u16 = 11;
/// Extension type: signature algorithms.
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
/// Extension type: application-layer protocol negotiation.
pub const EXT_ALPN: u16 = 16;
/// Extension type: supported versions.
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// RFC 8701 GREASE values (0x0a0a, 0x1a1a, ..., 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Items of a list with a length prefix of `prefix` bytes that must fill `data` exactly.
fn prefixed(data: &[u8], prefix: usize) -> Option<&[u8]> {
    let n = match prefix {
        1 => usize::from(*data.first()?),
        _ => usize::from(be16(data, 0)),
    };
    (data.len() >= prefix && data.len() - prefix == n).then(|| &data[prefix..])
}

/// Entries of `len8/len16 + bytes` that tile `list` exactly: server names (type, 2-byte
/// length) and ALPN protocol names (1-byte length).
pub fn name_entries(list: &[u8], with_type: bool) -> impl Iterator<Item = (u8, &[u8])> + '_ {
    let mut rest = list;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (kind, len, hdr) = if with_type {
            (*rest.first()?, usize::from(be16(rest, 1)), 3)
        } else {
            (0, usize::from(*rest.first()?), 1)
        };
        let name = rest.get(hdr..hdr + len)?;
        rest = &rest[hdr + len..];
        Some((kind, name))
    })
}

fn names_tile(list: &[u8], with_type: bool) -> bool {
    let hdr = if with_type { 3 } else { 1 };
    let used: usize = name_entries(list, with_type)
        .map(|(_, n)| hdr + n.len())
        .sum();
    used == list.len()
}

/// The list inside a field-by-field extension, as its layout requires, or `None` when its
/// lengths disagree (the whole hello is then left raw). `client` picks the ClientHello
/// layout of `supported_versions`.
pub fn ext_list(ext: &Extension<'_>, client: bool) -> Option<()> {
    let d = ext.data;
    if d.is_empty() {
        return Some(());
    }
    match ext.ext_type {
        EXT_SERVER_NAME => names_tile(prefixed(d, 2)?, true).then_some(()),
        EXT_ALPN => names_tile(prefixed(d, 2)?, false).then_some(()),
        EXT_SUPPORTED_GROUPS | EXT_SIGNATURE_ALGORITHMS => {
            (prefixed(d, 2)?.len() % 2 == 0).then_some(())
        }
        EXT_EC_POINT_FORMATS => prefixed(d, 1).map(|_| ()),
        EXT_SUPPORTED_VERSIONS if client => (prefixed(d, 1)?.len() % 2 == 0).then_some(()),
        EXT_SUPPORTED_VERSIONS => (d.len() == 2).then_some(()),
        _ => Some(()),
    }
}

fn parse_hello(msg: &[u8]) -> Result<Hello<'_>, ErrorKind> {
    let t = *msg.first().ok_or(ErrorKind::Truncated)?;
    let msglen =
        (u32::from(be16(msg, 1)) << 8) | u32::from(*msg.get(3).ok_or(ErrorKind::Truncated)?);
    let body = msg.get(4..).ok_or(ErrorKind::Truncated)?;
    if body.len() != msglen as usize {
        return Err(ErrorKind::BadLength);
    }
    let version = be16(body, 0);
    let random = body.get(2..34).ok_or(ErrorKind::Truncated)?;
    let sidlen = usize::from(*body.get(34).ok_or(ErrorKind::Truncated)?);
    let sid = body.get(35..35 + sidlen).ok_or(ErrorKind::Truncated)?;
    let mut at = 35 + sidlen;
    let client = t == CLIENT_HELLO;
    let ciphers = if client {
        let n = usize::from(be16(body, at));
        if body.len() < at + 2 || n % 2 != 0 {
            return Err(ErrorKind::BadLength);
        }
        at += 2;
        body.get(at..at + n).ok_or(ErrorKind::Truncated)?
    } else {
        body.get(at..at + 2).ok_or(ErrorKind::Truncated)?
    };
    at += ciphers.len();
    let comp = if client {
        let n = usize::from(*body.get(at).ok_or(ErrorKind::Truncated)?);
        at += 1;
        body.get(at..at + n).ok_or(ErrorKind::Truncated)?
    } else {
        body.get(at..at + 1).ok_or(ErrorKind::Truncated)?
    };
    at += comp.len();
    let ext = if at == body.len() {
        None
    } else {
        let n = usize::from(be16(body, at));
        if body.len() != at + 2 + n {
            return Err(ErrorKind::BadLength);
        }
        let block = &body[at + 2..];
        let mut count = 0usize;
        let mut used = 0usize;
        for e in (Extensions { rest: block }) {
            count += 1;
            used += 4 + e.data.len();
            if count > MAX_EXTENSIONS {
                return Err(ErrorKind::BadRecord);
            }
            ext_list(&e, client).ok_or(ErrorKind::BadLength)?;
        }
        if used != block.len() {
            return Err(ErrorKind::BadLength);
        }
        Some(block)
    };
    Ok(Hello {
        msgtype: t,
        msglen,
        version,
        random,
        sid,
        ciphers,
        comp,
        ext,
    })
}

/// Whether a TCP payload starts with a handshake record holding a ClientHello or a
/// ServerHello (the check scapy's binding leaves to the port).
pub fn looks_like_hello(payload: &[u8]) -> bool {
    payload.len() >= 6
        && payload[0] == CONTENT_HANDSHAKE
        && payload[1] == 3
        && matches!(payload[5], CLIENT_HELLO | SERVER_HELLO)
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    if !looks_like_hello(rest) {
        return Next::Stop;
    }
    let record = &rest[..5];
    let record_len = usize::from(be16(record, 3));
    let fragment = &rest[5..rest.len().min(5 + record_len)];
    let msglen =
        usize::from(be16(fragment, 1)) << 8 | usize::from(fragment.get(3).copied().unwrap_or(0));
    let Some(msg) = fragment.get(..4 + msglen) else {
        return fail(pkt, LayerName::Tls, ErrorKind::Truncated);
    };
    match parse_hello(msg) {
        // scapy reads a ServerHello with version 1.3 (or a draft) as TLS13ServerHello, a
        // layout this decoder does not show: raw, as before.
        Ok(h) if !h.is_client() && (h.version == 0x0304 || h.version > 0x7f00) => Next::Stop,
        Ok(_) => {
            let bytes = &rest[..5 + msg.len()];
            if push(pkt, Layer::Tls(Tls { bytes })) {
                cur.advance(5 + msg.len());
            }
            Next::Stop
        }
        Err(kind) => fail(pkt, LayerName::Tls, kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0a0b));
    }

    #[test]
    fn hello_lengths_are_checked() {
        // ClientHello: version, random, empty sid, one cipher, null compression, an SNI.
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 1, 1, 0]);
        let sni = [0u8, 0, 0, 8, 0, 6, 0, 0, 3, b'a', b'.', b'b'];
        body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        body.extend_from_slice(&sni);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let h = parse_hello(&msg).unwrap();
        assert_eq!(h.ciphers().collect::<Vec<_>>(), [0x1301]);
        let e: Vec<_> = h.extensions().collect();
        assert_eq!(e.len(), 1);
        assert_eq!(
            name_entries(&e[0].data[2..], true).next(),
            Some((0, &b"a.b"[..]))
        );
        // A server-name list one byte short of its extension: the hello is refused.
        let n = msg.len();
        msg[n - 5] = 5;
        assert_eq!(parse_hello(&msg).err(), Some(ErrorKind::BadLength));
    }
}
