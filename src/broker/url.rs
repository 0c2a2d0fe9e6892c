//! Broker URLs: splitting `scheme://[USER[:PASSWORD]@]HOST[:PORT][/PATH]` into its parts,
//! %-escapes, host and port, and redaction (what of a URL may appear in a message: never a
//! password). Each sink's and input's configuration parses its own scheme with these.

/// What of a URL may appear in a message: the scheme and the host (with the port when it is
/// a number), never a user name, password, path or parameters; for example
/// `redis://:secret@h:1/0` gives `redis://h:1`. Used by every error that names a URL the
/// user gave, which may be malformed in any way: so the credentials are taken to end at the
/// LAST `@` anywhere (a password may hold `@` and `/`), and without `://` only a scheme-like
/// word before the first `:` is kept.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        let word = url.split([':', '@', '/']).next().unwrap_or("");
        return if word.len() == url.len() && !url.contains('%') {
            // Not a URL at all ("stdout2", "localhost"): nothing to hide.
            url.to_string()
        } else {
            format!("{}:...", shown_scheme(word))
        };
    };
    let after_cred = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host_port = after_cred.split(['/', '?', '#']).next().unwrap_or_default();
    // A port that is not a number may be a password written without '@' (`redis://u:pass`):
    // only a numeric port is shown.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (&host_port[..h.len() + 2], after.strip_prefix(':')),
            None => ("", None),
        },
        None => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let shown_host = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    format!("{}://{shown_host}", shown_scheme(scheme))
}

/// A scheme as written when it looks like one (letters, digits, `+ - .`), else `?`.
fn shown_scheme(s: &str) -> &str {
    let ok = !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if ok {
        s
    } else {
        "?"
    }
}

/// A broker URL split into its parts: `scheme://[USER[:PASSWORD]@]HOST[:PORT][/PATH]`, user
/// and password %-decoded. Errors are the reason only; callers add the URL and its form.
pub struct UrlParts<'a> {
    /// The scheme is the TLS one (`rediss`, `amqps`).
    pub tls: bool,
    /// `None` without credentials; `Some((user, password))` otherwise, the password `None`
    /// when there is no `:`.
    pub credentials: Option<(String, Option<String>)>,
    /// `HOST[:PORT]` as written (brackets kept for IPv6).
    pub host_port: &'a str,
    /// After the first `/`, not decoded.
    pub path: &'a str,
}

/// Splits a broker URL. The userinfo normally ends at the last `@` before the first `/`; when
/// no `@` comes before the first `/` but one comes after it, the `/` is taken to be part of
/// the password (`redis://:S3cr/et@host`: generated passwords hold `/`), so it is neither
/// refused nor shown as a path. Write `@` in a path as `%40`.
pub fn split_url<'a>(url: &'a str, tls_scheme: &str) -> Result<UrlParts<'a>, String> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let cred_end = match rest[..slash].rfind('@') {
        Some(at) => Some(at),
        None => rest.rfind('@'),
    };
    let (cred, after_cred) = match cred_end {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (host_port, path) = match after_cred.find('/') {
        Some(i) => (&after_cred[..i], &after_cred[i + 1..]),
        None => (after_cred, ""),
    };
    if path.contains(['?', '#']) || host_port.contains(['?', '#']) {
        return Err("URL parameters are not supported".into());
    }
    let credentials = match cred {
        None => None,
        Some(c) => {
            let (u, p) = match c.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (c, None),
            };
            let u = percent_decode(u).ok_or("bad %-escape in the user name")?;
            let p = match p {
                Some(p) => Some(percent_decode(p).ok_or("bad %-escape in the password")?),
                None => None,
            };
            Some((u, p))
        }
    };
    Ok(UrlParts {
        tls: scheme.eq_ignore_ascii_case(tls_scheme),
        credentials,
        host_port,
        path,
    })
}

/// `%XX` escapes to bytes; `None` for a broken escape or text that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A host and port as written in a URL: `[::1]:6379`, `localhost:6379`, `10.0.0.1`.
pub fn split_host_port(
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in the host".to_string())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                // Not echoed: whatever was typed here may be a misplaced password.
                None => return Err("unexpected text after the bracketed host".into()),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            // Not echoed: `redis://user:pass` puts a password where the port goes.
            .ok_or_else(|| "the port is not a number from 1 to 65535".to_string())?,
        None => default_port.ok_or_else(|| "the port is missing (HOST:PORT)".to_string())?,
    };
    Ok((host.to_string(), port))
}

/// Escapes everything but RFC 3986 unreserved characters (so `/` becomes `%2f`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_scheme_and_host_only() {
        for (url, shown) in [
            ("redis://:p@ss@h:1/0", "redis://h:1"),
            ("redis://u:s@h", "redis://h"),
            ("redis://h:1/0", "redis://h:1"),
            ("redis://:S3cr/et@h:6379/0", "redis://h:6379"),
            ("tcp://user:pass@h:9", "tcp://h:9"),
            ("amqp://u:p@[::1]:5672/vh", "amqp://[::1]:5672"),
            ("redis://user:pass", "redis://user"),
            ("redis://:pass", "redis://"),
            ("redis://h:pass/0", "redis://h"),
            ("redis:/u:pass@h", "redis:..."),
            ("u:pass@h", "u:..."),
            ("\u{e9}\u{e9}:pw", "?:..."),
            ("stdot", "stdot"),
            ("redis://h?password=pw", "redis://h"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn passwords_with_slashes_and_at_signs_parse() {
        let p = split_url("redis://:S3cr/et@h:1/2", "rediss").expect("parses");
        assert_eq!(p.credentials, Some((String::new(), Some("S3cr/et".into()))));
        assert_eq!((p.host_port, p.path), ("h:1", "2"));
        // An '@' before the first '/' ends the userinfo as usual; the path keeps the rest.
        let p = split_url("amqp://u:a@b/c@h", "amqps").expect("parses");
        assert_eq!(p.credentials, Some(("u".into(), Some("a".into()))));
        assert_eq!((p.host_port, p.path), ("b", "c@h"));
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("h:1", None), Ok(("h".into(), 1)));
        assert_eq!(split_host_port("[::1]:7", None), Ok(("::1".into(), 7)));
        assert_eq!(
            split_host_port("[::1]", Some(6379)),
            Ok(("::1".into(), 6379))
        );
        assert_eq!(split_host_port("h", Some(6379)), Ok(("h".into(), 6379)));
        assert!(split_host_port("h", None).is_err());
        assert!(split_host_port("h:0", None).is_err());
        assert!(split_host_port("h:99999", None).is_err());
        assert!(split_host_port(":1", None).is_err());
    }
}
