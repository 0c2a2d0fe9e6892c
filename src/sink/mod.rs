//! Sinks: where the publisher thread writes batches. JSON lines to stdout, a file or a TCP
//! listener ([`tcp`]), Redis lists, streams and channels readable by kombu consumers
//! ([`redis`]), RabbitMQ exchanges with publisher confirms ([`amqp`]) and RabbitMQ streams
//! ([`rabbit_stream`]); TLS for the brokers from kombu's ssl options
//! ([`crate::broker::tls`]). [`Output`] is the parsed `--output`; each network sink's
//! [`SinkConfig`] is registered in [`SINK_KINDS`]. In front of a broker sink, the delivery
//! thread ([`outbox`]) and its on-disk spool ([`spool`]) hold what the broker has not taken.
//!
//! Broker sinks connect when opened, so a wrong address or password ends the run before any
//! packet is read, with one line and a distinct exit code ([`StartError`]). Once running they
//! never give up: a lost connection is retried with capped exponential backoff while the
//! publisher holds the batch, so the bounded pipeline behind it applies back-pressure and
//! nothing is dropped. Delivery is at-least-once; each sink documents its duplicate window
//! and counts what it sent again ([`Sink::report`]).

pub mod amqp;
pub mod direct_file;
pub mod outbox;
pub mod rabbit_stream;
pub mod redis;
pub mod spool;
pub mod tcp;

use crate::encode::batch::JsonBatch;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use self::amqp::{AmqpConfig, AmqpSink};
pub use self::outbox::{Delivery, Outbox, WhenFull};
pub use self::rabbit_stream::{RabbitStreamConfig, RabbitStreamSink, StreamOptions};
pub use self::redis::{RedisConfig, RedisFormat, RedisGroup, RedisMode, RedisSink};
pub use self::tcp::{TcpConfig, TcpSink};
// What the broker layer owns (URLs, secrets, TLS, backoff, start errors), under the names
// sink users have always imported it by.
pub use crate::broker::tls::{CertReqs, SslOptions};
pub use crate::broker::{read_password_file, redact, start_exit_code, Backoff, StartError};
use crate::pipeline::deliver::ProbeCounters;
pub use crate::pipeline::deliver::{Deliver, OpenOutput, OutputProbe, SinkSnapshot, Undelivered};

/// An output's connection as the delivery layer drives it: writes batches it keeps, and for
/// broker outputs hands a lost connection back ([`Sink::try_write_batch`]) so that the
/// delivery thread and spool of [`outbox::Outbox`] can take over. The publisher sees every
/// output as a [`Deliver`] (a sink is one by itself, holding the output through an outage;
/// with a delivery thread in front, the [`outbox::Outbox`] is).
pub trait Sink: Send {
    /// Writes every message of the batch, in order.
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()>;
    /// Writes every message of `batches`, in order; an error says which batch it hit (those
    /// before it were written). Stdout and files write several batches with one `writev`.
    fn write_batches(&mut self, batches: &[JsonBatch]) -> Result<(), (usize, io::Error)> {
        for (i, batch) in batches.iter().enumerate() {
            self.write_batch(batch).map_err(|e| (i, e))?;
        }
        Ok(())
    }
    /// Writes out what is buffered and ends the stream (stdout, files, tcp) or waits for the
    /// broker's answers to everything sent.
    fn flush(&mut self) -> io::Result<()>;
    /// One line for the exit summary about what this sink did beyond writing (broker sinks:
    /// messages published, resent, reconnects). Called after [`Sink::flush`].
    fn report(&self) -> Option<String> {
        None
    }

    /// As [`Sink::write_batch`], but a lost connection is handed back to the caller as an
    /// [`Outage`] (with every message the broker may not have stored) instead of being
    /// waited out inside: the spool of [`outbox::Outbox`] then takes them. Sinks that cannot
    /// do this keep holding the output (the default).
    fn try_write_batch(&mut self, batch: &JsonBatch) -> Result<(), WriteError> {
        self.write_batch(batch).map_err(WriteError::Fatal)
    }

    /// As [`Sink::flush`], handing a lost connection back as [`Sink::try_write_batch`] does.
    fn try_flush(&mut self) -> Result<(), WriteError> {
        self.flush().map_err(WriteError::Fatal)
    }

    /// Reads the broker's answers to everything written so far, without ending the stream
    /// (the delivery thread calls it when its queue runs dry). Sinks with nothing to settle
    /// (stdout, files, tcp, whose `flush` closes the stream) keep the default.
    fn try_settle(&mut self) -> Result<(), WriteError> {
        Ok(())
    }

