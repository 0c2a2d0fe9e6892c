//! `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: messages into the Redis list FORWARD_QUEUE,
//! as kombu's Redis transport stores them (REFERENCE section 3), so the original's consumers
//! (kombu, Celery) read them; or, with `--redis-format raw`, the packet JSON itself.
//!
//! One `LPUSH queue m1 m2 ... mN` per batch (up to 1,024 messages), written as one
//! pre-built RESP command: one round trip per batch. LPUSH puts each value at the head and
//! kombu's consumer BRPOPs from the tail, so the list stays first-in first-out.
//!
//! In kombu format the sink also adds the queue to the exchange's binding set
//! (`_kombu.binding.<exchange>`, member `<routing_key>\x06\x16\x06\x16<queue>`, empty pattern
//! as for a direct exchange) at every connect, so kombu producers and consumers that declare
//! the exchange find the queue. kombu 5.7 also keeps the member in
//! `_kombu.binding_permanent.<exchange>` for a queue without expiry (its binding sweep keeps
//! a table while that set has members); the sink adds it there too.
//!
//! Start-up failures end the run: unreachable (exit 9), authentication refused (10),
//! `rediss://` (11: TLS is not supported by this build yet), malformed URL (2). Once running,
//! a lost connection or a transient server error (LOADING, OOM, READONLY, MISCONF, NOAUTH ...)
//! is retried forever with capped exponential backoff while the publisher holds the batch.
//!
//! At-least-once window: each LPUSH is atomic and the next batch is sent only after its reply,
//! so when a connection dies between sending a batch and reading the reply, that one batch
//! (at most 1,024 messages) is sent again and may be stored twice; it is counted as `resent`.

use super::{
    log, reconnect_forever, split_host_port, split_url, Backoff, Outage, OutputOptions,
    SharedCounters, Sink, SinkCounters, StartError, UrlParts, WriteError, EXIT_AUTH, EXIT_BAD_URL,
    EXIT_TLS, EXIT_UNREACHABLE,
};
use crate::pipeline::batch::JsonBatch;
use ::redis::{
    Client, Connection, ConnectionAddr, ConnectionLike, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, Value,
};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// What each list element holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisFormat {
    /// kombu's JSON envelope, body base64 (readable by kombu and Celery consumers).
    #[default]
    Kombu,
    /// The packet JSON itself.
    Raw,
}

impl RedisFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFormat::Kombu => "kombu",
            RedisFormat::Raw => "raw",
        }
    }
}

/// A password that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where to connect and what to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `rediss://`: TLS (not supported by this build yet; refused at open with exit 11).
    pub tls: bool,
    pub format: RedisFormat,
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub connect_timeout: Duration,
    /// How long to wait for a reply before treating the connection as lost.
    pub response_timeout: Duration,
    pub backoff: Backoff,
}

