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
//! The client (rabbitmq-stream-client, pinned in Cargo.toml) is async; as in the AMQP sink the
//! sink owns a one-worker Tokio runtime and the publisher thread blocks on it.

use super::tls::{CertReqs, SslOptions};
use super::{
    log, percent_decode, reconnect_forever, split_host_port, split_url, Backoff, Outage,
    OutputOptions, SharedCounters, Sink, SinkCounters, StartError, UrlParts, WriteError, EXIT_AUTH,
    EXIT_BAD_URL, EXIT_TLS, EXIT_UNREACHABLE,
};
use crate::broker::Secret;
use crate::pipeline::batch::JsonBatch;
use rabbitmq_stream_client::error::{ClientError, ProducerCreateError, StreamCreateError};
use rabbitmq_stream_client::types::{ByteCapacity, Message, ResponseCode};
use rabbitmq_stream_client::{Dedup, Environment, Producer, TlsConfiguration};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Most bytes of messages in one Publish frame: the broker's frame limit is 1 MiB by default
/// and the client does not split a batch itself.
const FRAME_BUDGET_BYTES: usize = 768 * 1024;
/// Most messages in one Publish frame.
const FRAME_MESSAGES: usize = 512;

/// Stream-output settings that do not fit in the URL (`--stream-max-bytes`,
/// `--stream-max-age`, `--producer-name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub producer_name: Option<String>,
    /// `record --input rabbitmq-stream://`: the name offsets are stored under.
    pub reader_name: Option<String>,
}

/// Where to connect, which stream, which producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitStreamConfig {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    pub password: Secret,
    pub tls: bool,
    pub ssl: SslOptions,
    pub stream: String,
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    /// The deduplication name; the default is made from the host name and the stream.
    pub producer_name: String,
    pub connect_timeout: Duration,
    pub confirm_timeout: Duration,
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
        let shown = super::redact(url);
        let bad = |why: &str| {
            format!(
                "bad output URL \"{shown}\": {why}; expected \
                 rabbitmq-stream://USER:PASSWORD@HOST[:PORT][/VHOST]"
            )
        };
        let UrlParts {
            tls,
            credentials,
            host_port,
            path,
        } = split_url(url, "rabbitmq-stream+tls").map_err(|e| bad(&e))?;
        let (username, password) = match credentials {
            None => ("guest".to_string(), "guest".to_string()),
            Some((u, p)) => (
                if u.is_empty() { "guest".into() } else { u },
                p.unwrap_or_else(|| "guest".into()),
            ),
        };
        let password = options.password.as_ref().map_or(password, |p| p.0.clone());
        let tls = tls || options.ssl.given;
        let default_port = if tls { 5551 } else { 5552 };
        let (host, port) = split_host_port(host_port, Some(default_port)).map_err(|e| bad(&e))?;
        let vhost = percent_decode(path).ok_or_else(|| bad("bad %-escape in the virtual host"))?;
        let vhost = if vhost.is_empty() { "/".into() } else { vhost };
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
        Ok(RabbitStreamConfig {
            host,
            port,
            vhost,
            username,
            password: Secret(password),
            tls,
            ssl: options.ssl.clone(),
            stream: options.queue.clone(),
            max_bytes: stream.max_bytes,
            max_age: stream.max_age,
            producer_name,
            connect_timeout: Duration::from_secs(10),
            // A healthy broker confirms in milliseconds; a resend after a false timeout is
            // deduplicated, so a short wait costs little and finds a dead leader sooner.
            confirm_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        })
    }

    /// The URL without the password.
    pub fn describe(&self) -> String {
        let scheme = if self.tls {
            "rabbitmq-stream+tls"
        } else {
            "rabbitmq-stream"
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let vhost = if self.vhost == "/" {
            String::new()
        } else {
            self.vhost.clone()
        };
        format!(
            "{scheme}://{}:***@{host}:{}/{vhost}",
            self.username, self.port
        )
    }

    /// The client's TLS settings from FORWARD_SSL_OPTIONS / --ssl-options (the client takes
    /// file paths and builds its own rustls configuration).
    pub(crate) fn tls_config(&self) -> TlsConfiguration {
        let mut tls = TlsConfiguration::builder().enable(true);
        if self.ssl.cert_reqs == CertReqs::None {
            tls = tls.trust_certificates(true);
        }
        if let Some(ca) = &self.ssl.ca_certs {
            tls = tls.add_root_certificates(ca.display().to_string());
        }
        if let (Some(cert), Some(key)) = (&self.ssl.certfile, &self.ssl.keyfile) {
            tls = tls.add_client_certificates_keys(
                cert.display().to_string(),
                key.display().to_string(),
            );
        }
        tls.build()
    }

    /// Connects (checking the credentials) and gives the client's environment.
    pub(crate) fn environment(
        &self,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Environment, Failure> {
        let mut builder = Environment::builder()
            .host(&self.host)
            .port(self.port)
            .username(&self.username)
            .password(&self.password.0)
            .virtual_host(&self.vhost);
        if self.tls {
            builder = builder.tls(self.tls_config());
        }
        let timeout = self.connect_timeout;
        runtime
            .block_on(async move { tokio::time::timeout(timeout, builder.build()).await })
            .map_err(|_| Failure::Timeout("connecting"))?
            .map_err(Failure::Client)
    }
}

/// Why a connection is given up.
pub(crate) enum Failure {
    Client(ClientError),
    Create(String),
    Refused(String),
    Timeout(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Create(e) | Failure::Refused(e) => f.write_str(e),
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
                    cfg.username, cfg.vhost
                ),
            ),
            other => StartError::new(EXIT_UNREACHABLE, format!("{dest}: refused: {other:?}")),
        },
        Failure::Client(ClientError::Io(io)) if cfg.tls && is_tls_io(io) => {
            StartError::new(EXIT_TLS, format!("{dest}: TLS failed: {io}"))
        }
        Failure::Create(why) => StartError::new(EXIT_BAD_URL, format!("{dest}: {why}")),
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