    /// After an [`Outage`]: one attempt to connect again (the caller waits between attempts).
    fn reconnect_once(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Messages the broker has accepted (confirmed, for RabbitMQ) so far, each counted once.
    /// The spool deletes what it replayed only once this count has passed it.
    fn delivered(&self) -> u64 {
        0
    }

    /// What this run dropped or left in the spool (after [`Sink::flush`]); a run with any of
    /// it ends with [`EXIT_UNDELIVERED`].
    fn undelivered(&self) -> Undelivered {
        Undelivered::default()
    }
}

/// A sink alone (no delivery thread) is delivered to by the publisher directly: it takes
/// every batch it writes, and holds the output (retrying) through an outage.
impl<S: Sink> Deliver for S {
    fn deliver(&mut self, batch: JsonBatch) -> (JsonBatch, io::Result<usize>) {
        let result = self.write_batch(&batch).map(|()| batch.len());
        (batch, result)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn summary(&self) -> Option<String> {
        self.report()
    }

    fn tally(&self) -> Undelivered {
        self.undelivered()
    }
}

/// A boxed sink that the publisher delivers to directly (no delivery thread).
struct Direct(Box<dyn Sink>);

impl Deliver for Direct {
    fn deliver(&mut self, batch: JsonBatch) -> (JsonBatch, io::Result<usize>) {
        let result = self.0.write_batch(&batch).map(|()| batch.len());
        (batch, result)
    }

    fn deliver_batches(
        &mut self,
        batches: &mut [JsonBatch],
        taken: &mut [usize],
    ) -> Result<(), (usize, io::Error)> {
        let result = self.0.write_batches(batches);
        let done = result.as_ref().map_or_else(|e| e.0, |()| batches.len());
        for (t, batch) in taken.iter_mut().zip(batches.iter()).take(done) {
            *t = batch.len();
        }
        result
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.flush()
    }

    fn summary(&self) -> Option<String> {
        self.0.report()
    }

    fn tally(&self) -> Undelivered {
        self.0.undelivered()
    }
}

/// The program's `--output` is what `read` and `capture` open when they start.
impl OpenOutput for Output {
    fn describe(&self) -> String {
        Output::describe(self)
    }

    fn open(&self) -> io::Result<(Box<dyn Deliver>, OutputProbe)> {
        self.open_probed()
    }

    fn prepare_for_user(&self, uid: u32, gid: u32) -> io::Result<Option<Arc<dyn OpenOutput>>> {
        let prepared = self.clone().with_spool_for_user(uid, gid)?;
        Ok(Some(Arc::new(prepared)))
    }
}

/// A connection lost while writing, with the messages that may not have reached the broker.
#[derive(Debug, Default)]
pub struct Outage {
    /// Why (no password).
    pub reason: String,
    /// Messages not known to be stored, oldest first (the failed batch included).
    pub unconfirmed: Vec<Vec<u8>>,
    /// How many of them had been sent on the lost connection (possible duplicates when sent
    /// again).
    pub maybe_delivered: u64,
}

/// Why [`Sink::try_write_batch`] failed.
#[derive(Debug)]
pub enum WriteError {
    /// The connection is gone; reconnect with [`Sink::reconnect_once`].
    Outage(Outage),
    /// The broker refused in a way that waiting does not fix.
    Fatal(io::Error),
}

/// What a sink does with a lost connection (or a passing server error): wait it out inside,
/// reconnecting and sending again what is unanswered, so the output is held (a sink alone);
/// or hand every unanswered message back as an [`Outage`] (the delivery thread, which spools
/// them). The one send path of each broker sink takes it as a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnLoss {
    /// Reconnect and send again, here.
    Hold,
    /// Give up the connection and hand the unanswered messages back.
    HandBack,
}

/// The [`Sink`] methods of a broker sink whose one send path is `send_batch(batch, OnLoss)`
/// and `settle_all(OnLoss)`, counting in `self.counters`: the holding calls (`write_batch`,
/// `flush`) wait a loss out, the `try_` calls hand it back as an [`Outage`], `try_settle`
/// settles everything sent, and `delivered` is what the broker acknowledged. Expands inside
/// `impl Sink for ...`, next to the sink's own `reconnect_once` and `report`.
macro_rules! one_send_path {
    () => {
        fn write_batch(
            &mut self,
            batch: &$crate::encode::batch::JsonBatch,
        ) -> ::std::io::Result<()> {
            $crate::sink::held(self.send_batch(batch, $crate::sink::OnLoss::Hold))
        }

        fn flush(&mut self) -> ::std::io::Result<()> {
            $crate::sink::held(self.settle_all($crate::sink::OnLoss::Hold))
        }

        fn try_write_batch(
            &mut self,
            batch: &$crate::encode::batch::JsonBatch,
        ) -> Result<(), $crate::sink::WriteError> {
            self.send_batch(batch, $crate::sink::OnLoss::HandBack)
        }

        fn try_flush(&mut self) -> Result<(), $crate::sink::WriteError> {
            self.settle_all($crate::sink::OnLoss::HandBack)
        }

        fn try_settle(&mut self) -> Result<(), $crate::sink::WriteError> {
            self.settle_all($crate::sink::OnLoss::HandBack)
        }

        fn delivered(&self) -> u64 {
            self.counters.published()
        }
    };
}
pub(crate) use one_send_path;

/// What a broker sink does after failure `why`, as `on_loss` says: `recover` (reconnect and
/// send everything unanswered again, here) and go on, or give up the connection and
/// `hand_back` every unanswered message as an [`Outage`].
pub(crate) fn lost<S, F: std::fmt::Display>(
    sink: &mut S,
    why: F,
    on_loss: OnLoss,
    recover: fn(&mut S, &F),
    hand_back: fn(&mut S, String) -> WriteError,
) -> Result<(), WriteError> {
    match on_loss {
        OnLoss::Hold => {
            recover(sink, &why);
            Ok(())
        }
        OnLoss::HandBack => Err(hand_back(sink, why.to_string())),
    }
}

/// The error a holding write returns: only a fatal one can come out of it.
pub(crate) fn held(result: Result<(), WriteError>) -> io::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(WriteError::Fatal(e)) => Err(e),
        Err(WriteError::Outage(o)) => Err(io::Error::other(o.reason)),
    }
}