impl RedisConfig {
    /// Parses `redis://` / `rediss://` URLs; user and password may be percent-encoded.
    pub fn parse(url: &str, options: &OutputOptions) -> Result<RedisConfig, String> {
        let shown = super::redact(url);
        let bad = |why: &str| {
            format!(
                "bad output URL \"{shown}\": {why}; expected redis://[:PASSWORD@]HOST[:PORT][/DB]"
            )
        };
        let UrlParts {
            tls,
            credentials,
            host_port: hostport,
            path,
        } = split_url(url, "rediss").map_err(|e| bad(&e))?;
        let (username, password) = match credentials {
            None => (None, None),
            // A credential without ':' is a user name (RFC 3986 userinfo), as redis-py reads it.
            Some((u, p)) => ((!u.is_empty()).then_some(u), p.map(Secret)),
        };
        let (host, port) = split_host_port(hostport, Some(6379)).map_err(|e| bad(&e))?;
        let db = match path.trim_end_matches('/') {
            "" => 0,
            d => d
                .parse::<i64>()
                .ok()
                .filter(|&d| d >= 0)
                .ok_or_else(|| bad(&format!("\"{d}\" is not a database number")))?,
        };
        for (what, name) in [
            ("queue", &options.queue),
            ("exchange", &options.exchange),
            ("routing key", &options.routing_key),
        ] {
            if name.is_empty() {
                return Err(format!("the {what} name must not be empty"));
            }
        }
        Ok(RedisConfig {
            host,
            port,
            db,
            username,
            password,
            tls,
            format: options.redis_format,
            queue: options.queue.clone(),
            exchange: options.exchange.clone(),
            routing_key: options.routing_key.clone(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let cred = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(u), None) => format!("{u}@"),
            (u, Some(_)) => format!("{}:***@", u.as_deref().unwrap_or("")),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{cred}{host}:{}/{}", self.port, self.db)
    }

    /// The set kombu 5.7 keeps bindings of queues without expiry in.
    pub fn permanent_binding_key(&self) -> String {
        format!("_kombu.binding_permanent.{}", self.exchange)
    }

    /// The kombu binding set and member for this queue.
    pub fn binding(&self) -> (String, Vec<u8>) {
        let key = format!("_kombu.binding.{}", self.exchange);
        let mut member = Vec::new();
        member.extend_from_slice(self.routing_key.as_bytes());
        member.extend_from_slice(b"\x06\x16\x06\x16");
        member.extend_from_slice(self.queue.as_bytes());
        (key, member)
    }
}

/// kombu's Redis envelope, built by appending bytes: the constant parts are made once.
#[derive(Debug, Clone)]
pub struct KombuEnvelope {
    head: Vec<u8>,
    middle: Vec<u8>,
    tail: Vec<u8>,
}

/// Length of the text form of a UUID.
const UUID_LEN: usize = 36;

impl KombuEnvelope {
    pub fn new(exchange: &str, routing_key: &str) -> KombuEnvelope {
        let mut middle = Vec::new();
        middle.extend_from_slice(
            b"\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \
              \"headers\": {}, \"properties\": {\"delivery_mode\": 2, \"delivery_info\": \
              {\"exchange\": ",
        );
        json_string(&mut middle, exchange);
        middle.extend_from_slice(b", \"routing_key\": ");
        json_string(&mut middle, routing_key);
        middle.extend_from_slice(
            b"}, \"priority\": 0, \"body_encoding\": \"base64\", \"delivery_tag\": \"",
        );
        KombuEnvelope {
            head: b"{\"body\": \"".to_vec(),
            middle,
            tail: b"\"}}".to_vec(),
        }
    }

    /// Bytes of the envelope of a body of `body_len` bytes.
    pub fn len(&self, body_len: usize) -> usize {
        self.head.len() + base64_len(body_len) + self.middle.len() + UUID_LEN + self.tail.len()
    }

    /// Appends the envelope of `body` with `delivery_tag` (a UUID in text form).
    pub fn write(&self, out: &mut Vec<u8>, body: &[u8], delivery_tag: &[u8; UUID_LEN]) {
        out.extend_from_slice(&self.head);
        base64_into(out, body);
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(delivery_tag);
        out.extend_from_slice(&self.tail);
    }
}

/// A fresh random (version 4) UUID in lower-case hyphenated form.
fn uuid4() -> [u8; UUID_LEN] {
    let mut text = [0u8; UUID_LEN];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    text
}

/// Appends `s` as a JSON string (quotes, backslashes and control characters escaped).
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Bytes of the padded standard base64 (RFC 4648 section 4) of `n` bytes.
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends the padded standard base64 (RFC 4648 section 4) of `input`.
pub fn base64_into(out: &mut Vec<u8>, input: &[u8]) {
    out.reserve(base64_len(input.len()));
    let sym = |n: u32, shift: u32| BASE64[((n >> shift) & 63) as usize];
    let chunks = input.chunks_exact(3);
    let rest = chunks.remainder();
    for c in chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[sym(n, 18), sym(n, 12), sym(n, 6), sym(n, 0)]);
    }
    match *rest {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sym(n, 18), sym(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[sym(n, 18), sym(n, 12), sym(n, 6), b'=']);
        }
        _ => {}
    }
}

/// Appends a RESP bulk-string header `$len\r\n`.
fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Messages into a Redis list, reconnecting forever.
pub struct RedisSink {
    cfg: RedisConfig,
    con: Option<Connection>,
    envelope: KombuEnvelope,
    /// The RESP command of the current batch (kept to resend it whole).
    cmd: Vec<u8>,
    counters: SharedCounters,
}

