//! Writers of the application layers besides DNS: NTP, BOOTP/DHCP, HTTP/1.x, TLS hellos,
//! and the TLS client fingerprints of the envelope (see `docs/FORMAT.md`).

use super::super::hex::{push_dec, push_hex, push_ipv4, push_latin1_escaped};
use super::super::out::Out;
use super::sub;
use crate::decode::dhcp::{Bootp, ClasslessRoutes, Dhcp, DhcpOption, OptKind};
use crate::decode::fingerprint;
use crate::decode::http::{self, Http};
use crate::decode::ntp::Ntp;
use crate::decode::tls::{self, Extension, Hello, Tls};
use crate::decode::{bytes, Layer, Packet};

fn quoted_ipv4(out: &mut Out<'_>, b: &[u8]) {
    out.push(b'"');
    match <&[u8; 4]>::try_from(b) {
        Ok(a) => push_ipv4(out, a),
        Err(_) => push_hex(out, b),
    }
    out.push(b'"');
}

fn quoted_hex(out: &mut Out<'_>, b: &[u8]) {
    out.push(b'"');
    push_hex(out, b);
    out.push(b'"');
}

fn quoted_latin1(out: &mut Out<'_>, b: &[u8]) {
    out.push(b'"');
    push_latin1_escaped(out, b);
    out.push(b'"');
}

/// `[n,n,...]` of big-endian 16-bit numbers.
fn u16_list(out: &mut Out<'_>, b: &[u8]) {
    out.push(b'[');
    for (i, c) in b.chunks_exact(2).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_dec(out, u16::from_be_bytes([c[0], c[1]]));
    }
    out.push(b']');
}

fn u8_list(out: &mut Out<'_>, b: &[u8]) {
    out.push(b'[');
    for (i, &v) in b.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_dec(out, v);
    }
    out.push(b']');
}

// Out of line: see the note above `write_mpls` in json.rs.
#[inline(never)]
pub(super) fn write_ntp(out: &mut Out<'_>, n: &Ntp<'_>) {
    num_first!(out, "leap", n.leap());
    num!(out, "version", n.version());
    num!(out, "mode", n.mode());
    num!(out, "stratum", n.stratum());
    num!(out, "poll", n.poll());
    num!(out, "precision", n.precision());
    num!(out, "delay", n.delay());
    num!(out, "dispersion", n.dispersion());
    // scapy shows the reference id as an address above stratum 1, as four bytes below 2.
    if n.stratum() > 1 {
        key!(out, "id");
        quoted_ipv4(out, n.ref_id());
    } else {
        hex_field!(out, "ref_id", n.ref_id());
    }
    num!(out, "ref", n.timestamp(0));
    num!(out, "orig", n.timestamp(1));
    num!(out, "recv", n.timestamp(2));
    num!(out, "sent", n.timestamp(3));
}

// Out of line: see the note above `write_mpls` in json.rs.
#[inline(never)]
pub(super) fn write_bootp(out: &mut Out<'_>, b: &Bootp<'_>) {
    num_first!(out, "op", b.byte(0));
    num!(out, "htype", b.byte(1));
    num!(out, "hlen", b.byte(2));
    num!(out, "hops", b.byte(3));
    num!(out, "xid", b.be32(4));
    num!(out, "secs", b.be16(8));
    num!(out, "flags", b.be16(10));
    for (name, at) in [
        ("ciaddr", 12),
        ("yiaddr", 16),
        ("siaddr", 20),
        ("giaddr", 24),
    ] {
        super::key(out, name, false);
        quoted_ipv4(out, b.field(at, at + 4));
    }
    hex_field!(out, "chaddr", b.field(28, 44));
    hex_field!(out, "sname", b.field(44, 108));
    hex_field!(out, "file", b.field(108, 236));
    hex_field!(out, "options", b.options());
}