/// Exit code: the broker could not be reached at start-up (refused, unknown host, timeout).
pub const EXIT_UNREACHABLE: u8 = crate::exit::BROKER_UNREACHABLE;
/// Exit code: the broker refused the credentials at start-up.
pub const EXIT_AUTH: u8 = crate::exit::BROKER_AUTH;
/// Exit code: TLS (`rediss://`, `amqps://`, FORWARD_SSL_OPTIONS) could not start: the
/// handshake failed (certificate not trusted, wrong host name, not a TLS port) or the
/// certificate files could not be read.
pub const EXIT_TLS: u8 = crate::exit::TLS;
/// Exit code: a malformed output URL (the usage-error code).
pub const EXIT_BAD_URL: u8 = crate::exit::USAGE;
/// Exit code: the output failed, or its spool directory cannot be trusted or used.
pub const EXIT_OUTPUT_FAILED: u8 = crate::exit::OUTPUT_FAILED;
/// Exit code: messages were dropped or are still in the spool ([`Undelivered`]).
pub const EXIT_UNDELIVERED: u8 = crate::exit::UNDELIVERED;

/// Settings for broker outputs that do not fit in the URL (environment variables of the
/// original: FORWARD_QUEUE, FORWARD_EXCHANGE, FORWARD_ROUTING_KEY, FORWARD_SSL_OPTIONS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputOptions {
    /// `--redis-format`: kombu envelopes or the packet JSON itself in Redis lists.
    pub redis_format: RedisFormat,
    /// FORWARD_QUEUE: the Redis key, AMQP queue or RabbitMQ stream messages go to.
    pub queue: String,
    /// FORWARD_EXCHANGE: the AMQP exchange (Redis: the kombu exchange named in envelopes).
    pub exchange: String,
    /// FORWARD_ROUTING_KEY: the AMQP routing key (Redis: the kombu routing key).
    pub routing_key: String,
    /// TLS settings for `rediss://` and `amqps://`; when given, TLS for `redis://` and
    /// `amqp://` too (as kombu does).
    pub ssl: SslOptions,
    /// RabbitMQ publisher confirms (on unless `--no-confirms`).
    pub amqp_confirms: bool,
    /// From `--password-file`: replaces any password in the URL, so the URL (in argv or the
    /// environment) need not hold one.
    pub password: Option<crate::broker::Secret>,
    /// `--redis-mode`: list, stream or channel.
    pub redis_mode: RedisMode,
    /// `--redis-maxlen`: `MAXLEN ~` of every XADD in stream mode, in entries.
    pub redis_maxlen: u64,
    /// `record` from a Redis stream: the consumer group (`--group`, `--consumer`, ...).
    pub redis_group: Option<RedisGroup>,
    /// `rabbitmq-stream://`: retention of a new stream and the deduplication name.
    pub stream: StreamOptions,
    /// `--partitions N` (1..=[`MAX_PARTITIONS`]): above 1, messages go to `<queue>-0` ..
    /// `<queue>-(N-1)` by flow hash (see [`Output::parse_with`] for the outputs that can).
    pub partitions: u16,
}

/// Most partitions `--partitions` takes.
pub const MAX_PARTITIONS: u16 = 1024;

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            redis_format: RedisFormat::Kombu,
            queue: "NEW_PACKETS".into(),
            exchange: "NEW_PACKETS".into(),
            routing_key: "NEW_PACKETS".into(),
            ssl: SslOptions::default(),
            amqp_confirms: true,
            password: None,
            redis_mode: RedisMode::List,
            redis_maxlen: redis::DEFAULT_STREAM_MAXLEN,
            redis_group: None,
            stream: StreamOptions::default(),
            partitions: 1,
        }
    }
}

/// What every [`SinkConfig`] has by being `PartialEq`: a look at the concrete config, and a
/// comparison with another of any kind (implemented for all of them at once).
pub trait AnyConfig {
    /// The config itself, to compare outputs and to look at one ([`Output::config`]).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Of the same kind as `other` and equal to it.
    fn same_as(&self, other: &dyn SinkConfig) -> bool;
}

impl<C: SinkConfig + PartialEq> AnyConfig for C {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn same_as(&self, other: &dyn SinkConfig) -> bool {
        other.as_any().downcast_ref::<C>() == Some(self)
    }
}

