//! `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: messages into the Redis list FORWARD_QUEUE,
//! as kombu's Redis transport stores them (REFERENCE section 3), so the original's consumers
//! (kombu, Celery) read them; or, with `--redis-format raw`, the packet JSON itself.
//!
//! One `LPUSH queue m1 m2 ... mN` per batch (up to 1,024 messages), built as RESP bytes in one
//! buffer and written straight to the socket (the `resp` module). Up to
//! [`RedisConfig::window_commands`] such commands are in flight: the next batch goes out while
//! the server still works on the previous ones, and replies are read in order. LPUSH puts each
//! value at the head and kombu's consumer BRPOPs from the tail, so the list stays first-in
//! first-out.
//!
//! `--redis-mode stream`: one `XADD <queue> MAXLEN ~ N * msg <packet JSON>` per message, the
//! batch's commands in one buffer and one write (pipelined), the same window of unanswered
//! batches. Ids are the server's (`*`), so several capture hosts can share a stream; the cost
//! is that a resend after a lost connection is stored again (see the at-least-once window
//! below: duplicates ≤ resent). Explicit ids would make Redis refuse a resend, but only for one
//! writer per stream, and a restarted writer would need the last id back from the server.
//! `--redis-mode channel`: one `PUBLISH <queue> <packet JSON>` per message; the replies (the
//! subscribers reached) are counted, and [`super::Output::with_delivery`] never spools a
//! channel (a replay would reach other subscribers than the ones of the moment).
//!
//! `--partitions N` (N > 1): each message goes to the key `<queue>-<i>` of its partition
//! ([`JsonBatch::partition`]: by flow, both directions of a flow to one key). List mode sends
//! one LPUSH per partition present in the batch, each with that partition's messages in batch
//! order (a counting sort per batch); stream and channel modes name the partition's key in
//! each message's command. Still one write per batch, the same window, resend and spool
//! rules; `MAXLEN ~` applies to each partition's stream. A batch read back from the spool has
//! no stored hashes: the partition is found again from each message, the same one.
//!
//! `rediss://` (or any FORWARD_SSL_OPTIONS): TLS through rustls with the options' CA,
//! client certificate and `cert_reqs` ([`crate::broker::tls`]).
//!
//! In kombu format the sink also adds the queue to the exchange's binding set
//! (`_kombu.binding.<exchange>`, member `<routing_key>\x06\x16\x06\x16<queue>`, empty pattern
//! as for a direct exchange) at every connect, so kombu producers and consumers that declare
//! the exchange find the queue. kombu 5.7 also keeps the member in
//! `_kombu.binding_permanent.<exchange>` for a queue without expiry (its binding sweep keeps
//! a table while that set has members); the sink adds it there too.
//!
//! Start-up failures end the run: unreachable (exit 9), authentication refused (10), TLS
//! failure (11: certificate not trusted, wrong host name, not a TLS port, unreadable
//! certificate files), malformed URL (2). Once running,
//! a lost connection or a transient server error (LOADING, OOM, READONLY, MISCONF, NOAUTH ...)
//! is retried forever with capped exponential backoff while the publisher holds the batch.
//!
//! At-least-once window: each LPUSH is atomic, and every command whose reply has not been read
//! is kept; when the connection dies (or the server answers a transient error) they are all
//! sent again, in order, on the new connection. So at most the in-flight window
//! (`window_commands` batches of at most 1,024 messages) may be stored twice per reconnect;
//! every message sent again is counted as `resent`, so duplicates ≤ resent.

use super::{
    bad_url, log, reconnect_forever, Outage, OutputOptions, SharedCounters, Sink, SinkCounters,
    WriteError,
};
use crate::broker::redis::{self as broker_redis, OpenError, RedisEndpoint};
use crate::broker::resp::{bulk_header, encode_command, Reply, RespConnection, RespError};
use crate::broker::url::{split_host_port, split_url, UrlParts};
use crate::broker::{Backoff, StartError};
use crate::encode::batch::JsonBatch;
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The `--redis-format` value: `kombu` or `raw`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RedisFormat::Kombu => "kombu",
            RedisFormat::Raw => "raw",
        }
    }
}

/// `--redis-mode`: which Redis structure the messages go to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// `LPUSH` into the list `--queue` (kombu envelope or raw, `--redis-format`).
    #[default]
    List,
    /// `XADD <queue> MAXLEN ~ N * msg <packet JSON>`: an append-only log that several
    /// consumer groups each read in full, and that can be read again.
    Stream,
    /// `PUBLISH <queue> <packet JSON>`: only subscribers connected right now get it.
    Channel,
}

impl RedisMode {
    /// The command one message (list: one batch) is sent with.
    fn command(self) -> &'static str {
        match self {
            RedisMode::List => "LPUSH",
            RedisMode::Stream => "XADD",
            RedisMode::Channel => "PUBLISH",
        }
    }
}

/// Default of `--redis-maxlen`: the stream is trimmed (approximately) to this many entries.
pub const DEFAULT_STREAM_MAXLEN: u64 = 10_000_000;