/// A connection's producer and the environment it came from.
struct Link {
    producer: Producer<Dedup>,
}

/// Messages of the current batch with their publishing ids, until confirmed.
struct Pending {
    id: u64,
    bytes: Vec<u8>,
}

pub struct RabbitStreamSink {
    cfg: RabbitStreamConfig,
    runtime: tokio::runtime::Runtime,
    link: Option<Link>,
    /// The publishing id the next new message gets.
    next_id: u64,
    /// Messages handed back on an outage, with their ids: given the same ids when they come
    /// back (in order) from the delivery thread.
    retained: VecDeque<Pending>,
    sent: u64,
    counters: SharedCounters,
}

impl RabbitStreamSink {
    pub fn connect(cfg: RabbitStreamConfig) -> Result<RabbitStreamSink, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netpipe-rmq-stream")
            .enable_all()
            .build()
            .map_err(|e| {
                StartError::new(EXIT_UNREACHABLE, format!("cannot start the runtime: {e}"))
            })?;
        let (link, last_id) = open_link(&cfg, &runtime).map_err(|e| start_error(&cfg, &e))?;
        Ok(RabbitStreamSink {
            cfg,
            runtime,
            link: Some(link),
            next_id: last_id + 1,
            retained: VecDeque::new(),
            sent: 0,
            counters: Arc::new(SinkCounters::default()),
        })
    }

    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Gives each message its publishing id: a message handed back earlier keeps its id.
    fn number(&mut self, batch: &JsonBatch) -> Vec<Pending> {
        let mut out = Vec::with_capacity(batch.len());
        for m in batch.messages() {
            let id = match self.retained.front() {
                Some(p) if p.bytes == m => {
                    let id = p.id;
                    self.retained.pop_front();
                    id
                }
                Some(_) => {
                    // Not the replay of what was handed back: those ids are not used again.
                    self.retained.clear();
                    self.take_id()
                }
                None => self.take_id(),
            };
            out.push(Pending {
                id,
                bytes: m.to_vec(),
            });
        }
        out
    }

    /// A new id, for a message sent for the first time (counted in `sent`).
    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sent += 1;
        id
    }

    /// Publishes `pending` and waits for every confirm.
    fn send(&mut self, pending: &[Pending]) -> Result<(), Failure> {
        let Some(link) = self.link.as_mut() else {
            return Err(Failure::Timeout("a connection"));
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let timeout = self.cfg.confirm_timeout;
        let producer = &mut link.producer;
        let total = pending.len();
        let result = self.runtime.block_on(async {
            let mut at = 0;
            while at < total {
                let mut end = at;
                let mut bytes = 0;
                while end < total
                    && end - at < FRAME_MESSAGES
                    && (end == at || bytes + pending[end].bytes.len() <= FRAME_BUDGET_BYTES)
                {
                    bytes += pending[end].bytes.len();
                    end += 1;
                }
                let messages: Vec<Message> = pending[at..end]
                    .iter()
                    .map(|p| {
                        Message::builder()
                            .properties()
                            .content_type("application/json")
                            .content_encoding("utf-8")
                            .message_builder()
                            .body(p.bytes.clone())
                            .publising_id(p.id)
                            .build()
                    })
                    .collect();
                let tx = tx.clone();
                producer
                    .batch_send(messages, move |status| {
                        let tx = tx.clone();
                        async move {
                            let _ = tx.send(status.map(|s| s.confirmed()).unwrap_or(false));
                        }
                    })
                    .await
                    .map_err(|e| Failure::Refused(format!("publishing failed: {e}")))?;
                at = end;
            }
            let mut confirmed = 0usize;
            let deadline = tokio::time::Instant::now() + timeout;
            while confirmed < total {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(true)) => confirmed += 1,
                    Ok(Some(false)) => {
                        return Err(Failure::Refused("the broker refused a message".into()))
                    }
                    Ok(None) => return Err(Failure::Timeout("the publisher confirms")),
                    Err(_) => return Err(Failure::Timeout("the publisher confirms")),
                }
            }
            Ok(())
        });
        if result.is_ok() {
            SinkCounters::add(&self.counters.published, total as u64);
        }
        result
    }

    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = self.runtime.block_on(async move {
                tokio::time::timeout(Duration::from_secs(2), link.producer.close()).await
            });
        }
    }

    /// A new connection and producer; the next id continues after what the broker stored.
    fn relink(&mut self) -> Result<(), Failure> {
        let (link, last_id) = open_link(&self.cfg, &self.runtime)?;
        self.next_id = self.next_id.max(last_id + 1);
        self.link = Some(link);
        Ok(())
    }
}