/// A sink kind's parsed options, as Vector's `SinkConfig`: where it connects and how to build
/// the sink. Each kind implements it in its own file, next to a [`SinkKind`] registered in
/// [`SINK_KINDS`].
pub trait SinkConfig: AnyConfig + fmt::Debug + Send + Sync + 'static {
    /// Connects and returns the sink with its shared counters. A failure says why, with the
    /// exit code it asks for.
    fn build(&self) -> Result<(Box<dyn Sink>, SharedCounters), StartError>;

    /// The destination for messages: no password, ever.
    fn describe(&self) -> String;

    /// A name for the destination, for the default spool directory: scheme, host, port and
    /// the names messages go to (never a password).
    fn identity(&self) -> String;

    /// Host and TCP port (what live capture leaves out by default, so published packets are
    /// not captured again).
    fn endpoint(&self) -> (&str, u16);

    /// `--partitions`: how many partitions this output writes (1: the one key `--queue`).
    fn partitions(&self) -> u16 {
        1
    }

    /// What the output cannot take now may be spooled and sent later. Not so for a Redis
    /// channel: PUBLISH reaches only the subscribers of the moment.
    fn spoolable(&self) -> bool {
        true
    }
}

/// One sink kind of the registry: the URL schemes it answers and how it reads its options.
pub struct SinkKind {
    /// URL schemes (lower case) of this kind, as in `SCHEME://...`.
    pub schemes: &'static [&'static str],
    /// The URL may carry credentials, so `--password-file` applies.
    pub takes_password: bool,
    /// `--partitions` above 1 is possible (messages go to `<queue>-<partition>`).
    pub partitioned: bool,
    /// Parses an output URL of this kind with the broker settings given (errors never hold a
    /// password).
    pub parse: ParseConfig,
}

/// How a [`SinkKind`] reads its options from an output URL.
pub type ParseConfig = fn(&str, &OutputOptions) -> Result<Box<dyn SinkConfig>, String>;

/// Every sink kind an output URL can name. A new sink is a file of its own (its config
/// implementing [`SinkConfig`], and its `KIND`) and one line here.
pub const SINK_KINDS: &[&SinkKind] = &[&tcp::KIND, &redis::KIND, &amqp::KIND, &rabbit_stream::KIND];

/// The kind whose schemes hold `scheme` (any case).
fn kind_of(scheme: &str) -> Option<&'static SinkKind> {
    SINK_KINDS
        .iter()
        .copied()
        .find(|k| k.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
}

/// A network or broker output: a [`SinkConfig`] from the registry.
#[derive(Clone, Debug)]
pub struct Configured(pub Arc<dyn SinkConfig>);

impl PartialEq for Configured {
    fn eq(&self, other: &Configured) -> bool {
        self.0.same_as(other.0.as_ref())
    }
}

impl Eq for Configured {}

/// The `--output` choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines in a file (`file:PATH`, or a path).
    File(PathBuf),
    /// JSON lines in a file written with `O_DIRECT` (`--direct-io`; see [`direct_file`]).
    /// Made by [`Output::with_direct_io`].
    DirectFile(PathBuf),
    /// No JSON at all (`-w FILE` without `-o`: only the pcap is wanted).
    Discard,
    /// TCP, Redis, RabbitMQ, RabbitMQ Streams: one of [`SINK_KINDS`].
    Sink(Configured),
    /// A broker output with a delivery thread and, by default, a spool in front
    /// (`--when-full drop|spool`; see [`outbox`]). Made by [`Output::with_delivery`].
    Delivered(Box<Output>, Delivery),
}

impl Output {
    /// The output a sink config names (as [`Output::parse`] would make from its URL).
    pub fn of(config: impl SinkConfig) -> Output {
        Output::Sink(Configured(Arc::new(config)))
    }

    /// The sink config of this output, if it is of type `C`.
    pub fn config<C: SinkConfig>(&self) -> Option<&C> {
        match self {
            Output::Sink(c) => c.0.as_any().downcast_ref::<C>(),
            Output::Delivered(inner, _) => inner.config(),
            _ => None,
        }
    }

    /// `-` or `stdout`, `file:PATH`, `tcp://HOST:PORT`, `redis://[[user]:password@]HOST[:PORT][/DB]`
    /// (or `rediss://`), `amqp://[USER:PASSWORD@]HOST[:PORT][/VHOST]` (or `amqps://`), with
    /// default queue names and the kombu format.
    pub fn parse(s: &str) -> Result<Output, String> {
        Output::parse_with(s, &OutputOptions::default())
    }

