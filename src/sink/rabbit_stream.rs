//! `rabbitmq-stream://[USER[:PASSWORD]@]HOST[:PORT][/VHOST]` (and `rabbitmq-stream+tls://`):
//! messages appended to a RabbitMQ stream (`--queue`) over the stream protocol (port 5552,
//! 5551 for TLS), with publisher confirms and broker-side deduplication.
//!
//! The stream is created when missing (`--stream-max-bytes`, `--stream-max-age`). Every
//! message is an AMQP 1.0 message whose data section is the packet JSON, content type
//! `application/json`: AMQP 0-9-1 consumers (kombu with `x-queue-type: stream`) see the JSON as
//! the body.
//!
//! Deduplication: the producer has a name (`--producer-name`) and every message a publishing
//! id, counting up across runs: at start the sink asks the broker for the last id it stored
//! for that name (QueryPublisherSequence) and continues after it. The broker drops (but
//! confirms) a message whose id is not above the last one stored, so a message sent again
//! after a lost confirm is stored once. Messages handed back on an outage keep their ids: when
//! the delivery thread sends them again (from its spool, oldest first) the sink recognises
//! them by their bytes and gives them the same ids again.
//!
//! Publishing: through the client's low-level connection (`Client::publish`), with a confirm
//! handler of our own. The client's `Producer` keeps a boxed callback per message in a
//! concurrent map and copies every body twice more; here a batch's messages are built once
//! (shared with the copy kept for resending) and the handler only moves a per-partition count
//! of confirmed ids, in send order (`LaneTrack`). Up to [`WINDOW_BATCHES`] batches are in
//! flight; a batch counts as delivered (`published`) only once every message in it is
//! confirmed, and messages are counted in the order they were written, so the delivery layer
//! can trust the count to delete what it replayed from its spool.
//!
//! Partitions (`--partitions N`, N > 1): stream `<queue>-<i>` and producer
//! `<producer-name>-<i>` for partition i, chosen per message by `JsonBatch::partition` (the
//! flow hash: both directions of a flow in one partition, in order). Each stream's leader gets
//! one connection, with one publisher id per partition it leads.
//!
//! The client (rabbitmq-stream-client, pinned in Cargo.toml) is async; as in the AMQP sink the
//! sink owns a one-worker Tokio runtime (which also runs the confirm handler) and the
//! publisher thread blocks on it only to write frames; it waits for confirms on a condition
//! variable.

use super::{
    bad_url, log, reconnect_forever, OnLoss, Outage, OutputOptions, SharedCounters, Sink,
    SinkCounters, WriteError, EXIT_AUTH, EXIT_BAD_URL, EXIT_TLS, EXIT_UNREACHABLE,
};
use crate::broker::amqp::AmqpEndpoint;
use crate::broker::tls::CertReqs;
use crate::broker::{Backoff, StartError};
use crate::encode::batch::JsonBatch;
use rabbitmq_stream_client::error::ClientError;
use rabbitmq_stream_client::types::{Message, MessageResult, ResponseCode, ResponseKind};
#[cfg(feature = "cli")]
use rabbitmq_stream_client::Environment;
use rabbitmq_stream_client::{Client, ClientOptions, TlsConfiguration};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most bytes of messages in one Publish frame: the broker's frame limit is 1 MiB by default
/// and the client does not split a batch itself.
const FRAME_BUDGET_BYTES: usize = 768 * 1024;
/// Most messages in one Publish frame.
const FRAME_MESSAGES: usize = 512;

/// Stream-output settings that do not fit in the URL (`--stream-max-bytes`,
/// `--stream-max-age`, `--producer-name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `--stream-max-bytes`: retention of a stream the sink creates, in bytes.
    pub max_bytes: Option<u64>,
    /// `--stream-max-age`: retention of a stream the sink creates, by age.
    pub max_age: Option<Duration>,
    /// `--producer-name`: the deduplication name (default: made from the host name and the
    /// stream).
    pub producer_name: Option<String>,
    /// `record --input rabbitmq-stream://`: the name offsets are stored under.
    pub reader_name: Option<String>,
}

/// Where to connect, which stream, which producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitStreamConfig {
    /// RabbitMQ's host, stream port, virtual host, credentials, TLS and connect timeout, as
    /// for AMQP 0-9-1 (its `connection_name` is not sent: the stream client has none).
    pub endpoint: AmqpEndpoint,
    /// The stream (`--queue`); with partitions the prefix of `<stream>-<i>`.
    pub stream: String,
    /// `--stream-max-bytes`: retention of a stream the sink creates, in bytes.
    pub max_bytes: Option<u64>,
    /// `--stream-max-age`: retention of a stream the sink creates, by age.
    pub max_age: Option<Duration>,
    /// The deduplication name; the default is made from the host name and the stream.
    pub producer_name: String,
    /// `--partitions`: 1 writes the stream `stream` itself; N > 1 writes `<stream>-0` ..
    /// `<stream>-(N-1)` by flow hash, producer `<producer_name>-<i>` on each.
    pub partitions: u16,
    /// How long to wait for a batch's confirms before treating the connection as lost.
    pub confirm_timeout: Duration,
    /// Waits between reconnect attempts.
    pub backoff: Backoff,
}