// Out of line: see the note above `write_mpls` in json.rs.
#[inline(never)]
pub(super) fn write_dhcp(out: &mut Out<'_>, d: &Dhcp<'_>) {
    out.extend_from_slice(b"\"options\":[");
    for (i, opt) in d.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match opt {
            DhcpOption::Pad => out.extend_from_slice(b"\"pad\""),
            DhcpOption::End => out.extend_from_slice(b"\"end\""),
            DhcpOption::Malformed(rest) => quoted_hex(out, rest),
            DhcpOption::Value {
                code,
                name,
                kind,
                data,
            } => {
                out.push(b'[');
                match name {
                    Some(n) => {
                        out.push(b'"');
                        out.extend_from_slice(n.as_bytes());
                        out.push(b'"');
                    }
                    None => push_dec(out, code),
                }
                write_dhcp_values(out, kind, data);
                out.push(b']');
            }
        }
    }
    out.push(b']');
}

/// The values after an option's name, each with its leading comma.
fn write_dhcp_values(out: &mut Out<'_>, kind: OptKind, data: &[u8]) {
    match kind {
        OptKind::Bytes => {
            out.push(b',');
            quoted_hex(out, data);
        }
        OptKind::Str if !data.is_empty() => {
            out.push(b',');
            quoted_hex(out, data);
        }
        OptKind::Str => {}
        OptKind::Ip => {
            for a in data.chunks_exact(4) {
                out.push(b',');
                quoted_ipv4(out, a);
            }
        }
        OptKind::Int => {
            for c in data.chunks_exact(4) {
                out.push(b',');
                push_dec(out, bytes::be32(c, 0));
            }
        }
        OptKind::Short => {
            for c in data.chunks_exact(2) {
                out.push(b',');
                push_dec(out, bytes::be16(c, 0));
            }
        }
        OptKind::Byte => {
            for &v in data {
                out.push(b',');
                push_dec(out, v);
            }
        }
        OptKind::ByteList => {
            out.push(b',');
            u8_list(out, data);
        }
        OptKind::Classless => {
            out.extend_from_slice(b",[");
            for (i, r) in ClasslessRoutes::new(data).flatten().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                push_ipv4(out, &r.dest);
                out.push(b'/');
                push_dec(out, r.prefix);
                out.push(b':');
                push_ipv4(out, &r.router);
                out.push(b'"');
            }
            out.push(b']');
        }
    }
}

/// The header key as scapy's dictionary compares them: trimmed, `-` as `_`, ASCII case
/// folded.
fn same_header(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (trim_ws(a), trim_ws(b));
    a.len() == b.len()
        && a.iter().zip(b).all(|(&x, &y)| {
            let x = if x == b'-' { b'_' } else { x };
            let y = if y == b'-' { b'_' } else { y };
            x.eq_ignore_ascii_case(&y)
        })
}