/// `record --redis-mode stream --group NAME --consumer NAME`: reading a stream through a
/// consumer group (see `record::redis_stream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisGroup {
    /// `--group`: the consumer group (created when missing).
    pub group: String,
    /// `--consumer`: this reader's name in the group.
    pub consumer: String,
    /// XAUTOCLAIM min-idle-time: entries another consumer has held unacknowledged this long
    /// are taken over (that consumer is presumed dead).
    pub claim_idle: Duration,
    /// Where a group the recorder creates starts: `0` (everything in the stream) or `$`
    /// (entries added from now on).
    pub start: String,
}

pub use crate::broker::Secret;

/// Where to connect and what to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    /// Host, port, database, credentials, TLS and timeouts of the connection.
    pub endpoint: RedisEndpoint,
    /// What each list element holds (`--redis-format`; list mode only).
    pub format: RedisFormat,
    /// The key messages go to (FORWARD_QUEUE): a list, stream or channel by `mode`; with
    /// partitions the prefix of `<queue>-<i>`.
    pub queue: String,
    /// The kombu exchange (FORWARD_EXCHANGE) named in the envelope and the binding set.
    pub exchange: String,
    /// The kombu routing key (FORWARD_ROUTING_KEY) named in the envelope and the binding.
    pub routing_key: String,
    /// Waits between reconnect attempts.
    pub backoff: Backoff,
    /// LPUSH commands (stream and channel modes: batches of XADD/PUBLISH commands) written
    /// but not yet answered before `write_batch` waits for the oldest.
    pub window_commands: usize,
    /// `--redis-mode`: list, stream or channel.
    pub mode: RedisMode,
    /// Stream mode: `MAXLEN ~` of every XADD.
    pub maxlen: u64,
    /// `--partitions N`: above 1, each message goes to the key `<queue>-<partition>`.
    pub partitions: u16,
}

impl RedisConfig {
    /// Parses `redis://` / `rediss://` URLs; user and password may be percent-encoded.
    pub fn parse(url: &str, options: &OutputOptions) -> Result<RedisConfig, String> {
        let bad = |why: &str| bad_url(url, why, "redis://[:PASSWORD@]HOST[:PORT][/DB]");
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
        // --password-file wins over a password in the URL.
        let password = options.password.clone().or(password);
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
            endpoint: RedisEndpoint {
                host,
                port,
                db,
                username,
                password,
                // kombu turns TLS on when ssl options are given, whatever the scheme.
                tls: tls || options.ssl.given,
                ssl: options.ssl.clone(),
                connect_timeout: Duration::from_secs(5),
                response_timeout: Duration::from_secs(60),
            },
            format: options.redis_format,
            queue: options.queue.clone(),
            exchange: options.exchange.clone(),
            routing_key: options.routing_key.clone(),
            backoff: Backoff::default(),
            window_commands: 4,
            mode: options.redis_mode,
            maxlen: options.redis_maxlen,
            partitions: options.partitions.max(1),
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn describe(&self) -> String {
        self.endpoint.describe()
    }

    /// The keys messages go to: `--queue`, or with `--partitions N` (N > 1) the N keys
    /// `<queue>-0` .. `<queue>-(N-1)`, in partition order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        if self.partitions <= 1 {
            return vec![self.queue.as_bytes().to_vec()];
        }
        (0..self.partitions)
            .map(|i| format!("{}-{i}", self.queue).into_bytes())
            .collect()
    }

    /// The keys as people read them: `q`, or `q-0..q-3`.
    pub fn keys_shown(&self) -> String {
        if self.partitions <= 1 {
            self.queue.clone()
        } else {
            format!("{q}-0..{q}-{}", self.partitions - 1, q = self.queue)
        }
    }

    /// The set kombu 5.7 keeps bindings of queues without expiry in.
    pub fn permanent_binding_key(&self) -> String {
        format!("_kombu.binding_permanent.{}", self.exchange)
    }

    /// The kombu binding set and member for the first key (`--queue` itself without
    /// partitions).
    pub fn binding(&self) -> (String, Vec<u8>) {
        let (key, mut members) = self.bindings();
        (key, members.swap_remove(0))
    }

    /// The kombu binding set and a member for each key messages go to (one per partition).
    pub fn bindings(&self) -> (String, Vec<Vec<u8>>) {
        let key = format!("_kombu.binding.{}", self.exchange);
        let members = self
            .keys()
            .into_iter()
            .map(|queue| {
                let mut member = Vec::new();
                member.extend_from_slice(self.routing_key.as_bytes());
                member.extend_from_slice(b"\x06\x16\x06\x16");
                member.extend_from_slice(&queue);
                member
            })
            .collect();
        (key, members)
    }
}