/// Connects, creates the stream when missing, declares the named producer, and gives the
/// last publishing id the broker stored for it (0: none).
fn open_link(
    cfg: &RabbitStreamConfig,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Link, u64), Failure> {
    let env = cfg.environment(runtime)?;
    let timeout = cfg.connect_timeout;
    let work = async {
        let mut creator = env.stream_creator();
        if let Some(b) = cfg.max_bytes {
            creator = creator.max_length(ByteCapacity::B(b));
        }
        if let Some(age) = cfg.max_age {
            creator = creator.max_age(age);
        }
        match creator.create(&cfg.stream).await {
            Ok(()) => {}
            Err(StreamCreateError::Create {
                status: ResponseCode::StreamAlreadyExists,
                ..
            }) => {}
            // The stream exists, made with other arguments (replicas, retention, leader
            // locator): it is used as it is, as an existing stream always is.
            Err(StreamCreateError::Create {
                status: ResponseCode::PrecoditionFailed,
                ..
            }) => {}
            Err(StreamCreateError::Create { status, .. }) => {
                return Err(Failure::Create(format!(
                    "cannot create the stream \"{}\": {status:?}",
                    cfg.stream
                )))
            }
            Err(StreamCreateError::Client(e)) => return Err(Failure::Client(e)),
        }
        let producer = env
            .producer()
            .name(&cfg.producer_name)
            .build(&cfg.stream)
            .await
            .map_err(|e| match e {
                ProducerCreateError::Client(e) => Failure::Client(e),
                other => Failure::Create(format!("cannot publish to the stream: {other}")),
            })?;
        Ok(producer)
    };
    let producer = runtime
        .block_on(async move { tokio::time::timeout(timeout, work).await })
        .map_err(|_| Failure::Timeout("setting up the producer"))??;
    // The producer starts its own sequence at the broker's last stored id; ours are explicit
    // and start one above it, so the first message of a run is not taken for a duplicate.
    let last_id = query_last_id(cfg, &env, runtime)?;
    Ok((Link { producer }, last_id))
}