impl RabbitStreamConfig {
    /// Parses `rabbitmq-stream://` / `rabbitmq-stream+tls://`: user and password default to
    /// guest/guest, the port to 5552 (5551 with TLS), the virtual host is the %-decoded path.
    pub fn parse(
        url: &str,
        options: &OutputOptions,
        stream: &StreamOptions,
    ) -> Result<RabbitStreamConfig, String> {
        let endpoint = AmqpEndpoint::from_url(
            url,
            "rabbitmq-stream+tls",
            (5552, 5551),
            options.password.as_ref(),
            &options.ssl,
        )
        .map_err(|e| {
            bad_url(
                url,
                &e,
                "rabbitmq-stream://USER:PASSWORD@HOST[:PORT][/VHOST]",
            )
        })?;
        if options.queue.is_empty() || options.queue.len() > 255 {
            return Err("the stream name (--queue) must be 1 to 255 bytes".into());
        }
        let producer_name = match &stream.producer_name {
            Some(n) if n.is_empty() || n.len() > 255 => {
                return Err("--producer-name must be 1 to 255 bytes".into())
            }
            Some(n) => n.clone(),
            None => format!("netpipe-fast-{}-{}", host_name(), options.queue),
        };
        let partitions = options.partitions.max(1);
        if partitions > MAX_PARTITIONS {
            return Err(format!(
                "--partitions {partitions}: a RabbitMQ stream output takes at most \
                 {MAX_PARTITIONS} partitions"
            ));
        }
        Ok(RabbitStreamConfig {
            endpoint,
            stream: options.queue.clone(),
            max_bytes: stream.max_bytes,
            max_age: stream.max_age,
            producer_name,
            partitions,
            // A healthy broker confirms in milliseconds; a resend after a false timeout is
            // deduplicated, so a short wait costs little and finds a dead leader sooner.
            confirm_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        })
    }

    /// The URL without the password.
    pub fn describe(&self) -> String {
        let e = &self.endpoint;
        let scheme = if e.tls {
            "rabbitmq-stream+tls"
        } else {
            "rabbitmq-stream"
        };
        let host = if e.host.contains(':') {
            format!("[{}]", e.host)
        } else {
            e.host.clone()
        };
        let vhost = if e.vhost == "/" {
            String::new()
        } else {
            e.vhost.clone()
        };
        format!("{scheme}://{}:***@{host}:{}/{vhost}", e.username, e.port)
    }

    /// The client's TLS settings from FORWARD_SSL_OPTIONS / --ssl-options (the client takes
    /// file paths and builds its own rustls configuration; [`Self::check_tls_files`] checks
    /// them first).
    pub(crate) fn tls_config(&self) -> TlsConfiguration {
        let mut tls = TlsConfiguration::builder().enable(true);
        if self.endpoint.ssl.cert_reqs == CertReqs::None {
            tls = tls.trust_certificates(true);
        }
        if let Some(ca) = &self.endpoint.ssl.ca_certs {
            tls = tls.add_root_certificates(ca.display().to_string());
        }
        if let Some(cert) = &self.endpoint.ssl.certfile {
            // As Python's ssl: the key is read from certfile when keyfile is not given.
            let key = self.endpoint.ssl.keyfile.as_ref().unwrap_or(cert);
            tls = tls.add_client_certificates_keys(
                cert.display().to_string(),
                key.display().to_string(),
            );
        }
        tls.build()
    }

    /// The stream client (0.4.4) panics on TLS files it cannot use (a missing or empty CA
    /// file, a key that is not PKCS #8, no CA file at all, a host that is no TLS name), so
    /// they are checked here first, with the same rustls checks the other TLS outputs use:
    /// a start-up error naming the file (exit 11), never a panic.
    pub(crate) fn check_tls_files(&self) -> Result<(), Failure> {
        if !self.endpoint.tls {
            return Ok(());
        }
        let fail = |why: String| Err(Failure::TlsSetup(why));
        if let Err(e) = self.endpoint.ssl.client_config() {
            return fail(e);
        }
        if let Err(e) = crate::broker::tls::server_name(&self.endpoint.host) {
            return fail(e);
        }
        if self.endpoint.ssl.cert_reqs == CertReqs::None && self.endpoint.ssl.certfile.is_some() {
            return fail(
                "with cert_reqs CERT_NONE the stream client sends no client certificate; give \
                 ca_certs and CERT_REQUIRED to use certfile"
                    .into(),
            );
        }
        if self.endpoint.ssl.cert_reqs != CertReqs::None && self.endpoint.ssl.ca_certs.is_none() {
            return fail(
                "rabbitmq-stream+tls:// needs ca_certs in the SSL options (its client cannot \
                 use the system's trust store), or cert_reqs CERT_NONE"
                    .into(),
            );
        }
        if let Some(cert) = &self.endpoint.ssl.certfile {
            use rustls_pki_types::pem::PemObject;
            let keyfile = self.endpoint.ssl.keyfile.as_ref().unwrap_or(cert);
            match rustls_pki_types::PrivateKeyDer::from_pem_file(keyfile) {
                Ok(rustls_pki_types::PrivateKeyDer::Pkcs8(_)) => {}
                Ok(_) => {
                    return fail(format!(
                        "the key in keyfile {} is not PKCS #8 (\"BEGIN PRIVATE KEY\"), which \
                         the stream client needs (openssl pkcs8 -topk8 -nocrypt converts it)",
                        keyfile.display()
                    ))
                }
                Err(e) => {
                    return fail(format!(
                        "cannot read the private key from keyfile {}: {e}",
                        keyfile.display()
                    ))
                }
            }
        }
        Ok(())
    }

    /// The stream names and producer names of the partitions, in order.
    pub(crate) fn lanes(&self) -> Vec<(String, String)> {
        if self.partitions <= 1 {
            return vec![(self.stream.clone(), self.producer_name.clone())];
        }
        (0..self.partitions)
            .map(|i| {
                (
                    format!("{}-{i}", self.stream),
                    format!("{}-{i}", self.producer_name),
                )
            })
            .collect()
    }

    /// A low-level client connected to `host`:`port` with the URL's credentials and TLS.
    async fn client(&self, host: &str, port: u16) -> Result<Client, Failure> {
        let mut opts = ClientOptions::builder()
            .host(host)
            .port(port)
            .user(&self.endpoint.username)
            .password(&self.endpoint.password.0)
            .v_host(&self.endpoint.vhost);
        if self.endpoint.tls {
            opts = opts.tls(self.tls_config());
        }
        Client::connect(opts.build()).await.map_err(Failure::Client)
    }