/// Stream and channel modes: the command for one message up to the message itself.
fn command_head(cfg: &RedisConfig, key: &[u8]) -> Vec<u8> {
    let mut head = Vec::with_capacity(64 + key.len());
    match cfg.mode {
        RedisMode::Stream => {
            let maxlen = itoa::Buffer::new().format(cfg.maxlen).to_owned();
            head.extend_from_slice(b"*8\r\n$4\r\nXADD\r\n");
            bulk_header(&mut head, key.len());
            head.extend_from_slice(key);
            head.extend_from_slice(b"\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n");
            bulk_header(&mut head, maxlen.len());
            head.extend_from_slice(maxlen.as_bytes());
            head.extend_from_slice(b"\r\n$1\r\n*\r\n$3\r\nmsg\r\n");
        }
        RedisMode::Channel => {
            head.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
            bulk_header(&mut head, key.len());
            head.extend_from_slice(key);
            head.extend_from_slice(b"\r\n");
        }
        // LPUSH heads are made per batch (they hold the message count).
        RedisMode::List => {}
    }
    head
}

/// kombu's Redis envelope, built by appending bytes: the constant parts are made once.
#[derive(Debug, Clone)]
pub(crate) struct KombuEnvelope {
    head: Vec<u8>,
    middle: Vec<u8>,
    tail: Vec<u8>,
}

/// Length of the text form of a UUID.
const UUID_LEN: usize = 36;

