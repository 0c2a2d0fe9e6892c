//! Client fingerprints of a TLS ClientHello: JA3 (Salesforce) and JA4 (FoxIO, the `ja4`
//! part of JA4+). Both are computed from the decoded hello without allocating: the JA3 text
//! is streamed to its writer and to MD5 alike, and JA4's sorted lists live in fixed arrays.

use super::tls::{
    is_grease, name_entries, Hello, EXT_ALPN, EXT_EC_POINT_FORMATS, EXT_SERVER_NAME,
    EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_GROUPS, EXT_SUPPORTED_VERSIONS,
};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Most cipher suites JA4 sorts (a ClientHello with more non-GREASE suites gets no JA4; real
/// clients offer well under 200).
pub const MAX_JA4_CIPHERS: usize = 1024;

/// Length of a JA4 fingerprint: `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub const JA4_BYTES: usize = 36;

fn list_u16(d: &[u8]) -> impl Iterator<Item = u16> + '_ {
    d.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The data of the first extension of type `t`.
fn ext_data<'a>(h: &Hello<'a>, t: u16) -> Option<&'a [u8]> {
    h.extensions().find(|e| e.ext_type == t).map(|e| e.data)
}

/// Writes numbers joined by `-` through `emit`.
fn dashed(emit: &mut impl FnMut(&[u8]), values: impl Iterator<Item = u16>) {
    let mut buf = itoa::Buffer::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            emit(b"-");
        }
        emit(buf.format(v).as_bytes());
    }
}

/// Streams the JA3 text of a ClientHello: `version,ciphers,extensions,groups,formats`,
/// decimal, GREASE values left out.
pub fn ja3(h: &Hello<'_>, mut emit: impl FnMut(&[u8])) {
    let mut buf = itoa::Buffer::new();
    emit(buf.format(h.version).as_bytes());
    emit(b",");
    dashed(&mut emit, h.ciphers().filter(|&c| !is_grease(c)));
    emit(b",");
    dashed(
        &mut emit,
        h.extensions()
            .map(|e| e.ext_type)
            .filter(|&t| !is_grease(t)),
    );
    emit(b",");
    let groups = ext_data(h, EXT_SUPPORTED_GROUPS).map_or(&[][..], |d| d.get(2..).unwrap_or(&[]));
    dashed(&mut emit, list_u16(groups).filter(|&g| !is_grease(g)));
    emit(b",");
    let formats = ext_data(h, EXT_EC_POINT_FORMATS).map_or(&[][..], |d| d.get(1..).unwrap_or(&[]));
    dashed(&mut emit, formats.iter().map(|&f| u16::from(f)));
}