fn trim_ws(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Room for one key of an HTTP field: `,"` + the longest name (32 bytes) + `":"`.
const HTTP_KEY_BYTES: usize = 40;

/// Each field's JSON key and the opening quote of its value (`,"Name":"`; the first field's
/// without the comma), padded to [`HTTP_KEY_BYTES`], with its length: written with one
/// fixed-size copy ([`Out::extend_padded`]). Made at compile time from the name tables.
type HttpKeys = [([u8; HTTP_KEY_BYTES], usize); 3 + 64];

const fn http_keys(line_fields: &[&str; 3], table: &[&str]) -> HttpKeys {
    let mut keys = [([0u8; HTTP_KEY_BYTES], 0); 3 + 64];
    let mut i = 0;
    while i < 3 + table.len() {
        let name = http::field_name(line_fields, table, i);
        let (key, len) = &mut keys[i];
        let mut n = 0;
        if i > 0 {
            key[0] = b',';
            n = 1;
        }
        key[n] = b'"';
        n += 1;
        let mut j = 0;
        while j < name.len() {
            key[n] = name[j];
            n += 1;
            j += 1;
        }
        // A name too long for the room fails the build here.
        key[n] = b'"';
        key[n + 1] = b':';
        key[n + 2] = b'"';
        *len = n + 3;
        i += 1;
    }
    keys
}

static REQUEST_KEYS: HttpKeys = http_keys(&http::REQUEST_LINE, &http::REQUEST_HEADERS);
static RESPONSE_KEYS: HttpKeys = http_keys(&http::STATUS_LINE, &http::RESPONSE_HEADERS);

// Out of line: see the note above `write_mpls` in json.rs.
#[inline(never)]
pub(super) fn write_http(out: &mut Out<'_>, h: &Http<'_>) {
    let (keys, table_len) = if h.response {
        (&RESPONSE_KEYS, http::RESPONSE_HEADERS.len())
    } else {
        (&REQUEST_KEYS, http::REQUEST_HEADERS.len())
    };
    // One pass over the head (`Http::scan`): the first line, and for each of scapy's fields
    // where in the head the value of the last line that fills it lies (a repeated header
    // keeps its last value). Offsets, not slices, keep the table small enough to set up for
    // every head.
    const NONE: (u32, u32) = (u32::MAX, 0);
    let mut last = [NONE; 3 + 64];
    // Bit `i` set when `last[i]` was filled: the fields are then written by walking the set
    // bits, not the whole table (a head fills a handful of its 56 or 62 fields).
    let mut filled = 0u128;
    let mut any_unknown_line = false;
    let first_line = h.scan(|_, name, value_at, value| {
        let index = http::field_index(name, h.response);
        match index.and_then(|i| Some((i, last.get_mut(i)?))) {
            Some((i, slot)) => {
                *slot = (value_at as u32, value.len() as u32);
                filled |= 1u128 << (i & 127);
            }
            None => any_unknown_line = true,
        }
    });
    let value_of = |(at, len): (u32, u32)| {
        let at = at as usize;
        h.head.get(at..at + len as usize).unwrap_or(&[])
    };
    let parts = http::first_line_parts(first_line);
    for (i, (key, key_len)) in keys.iter().take(3).enumerate() {
        out.extend_padded(key, *key_len);
        let v = match parts {
            Some(p) => p[i],
            None if last[i] == NONE => &[],
            None => value_of(last[i]),
        };
        push_latin1_escaped(out, v);
        out.push(b'"');
    }
    // The header fields filled, in the table's order (lowest bit first); the table's last
    // field, `Unknown_Headers`, is written from the unknown lines below, never as a value.
    let mut headers = (filled >> 3) & !(1u128 << ((table_len - 1) & 127));
    while headers != 0 {
        let i = headers.trailing_zeros() as usize;
        headers &= headers - 1;
        let (Some((key, key_len)), Some(&at)) = (keys.get(3 + i), last.get(3 + i)) else {
            continue;
        };
        out.extend_padded(key, *key_len);
        push_latin1_escaped(out, value_of(at));
        out.push(b'"');
    }
    if !any_unknown_line {
        return;
    }
    let mut any_unknown = false;
    for (i, (name, _)) in h.headers().enumerate() {
        // Same names (as scapy's dictionary compares them) are all known or all unknown.
        if http::field_index(name, h.response).is_some()
            || h.headers().take(i).any(|(n, _)| same_header(n, name))
        {
            continue;
        }
        // A repeated name keeps its first place and its last spelling and value.
        let Some((last_name, value)) = h
            .headers()
            .skip(i)
            .filter(|(n, _)| same_header(n, name))
            .last()
        else {
            continue;
        };
        out.extend_from_slice(if any_unknown {
            b","
        } else {
            b",\"Unknown_Headers\":{"
        });
        any_unknown = true;
        quoted_latin1(out, last_name);
        out.push(b':');
        quoted_latin1(out, value);
    }
    if any_unknown {
        out.push(b'}');
    }
}

// Out of line: see the note above `write_mpls` in json.rs.
#[inline(never)]
pub(super) fn write_tls(out: &mut Out<'_>, t: &Tls<'_>) {
    num_first!(out, "type", t.content_type());
    num!(out, "version", t.record_version());
    num!(out, "len", t.record_len());
    out.extend_from_slice(b",\"msg\":[{");
    if let Some(h) = t.hello() {
        write_hello(out, &h);
    }
    out.extend_from_slice(b"}]");
}

fn write_hello(out: &mut Out<'_>, h: &Hello<'_>) {
    let client = h.is_client();
    num_first!(out, "msgtype", h.msgtype);
    num!(out, "msglen", h.msglen);
    num!(out, "version", h.version);
    num!(out, "gmt_unix_time", bytes::be32(h.random, 0));
    hex_field!(out, "random_bytes", sub(h.random, 4, 32));
    num!(out, "sidlen", h.sid.len() as u64);
    hex_field!(out, "sid", h.sid);
    if client {
        num!(out, "cipherslen", h.ciphers.len() as u64);
        key!(out, "ciphers");
        u16_list(out, h.ciphers);
        num!(out, "complen", h.comp.len() as u64);
    } else {
        num!(out, "cipher", bytes::be16(h.ciphers, 0));
    }
    key!(out, "comp");
    u8_list(out, h.comp);
    let Some(block) = h.ext else {
        return;
    };
    num!(out, "extlen", block.len() as u64);
    key!(out, "ext");
    out.push(b'[');
    for (i, e) in h.extensions().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        write_extension(out, &e, client);
    }
    out.push(b']');
}