impl KombuEnvelope {
    /// The envelope's constant parts for messages to `exchange` with `routing_key`.
    pub(crate) fn new(exchange: &str, routing_key: &str) -> KombuEnvelope {
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
    pub(crate) fn len(&self, body_len: usize) -> usize {
        self.head.len() + base64_len(body_len) + self.middle.len() + UUID_LEN + self.tail.len()
    }

    /// Appends the envelope of `body` with `delivery_tag` (a UUID in text form).
    pub(crate) fn write(&self, out: &mut Vec<u8>, body: &[u8], delivery_tag: &[u8; UUID_LEN]) {
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

/// Appends `s` as a JSON string (quotes, backslashes and control characters escaped), with
/// the crate's one escaper, into room for the worst case (six bytes per byte, `\u00xx`).
fn json_string(out: &mut Vec<u8>, s: &str) {
    use crate::encode::hex::push_str_escaped;
    use crate::encode::out::Out;
    out.push(b'"');
    let start = out.len();
    out.resize(start + 6 * s.len(), 0);
    let mut o = Out::new(&mut out[start..]);
    push_str_escaped(&mut o, s);
    debug_assert!(
        !o.overflowed(),
        "six bytes per byte is the most an escape takes"
    );
    let written = o.len().min(6 * s.len());
    out.truncate(start + written);
    out.push(b'"');
}

/// Bytes of the padded standard base64 (RFC 4648 section 4) of `n` bytes.
pub(crate) fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends the padded standard base64 (RFC 4648 section 4) of `input`.
///
/// The output is sized once and filled in place by the `base64` crate (no allocation of its
/// own): this runs over every kombu message body.
pub(crate) fn base64_into(out: &mut Vec<u8>, input: &[u8]) {
    use base64::Engine;
    let start = out.len();
    out.resize(start + base64_len(input.len()), 0);
    // The slice is exactly the encoded length, so this cannot fail; if it ever did, nothing
    // half-written is left behind.
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(input, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + n);
}

/// One LPUSH written and not yet answered.
#[derive(Default)]
struct Pending {
    cmd: Vec<u8>,
    messages: u64,
    /// Replies `cmd` gets: one per LPUSH (one per partition in the batch), or one per
    /// message (XADD, PUBLISH).
    replies: u64,
    /// With a delivery layer in front (`try_write_batch`): the batch's messages as given
    /// (concatenated, and each one's length), to hand back if the connection is lost before
    /// the reply; `write_batch` resends `cmd` itself and leaves these empty.
    kept: Vec<u8>,
    kept_lens: Vec<usize>,
    /// Written to a connection (so it may have been stored even without a reply).
    sent: bool,
}

/// Messages into a Redis list, reconnecting forever.
pub struct RedisSink {
    cfg: RedisConfig,
    /// Built once from the SSL options; `None` without TLS.
    tls: Option<Arc<ClientConfig>>,
    con: Option<RespConnection>,
    envelope: KombuEnvelope,
    /// Commands sent whose replies are not read yet, oldest first (kept to resend them).
    in_flight: VecDeque<Pending>,
    /// Emptied commands for reuse.
    spare: Vec<Pending>,
    counters: SharedCounters,
    /// Channel mode: messages PUBLISH reached no subscriber with (published, but nobody
    /// heard them).
    unheard: Arc<AtomicU64>,
    /// The key of each partition: `--queue`, or `<queue>-0` .. `<queue>-(N-1)`.
    keys: Vec<Vec<u8>>,
    /// Stream and channel modes: each partition's command up to the message (`XADD key
    /// MAXLEN ~ N * msg`, `PUBLISH key`), made once.
    heads: Vec<Vec<u8>>,
    /// List mode with partitions, reused per batch: each message's partition, where each
    /// partition's messages start in `order` (and the next free place), and the message
    /// indices in partition order.
    parts: Vec<u16>,
    starts: Vec<u32>,
    next: Vec<u32>,
    order: Vec<u32>,
}

impl RedisSink {
    /// Connects (TLS, AUTH, SELECT) and, in kombu format, records the exchange binding.
    pub fn connect(cfg: RedisConfig) -> Result<RedisSink, StartError> {
        let tls = broker_redis::tls_config(&cfg.endpoint)?;
        let con = open_connection(&cfg, tls.as_ref())
            .map_err(|e| broker_redis::start_error(&cfg.endpoint, &e))?;
        Ok(RedisSink::with_connection(cfg, tls, Some(con)))
    }

    fn with_connection(
        cfg: RedisConfig,
        tls: Option<Arc<ClientConfig>>,
        con: Option<RespConnection>,
    ) -> RedisSink {
        let keys = cfg.keys();
        let heads = keys.iter().map(|k| command_head(&cfg, k)).collect();
        RedisSink {
            envelope: KombuEnvelope::new(&cfg.exchange, &cfg.routing_key),
            keys,
            heads,
            parts: Vec::new(),
            starts: Vec::new(),
            next: Vec::new(),
            order: Vec::new(),
            cfg,
            tls,
            con,
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            counters: Arc::new(SinkCounters::default()),
            unheard: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The counters, readable while the sink runs elsewhere.
    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Builds the batch's commands into `cmd` and returns how many replies they get: one
    /// `LPUSH key m1 ... mK` per partition the batch has messages for (list mode), or one
    /// `XADD key MAXLEN ~ N * msg m` (stream mode) or `PUBLISH key m` (channel mode) per
    /// message, all in the one buffer, so the batch is still one write. The key is `--queue`,
    /// or with `--partitions N` the message's partition's `<queue>-<i>`.
    fn build(&mut self, cmd: &mut Vec<u8>, batch: &JsonBatch) -> u64 {
        cmd.clear();
        if self.cfg.mode != RedisMode::List {
            self.build_per_message(cmd, batch);
            return batch.len() as u64;
        }
        let n = self.cfg.partitions;
        self.reserve_elements(cmd, batch.bytes().len(), batch.len());
        if n <= 1 {
            self.push_lpush_head(cmd, 0, batch.len());
            for m in batch.messages() {
                self.push_element(cmd, m);
            }
            return 1;
        }
        // Partitioned: the messages in partition order, each partition's in batch order (a
        // counting sort: one pass to count, one to place), then one LPUSH per partition.
        let parts = usize::from(n);
        self.starts.clear();
        self.starts.resize(parts + 1, 0);
        self.parts.clear();
        for i in 0..batch.len() {
            let p = batch.partition(i, n);
            self.parts.push(p);
            self.starts[usize::from(p) + 1] += 1;
        }
        for p in 0..parts {
            self.starts[p + 1] += self.starts[p];
        }
        self.order.clear();
        self.order.resize(batch.len(), 0);
        self.next.clear();
        self.next.extend_from_slice(&self.starts[..parts]);
        for (i, &p) in self.parts.iter().enumerate() {
            let at = &mut self.next[usize::from(p)];
            self.order[*at as usize] = i as u32;
            *at += 1;
        }
        let mut replies = 0;
        for p in 0..parts {
            let (from, to) = (self.starts[p] as usize, self.starts[p + 1] as usize);
            if from == to {
                continue;
            }
            self.push_lpush_head(cmd, p, to - from);
            for &i in &self.order[from..to] {
                self.push_element(cmd, batch.message(i as usize));
            }
            replies += 1;
        }
        replies
    }

    /// `*<count+2> LPUSH <key of partition>` (the array header and the first two elements).
    fn push_lpush_head(&self, cmd: &mut Vec<u8>, partition: usize, count: usize) {
        let key = self.keys.get(partition).map_or(&[][..], Vec::as_slice);
        cmd.push(b'*');
        cmd.extend_from_slice(itoa::Buffer::new().format(count + 2).as_bytes());
        cmd.extend_from_slice(b"\r\n$5\r\nLPUSH\r\n");
        bulk_header(cmd, key.len());
        cmd.extend_from_slice(key);
        cmd.extend_from_slice(b"\r\n");
    }

    fn reserve_elements(&self, cmd: &mut Vec<u8>, bytes: usize, messages: usize) {
        match self.cfg.format {
            RedisFormat::Raw => cmd.reserve(bytes + messages * 10),
            RedisFormat::Kombu => cmd.reserve(bytes * 4 / 3 + messages * 300),
        }
    }

    /// One list element: the packet JSON (raw) or its kombu envelope.
    fn push_element(&self, cmd: &mut Vec<u8>, m: &[u8]) {
        match self.cfg.format {
            RedisFormat::Raw => {
                bulk_header(cmd, m.len());
                cmd.extend_from_slice(m);
            }
            RedisFormat::Kombu => {
                bulk_header(cmd, self.envelope.len(m.len()));
                self.envelope.write(cmd, m, &uuid4());
            }
        }
        cmd.extend_from_slice(b"\r\n");
    }

    /// Stream and channel modes: one command per message, raw packet JSON (the line `read`
    /// writes, without its newline), to its partition's key.
    fn build_per_message(&self, cmd: &mut Vec<u8>, batch: &JsonBatch) {
        let n = self.cfg.partitions;
        let longest_head = self.heads.iter().map(Vec::len).max().unwrap_or(0);
        cmd.reserve(batch.bytes().len() + batch.len() * (longest_head + 16));
        for (i, m) in batch.messages().enumerate() {
            let p = usize::from(batch.partition(i, n));
            cmd.extend_from_slice(self.heads.get(p).map_or(&[][..], Vec::as_slice));
            bulk_header(cmd, m.len());
            cmd.extend_from_slice(m);
            cmd.extend_from_slice(b"\r\n");
        }
    }

    /// Reads the reply of the oldest command in flight. `Ok(Err(_))`: the connection (or a
    /// transient server state) failed and the caller must recover; `Err(_)`: the server
    /// refused the command for good (wrong type of key, ...), which ends the run.
    fn settle_oldest(&mut self) -> io::Result<Result<(), RespError>> {
        let Some(oldest) = self.in_flight.front() else {
            return Ok(Ok(()));
        };
        // Every reply of the entry is read before it counts: a lost connection part-way
        // hands the whole entry back (the answered part is then sent twice, counted in
        // `resent`).
        let wanted = oldest.replies;
        let Some(con) = self.con.as_mut() else {
            return Ok(Err(RespError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "not connected",
            ))));
        };
        let mut heard = 0u64;
        for _ in 0..wanted {
            let reply = match con.read_reply() {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            match (self.cfg.mode, reply) {
                (RedisMode::List, Reply::Int(_)) | (RedisMode::Stream, Reply::Bulk(Some(_))) => {}
                (RedisMode::Channel, Reply::Int(receivers)) => {
                    heard += u64::from(receivers > 0);
                }
                (_, Reply::Error(text)) if retriable_code(Some(&text)) => {
                    return Ok(Err(RespError::Protocol(format!("server error {text}"))));
                }
                (mode, Reply::Error(text)) => {
                    return Err(io::Error::other(format!(
                        "{}: {} to {} refused: {text}",
                        self.cfg.describe(),
                        mode.command(),
                        self.cfg.keys_shown()
                    )));
                }
                (mode, other) => {
                    return Err(io::Error::other(format!(
                        "{}: unexpected reply to {}: {other:?}",
                        self.cfg.describe(),
                        mode.command()
                    )));
                }
            }
        }
        if let Some(done) = self.in_flight.pop_front() {
            SinkCounters::add(&self.counters.published, done.messages);
            if self.cfg.mode == RedisMode::Channel {
                SinkCounters::add(&self.unheard, done.messages - heard);
            }
            self.spare.push(done);
        }
        Ok(Ok(()))
    }

    /// Gives up the connection and hands every unanswered message back, oldest first.
    fn hand_back(&mut self, why: &RespError) -> Outage {
        self.con = None;
        let mut outage = Outage {
            reason: match why {
                RespError::Io(_) | RespError::Tls(_) => format!("connection lost ({why})"),
                RespError::Protocol(_) => format!("server error ({why})"),
            },
            ..Outage::default()
        };
        while let Some(mut p) = self.in_flight.pop_front() {
            if p.sent {
                outage.maybe_delivered += p.messages;
            }
            let mut start = 0;
            for &len in &p.kept_lens {
                outage.unconfirmed.push(p.kept[start..start + len].to_vec());
                start += len;
            }
            p.sent = false;
            self.spare.push(p);
        }
        outage
    }

    /// Connects again, forever, with capped exponential backoff, and sends every command
    /// still in flight again, oldest first.
    fn recover(&mut self, why: &RespError) {
        let dest = self.cfg.describe();
        log(format_args!(
            "{dest}: {} ({why}); reconnecting, holding the output",
            match why {
                RespError::Io(_) | RespError::Tls(_) => "connection lost",
                RespError::Protocol(_) => "server error",
            }
        ));
        self.con = None;
        loop {
            let (cfg, tls) = (&self.cfg, self.tls.as_ref());
            let (mut con, attempts) = reconnect_forever(&dest, cfg.backoff, &self.counters, || {
                open_connection(cfg, tls)
            });
            let mut resent = 0u64;
            let mut failed = None;
            for p in &self.in_flight {
                resent += p.messages;
                if let Err(e) = con.send(&p.cmd) {
                    failed = Some(e);
                    break;
                }
            }
            SinkCounters::add(&self.counters.resent, resent);
            match failed {
                None => {
                    self.con = Some(con);
                    log(format_args!(
                        "{dest}: reconnected after {attempts} attempt(s), {resent} unanswered \
                         message(s) sent again"
                    ));
                    return;
                }
                Some(e) => log(format_args!("{dest}: lost again while resending ({e})")),
            }
        }
    }
}

use super::OnLoss;

impl RedisSink {
    /// Sends a batch, with at most `window_commands` commands unanswered; a loss is handled
    /// as `on_loss` says. Handing back, the messages are kept until answered (those already
    /// written may have been stored: `maybe_delivered`).
    fn send_batch(&mut self, batch: &JsonBatch, on_loss: OnLoss) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Room first, so at most `window_commands` commands are ever unanswered.
        while self.in_flight.len() >= self.cfg.window_commands.max(1) {
            match self.settle_oldest() {
                Ok(Ok(())) => {}
                Ok(Err(e)) if on_loss == OnLoss::Hold => self.recover(&e),
                Ok(Err(e)) => {
                    let mut outage = self.hand_back(&e);
                    outage
                        .unconfirmed
                        .extend(batch.messages().map(<[u8]>::to_vec));
                    return Err(WriteError::Outage(outage));
                }
                Err(fatal) => return Err(WriteError::Fatal(fatal)),
            }
        }
        let mut pending = self.spare.pop().unwrap_or_default();
        pending.replies = self.build(&mut pending.cmd, batch);
        pending.messages = batch.len() as u64;
        pending.kept.clear();
        pending.kept_lens.clear();
        if on_loss == OnLoss::HandBack {
            for m in batch.messages() {
                pending.kept.extend_from_slice(m);
                pending.kept_lens.push(m.len());
            }
        }
        let sent = match self.con.as_mut() {
            Some(con) => con.send(&pending.cmd),
            None => Err(RespError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "not connected",
            ))),
        };
        // A failed write may still have put part (or all) of the command on the wire.
        pending.sent = self.con.is_some();
        self.in_flight.push_back(pending);
        match sent {
            Ok(()) => Ok(()),
            // Sends every command in flight again, this one included.
            Err(e) if on_loss == OnLoss::Hold => {
                self.recover(&e);
                Ok(())
            }
            Err(e) => Err(WriteError::Outage(self.hand_back(&e))),
        }
    }

    /// Reads the answer to every command in flight; a loss is handled as `on_loss` says.
    fn settle_all(&mut self, on_loss: OnLoss) -> Result<(), WriteError> {
        while !self.in_flight.is_empty() {
            match self.settle_oldest() {
                Ok(Ok(())) => {}
                Ok(Err(e)) if on_loss == OnLoss::Hold => self.recover(&e),
                Ok(Err(e)) => return Err(WriteError::Outage(self.hand_back(&e))),
                Err(fatal) => return Err(WriteError::Fatal(fatal)),
            }
        }
        Ok(())
    }
}

/// Handing back (with a delivery thread in front), a lost connection or a passing server
/// error gives up the connection and hands every unanswered message back, oldest first:
/// those already written may have been stored (`maybe_delivered`).
impl Sink for RedisSink {
    super::one_send_path!();