    /// Connects (checking the credentials) and gives the client's environment (`record`'s
    /// stream input).
    #[cfg(feature = "cli")]
    pub(crate) fn environment(
        &self,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Environment, Failure> {
        self.check_tls_files()?;
        let mut builder = Environment::builder()
            .host(&self.endpoint.host)
            .port(self.endpoint.port)
            .username(&self.endpoint.username)
            .password(&self.endpoint.password.0)
            .virtual_host(&self.endpoint.vhost);
        if self.endpoint.tls {
            builder = builder.tls(self.tls_config());
        }
        let timeout = self.endpoint.connect_timeout;
        runtime
            .block_on(async move { tokio::time::timeout(timeout, builder.build()).await })
            .map_err(|_| Failure::Timeout("connecting"))?
            .map_err(Failure::Client)
    }
}

/// Why a connection is given up.
pub(crate) enum Failure {
    Client(ClientError),
    /// The TLS files or settings cannot be used (checked before connecting).
    TlsSetup(String),
    Create(String),
    Refused(String),
    Timeout(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Create(e) | Failure::Refused(e) => f.write_str(e),
            Failure::TlsSetup(e) => write!(f, "TLS set-up failed: {e}"),
            Failure::Timeout(what) => write!(f, "no answer to {what} in time"),
        }
    }
}

/// The exit code and line for a failure at start.
pub(crate) fn start_error(cfg: &RabbitStreamConfig, e: &Failure) -> StartError {
    let dest = cfg.describe();
    match e {
        Failure::Client(ClientError::Tls(t)) => {
            StartError::new(EXIT_TLS, format!("{dest}: TLS failed: {t}"))
        }
        Failure::Client(ClientError::RequestError(code)) => match code {
            ResponseCode::AuthenticationFailure
            | ResponseCode::AuthenticationFailureLoopback
            | ResponseCode::SaslError
            | ResponseCode::VirtualHostAccessFailure
            | ResponseCode::AccessRefused => StartError::new(
                EXIT_AUTH,
                format!(
                    "{dest}: access refused for user \"{}\" (virtual host \"{}\"): {code:?}",
                    cfg.endpoint.username, cfg.endpoint.vhost
                ),
            ),
            other => StartError::new(EXIT_UNREACHABLE, format!("{dest}: refused: {other:?}")),
        },
        Failure::Client(ClientError::Io(io)) if cfg.endpoint.tls && is_tls_io(io) => {
            StartError::new(EXIT_TLS, format!("{dest}: TLS failed: {io}"))
        }
        // A server that closes on the ClientHello is most likely not speaking TLS there.
        Failure::Client(ClientError::Io(io))
            if cfg.endpoint.tls
                && matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
        {
            StartError::new(
                EXIT_TLS,
                format!(
                    "{dest}: TLS failed: the server closed the connection during the handshake \
                     ({io}); is it a TLS port?"
                ),
            )
        }
        Failure::Create(why) => StartError::new(EXIT_BAD_URL, format!("{dest}: {why}")),
        Failure::TlsSetup(why) => {
            StartError::new(EXIT_TLS, format!("{dest}: TLS set-up failed: {why}"))
        }
        other => StartError::new(
            EXIT_UNREACHABLE,
            format!("cannot connect to {dest}: {other}"),
        ),
    }
}

/// rustls handshake failures reach us as I/O errors of kind InvalidData.
fn is_tls_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

/// This machine's name, for the default producer name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Batches sent but not yet confirmed before `write_batch` waits for the oldest one. The
/// broker confirms a chunk once it is written (and, on a cluster, replicated); with one batch
/// at a time the link idled for a round trip per batch, with several the broker always has
/// the next chunk to write. Each batch is up to 1,024 messages (`BATCH_PACKETS`).
pub const WINDOW_BATCHES: usize = 8;

/// Most partitions of a stream output: a connection has 256 publisher ids (one byte).
pub const MAX_PARTITIONS: u16 = 256;

/// What the connections' confirm handlers learned from the broker, shared with the publisher
/// thread (which waits on `changed`).
struct Tracker {
    state: Mutex<Track>,
    changed: Condvar,
}

#[derive(Default)]
struct Track {
    /// The connection set the counts below belong to; answers from older ones are ignored.
    generation: u64,
    lanes: Vec<LaneTrack>,
    /// Why the current connections cannot be used any more (closed, socket error).
    broken: Option<String>,
}

/// Confirms of one partition's publisher on the current connection.
#[derive(Default)]
struct LaneTrack {
    /// Ids sent and not yet confirmed in send order, oldest first.
    waiting: VecDeque<u64>,
    /// Confirms that came for ids behind the front of `waiting` (the protocol does not promise
    /// that confirms come in order).
    early: HashSet<u64>,
    /// Ids sent on this connection.
    pushed: u64,
    /// The first `confirmed` of them are confirmed.
    confirmed: u64,
    /// The first message the broker refused (PublishError): its id and the code.
    refused: Option<(u64, ResponseCode)>,
}