/// The last publishing id stored for the producer name (QueryPublisherSequence).
fn query_last_id(
    cfg: &RabbitStreamConfig,
    env: &Environment,
    runtime: &tokio::runtime::Runtime,
) -> Result<u64, Failure> {
    let _ = env;
    let timeout = cfg.connect_timeout;
    let mut opts = rabbitmq_stream_client::ClientOptions::builder()
        .host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.username)
        .password(&cfg.password.0)
        .v_host(&cfg.vhost);
    if cfg.tls {
        opts = opts.tls(cfg.tls_config());
    }
    let opts = opts.build();
    let work = async {
        let client = rabbitmq_stream_client::Client::connect(opts).await?;
        let last = client
            .query_publisher_sequence(&cfg.producer_name, &cfg.stream)
            .await;
        let _ = client.close().await;
        last
    };
    runtime
        .block_on(async move { tokio::time::timeout(timeout, work).await })
        .map_err(|_| Failure::Timeout("the publisher sequence query"))?
        .map_err(Failure::Client)
}

impl RabbitStreamSink {
    fn hand_back(&mut self, pending: Vec<Pending>, reason: String) -> WriteError {
        self.drop_link();
        let outage = Outage {
            reason,
            maybe_delivered: pending.len() as u64,
            unconfirmed: pending.iter().map(|p| p.bytes.clone()).collect(),
        };
        self.retained = pending.into();
        WriteError::Outage(outage)
    }
}

impl Sink for RabbitStreamSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let pending = self.number(batch);
        let dest = self.cfg.describe();
        loop {
            match self.send(&pending) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log(format_args!(
                        "{dest}: {e}; reconnecting, holding the output"
                    ));
                    self.drop_link();
                    let backoff = self.cfg.backoff;
                    let counters = Arc::clone(&self.counters);
                    let (cfg, runtime) = (&self.cfg, &self.runtime);
                    let ((link, last_id), _) =
                        reconnect_forever(&dest, backoff, &counters, || open_link(cfg, runtime));
                    self.next_id = self.next_id.max(last_id + 1);
                    self.link = Some(link);
                    SinkCounters::add(&self.counters.resent, pending.len() as u64);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn try_write_batch(&mut self, batch: &JsonBatch) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pending = self.number(batch);
        if self.link.is_none() {
            return Err(self.hand_back(pending, "not connected".into()));
        }
        match self.send(&pending) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.hand_back(pending, e.to_string())),
        }
    }

    fn try_flush(&mut self) -> Result<(), WriteError> {
        Ok(())
    }

    fn reconnect_once(&mut self) -> Result<(), String> {
        self.relink().map_err(|e| e.to_string())?;
        SinkCounters::add(&self.counters.reconnects, 1);
        Ok(())
    }

    fn delivered(&self) -> u64 {
        self.counters.published()
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        Some(format!(
            "published {} to {} stream {} as producer \"{}\", {} confirmed, {} resent after {} \
             reconnects (the broker drops resent duplicates by publishing id)",
            self.sent,
            self.cfg.describe(),
            self.cfg.stream,
            self.cfg.producer_name,
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
        assert_eq!((c.port, c.vhost.as_str(), c.tls), (5552, "/", false));
        assert_eq!((c.username.as_str(), c.password.0.as_str()), ("u", "p@ss"));
        let c = parse("rabbitmq-stream+tls://h:7000/v%2fx").unwrap();
        assert_eq!((c.port, c.vhost.as_str(), c.tls), (7000, "v/x", true));
        assert_eq!(parse("rabbitmq-stream+tls://h").unwrap().port, 5551);
        assert_eq!(c.username, "guest");
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