    fn reconnect_once(&mut self) -> Result<(), String> {
        let con = open_connection(&self.cfg, self.tls.as_ref()).map_err(|e| e.to_string())?;
        self.con = Some(con);
        SinkCounters::add(&self.counters.reconnects, 1);
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        let what = match self.cfg.mode {
            RedisMode::List => format!(
                "list {} ({})",
                self.cfg.keys_shown(),
                self.cfg.format.as_str()
            ),
            RedisMode::Stream => {
                format!(
                    "stream {} (MAXLEN ~ {})",
                    self.cfg.keys_shown(),
                    self.cfg.maxlen
                )
            }
            RedisMode::Channel => format!(
                "channel {} ({} reached no subscriber)",
                self.cfg.keys_shown(),
                self.unheard.load(Ordering::Relaxed)
            ),
        };
        Some(format!(
            "published {} to {} {what}, {} resent after {} reconnects",
            c.published(),
            self.cfg.describe(),
            c.resent(),
            c.reconnects()
        ))
    }
}

/// Connects, authenticates, selects the database and checks the server answers commands
/// (PING: [`crate::broker::redis::open`]), and in kombu format records the binding.
fn open_connection(
    cfg: &RedisConfig,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<RespConnection, OpenError> {
    let mut con = broker_redis::open(&cfg.endpoint, tls)?;
    if cfg.format == RedisFormat::Kombu && cfg.mode == RedisMode::List {
        let (key, members) = cfg.bindings();
        let permanent = cfg.permanent_binding_key();
        let mut cmds = Vec::new();
        for set in [key.as_bytes(), permanent.as_bytes()] {
            let mut args: Vec<&[u8]> = vec![b"SADD", set];
            args.extend(members.iter().map(Vec::as_slice));
            encode_command(&mut cmds, &args);
        }
        con.send(&cmds)?;
        for _ in 0..2 {
            if let Reply::Error(text) = con.read_reply()? {
                return Err(OpenError::Refused("SADD", text));
            }
        }
    }
    Ok(con)
}

/// Server error codes worth waiting out: states that pass.
fn retriable_code(text: Option<&str>) -> bool {
    matches!(
        text.and_then(|t| t.split_whitespace().next()),
        Some(
            "LOADING"
                | "BUSY"
                | "TRYAGAIN"
                | "MASTERDOWN"
                | "CLUSTERDOWN"
                | "OOM"
                | "READONLY"
                | "MISCONF"
                | "NOAUTH"
                | "WRONGPASS"
        )
    )
}

use super::{SinkConfig, SinkKind};

/// `redis://` and `rediss://` in the sink registry ([`super::SINK_KINDS`]).
pub const KIND: SinkKind = SinkKind {
    schemes: &["redis", "rediss"],
    takes_password: true,
    partitioned: true,
    parse: |url, options| Ok(Box::new(RedisConfig::parse(url, options)?)),
};

impl SinkConfig for RedisConfig {
    fn build(&self) -> Result<(Box<dyn Sink>, SharedCounters), StartError> {
        let sink = RedisSink::connect(self.clone())?;
        let counters = sink.counters();
        Ok((Box::new(sink), counters))
    }

    fn describe(&self) -> String {
        RedisConfig::describe(self)
    }

    fn identity(&self) -> String {
        let e = &self.endpoint;
        format!("redis-{}-{}-{}-{}", e.host, e.port, e.db, self.queue)
    }

    fn endpoint(&self) -> (&str, u16) {
        (self.endpoint.host.as_str(), self.endpoint.port)
    }

    fn partitions(&self) -> u16 {
        self.partitions.max(1)
    }

    fn spoolable(&self) -> bool {
        self.mode != RedisMode::Channel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_batch;

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
        const BASE64: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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

    /// The escaper this sink used before it shared the crate's one (`push_str_escaped`):
    /// kept here only to show the two write the same bytes.
    fn json_string_by_chars(out: &mut Vec<u8>, s: &str) {
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

    #[test]
    fn json_string_matches_the_char_by_char_escaper() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        let mut inputs = vec![
            String::new(),
            "celery".to_string(),
            "\"".to_string(),
            "\\".to_string(),
            "a\"b\\c\"\\".to_string(),
            every_control.clone(),
            format!("x{every_control}y\u{7f}z"),
            "caf\u{e9} \u{3a9}\u{20ac} \u{1f600} \u{10ffff}\u{80}\u{7ff}\u{800}\u{ffff}"
                .to_string(),
            "\u{1f600}\"\n\u{e9}\\\u{0}".to_string(),
        ];
        // Every scalar value below 0x800 (one- and two-byte UTF-8) and a sample above.
        inputs.push((0u32..0x800).filter_map(char::from_u32).collect());
        inputs.push(
            (0x800u32..=0x10ffff)
                .step_by(97)
                .filter_map(char::from_u32)
                .collect(),
        );
        for s in &inputs {
            let (mut shared, mut local) = (b"prefix".to_vec(), b"prefix".to_vec());
            json_string(&mut shared, s);
            json_string_by_chars(&mut local, s);
            assert_eq!(shared, local, "{s:?}");
            // And it is the JSON string of `s`.
            let back: String = serde_json::from_slice(&shared[6..]).unwrap();
            assert_eq!(&back, s);
        }
        // Escaped, not passed through: the sequences themselves.
        let mut out = Vec::new();
        json_string(&mut out, "\u{1}\u{1f}\"\\");
        assert_eq!(out, br#""\u0001\u001f\"\\""#);
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
    fn password_file_replaces_the_url_password() {
        let o = OutputOptions {
            password: Some(Secret("from-file".into())),
            ..OutputOptions::default()
        };
        for url in ["redis://:in-url@h/0", "redis://u@h", "redis://h"] {
            let c = RedisConfig::parse(url, &o).unwrap();
            assert_eq!(
                c.endpoint.password,
                Some(Secret("from-file".into())),
                "{url}"
            );
        }
        let c = RedisConfig::parse("redis://:S3cr/et@h:7/2", &OutputOptions::default()).unwrap();
        assert_eq!(c.endpoint.password, Some(Secret("S3cr/et".into())));
        assert_eq!(
            (c.endpoint.host.as_str(), c.endpoint.port, c.endpoint.db),
            ("h", 7, 2)
        );
    }

    #[test]
    fn parse_urls() {
        let o = OutputOptions::default();
        let c = RedisConfig::parse("redis://localhost:6379/15", &o).unwrap();
        assert_eq!(
            (c.endpoint.host.as_str(), c.endpoint.port, c.endpoint.db),
            ("localhost", 6379, 15)
        );
        assert_eq!(c.endpoint.password, None);
        let c = RedisConfig::parse("redis://:p%40ss@h", &o).unwrap();
        assert_eq!((c.endpoint.port, c.endpoint.db), (6379, 0));
        assert_eq!(c.endpoint.password, Some(Secret("p@ss".into())));
        assert_eq!(c.describe(), "redis://:***@h:6379/0");
        assert!(!format!("{c:?}").contains("p@ss"));
        let c = RedisConfig::parse("redis://u:s3cret@[::1]:7000/2", &o).unwrap();
        assert_eq!(c.endpoint.username.as_deref(), Some("u"));
        assert_eq!(c.describe(), "redis://u:***@[::1]:7000/2");
        assert!(RedisConfig::parse("rediss://h", &o).unwrap().endpoint.tls);
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
        let mut sink = RedisSink::with_connection(cfg, None, None);
        let b = test_batch::of(["{\"a\":1}", "{}"]);
        let mut cmd = Vec::new();
        sink.build(&mut cmd, &b);
        assert_eq!(
            cmd,
            b"*4\r\n$5\r\nLPUSH\r\n$1\r\nQ\r\n$7\r\n{\"a\":1}\r\n$2\r\n{}\r\n"
        );
    }

    #[test]
    fn stream_and_channel_commands_are_resp() {
        let b = test_batch::of(["{\"a\":1}", "{}"]);
        for (mode, want) in [
            (
                RedisMode::Stream,
                &b"*8\r\n$4\r\nXADD\r\n$1\r\nQ\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$2\r\n25\r\n\
                   $1\r\n*\r\n$3\r\nmsg\r\n$7\r\n{\"a\":1}\r\n\
                   *8\r\n$4\r\nXADD\r\n$1\r\nQ\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$2\r\n25\r\n\
                   $1\r\n*\r\n$3\r\nmsg\r\n$2\r\n{}\r\n"[..],
            ),
            (
                RedisMode::Channel,
                &b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nQ\r\n$7\r\n{\"a\":1}\r\n\
                   *3\r\n$7\r\nPUBLISH\r\n$1\r\nQ\r\n$2\r\n{}\r\n"[..],
            ),
        ] {
            let o = OutputOptions {
                queue: "Q".into(),
                redis_mode: mode,
                redis_maxlen: 25,
                ..OutputOptions::default()
            };
            let cfg = RedisConfig::parse("redis://h", &o).unwrap();
            let mut sink = RedisSink::with_connection(cfg, None, None);
            let mut cmd = Vec::new();
            sink.build(&mut cmd, &b);
            assert_eq!(cmd, want, "{mode:?}: {}", String::from_utf8_lossy(&cmd));
        }
    }

    /// A message whose `community_id` digest starts with the 4 bytes of `hash_prefix`
    /// (six base64 symbols) and nothing else of a packet.
    fn with_id(batch: &mut JsonBatch, symbols: &str) {
        let m =
            format!("{{\"cap_len\":60,\"community_id\":\"1:{symbols}AAAAAAAAAAAAAAAAAAAAAA=\"}}");
        test_batch::push(batch, m.as_bytes());
    }

    #[test]
    fn partitions_go_to_their_keys_in_order() {
        // Hashes: AAAAAQ is 1 (partition 1 of 2), AAAAAA is 0, and no id at all is 0.
        let mut b = JsonBatch::with_capacity();
        with_id(&mut b, "AAAAAQ");
        test_batch::push(&mut b, b"{}");
        with_id(&mut b, "AAAAAA");
        with_id(&mut b, "AAAAAQ");
        let m: Vec<Vec<u8>> = b.messages().map(<[u8]>::to_vec).collect();
        let bulk = |m: &[u8]| {
            let mut v = format!("${}\r\n", m.len()).into_bytes();
            v.extend_from_slice(m);
            v.extend_from_slice(b"\r\n");
            v
        };
        let o = |mode| OutputOptions {
            queue: "Q".into(),
            redis_format: RedisFormat::Raw,
            redis_mode: mode,
            redis_maxlen: 25,
            partitions: 2,
            ..OutputOptions::default()
        };
        // List: one LPUSH per partition, each partition's messages in batch order.
        let cfg = RedisConfig::parse("redis://h", &o(RedisMode::List)).unwrap();
        assert_eq!(cfg.keys_shown(), "Q-0..Q-1");
        let mut sink = RedisSink::with_connection(cfg, None, None);
        let mut cmd = Vec::new();
        assert_eq!(sink.build(&mut cmd, &b), 2);
        let mut want = b"*4\r\n$5\r\nLPUSH\r\n$3\r\nQ-0\r\n".to_vec();
        want.extend(bulk(&m[1]));
        want.extend(bulk(&m[2]));
        want.extend_from_slice(b"*4\r\n$5\r\nLPUSH\r\n$3\r\nQ-1\r\n");
        want.extend(bulk(&m[0]));
        want.extend(bulk(&m[3]));
        assert_eq!(cmd, want, "{}", String::from_utf8_lossy(&cmd));
        // The same from the hashes the worker stored.
        b.flows = vec![1, 0, 0, 1];
        let mut again = Vec::new();
        sink.build(&mut again, &b);
        assert_eq!(again, want);
        // Channel: one PUBLISH per message, in batch order, to its partition's key.
        let cfg = RedisConfig::parse("redis://h", &o(RedisMode::Channel)).unwrap();
        let mut sink = RedisSink::with_connection(cfg, None, None);
        assert_eq!(sink.build(&mut cmd, &b), 4);
        let mut want = Vec::new();
        for (key, msg) in [
            ("Q-1", &m[0]),
            ("Q-0", &m[1]),
            ("Q-0", &m[2]),
            ("Q-1", &m[3]),
        ] {
            want.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
            want.extend(bulk(key.as_bytes()));
            want.extend(bulk(msg));
        }
        assert_eq!(cmd, want, "{}", String::from_utf8_lossy(&cmd));
        // Kombu bindings: one member per partition's list.
        let cfg = RedisConfig::parse(
            "redis://h",
            &OutputOptions {
                partitions: 3,
                ..OutputOptions::default()
            },
        )
        .unwrap();
        let (_, members) = cfg.bindings();
        assert_eq!(members.len(), 3);
        assert!(members[2].ends_with(b"\x06\x16NEW_PACKETS-2"));
    }
}