/// MD5 of the JA3 text.
pub fn ja3_md5(h: &Hello<'_>) -> [u8; 16] {
    let mut md5 = Md5::new();
    ja3(h, |piece| md5.update(piece));
    md5.finalize().into()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex4(v: u16) -> [u8; 4] {
    let b = v.to_be_bytes();
    [
        HEX[usize::from(b[0] >> 4)],
        HEX[usize::from(b[0] & 15)],
        HEX[usize::from(b[1] >> 4)],
        HEX[usize::from(b[1] & 15)],
    ]
}

/// First 12 hex digits of the SHA-256 of `v` joined as 4-digit hex by commas (JA4's `b`
/// and the first half of `c`), `000000000000` for an empty list when `zero_if_empty`.
fn hash12(sha: Sha256, out: &mut [u8]) {
    let d = sha.finalize();
    for (i, b) in d.iter().take(6).enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

fn feed_hex_list(sha: &mut Sha256, v: &[u16]) {
    for (i, &x) in v.iter().enumerate() {
        if i > 0 {
            sha.update(b",");
        }
        sha.update(hex4(x));
    }
}

fn two_digits(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8;
    [b'0' + n / 10, b'0' + n % 10]
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// JA4's two ALPN characters: `00` without a (non-empty) first protocol id; its first and
/// last bytes when both are ASCII alphanumeric; else the first hex digit of the first byte
/// and the last hex digit of the last byte (FoxIO's JA4.md, "ALPN Extension Value").
fn alpn_chars(first: Option<&[u8]>) -> [u8; 2] {
    let Some(p) = first.filter(|p| !p.is_empty()) else {
        return *b"00";
    };
    let (a, z) = (p[0], p[p.len() - 1]);
    if is_alnum(a) && is_alnum(z) {
        [a, z]
    } else {
        [HEX[usize::from(a >> 4)], HEX[usize::from(z & 15)]]
    }
}

/// The JA4 fingerprint of a ClientHello carried over TCP (`t`), or `None` when it offers more
/// than [`MAX_JA4_CIPHERS`] cipher suites.
pub fn ja4(h: &Hello<'_>) -> Option<[u8; JA4_BYTES]> {
    let mut out = [b'0'; JA4_BYTES];
    out[0] = b't';
    // Version: the highest supported_versions entry, else the hello's own field.
    let version = ext_data(h, EXT_SUPPORTED_VERSIONS)
        .and_then(|d| {
            list_u16(d.get(1..).unwrap_or(&[]))
                .filter(|&v| !is_grease(v))
                .max()
        })
        .unwrap_or(h.version);
    let v: &[u8; 2] = match version {
        0x0304 => b"13",
        0x0303 => b"12",
        0x0302 => b"11",
        0x0301 => b"10",
        0x0300 => b"s3",
        0x0002 => b"s2",
        0xfeff => b"d1",
        0xfefd => b"d2",
        0xfefc => b"d3",
        _ => b"00",
    };
    out[1..3].copy_from_slice(v);
    out[3] = if ext_data(h, EXT_SERVER_NAME).is_some() {
        b'd'
    } else {
        b'i'
    };
    let mut ciphers = [0u16; MAX_JA4_CIPHERS];
    let mut nc = 0usize;
    for c in h.ciphers().filter(|&c| !is_grease(c)) {
        *ciphers.get_mut(nc)? = c;
        nc += 1;
    }
    let mut exts = [0u16; super::tls::MAX_EXTENSIONS];
    let mut ne_all = 0usize;
    let mut ne = 0usize;
    for e in h.extensions().filter(|e| !is_grease(e.ext_type)) {
        ne_all += 1;
        if e.ext_type != EXT_SERVER_NAME && e.ext_type != EXT_ALPN {
            *exts.get_mut(ne)? = e.ext_type;
            ne += 1;
        }
    }
    out[4..6].copy_from_slice(&two_digits(nc));
    out[6..8].copy_from_slice(&two_digits(ne_all));
    // ALPN: first and last character of the first protocol, or of its hex when either is
    // not alphanumeric; `00` without one.
    let first_alpn = ext_data(h, EXT_ALPN)
        .and_then(|d| d.get(2..))
        .and_then(|l| name_entries(l, false).next())
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    out[8..10].copy_from_slice(&alpn_chars(first_alpn));
    out[10] = b'_';
    out[23] = b'_';
    ciphers[..nc].sort_unstable();
    if nc > 0 {
        let mut sha = Sha256::new();
        feed_hex_list(&mut sha, &ciphers[..nc]);
        hash12(sha, &mut out[11..23]);
    }
    exts[..ne].sort_unstable();
    if ne > 0 {
        let mut sha = Sha256::new();
        feed_hex_list(&mut sha, &exts[..ne]);
        let sigs =
            ext_data(h, EXT_SIGNATURE_ALGORITHMS).map_or(&[][..], |d| d.get(2..).unwrap_or(&[]));
        let mut first = true;
        for s in list_u16(sigs).filter(|&s| !is_grease(s)) {
            sha.update(if first { b"_" } else { b"," });
            sha.update(hex4(s));
            first = false;
        }
        hash12(sha, &mut out[24..36]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(&hex4(0x1301), b"1301");
        assert_eq!(two_digits(7), *b"07");
        assert_eq!(two_digits(150), *b"99");
    }

    #[test]
    fn alpn_characters_as_the_spec_shows_them() {
        // The examples of JA4.md's "ALPN Extension Value" section.
        let cases: [(&[u8], &[u8; 2]); 8] = [
            (b"h2", b"h2"),
            (b"http/1.1", b"h1"),
            (b"x", b"xx"),
            (&[0xab], b"ab"),
            (&[0xab, 0xcd], b"ad"),
            (&[0x30, 0xab], b"3b"),
            (&[0x30, 0x31, 0xab, 0xcd], b"3d"),
            (&[0x30, 0xab, 0xcd, 0x31], b"01"),
        ];
        for (alpn, want) in cases {
            assert_eq!(&alpn_chars(Some(alpn)), want, "{alpn:02x?}");
        }
        assert_eq!(&alpn_chars(None), b"00");
        assert_eq!(&alpn_chars(Some(b"")), b"00");
    }
}