impl RedisSink {
    /// Connects (AUTH, SELECT) and, in kombu format, records the exchange binding.
    pub fn connect(cfg: RedisConfig) -> Result<RedisSink, StartError> {
        if cfg.tls {
            return Err(StartError::new(
                EXIT_TLS,
                "TLS (rediss://) is not supported by this build yet; use redis://",
            ));
        }
        let con = open_connection(&cfg).map_err(|e| start_error(&cfg, &e))?;
        Ok(RedisSink {
            envelope: KombuEnvelope::new(&cfg.exchange, &cfg.routing_key),
            cfg,
            con: Some(con),
            cmd: Vec::new(),
            counters: Arc::new(SinkCounters::default()),
        })
    }

    /// The counters, readable while the sink runs elsewhere.
    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Builds `LPUSH queue m1 ... mN` for the batch into `self.cmd`.
    fn build(&mut self, batch: &JsonBatch) {
        let cmd = &mut self.cmd;
        cmd.clear();
        cmd.push(b'*');
        cmd.extend_from_slice(itoa::Buffer::new().format(batch.len() + 2).as_bytes());
        cmd.extend_from_slice(b"\r\n$5\r\nLPUSH\r\n");
        bulk_header(cmd, self.cfg.queue.len());
        cmd.extend_from_slice(self.cfg.queue.as_bytes());
        cmd.extend_from_slice(b"\r\n");
        match self.cfg.format {
            RedisFormat::Raw => {
                cmd.reserve(batch.bytes().len() + batch.len() * 10);
                for m in batch.messages() {
                    bulk_header(cmd, m.len());
                    cmd.extend_from_slice(m);
                    cmd.extend_from_slice(b"\r\n");
                }
            }
            RedisFormat::Kombu => {
                cmd.reserve(batch.bytes().len() * 4 / 3 + batch.len() * 300);
                for m in batch.messages() {
                    bulk_header(cmd, self.envelope.len(m.len()));
                    self.envelope.write(cmd, m, &uuid4());
                    cmd.extend_from_slice(b"\r\n");
                }
            }
        }
    }

    /// Connects again, forever, with capped exponential backoff.
    fn reconnect(&mut self, why: &RedisError) {
        let dest = self.cfg.describe();
        log(format_args!(
            "{dest}: {} ({why}); reconnecting, holding the output",
            if why.is_io_error() {
                "connection lost"
            } else {
                "server error"
            }
        ));
        let cfg = &self.cfg;
        let (con, attempts) =
            reconnect_forever(&dest, cfg.backoff, &self.counters, || open_connection(cfg));
        self.con = Some(con);
        log(format_args!(
            "{dest}: reconnected after {attempts} attempt(s)"
        ));
    }
}

impl Sink for RedisSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.build(batch);
        let n = batch.len() as u64;
        let mut tries = 0u32;
        loop {
            let Some(con) = self.con.as_mut() else {
                // Only after a failure: reconnect() always leaves a connection.
                return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
            };
            if tries > 0 {
                SinkCounters::add(&self.counters.resent, n);
            }
            tries += 1;
            match con
                .req_packed_command(&self.cmd)
                .and_then(Value::extract_error)
            {
                Ok(Value::Int(_)) => break,
                Ok(other) => {
                    return Err(io::Error::other(format!(
                        "{}: unexpected reply to LPUSH: {other:?}",
                        self.cfg.describe()
                    )))
                }
                Err(e) if retriable(&e) => {
                    self.con = None;
                    self.reconnect(&e);
                }
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "{}: LPUSH to {} refused: {e}",
                        self.cfg.describe(),
                        self.cfg.queue
                    )))
                }
            }
        }
        SinkCounters::add(&self.counters.published, n);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every LPUSH was answered before the next batch: nothing is buffered.
        Ok(())
    }

    /// One LPUSH; a lost connection or a passing server error hands the batch back (it may
    /// have been stored when the reply was lost: `maybe_delivered`).
    fn try_write_batch(&mut self, batch: &JsonBatch) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        let outage = |reason: String, sent: bool| {
            WriteError::Outage(Outage {
                reason,
                unconfirmed: batch.messages().map(<[u8]>::to_vec).collect(),
                maybe_delivered: if sent { batch.len() as u64 } else { 0 },
            })
        };
        self.build(batch);
        let Some(con) = self.con.as_mut() else {
            return Err(outage("not connected".into(), false));
        };
        match con
            .req_packed_command(&self.cmd)
            .and_then(Value::extract_error)
        {
            Ok(Value::Int(_)) => {
                SinkCounters::add(&self.counters.published, batch.len() as u64);
                Ok(())
            }
            Ok(other) => Err(WriteError::Fatal(io::Error::other(format!(
                "{}: unexpected reply to LPUSH: {other:?}",
                self.cfg.describe()
            )))),
            Err(e) if retriable(&e) => {
                self.con = None;
                let what = if e.is_io_error() {
                    "connection lost"
                } else {
                    "server error"
                };
                Err(outage(format!("{what} ({e})"), true))
            }
            Err(e) => Err(WriteError::Fatal(io::Error::other(format!(
                "{}: LPUSH to {} refused: {e}",
                self.cfg.describe(),
                self.cfg.queue
            )))),
        }
    }

    fn reconnect_once(&mut self) -> Result<(), String> {
        let con = open_connection(&self.cfg).map_err(|e| e.to_string())?;
        self.con = Some(con);
        SinkCounters::add(&self.counters.reconnects, 1);
        Ok(())
    }

    fn delivered(&self) -> u64 {
        self.counters.published()
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        Some(format!(
            "published {} to {} list {} ({}), {} resent after {} reconnects",
            c.published(),
            self.cfg.describe(),
            self.cfg.queue,
            self.cfg.format.as_str(),
            c.resent(),
            c.reconnects()
        ))
    }
}