    /// As [`Output::parse`], with the broker settings given. Errors never contain a password.
    /// An empty value (FORWARD_BROKER_URL set but empty) means stdout.
    pub fn parse_with(s: &str, options: &OutputOptions) -> Result<Output, String> {
        let is_broker = SINK_KINDS
            .iter()
            .filter(|k| k.takes_password)
            .flat_map(|k| k.schemes)
            .any(|scheme| {
                s.get(..scheme.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(scheme))
                    && s.get(scheme.len()..).is_some_and(|t| t.starts_with("://"))
            });
        if options.password.is_some() && !is_broker {
            return Err(format!(
                "a password file was given, but output \"{}\" takes no password (only \
                 redis://, rediss://, amqp:// and amqps:// do)",
                redact(s)
            ));
        }
        check_partitions(s, options.partitions)?;
        if s.trim().is_empty() || s == "-" || s == "stdout" {
            return Ok(Output::Stdout);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("output \"file:\" needs a path, as in file:/tmp/packets.jsonl".into());
            }
            return Ok(Output::File(PathBuf::from(path)));
        }
        let scheme = s.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_none() {
            // A broker scheme with a mistyped "://" is a bad URL, not a file name (and is not
            // echoed: it may hold a password). `file:redis:x` or `./redis:x` name such a file.
            let head = s.split_once(':').map(|(head, _)| head.to_ascii_lowercase());
            if let Some(head) = head.filter(|h| kind_of(h).is_some()) {
                return Err(format!(
                    "bad output URL \"{head}:...\": expected {head}://HOST..., or file:PATH for a \
                     file whose name starts with \"{head}:\""
                ));
            }
            // `USER:PASSWORD@HOST` without a scheme is a URL missing its scheme, not a file to
            // name after a password. `file:PATH` or `./PATH` name such a file.
            if let Some((userinfo, host)) = s.rsplit_once('@') {
                let user = userinfo.split_once(':').map(|(user, _)| user);
                if user.is_some_and(|u| !u.contains('/')) {
                    let host = host.split('/').next().unwrap_or_default();
                    return Err(format!(
                        "bad output URL \"...@{host}\": credentials but no scheme; expected \
                         redis://, amqp://, ... (or file:PATH for a file of that name)"
                    ));
                }
            }
            // No scheme: a file path, as `-o out.jsonl` means in other tools.
            return Ok(Output::File(PathBuf::from(s)));
        }
        match scheme.and_then(kind_of) {
            Some(kind) => (kind.parse)(s, options).map(|c| Output::Sink(Configured(c.into()))),
            None => Err(format!(
                "unsupported output \"{}\": use \"-\" (stdout), \"file:PATH\", \
                 \"tcp://HOST:PORT\", \"redis://[:PASSWORD@]HOST[:PORT][/DB]\" or \
                 \"amqp://USER:PASSWORD@HOST[:PORT][/VHOST]\" (rediss://, amqps:// for TLS) \
                 or \"rabbitmq-stream://USER:PASSWORD@HOST[:PORT][/VHOST]\"",
                redact(s)
            )),
        }
    }

    /// `--direct-io`: this file output written with `O_DIRECT` ([`direct_file`]). Only a file
    /// output can be (the error says so, for the usage-error exit code).
    pub fn with_direct_io(self) -> Result<Output, String> {
        match self {
            Output::File(path) | Output::DirectFile(path) => Ok(Output::DirectFile(path)),
            Output::Discard => Err("--direct-io is for JSON written to a file: give -o PATH \
                                    (-w alone writes no JSON)"
                .into()),
            other => Err(format!(
                "--direct-io is for JSON written to a file (-o PATH or -o file:PATH), not to \
                 {}",
                other.describe()
            )),
        }
    }

    /// `--partitions`: how many partitions this output writes (1: the one key `--queue`).
    pub fn partitions(&self) -> u16 {
        match self {
            Output::Sink(c) => c.0.partitions(),
            Output::Delivered(inner, _) => inner.partitions(),
            _ => 1,
        }
    }

    /// Opens the output for the publisher. Broker sinks connect here; their start-up
    /// failures carry a [`StartError`] (see [`start_exit_code`]).
    pub fn open(&self) -> io::Result<Box<dyn Deliver>> {
        self.open_probed().map(|(sink, _)| sink)
    }

    /// For a capture that switches to `uid`:`gid` (`--user`) after opening its sockets: the
    /// spool directory is checked and opened now, as root, and given to that user, so the
    /// default spool keeps working after the switch. Other outputs are returned as they are.
    pub fn with_spool_for_user(self, uid: u32, gid: u32) -> io::Result<Output> {
        match self {
            Output::Delivered(inner, mut delivery)
                if delivery.when_full == WhenFull::Spool && delivery.prepared_dir.is_none() =>
            {
                let dir = outbox::spool_dir_of(&delivery, &inner.identity());
                let prepared = spool::SpoolDir::open_for_user(&dir, uid, gid).map_err(|e| {
                    StartError::new(
                        EXIT_OUTPUT_FAILED,
                        format!("cannot use the spool directory {}: {e}", dir.display()),
                    )
                    .into_io()
                })?;
                delivery.prepared_dir = Some(prepared);
                Ok(Output::Delivered(inner, delivery))
            }
            other => Ok(other),
        }
    }

    /// As [`Output::open`], with shared handles on the sink's counters ([`OutputProbe`]) for
    /// `--metrics` and `--stats-interval`, readable while the sink runs in another thread.
    pub fn open_probed(&self) -> io::Result<(Box<dyn Deliver>, OutputProbe)> {
        let name = self.describe();
        let (deliver, probe): (Box<dyn Deliver>, SinkProbe) = match self {
            Output::Delivered(inner, delivery) => {
                // The spool is checked before the broker is connected to: an unsafe spool
                // directory ends the run before anything is sent.
                let dir = outbox::spool_dir_of(delivery, &inner.identity());
                let spool = outbox::open_spool(delivery, &dir).map_err(StartError::into_io)?;
                let (sink, mut probe) = inner.open_sink()?;
                let outbox = Outbox::start_with(sink, inner.describe(), delivery, &dir, spool)
                    .map_err(StartError::into_io)?;
                probe.name = name.clone();
                probe.delivery = Some(outbox.counters());
                probe.spool = Some(outbox.spool_gauge());
                (Box::new(outbox), probe)
            }
            _ => {
                let (sink, probe) = self.open_sink()?;
                (Box::new(Direct(sink)), probe)
            }
        };
        Ok((deliver, OutputProbe::with_counters(&name, Arc::new(probe))))
    }

    /// The sink alone (no delivery thread), with the probe on its own counters.
    fn open_sink(&self) -> io::Result<(Box<dyn Sink>, SinkProbe)> {
        let mut probe = SinkProbe::named(&self.describe());
        let sink: Box<dyn Sink> = match self {
            Output::Sink(c) => {
                let (sink, counters) = c.0.build().map_err(StartError::into_io)?;
                probe.counters = Some(counters);
                sink
            }
            // `with_delivery` never nests delivery threads.
            Output::Delivered(inner, _) => return inner.open_sink(),
            Output::Stdout => Box::new(StdoutSink),
            Output::Discard => Box::new(DiscardSink),
            Output::File(path) => Box::new(FileSink {
                file: crate::create::open_for_writing(path)?,
            }),
            Output::DirectFile(path) => {
                direct_file::open(crate::create::open_for_writing(path)?, path)
            }
        };
        Ok((sink, probe))
    }

    /// This output with `delivery` in front of it: broker outputs (tcp, redis, amqp) get a
    /// delivery thread unless `--when-full block`; stdout and files are left as they are.
    pub fn with_delivery(self, delivery: Delivery) -> Output {
        match self {
            Output::Stdout | Output::File(_) | Output::DirectFile(_) | Output::Discard => self,
            Output::Delivered(inner, _) => inner.with_delivery(delivery),
            _ if delivery.when_full == WhenFull::Block => self,
            // PUBLISH reaches only the subscribers of the moment: replaying a spool later
            // would reach other ones, so a channel is never spooled; what it cannot take
            // is dropped and counted.
            Output::Sink(ref c) if !c.0.spoolable() => {
                let delivery = Delivery {
                    when_full: WhenFull::Drop,
                    ..delivery
                };
                Output::Delivered(Box::new(self), delivery)
            }
            _ => Output::Delivered(Box::new(self), delivery),
        }
    }

    /// A name for the destination, for the default spool directory: scheme, host, port and
    /// the names messages go to (never a password).
    pub fn identity(&self) -> String {
        match self {
            Output::Stdout => "stdout".into(),
            Output::Discard => "discard".into(),
            Output::File(p) | Output::DirectFile(p) => format!("file-{}", p.display()),
            Output::Sink(c) => c.0.identity(),
            Output::Delivered(inner, _) => inner.identity(),
        }
    }

    /// Host and TCP port of a network output (what live capture leaves out by default, so
    /// published packets are not captured again).
    pub fn endpoint(&self) -> Option<(&str, u16)> {
        match self {
            Output::Stdout | Output::File(_) | Output::DirectFile(_) | Output::Discard => None,
            Output::Sink(c) => Some(c.0.endpoint()),
            Output::Delivered(inner, _) => inner.endpoint(),
        }
    }

    /// The destination for messages: no password, ever.
    pub fn describe(&self) -> String {
        match self {
            Output::Stdout => "stdout".into(),
            Output::Discard => "no JSON output (-w only)".into(),
            Output::File(p) | Output::DirectFile(p) => format!("file:{}", p.display()),
            Output::Sink(c) => c.0.describe(),
            Output::Delivered(inner, _) => inner.describe(),
        }
    }
}