fn write_extension(out: &mut Out<'_>, e: &Extension<'_>, client: bool) {
    let d = e.data;
    num_first!(out, "type", e.ext_type);
    num!(out, "len", d.len() as u64);
    let detailed = matches!(
        e.ext_type,
        tls::EXT_SERVER_NAME
            | tls::EXT_SUPPORTED_GROUPS
            | tls::EXT_EC_POINT_FORMATS
            | tls::EXT_SIGNATURE_ALGORITHMS
            | tls::EXT_ALPN
            | tls::EXT_SUPPORTED_VERSIONS
    );
    if !detailed {
        hex_field!(out, "val", d);
    } else if !d.is_empty() {
        let len16 = u64::from(bytes::be16(d, 0));
        let len8 = u64::from(d[0]);
        match e.ext_type {
            tls::EXT_SERVER_NAME => {
                num!(out, "servernameslen", len16);
                key!(out, "servernames");
                out.push(b'[');
                for (i, (kind, name)) in tls::name_entries(sub(d, 2, d.len()), true).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    num_first!(out, "nametype", kind);
                    num!(out, "namelen", name.len() as u64);
                    key!(out, "servername");
                    quoted_latin1(out, name);
                    out.push(b'}');
                }
                out.push(b']');
            }
            tls::EXT_ALPN => {
                num!(out, "protocolslen", len16);
                key!(out, "protocols");
                out.push(b'[');
                for (i, (_, p)) in tls::name_entries(sub(d, 2, d.len()), false).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    num_first!(out, "len", p.len() as u64);
                    key!(out, "protocol");
                    quoted_latin1(out, p);
                    out.push(b'}');
                }
                out.push(b']');
            }
            tls::EXT_SUPPORTED_GROUPS => {
                num!(out, "groupslen", len16);
                key!(out, "groups");
                u16_list(out, sub(d, 2, d.len()));
            }
            tls::EXT_SIGNATURE_ALGORITHMS => {
                num!(out, "sig_algs_len", len16);
                key!(out, "sig_algs");
                u16_list(out, sub(d, 2, d.len()));
            }
            tls::EXT_EC_POINT_FORMATS => {
                num!(out, "ecpllen", len8);
                key!(out, "ecpl");
                u8_list(out, sub(d, 1, d.len()));
            }
            _ if client => {
                num!(out, "versionslen", len8);
                key!(out, "versions");
                u16_list(out, sub(d, 1, d.len()));
            }
            _ => num!(out, "version", len16),
        }
    }
    out.push(b'}');
}

/// The envelope's `ja3`, `ja3_hash` and `ja4` when the packet holds a ClientHello (always its
/// last layer: nothing is decoded after a hello), so other packets pay one comparison.
#[inline]
pub(super) fn write_fingerprints(out: &mut Out<'_>, pkt: &Packet<'_>) {
    if let Some(Layer::Tls(t)) = pkt.layers().last() {
        write_tls_fingerprints(out, t);
    }
}

/// The fingerprints of a TLS layer; out of line (a few packets per connection have one).
#[inline(never)]
fn write_tls_fingerprints(out: &mut Out<'_>, t: &Tls<'_>) {
    let Some(h) = t.hello().filter(|h| h.is_client()) else {
        return;
    };
    out.extend_from_slice(b",\"ja3\":\"");
    fingerprint::ja3(&h, |piece| out.extend_from_slice(piece));
    out.extend_from_slice(b"\",\"ja3_hash\":\"");
    push_hex(out, &fingerprint::ja3_md5(&h));
    out.push(b'"');
    if let Some(ja4) = fingerprint::ja4(&h) {
        out.extend_from_slice(b",\"ja4\":\"");
        out.extend_from_slice(&ja4);
        out.push(b'"');
    }
}