/// Connects, authenticates, selects the database and checks the server answers commands
/// (PING), and in kombu format records the binding.
fn open_connection(cfg: &RedisConfig) -> Result<Connection, RedisError> {
    let mut settings = RedisConnectionInfo::default()
        .set_db(cfg.db)
        .set_skip_set_lib_name();
    if let Some(u) = &cfg.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &cfg.password {
        settings = settings.set_password(&p.0);
    }
    let info = ConnectionAddr::Tcp(cfg.host.clone(), cfg.port)
        .into_connection_info()?
        .set_redis_settings(settings);
    let mut con = Client::open(info)?.get_connection_with_timeout(cfg.connect_timeout)?;
    con.set_read_timeout(Some(cfg.response_timeout))?;
    con.set_write_timeout(Some(cfg.response_timeout))?;
    // PING first: a server that wants a password answers NOAUTH here, as a plain error.
    ::redis::cmd("PING").query::<String>(&mut con)?;
    if cfg.format == RedisFormat::Kombu {
        let (key, member) = cfg.binding();
        ::redis::pipe()
            .sadd(key, &member)
            .sadd(cfg.permanent_binding_key(), &member)
            .query::<(i64, i64)>(&mut con)?;
    }
    Ok(con)
}

fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Errors worth waiting out: the connection, or a server state that passes.
fn retriable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || is_auth_error(e)
        || matches!(
            e.code(),
            Some(
                "LOADING"
                    | "BUSY"
                    | "TRYAGAIN"
                    | "MASTERDOWN"
                    | "CLUSTERDOWN"
                    | "OOM"
                    | "READONLY"
                    | "MISCONF"
            )
        )
}