/// `--partitions N` with output `url`: N in 1..=[`MAX_PARTITIONS`], and above 1 only for
/// outputs that route each message to `<queue>-<partition>`: Redis in every mode (LPUSH,
/// XADD, PUBLISH to the partition's key). Files, stdout and tcp:// have no keys, and
/// amqp:// publishes to one exchange and routing key: refused with one line, not ignored.
fn check_partitions(url: &str, partitions: u16) -> Result<(), String> {
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(format!(
            "--partitions {partitions}: expected 1 to {MAX_PARTITIONS}"
        ));
    }
    if partitions == 1 {
        return Ok(());
    }
    let kind = url
        .split_once("://")
        .and_then(|(scheme, _)| kind_of(scheme));
    match kind {
        Some(kind) if kind.partitioned => Ok(()),
        _ => Err(format!(
            "--partitions {partitions}: output \"{}\" has no partitions (only redis:// \
             and rabbitmq-stream:// outputs write to <queue>-0 .. <queue>-{}); leave \
             --partitions out",
            redact(url),
            partitions - 1
        )),
    }
}

/// The error for a malformed output URL: the URL redacted ([`redact`]), why, and the form
/// expected.
pub(crate) fn bad_url(url: &str, why: &str, form: &str) -> String {
    format!("bad output URL \"{}\": {why}; expected {form}", redact(url))
}