impl LaneTrack {
    fn confirm(&mut self, id: u64) {
        if self.waiting.front() != Some(&id) {
            self.early.insert(id);
            return;
        }
        self.waiting.pop_front();
        self.confirmed += 1;
        while let Some(front) = self.waiting.front() {
            if !self.early.remove(front) {
                break;
            }
            self.waiting.pop_front();
            self.confirmed += 1;
        }
    }
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            state: Mutex::new(Track::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Track> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything of the old connections and starts counting for `lanes` new ones.
    fn next_generation(&self, lanes: usize) -> u64 {
        let mut t = self.lock();
        t.generation += 1;
        t.lanes = (0..lanes).map(|_| LaneTrack::default()).collect();
        t.broken = None;
        t.generation
    }

    /// A frame without a correlation id (or the end of the connection), from the client's
    /// dispatcher. `lanes[publisher id]` is the partition that publisher writes.
    fn on_message(&self, generation: u64, lanes: &[usize], item: MessageResult) {
        let mut t = self.lock();
        if t.generation != generation {
            return;
        }
        match item {
            Some(Ok(response)) => match response.kind_ref() {
                ResponseKind::PublishConfirm(c) => {
                    let lane = lanes.get(usize::from(c.publisher_id)).copied();
                    if let Some(lane) = lane.and_then(|l| t.lanes.get_mut(l)) {
                        for &id in &c.publishing_ids {
                            lane.confirm(id);
                        }
                    }
                }
                ResponseKind::PublishError(e) => {
                    let lane = lanes.get(usize::from(e.publisher_id)).copied();
                    if let Some(lane) = lane.and_then(|l| t.lanes.get_mut(l)) {
                        if let Some(first) = e.publishing_errors.first() {
                            lane.refused
                                .get_or_insert((first.publishing_id, first.error_code.clone()));
                        }
                    }
                }
                _ => return,
            },
            Some(Err(e)) => {
                t.broken
                    .get_or_insert_with(|| format!("connection error: {e}"));
            }
            None => {
                t.broken
                    .get_or_insert_with(|| "the broker closed the connection".into());
            }
        }
        drop(t);
        self.changed.notify_all();
    }
}

/// One partition: the stream `<queue>-<i>` (`--queue` itself without partitions) and its
/// deduplicating publisher `<producer-name>-<i>`.
struct Lane {
    stream: String,
    producer_name: String,
    /// The publishing id the next new message of this partition gets.
    next_id: u64,
}

/// The connections: one per stream leader; `route[lane]` is (connection, publisher id).
struct Link {
    clients: Vec<Client>,
    route: Vec<(usize, u8)>,
}

/// A message with its partition and publishing id, kept until the broker confirms it.
struct Out {
    /// The AMQP 1.0 message as sent (shared, so keeping it for a resend copies nothing).
    message: Message,
    lane: u16,
    id: u64,
}

impl Out {
    fn bytes(&self) -> &[u8] {
        self.message.data().unwrap_or_default()
    }
}

/// One batch's messages until every one is confirmed.
struct InFlight {
    out: Vec<Out>,
    /// Where each message is among the ids sent on its partition over the current
    /// connection ([`NOT_SENT`]: not sent on it).
    ordinals: Vec<u64>,
    /// Messages at the front confirmed (and counted in `published`).
    done: usize,
}

const NOT_SENT: u64 = u64::MAX;

/// Messages appended to a RabbitMQ stream (or one per partition), confirmed and
/// deduplicated, reconnecting forever.
pub struct RabbitStreamSink {
    cfg: RabbitStreamConfig,
    runtime: tokio::runtime::Runtime,
    link: Option<Link>,
    lanes: Vec<Lane>,
    tracker: Arc<Tracker>,
    in_flight: VecDeque<InFlight>,
    /// Messages handed back on an outage, with their partitions and ids: given the same ones
    /// when they come back (in order) from the delivery thread.
    retained: VecDeque<Out>,
    sent: u64,
    counters: SharedCounters,
}

impl RabbitStreamSink {
    /// Connects to the stream's leader (each partition's), creates missing streams, declares
    /// the producers and continues after the last publishing id the broker stored for each.
    pub fn connect(cfg: RabbitStreamConfig) -> Result<RabbitStreamSink, StartError> {
        cfg.check_tls_files().map_err(|e| start_error(&cfg, &e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netpipe-rmq-stream")
            .enable_all()
            .build()
            .map_err(|e| {
                StartError::new(EXIT_UNREACHABLE, format!("cannot start the runtime: {e}"))
            })?;
        let mut lanes: Vec<Lane> = cfg
            .lanes()
            .into_iter()
            .map(|(stream, producer_name)| Lane {
                stream,
                producer_name,
                next_id: 1,
            })
            .collect();
        let tracker = Arc::new(Tracker::new());
        let (link, last_ids) =
            open_link(&cfg, &lanes, &runtime, &tracker).map_err(|e| start_error(&cfg, &e))?;
        for (lane, last) in lanes.iter_mut().zip(last_ids) {
            lane.next_id = last + 1;
        }
        Ok(RabbitStreamSink {
            cfg,
            runtime,
            link: Some(link),
            lanes,
            tracker,
            in_flight: VecDeque::new(),
            retained: VecDeque::new(),
            sent: 0,
            counters: Arc::new(SinkCounters::default()),
        })
    }

    /// The counters, readable while the sink runs elsewhere.
    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Gives each message its partition and publishing id: a message handed back earlier
    /// keeps both (so the broker recognises a resend by its id).
    fn number(&mut self, batch: &JsonBatch) -> InFlight {
        let n = self.lanes.len();
        let mut out = Vec::with_capacity(batch.len());
        for (index, m) in batch.messages().enumerate() {
            if let Some(front) = self.retained.front() {
                if front.bytes() == m {
                    if let Some(kept) = self.retained.pop_front() {
                        out.push(kept);
                    }
                    continue;
                }
                // Not the replay of what was handed back: those ids are not used again.
                self.retained.clear();
            }
            let lane = if n > 1 {
                // `partition` is below `n`; the check keeps a wrong answer from panicking.
                let p = batch.partition(index, n as u16);
                if usize::from(p) < n {
                    p
                } else {
                    0
                }
            } else {
                0
            };
            let slot = &mut self.lanes[usize::from(lane)];
            let id = slot.next_id;
            slot.next_id += 1;
            self.sent += 1;
            let message = Message::builder()
                .properties()
                .content_type("application/json")
                .content_encoding("utf-8")
                .message_builder()
                .body(m)
                .publising_id(id)
                .build();
            out.push(Out { message, lane, id });
        }
        let len = out.len();
        InFlight {
            out,
            ordinals: vec![NOT_SENT; len],
            done: 0,
        }
    }

    /// Sends the unconfirmed messages of in-flight batch `index` on the current connections.
    fn send(&mut self, index: usize) -> Result<(), Failure> {
        let Some(link) = self.link.as_ref() else {
            return Err(Failure::Timeout("a connection"));
        };
        let batch = &mut self.in_flight[index];
        // The ids are recorded before the frames go out, so no confirm can come first.
        {
            let mut t = self.tracker.lock();
            for (i, o) in batch.out.iter().enumerate().skip(batch.done) {
                let Some(lane) = t.lanes.get_mut(usize::from(o.lane)) else {
                    return Err(Failure::Timeout("a connection"));
                };
                batch.ordinals[i] = lane.pushed;
                lane.pushed += 1;
                lane.waiting.push_back(o.id);
            }
        }
        let batch = &self.in_flight[index];
        let lanes = self.lanes.len();
        let timeout = self.cfg.confirm_timeout;
        let work = async {
            for lane in 0..lanes {
                let (client, publisher) = link.route[lane];
                let mut frame: Vec<Message> = Vec::new();
                let mut frame_bytes = 0usize;
                let pending = batch.out[batch.done..]
                    .iter()
                    .filter(|o| usize::from(o.lane) == lane);
                for o in pending {
                    let size = o.bytes().len() + MESSAGE_OVERHEAD_BYTES;
                    if !frame.is_empty()
                        && (frame.len() >= FRAME_MESSAGES
                            || frame_bytes + size > FRAME_BUDGET_BYTES)
                    {
                        link.clients[client]
                            .publish(publisher, std::mem::take(&mut frame))
                            .await?;
                        frame_bytes = 0;
                    }
                    frame_bytes += size;
                    frame.push(o.message.clone());
                }
                if !frame.is_empty() {
                    link.clients[client].publish(publisher, frame).await?;
                }
            }
            Ok::<(), ClientError>(())
        };
        self.runtime
            .block_on(async move { tokio::time::timeout(timeout, work).await })
            .map_err(|_| Failure::Timeout("publishing"))?
            .map_err(|e| Failure::Refused(format!("publishing failed: {e}")))
    }

    /// Counts the confirmed messages at the front of the window, in order, and retires the
    /// batches confirmed whole.
    fn advance(in_flight: &mut VecDeque<InFlight>, t: &Track, counters: &SinkCounters) {
        while let Some(front) = in_flight.front_mut() {
            let start = front.done;
            while front.done < front.out.len() {
                let lane = usize::from(front.out[front.done].lane);
                let ordinal = front.ordinals[front.done];
                let confirmed = t.lanes.get(lane).map_or(0, |l| l.confirmed);
                if ordinal == NOT_SENT || ordinal >= confirmed {
                    break;
                }
                front.done += 1;
            }
            SinkCounters::add(&counters.published, (front.done - start) as u64);
            if front.done < front.out.len() {
                return;
            }
            in_flight.pop_front();
        }
    }

    /// Waits until the oldest in-flight batch is confirmed whole.
    fn confirm_oldest(&mut self) -> Result<(), Failure> {
        let before = self.in_flight.len();
        if before == 0 {
            return Ok(());
        }
        let tracker = Arc::clone(&self.tracker);
        let deadline = Instant::now() + self.cfg.confirm_timeout;
        let mut t = tracker.lock();
        loop {
            Self::advance(&mut self.in_flight, &t, &self.counters);
            if self.in_flight.len() < before {
                return Ok(());
            }
            if let Some(why) = &t.broken {
                return Err(Failure::Refused(why.clone()));
            }
            if let Some((i, (id, code))) = t
                .lanes
                .iter()
                .enumerate()
                .find_map(|(i, l)| l.refused.as_ref().map(|r| (i, r)))
            {
                return Err(Failure::Refused(format!(
                    "the broker refused message {id} of stream \"{}\": {code:?}",
                    self.lanes[i].stream
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::Timeout("the publisher confirms"));
            }
            t = tracker
                .changed
                .wait_timeout(t, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn drop_link(&mut self) {
        // Answers still coming from the old connections are ignored from here on.
        self.tracker.next_generation(self.lanes.len());
        for batch in &mut self.in_flight {
            batch.ordinals.iter_mut().for_each(|o| *o = NOT_SENT);
        }
        if let Some(link) = self.link.take() {
            close_link(&self.runtime, link);
        }
    }

    /// New connections; each partition's next id continues after what the broker stored.
    fn relink(&mut self) -> Result<(), Failure> {
        let (link, last_ids) = open_link(&self.cfg, &self.lanes, &self.runtime, &self.tracker)?;
        for (lane, last) in self.lanes.iter_mut().zip(last_ids) {
            lane.next_id = lane.next_id.max(last + 1);
        }
        self.link = Some(link);
        Ok(())
    }

    /// Connects again, forever, with capped exponential backoff, and sends every unconfirmed
    /// message again, oldest first (the broker drops the ones it had stored, by their ids).
    fn recover(&mut self, why: &Failure) {
        let dest = self.cfg.describe();
        log(format_args!(
            "{dest}: {why}; reconnecting, holding the output"
        ));
        loop {
            self.drop_link();
            let backoff = self.cfg.backoff;
            let counters = Arc::clone(&self.counters);
            let (cfg, lanes, runtime, tracker) =
                (&self.cfg, &self.lanes, &self.runtime, &self.tracker);
            let ((link, last_ids), attempts) = reconnect_forever(&dest, backoff, &counters, || {
                open_link(cfg, lanes, runtime, tracker)
            });
            for (lane, last) in self.lanes.iter_mut().zip(last_ids) {
                lane.next_id = lane.next_id.max(last + 1);
            }
            self.link = Some(link);
            let resent: u64 = self
                .in_flight
                .iter()
                .map(|b| (b.out.len() - b.done) as u64)
                .sum();
            let mut failed = None;
            for i in 0..self.in_flight.len() {
                if let Err(e) = self.send(i) {
                    failed = Some(e);
                    break;
                }
            }
            SinkCounters::add(&self.counters.resent, resent);
            match failed {
                None => {
                    log(format_args!(
                        "{dest}: reconnected after {attempts} attempt(s), {resent} unconfirmed \
                         message(s) sent again"
                    ));
                    return;
                }
                Some(e) => log(format_args!("{dest}: lost again while resending ({e})")),
            }
        }
    }

    /// Gives up the connections and hands every message not confirmed in order back, oldest
    /// first, keeping their partitions and ids for when they come back.
    fn hand_back(&mut self, reason: String) -> WriteError {
        {
            let tracker = Arc::clone(&self.tracker);
            let t = tracker.lock();
            Self::advance(&mut self.in_flight, &t, &self.counters);
        }
        let mut outage = Outage {
            reason,
            ..Outage::default()
        };
        let mut retained = VecDeque::new();
        for batch in self.in_flight.drain(..) {
            let InFlight {
                out,
                ordinals,
                done,
            } = batch;
            for (o, ordinal) in out.into_iter().zip(ordinals).skip(done) {
                if ordinal != NOT_SENT {
                    outage.maybe_delivered += 1;
                }
                outage.unconfirmed.push(o.bytes().to_vec());
                retained.push_back(o);
            }
        }
        self.drop_link();
        self.retained = retained;
        WriteError::Outage(outage)
    }
}

/// Bytes a message adds to a Publish frame beside its body: publishing id, length, the AMQP
/// 1.0 section headers and the two properties.
const MESSAGE_OVERHEAD_BYTES: usize = 96;

/// Connects, creates each partition's stream when missing, connects to each stream's leader,
/// declares the named publishers and gives the last publishing id the broker stored for each
/// (0: none).
fn open_link(
    cfg: &RabbitStreamConfig,
    lanes: &[Lane],
    runtime: &tokio::runtime::Runtime,
    tracker: &Arc<Tracker>,
) -> Result<(Link, Vec<u64>), Failure> {
    let generation = tracker.next_generation(lanes.len());
    // Creating a replicated stream takes a while on a cluster: more time for more partitions.
    let timeout = cfg
        .endpoint
        .connect_timeout
        .saturating_mul(1 + u32::try_from(lanes.len() / 4).unwrap_or(u32::MAX));
    let mut opened: Vec<Client> = Vec::new();
    let work = async {
        let first = cfg.client(&cfg.endpoint.host, cfg.endpoint.port).await?;
        opened.push(first.clone());
        for lane in lanes {
            let mut options = HashMap::new();
            options.insert("queue-leader-locator".to_string(), "least-leaders".into());
            if let Some(b) = cfg.max_bytes {
                options.insert("max-length-bytes".to_string(), b.to_string());
            }
            if let Some(age) = cfg.max_age {
                options.insert("max-age".to_string(), format!("{}s", age.as_secs()));
            }
            let created = first
                .create_stream(&lane.stream, options)
                .await
                .map_err(Failure::Client)?;
            match created.code() {
                ResponseCode::Ok | ResponseCode::StreamAlreadyExists => {}
                // The stream exists, made with other arguments (replicas, retention, leader
                // locator): it is used as it is, as an existing stream always is.
                ResponseCode::PrecoditionFailed => {}
                status => {
                    return Err(Failure::Create(format!(
                        "cannot create the stream \"{}\": {status:?}",
                        lane.stream
                    )))
                }
            }
        }
        let streams: Vec<String> = lanes.iter().map(|l| l.stream.clone()).collect();
        let metadata = first.metadata(streams).await.map_err(Failure::Client)?;
        // One connection per leader (the only node that writes: publishing elsewhere would
        // pass every message on to it).
        let mut leaders: Vec<(String, u16)> = vec![(cfg.endpoint.host.clone(), cfg.endpoint.port)];
        let mut clients: Vec<Option<Client>> = vec![Some(first.clone())];
        let mut route = Vec::with_capacity(lanes.len());
        let mut per_client: Vec<u16> = vec![0];
        for lane in lanes {
            let leader = match metadata.get(&lane.stream) {
                Some(m) if m.response_code == ResponseCode::Ok => (
                    m.leader.host.clone(),
                    u16::try_from(m.leader.port).unwrap_or(0),
                ),
                Some(m) => {
                    return Err(Failure::Create(format!(
                        "the stream \"{}\" is not available: {:?}",
                        lane.stream, m.response_code
                    )))
                }
                None => {
                    return Err(Failure::Create(format!(
                        "the stream \"{}\" has no leader",
                        lane.stream
                    )))
                }
            };
            let at = match leaders.iter().position(|l| *l == leader) {
                Some(at) => at,
                None => {
                    leaders.push(leader);
                    clients.push(None);
                    per_client.push(0);
                    leaders.len() - 1
                }
            };
            if clients[at].is_none() {
                let (host, port) = &leaders[at];
                let client = cfg.client(host, *port).await?;
                opened.push(client.clone());
                clients[at] = Some(client);
            }
            let publisher = u8::try_from(per_client[at])
                .map_err(|_| Failure::Create("too many partitions on one node".into()))?;
            per_client[at] += 1;
            route.push((at, publisher));
        }
        // Connections no partition uses are closed; the rest get the confirm handler.
        let mut kept: Vec<Client> = Vec::new();
        let mut renumber: Vec<usize> = vec![usize::MAX; clients.len()];
        for (at, client) in clients.into_iter().enumerate() {
            let Some(client) = client else { continue };
            if per_client[at] == 0 {
                let _ = client.close().await;
                continue;
            }
            renumber[at] = kept.len();
            let publishers: Arc<Vec<usize>> = Arc::new(
                route
                    .iter()
                    .enumerate()
                    .filter(|(_, (c, _))| *c == at)
                    .map(|(lane, _)| lane)
                    .collect(),
            );
            let tracker = Arc::clone(tracker);
            client
                .set_handler(move |item: MessageResult| {
                    let tracker = Arc::clone(&tracker);
                    let publishers = Arc::clone(&publishers);
                    async move {
                        tracker.on_message(generation, &publishers, item);
                        Ok(())
                    }
                })
                .await;
            kept.push(client);
        }
        let route: Vec<(usize, u8)> = route.into_iter().map(|(c, p)| (renumber[c], p)).collect();
        let mut last_ids = Vec::with_capacity(lanes.len());
        for (lane, &(client, publisher)) in lanes.iter().zip(&route) {
            let client = &kept[client];
            let declared = client
                .declare_publisher(publisher, Some(lane.producer_name.clone()), &lane.stream)
                .await
                .map_err(Failure::Client)?;
            if !declared.is_ok() {
                return Err(Failure::Create(format!(
                    "cannot publish to the stream \"{}\": {:?}",
                    lane.stream,
                    declared.code()
                )));
            }
            // The broker drops (and confirms) a message whose id is not above the last one
            // it stored for this name: new messages continue after it.
            let last = client
                .query_publisher_sequence(&lane.producer_name, &lane.stream)
                .await
                .map_err(Failure::Client)?;
            last_ids.push(last);
        }
        Ok((
            Link {
                clients: kept,
                route,
            },
            last_ids,
        ))
    };
    let result = runtime
        .block_on(async { tokio::time::timeout(timeout, work).await })
        .map_err(|_| Failure::Timeout("setting up the publishers"))
        .and_then(|r| r);
    if result.is_err() {
        // Whatever was opened before the failure is closed (a dropped client would keep its
        // connection open with heartbeats).
        runtime.block_on(async {
            for client in opened {
                let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
            }
        });
    }
    result
}

/// Closes the connections politely, waiting a little; dead ones are simply dropped.
fn close_link(runtime: &tokio::runtime::Runtime, link: Link) {
    runtime.block_on(async move {
        for client in link.clients {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
        }
    });
}

impl RabbitStreamSink {
    /// After a failure: reconnect and send every in-flight batch again here (holding the
    /// output), or hand every unconfirmed message back, as `on_loss` says.
    fn lost(&mut self, why: Failure, on_loss: OnLoss) -> Result<(), WriteError> {
        super::lost(self, why, on_loss, Self::recover, Self::hand_back)
    }

    /// Publishes a batch, with at most [`WINDOW_BATCHES`] batches unconfirmed; a loss is
    /// handled as `on_loss` says.
    fn send_batch(&mut self, batch: &JsonBatch, on_loss: OnLoss) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        let slot = self.number(batch);
        self.in_flight.push_back(slot);
        if self.link.is_none() && on_loss == OnLoss::HandBack {
            return Err(self.hand_back("not connected".into()));
        }
        let last = self.in_flight.len() - 1;
        // Without a connection `send` fails, and holding reconnects.
        if let Err(e) = self.send(last) {
            // Holding, sends every in-flight batch again, this one included.
            self.lost(e, on_loss)?;
        }
        while self.in_flight.len() > WINDOW_BATCHES {
            if let Err(e) = self.confirm_oldest() {
                self.lost(e, on_loss)?;
            }
        }
        Ok(())
    }

    /// Waits until everything in flight is confirmed; a loss is handled as `on_loss` says.
    fn settle_all(&mut self, on_loss: OnLoss) -> Result<(), WriteError> {
        while !self.in_flight.is_empty() {
            if let Err(e) = self.confirm_oldest() {
                self.lost(e, on_loss)?;
            }
        }
        Ok(())
    }
}

/// Handing back (with a delivery thread in front), a failure gives up the connections and
/// hands every unconfirmed message back, oldest first, keeping their partitions and ids.
impl Sink for RabbitStreamSink {
    super::one_send_path!();

    fn reconnect_once(&mut self) -> Result<(), String> {
        self.relink().map_err(|e| e.to_string())?;
        SinkCounters::add(&self.counters.reconnects, 1);
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        let (streams, producers) = if self.lanes.len() == 1 {
            (
                format!("stream {}", self.cfg.stream),
                format!("producer \"{}\"", self.cfg.producer_name),
            )
        } else {
            (
                format!(
                    "{} partition streams {}-0..{}-{}",
                    self.lanes.len(),
                    self.cfg.stream,
                    self.cfg.stream,
                    self.lanes.len() - 1
                ),
                format!("producers \"{}-<i>\"", self.cfg.producer_name),
            )
        };
        Some(format!(
            "published {} to {} {streams} as {producers}, {} confirmed, {} resent after {} \
             reconnects (the broker drops resent duplicates by publishing id)",
            self.sent,
            self.cfg.describe(),
            c.published(),
            c.resent(),
            c.reconnects()
        ))
    }
}

impl Drop for RabbitStreamSink {
    fn drop(&mut self) {
        self.drop_link();
    }
}

use super::{SinkConfig, SinkKind};

/// `rabbitmq-stream://` and `rabbitmq-stream+tls://` in the sink registry
/// ([`super::SINK_KINDS`]).
pub const KIND: SinkKind = SinkKind {
    schemes: &["rabbitmq-stream", "rabbitmq-stream+tls"],
    takes_password: true,
    partitioned: true,
    parse: |url, options| {
        Ok(Box::new(RabbitStreamConfig::parse(
            url,
            options,
            &options.stream,
        )?))
    },
};

impl SinkConfig for RabbitStreamConfig {
    fn build(&self) -> Result<(Box<dyn Sink>, SharedCounters), StartError> {
        let sink = RabbitStreamSink::connect(self.clone())?;
        let counters = sink.counters();
        Ok((Box::new(sink), counters))
    }

    fn describe(&self) -> String {
        RabbitStreamConfig::describe(self)
    }

    fn identity(&self) -> String {
        format!(
            "rabbitmq-stream-{}-{}-{}",
            self.endpoint.host, self.endpoint.port, self.stream
        )
    }

    fn endpoint(&self) -> (&str, u16) {
        (self.endpoint.host.as_str(), self.endpoint.port)
    }

    fn partitions(&self) -> u16 {
        self.partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Output;

    fn parse(url: &str) -> Result<RabbitStreamConfig, String> {
        RabbitStreamConfig::parse(url, &OutputOptions::default(), &StreamOptions::default())
    }

    #[test]
    fn ports_vhost_and_credentials() {
        let c = parse("rabbitmq-stream://u:p%40ss@h").unwrap();
        assert_eq!(
            (c.endpoint.port, c.endpoint.vhost.as_str(), c.endpoint.tls),
            (5552, "/", false)
        );
        assert_eq!(
            (c.endpoint.username.as_str(), c.endpoint.password.0.as_str()),
            ("u", "p@ss")
        );
        let c = parse("rabbitmq-stream+tls://h:7000/v%2fx").unwrap();
        assert_eq!(
            (c.endpoint.port, c.endpoint.vhost.as_str(), c.endpoint.tls),
            (7000, "v/x", true)
        );
        assert_eq!(
            parse("rabbitmq-stream+tls://h").unwrap().endpoint.port,
            5551
        );
        assert_eq!(c.endpoint.username, "guest");
        assert!(c.producer_name.starts_with("netpipe-fast-"));
    }

    #[test]
    fn the_password_is_never_shown() {
        let c = parse("rabbitmq-stream://u:hunter2@h:1").unwrap();
        assert!(!c.describe().contains("hunter2"));
        let e = parse("rabbitmq-stream://u:hunter2@h:notaport").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = Output::parse("rabbitmq-stream://u:hunter2@h:1/%zz").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn confirms_count_in_send_order_even_when_they_come_out_of_order() {
        let mut lane = LaneTrack::default();
        for id in [7, 8, 9, 20, 21] {
            lane.waiting.push_back(id);
            lane.pushed += 1;
        }
        lane.confirm(8);
        lane.confirm(20);
        assert_eq!(lane.confirmed, 0, "7 is not confirmed yet");
        lane.confirm(7);
        assert_eq!(lane.confirmed, 2);
        lane.confirm(9);
        assert_eq!(lane.confirmed, 4);
        lane.confirm(21);
        assert_eq!(lane.confirmed, 5);
        assert!(lane.waiting.is_empty() && lane.early.is_empty());
    }

    fn out(lane: u16, id: u64) -> Out {
        Out {
            message: Message::builder().body(vec![b'x']).build(),
            lane,
            id,
        }
    }

    #[test]
    fn a_batch_counts_in_order_and_retires_only_when_every_partition_confirmed_it() {
        // Two partitions; batch 1 = (p0, p1, p0), batch 2 = (p1).
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        in_flight.push_back(InFlight {
            out: vec![out(0, 1), out(1, 1), out(0, 2)],
            ordinals: vec![0, 0, 1],
            done: 0,
        });
        in_flight.push_back(InFlight {
            out: vec![out(1, 2)],
            ordinals: vec![1],
            done: 0,
        });
        let counters = SinkCounters::default();
        let mut t = Track {
            lanes: vec![LaneTrack::default(), LaneTrack::default()],
            ..Track::default()
        };
        // Partition 1 confirmed everything, partition 0 nothing: nothing counts yet, since
        // the first message of the window is not confirmed.
        t.lanes[1].confirmed = 2;
        RabbitStreamSink::advance(&mut in_flight, &t, &counters);
        assert_eq!((counters.published(), in_flight.len()), (0, 2));
        t.lanes[0].confirmed = 1;
        RabbitStreamSink::advance(&mut in_flight, &t, &counters);
        assert_eq!((counters.published(), in_flight[0].done), (2, 2));
        t.lanes[0].confirmed = 2;
        RabbitStreamSink::advance(&mut in_flight, &t, &counters);
        assert_eq!((counters.published(), in_flight.len()), (4, 0));
    }

    #[test]
    fn partitions_name_streams_and_producers() {
        let options = OutputOptions {
            queue: "pk".into(),
            partitions: 3,
            ..OutputOptions::default()
        };
        let stream = StreamOptions {
            producer_name: Some("cap".into()),
            ..StreamOptions::default()
        };
        let c = RabbitStreamConfig::parse("rabbitmq-stream://h", &options, &stream).unwrap();
        let names: Vec<String> = c.lanes().into_iter().map(|(s, p)| s + "/" + &p).collect();
        assert_eq!(names, ["pk-0/cap-0", "pk-1/cap-1", "pk-2/cap-2"]);
        let one = RabbitStreamConfig::parse(
            "rabbitmq-stream://h",
            &OutputOptions {
                queue: "pk".into(),
                ..OutputOptions::default()
            },
            &stream,
        )
        .unwrap();
        assert_eq!(one.lanes(), [("pk".to_string(), "cap".to_string())]);
        let too_many = OutputOptions {
            partitions: 257,
            ..OutputOptions::default()
        };
        assert!(RabbitStreamConfig::parse("rabbitmq-stream://h", &too_many, &stream).is_err());
    }

    #[test]
    fn empty_producer_name_is_refused() {
        let opts = StreamOptions {
            producer_name: Some(String::new()),
            ..StreamOptions::default()
        };
        assert!(
            RabbitStreamConfig::parse("rabbitmq-stream://h", &OutputOptions::default(), &opts)
                .is_err()
        );
    }
}