/// One line for a failure at start-up, with its exit code; never the password. The caller
/// names the destination (`cannot write to redis://...: <this>`).
fn start_error(cfg: &RedisConfig, e: &RedisError) -> StartError {
    if is_auth_error(e) {
        let how = if cfg.password.is_some() {
            "check the password in the URL"
        } else {
            "the server wants a password: redis://:PASSWORD@HOST:PORT/DB"
        };
        StartError::new(EXIT_AUTH, format!("authentication refused ({how})"))
    } else if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() {
        StartError::new(EXIT_UNREACHABLE, format!("cannot connect: {e}"))
    } else if e.detail().is_some_and(|d| d.contains("DB index")) {
        StartError::new(
            EXIT_BAD_URL,
            format!("database {} does not exist on the server ({e})", cfg.db),
        )
    } else {
        StartError::new(
            EXIT_UNREACHABLE,
            format!("the server refused to start: {e}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 section 10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64_into(&mut out, plain.as_bytes());
            assert_eq!(out, enc.as_bytes(), "{plain}");
            assert_eq!(base64_len(plain.len()), enc.len());
        }
        let mut out = Vec::new();
        base64_into(&mut out, &[0xff, 0xfe, 0x00]);
        assert_eq!(out, b"//4A");
    }

    fn b64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| BASE64.iter().position(|&x| x == c).unwrap() as u32;
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(4) {
            let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
            let mut n = 0u32;
            for (i, &c) in data.iter().enumerate() {
                n |= val(c) << (18 - 6 * i);
            }
            for i in 0..data.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    /// The envelope is byte for byte what kombu 5 stores (shared/reference).
    #[test]
    fn envelope_equals_kombu_reference() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/kombu-redis-envelope.json"
        );
        let reference = std::fs::read_to_string(path).expect("shared/reference is beside the repo");
        let reference = reference.trim_end();
        let body_b64 = reference
            .split("\"body\": \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap();
        let body = b64_decode(body_b64);
        let tag = reference
            .split("\"delivery_tag\": \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap();
        let tag: [u8; UUID_LEN] = tag.as_bytes().try_into().unwrap();
        let env = KombuEnvelope::new("NEW_PACKETS", "NEW_PACKETS");
        let mut out = Vec::new();
        env.write(&mut out, &body, &tag);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), reference);
        assert_eq!(env.len(body.len()), out.len());
    }

    #[test]
    fn uuid4_is_version_4_and_fresh() {
        let a = uuid4();
        let b = uuid4();
        assert_ne!(a, b);
        let s = std::str::from_utf8(&a).unwrap();
        assert_eq!(s.as_bytes()[14], b'4', "{s}");
        assert!(matches!(s.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{s}");
    }

    #[test]
    fn names_are_json_escaped() {
        let env = KombuEnvelope::new("ex\"1", "rk\\\n");
        let mut out = Vec::new();
        env.write(&mut out, b"{}", &uuid4());
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""exchange": "ex\"1""#), "{s}");
        assert!(s.contains(r#""routing_key": "rk\\\u000a""#), "{s}");
    }

    #[test]
    fn parse_urls() {
        let o = OutputOptions::default();
        let c = RedisConfig::parse("redis://localhost:6379/15", &o).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.db), ("localhost", 6379, 15));
        assert_eq!(c.password, None);
        let c = RedisConfig::parse("redis://:p%40ss@h", &o).unwrap();
        assert_eq!((c.port, c.db), (6379, 0));
        assert_eq!(c.password, Some(Secret("p@ss".into())));
        assert_eq!(c.describe(), "redis://:***@h:6379/0");
        assert!(!format!("{c:?}").contains("p@ss"));
        let c = RedisConfig::parse("redis://u:s3cret@[::1]:7000/2", &o).unwrap();
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.describe(), "redis://u:***@[::1]:7000/2");
        assert!(RedisConfig::parse("rediss://h", &o).unwrap().tls);
        for bad in [
            "redis://:s3cret@h:port/0",
            "redis://:s3cret@h:1/x",
            "redis://:s3cret@h:1/-1",
            "redis://:s3cret@:1/0",
            "redis://:s3cret@h:1/0?protocol=resp3",
            "redis://:s3cret%zz@h:1/0",
        ] {
            let e = RedisConfig::parse(bad, &o).unwrap_err();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn binding_member_has_empty_pattern() {
        let c = RedisConfig::parse("redis://h", &OutputOptions::default()).unwrap();
        let (key, member) = c.binding();
        assert_eq!(key, "_kombu.binding.NEW_PACKETS");
        assert_eq!(member, b"NEW_PACKETS\x06\x16\x06\x16NEW_PACKETS");
    }

    #[test]
    fn lpush_command_is_resp() {
        let o = OutputOptions {
            redis_format: RedisFormat::Raw,
            queue: "Q".into(),
            ..OutputOptions::default()
        };
        let cfg = RedisConfig::parse("redis://h", &o).unwrap();
        let mut sink = RedisSink {
            envelope: KombuEnvelope::new("e", "r"),
            cfg,
            con: None,
            cmd: Vec::new(),
            counters: Arc::default(),
        };
        let mut b = JsonBatch::with_capacity();
        for m in ["{\"a\":1}", "{}"] {
            b.buf.extend_from_slice(m.as_bytes());
            b.buf.push(b'\n');
            let end = b.buf.len();
            b.commit(end);
        }
        sink.build(&b);
        assert_eq!(
            sink.cmd,
            b"*4\r\n$5\r\nLPUSH\r\n$1\r\nQ\r\n$7\r\n{\"a\":1}\r\n$2\r\n{}\r\n"
        );
    }
}