/// Counters a broker sink keeps; shared, so a caller can read them while the sink runs in
/// the publisher thread.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Messages the broker or peer accepted (each counted once).
    pub published: AtomicU64,
    /// Messages sent again after a reconnect: the possible duplicates.
    pub resent: AtomicU64,
    /// Connections lost and made again.
    pub reconnects: AtomicU64,
}

impl SinkCounters {
    /// The `published` counter now.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
    /// The `resent` counter now.
    pub fn resent(&self) -> u64 {
        self.resent.load(Ordering::Relaxed)
    }
    /// The `reconnects` counter now.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Opens a connection again, forever: waits `backoff` before each attempt, logs one line when
/// the wait reaches its cap (not one per attempt), and counts the reconnect. Returns the new
/// connection and how many attempts it took.
pub(crate) fn reconnect_forever<T, E: fmt::Display>(
    dest: &str,
    backoff: Backoff,
    counters: &SinkCounters,
    mut open: impl FnMut() -> Result<T, E>,
) -> (T, u32) {
    let mut attempt = 0u32;
    loop {
        std::thread::sleep(backoff.delay(attempt));
        match open() {
            Ok(connection) => {
                SinkCounters::add(&counters.reconnects, 1);
                return (connection, attempt + 1);
            }
            Err(e) => {
                if backoff.delay(attempt) < backoff.max && backoff.delay(attempt + 1) >= backoff.max
                {
                    log(format_args!("{dest}: still failing ({e}); retrying"));
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// A sink's log line (stderr): connection lost, reconnected. Never holds a password.
pub(crate) fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("netpipe-fast: {line}");
}

/// Shared handle type for [`SinkCounters`].
pub type SharedCounters = Arc<SinkCounters>;

/// Shared handles on a running sink's counters and its delivery thread's (what the
/// [`OutputProbe`] of [`Output::open_probed`] reads).
#[derive(Clone, Default)]
pub struct SinkProbe {
    /// The destination (no password).
    pub name: String,
    /// Broker and tcp sinks: published, resent, reconnects.
    pub counters: Option<SharedCounters>,
    /// With a delivery thread: spooled, dropped, resent at outages.
    pub delivery: Option<Arc<outbox::DeliveryCounters>>,
    /// With a spool: its size now.
    pub spool: Option<outbox::SpoolGauge>,
}

impl SinkProbe {
    /// A probe on `name` with no counters yet.
    pub(crate) fn named(name: &str) -> SinkProbe {
        SinkProbe {
            name: name.to_string(),
            ..SinkProbe::default()
        }
    }

    /// The counters as they are now; a sink without counters (stdout, files) gives zeros
    /// and `published: None`.
    pub fn snapshot(&self) -> SinkSnapshot {
        let mut s = SinkSnapshot::default();
        if let Some(c) = &self.counters {
            s.published = Some(c.published());
            s.resent = c.resent();
            s.reconnects = c.reconnects();
        }
        if let Some(d) = &self.delivery {
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.resent += d.resent();
            s.spooled = d.spooled();
            s.dropped = vec![
                ("queue_full", get(&d.dropped_queue_full)),
                ("spool_full", get(&d.dropped_spool_full)),
                ("spool_error", get(&d.dropped_spool_error)),
                ("refused", get(&d.dropped_refused)),
                ("broker_unreachable", get(&d.dropped_unreachable)),
            ];
        }
        s.has_spool = self.spool.is_some();
        if let Some((bytes, messages)) = self.spool.as_ref().and_then(|g| g.size()) {
            s.spool_bytes = bytes;
            s.spool_messages = messages;
        }
        s
    }

    /// Messages of this run the destination has acknowledged so far, or let go of for good
    /// (refused), counted in the order they were taken: `None` when the sink keeps no count
    /// (then what was taken is acknowledged). Messages left by an earlier run are sent first
    /// and are not this run's, so they are taken off.
    pub fn acknowledged(&self) -> Option<u64> {
        let published = self.counters.as_ref()?.published();
        Some(match &self.delivery {
            Some(d) => (published + d.dropped_refused.load(Ordering::Relaxed))
                .saturating_sub(d.recovered()),
            None => published,
        })
    }
}

impl ProbeCounters for SinkProbe {
    fn snapshot(&self) -> SinkSnapshot {
        SinkProbe::snapshot(self)
    }

    fn acknowledged(&self) -> Option<u64> {
        SinkProbe::acknowledged(self)
    }
}

struct StdoutSink;

impl Sink for StdoutSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        io::stdout().lock().write_all(batch.bytes())
    }
    fn write_batches(&mut self, batches: &[JsonBatch]) -> Result<(), (usize, io::Error)> {
        crate::pipeline::deliver::write_batches_vectored(&mut io::stdout().lock(), batches)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// `Output::Discard`: the messages are encoded (the counters stay exact) and not kept.
struct DiscardSink;

impl Sink for DiscardSink {
    fn write_batch(&mut self, _batch: &JsonBatch) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON lines in a file, through the page cache.
pub(crate) struct FileSink {
    pub(crate) file: File,
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        self.file.write_all(batch.bytes())
    }
    fn write_batches(&mut self, batches: &[JsonBatch]) -> Result<(), (usize, io::Error)> {
        crate::pipeline::deliver::write_batches_vectored(&mut self.file, batches)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Batches for the sinks' unit tests, filled as the encoder fills them.
#[cfg(test)]
pub(crate) mod test_batch {
    use crate::encode::batch::JsonBatch;

    /// Appends `message` (without its newline) to `batch`.
    pub(crate) fn push(batch: &mut JsonBatch, message: &[u8]) {
        batch.buf.truncate(batch.used);
        batch.buf.extend_from_slice(message);
        batch.buf.push(b'\n');
        let end = batch.buf.len();
        batch.commit(end);
    }

    /// A batch of `messages`, in order.
    pub(crate) fn of<S: AsRef<[u8]>>(messages: impl IntoIterator<Item = S>) -> JsonBatch {
        let mut batch = JsonBatch::with_capacity();
        for m in messages {
            push(&mut batch, m.as_ref());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_outputs() {
        assert_eq!(Output::parse("-"), Ok(Output::Stdout));
        assert_eq!(Output::parse("file:/x"), Ok(Output::File("/x".into())));
        assert!(Output::parse("file:").is_err());
        // No scheme: a path.
        assert_eq!(
            Output::parse("out.jsonl"),
            Ok(Output::File("out.jsonl".into()))
        );
        let e = Output::parse("mqtt://u:hunter2@h:1/0").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let parsed = |url: &str| Output::parse(url).unwrap();
        assert!(parsed("tcp://127.0.0.1:9").config::<TcpConfig>().is_some());
        assert!(parsed("redis://h").config::<RedisConfig>().is_some());
        assert!(parsed("amqp://h").config::<AmqpConfig>().is_some());
        assert!(parsed("rabbitmq-stream://h")
            .config::<RabbitStreamConfig>()
            .is_some());
        assert_eq!(parsed("redis://h"), parsed("redis://h"));
        assert_ne!(parsed("redis://h"), parsed("redis://h/2"));
        assert_ne!(parsed("tcp://h:1"), parsed("redis://h:1"));
    }

    #[test]
    fn scheme_less_outputs_are_files_unless_they_look_like_urls() {
        let o = OutputOptions::default();
        for file in [
            "out.jsonl",
            "/data/out.jsonl",
            "./a:b@c.jsonl",
            "out@2x.jsonl",
        ] {
            assert_eq!(
                Output::parse_with(file, &o),
                Ok(Output::File(file.into())),
                "{file}"
            );
        }
        for url in [
            "redis:/u:S3cr3t@h",
            "AMQP:u:S3cr3t@h",
            "u:S3cr3t@h",
            "u:S3/cr3t@h/0",
        ] {
            let e = Output::parse_with(url, &o).unwrap_err();
            assert!(
                e.starts_with("bad output URL") && !e.contains("S3"),
                "{url}: {e}"
            );
        }
        assert_eq!(
            Output::parse_with("file:redis:x", &o),
            Ok(Output::File("redis:x".into()))
        );
    }

    #[test]
    fn password_file_needs_a_broker_output() {
        let options = OutputOptions {
            password: Some(redis::Secret("pw".into())),
            ..OutputOptions::default()
        };
        for url in ["-", "file:/x", "tcp://h:1"] {
            let e = Output::parse_with(url, &options).unwrap_err();
            assert!(e.contains("takes no password"), "{e}");
        }
        assert!(Output::parse_with("redis://h", &options).is_ok());
    }

    #[test]
    fn partitions_only_where_messages_have_keys() {
        let with = |n| OutputOptions {
            partitions: n,
            ..OutputOptions::default()
        };
        for url in [
            "redis://h",
            "rediss://h",
            "rabbitmq-stream://h",
            "rabbitmq-stream+tls://h",
        ] {
            let o = Output::parse_with(url, &with(4)).unwrap();
            assert_eq!(o.partitions(), 4, "{url}");
            let delivered = o.with_delivery(Delivery::default());
            assert_eq!(delivered.partitions(), 4, "{url}");
        }
        for url in [
            "-",
            "file:/x",
            "out.jsonl",
            "tcp://h:1",
            "amqp://u:s3cret@h",
        ] {
            let e = Output::parse_with(url, &with(2)).unwrap_err();
            assert!(e.starts_with("--partitions 2: output"), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
            // One partition is today's output, whatever it is.
            assert_eq!(Output::parse_with(url, &with(1)).unwrap().partitions(), 1);
        }
        for n in [0, MAX_PARTITIONS + 1] {
            let e = Output::parse_with("redis://h", &with(n)).unwrap_err();
            assert!(e.contains("expected 1 to 1024"), "{e}");
        }
        assert!(Output::parse_with("redis://h", &with(MAX_PARTITIONS)).is_ok());
    }
}
