//! Command-line definitions (clap), with the original's environment variables as fallbacks,
//! and what each command does with them: every command's arguments become a job value through
//! its `into_job()` (in the command's own file), which [`Job::run`] runs to an exit code, so
//! the program's `main` only parses, dispatches and exits.

use crate::broker::Secret;
use crate::exit;
use crate::sink::{read_password_file, Delivery, OutputOptions, RedisFormat, SslOptions, WhenFull};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// A line on stderr that cannot panic: `2>&1 | head` closing the pipe must not turn a
/// finished run into a crash (eprintln! panics when the write fails).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod capture;
mod config;
mod dataset;
mod read;
mod record;
mod shared;
mod tools;

pub use capture::CaptureRun;
pub use config::{
    ConfigArgs, ConfigCommand, ConfigRun, GenerateArgs, GenerateCommand, GenerateRun,
};
pub use dataset::DatasetRun;
pub use read::ReadRun;
pub use record::RecordRun;
pub use tools::{ListenRun, ReplayRun, SendRun};

use capture::CAPTURE_NOTES;
pub use capture::{parse_cpu_list, CaptureArgs, CpuList, FanoutArg};
pub use dataset::{DatasetArgs, DatasetCommand, DatasetPrepareArgs};
pub use read::ReadArgs;
use read::READ_NOTES;
pub use record::RecordArgs;
use record::RECORD_HELP;
pub use tools::{
    ArpSendArgs, IcmpSendArgs, ListenArgs, ListenKind, PresetArg, ReplayArgs, SendArgs, SendKind,
    TcpListenArgs, TcpSendArgs, UdpListenArgs, UdpSendArgs,
};
use tools::{REPLAY_NOTES, SEND_HELP};

#[derive(Parser, Debug)]
#[command(
    name = "netpipe-fast",
    version,
    about = "Turns network traffic into AntiNex-compatible JSON packet messages",
    long_about = "Turns network traffic into AntiNex-compatible JSON packet messages \
                  (one JSON object per packet, scapy layer and field names; see docs/FORMAT.md).",
    override_usage = "netpipe-fast -i IFACE [-j N] [-w FILE] [CAPTURE OPTIONS] [EXPRESSION]\n       \
                      netpipe-fast -r FILE [READ OPTIONS] [EXPRESSION]\n       \
                      netpipe-fast -D\n       \
                      netpipe-fast <COMMAND> [OPTIONS] ...",
    after_help = TOP_LEVEL_HELP
)]
/// The whole command line.
pub struct Cli {
    /// Which command.
    #[command(subcommand)]
    pub command: Command,

    /// Take options from this TOML file (keys are the long option names; `[COMMAND]`
    /// sections; see `netpipe-fast config --help`). Flags given here win over the file, the
    /// file over environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read pcap/pcapng files and write one JSON message per packet.
    #[command(after_help = exit::help_with(exit::READ_HELP, READ_NOTES))]
    Read(ReadArgs),
    /// Capture live from an interface (TPACKET_V3 rings, one per worker, in one fanout
    /// group) and write one JSON message per packet. Needs CAP_NET_RAW (root).
    #[command(after_help = exit::help_with(exit::CAPTURE_HELP, CAPTURE_NOTES))]
    Capture(CaptureArgs),
    /// Send the frames of pcap/pcapng files out of an interface (TPACKET_V2 TX ring, qdisc
    /// bypass): a traffic generator for tests and benchmarks. Needs CAP_NET_RAW (root).
    #[command(after_help = exit::help_with(exit::REPLAY_HELP, REPLAY_NOTES))]
    Replay(ReplayArgs),
    /// Build datasets from recorded CSVs (`dataset prepare`).
    Dataset(DatasetArgs),
    /// Send test traffic: tcp, tcp-large, udp, icmp, arp (the original's *_send_msg scripts).
    #[command(after_help = exit::help_after(SEND_HELP, exit::SEND_HELP))]
    Send(SendArgs),
    /// Listen for test traffic: tcp, udp (the original's listen_*_port scripts).
    Listen(ListenArgs),
    /// Record packet messages (Redis, RabbitMQ, a JSON-lines file or stdin) into the original
    /// recorder's CSV dataset and JSON archive, at-least-once, with optional AntiNex predictions.
    #[command(after_help = exit::help_after(RECORD_HELP, exit::RECORD_HELP))]
    Record(RecordArgs),
    /// Configuration files: `config check FILE` names every bad key with its line.
    #[command(after_help = exit::help_after(crate::config::CONFIG_HELP, exit::CONFIG_HELP))]
    Config(ConfigArgs),
    /// Write the man pages or shell completions made from these definitions (for
    /// scripts/install.sh and packagers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// A command ready to run: what a command's `into_job()` makes of its parsed arguments.
pub trait Job {
    /// Runs the command to its end, saying on stderr what it has to say; the process's exit
    /// code (from [`crate::exit`]).
    fn run(self) -> u8;
}

/// Why a command's arguments did not become a job: the line for stderr and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The whole line, `netpipe-fast: ` prefix included.
    pub line: String,
    /// The exit code (from [`crate::exit`]).
    pub code: u8,
}

impl Refusal {
    /// A refusal saying `line` and exiting with `code`.
    pub fn new(code: u8, line: impl Into<String>) -> Refusal {
        Refusal {
            line: line.into(),
            code,
        }
    }
}

/// `-w` and its rotation flags (shared by `read` and `capture`), as tcpdump spells them.
#[derive(Args, Debug, Clone)]
pub struct PcapOutArgs {
    /// Write the frames (after the filter) to FILE as pcap with nanosecond timestamps, as
    /// tcpdump -w ("-" is stdout). JSON is then written only when -o (or FORWARD_BROKER_URL)
    /// names a destination. New files are mode 0600; a symbolic link is not followed.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// With -w: pcapng (nanosecond if_tsresol, one interface block per link type) instead of
    /// pcap.
    #[arg(long, requires = "write")]
    pub pcapng: bool,

    /// With -w: a new file every SECONDS (FILE is a strftime pattern, expanded in UTC).
    #[arg(short = 'G', long = "rotate-seconds", value_name = "SECONDS", requires = "write",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub rotate_seconds: Option<u64>,

    /// With -w: a new file once the current one is larger than MB x 1,000,000 bytes (FILE,
    /// FILE1, FILE2, ... as tcpdump).
    #[arg(short = 'C', long = "rotate-mb", value_name = "MB", requires = "write",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rotate_mb: Option<u64>,

    /// With -C or -G: keep COUNT files, a ring (-C names them FILE0 .. FILE<COUNT-1>; -G
    /// removes the oldest file of the run).
    #[arg(short = 'W', long = "rotate-files", value_name = "COUNT", requires = "write",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rotate_files: Option<u32>,

    /// With -w: run CMD FILE on every completed file (no shell; as tcpdump -z), the last one
    /// included.
    #[arg(long, value_name = "CMD", requires = "write")]
    pub post_rotate: Option<PathBuf>,
}

impl PcapOutArgs {
    /// The writer's settings, when -w is given.
    pub fn config(&self) -> Option<Result<crate::pipeline::pcap_writer::PcapOutConfig, String>> {
        use crate::pipeline::pcap_writer::{PcapFormat, PcapOutConfig, ROTATE_UNIT_BYTES};
        let path = self.write.as_ref()?;
        let mut cfg = PcapOutConfig::new(path);
        cfg.format = if self.pcapng {
            PcapFormat::PcapNg
        } else {
            PcapFormat::Pcap
        };
        cfg.rotate_every = self.rotate_seconds.map(Duration::from_secs);
        cfg.rotate_bytes = self.rotate_mb.map(|mb| mb * ROTATE_UNIT_BYTES);
        cfg.file_count = self.rotate_files;
        cfg.post_rotate = self.post_rotate.clone();
        Some(cfg.check().map(|()| cfg))
    }
}

/// `--metrics`: Prometheus exposition of the run's counters.
#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve the run's counters in the Prometheus (OpenMetrics) text format on
    /// http://ADDR/metrics, e.g. 127.0.0.1:9100 (port 0: any free port, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// With --metrics: keep serving the final counters this many seconds after the run ends
    /// (or until SIGINT/SIGTERM), so a last scrape sees the totals of the exit summary.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, requires = "metrics")]
    pub metrics_linger: Option<Duration>,
}

/// `--redis-mode` values: a list (LPUSH/BRPOP), a stream (XADD, read by a group) or a
/// channel (PUBLISH).
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisModeArg {
    List,
    Stream,
    Channel,
}

impl From<RedisModeArg> for crate::sink::RedisMode {
    fn from(m: RedisModeArg) -> Self {
        match m {
            RedisModeArg::List => crate::sink::RedisMode::List,
            RedisModeArg::Stream => crate::sink::RedisMode::Stream,
            RedisModeArg::Channel => crate::sink::RedisMode::Channel,
        }
    }
}

/// `--redis-format` values: the kombu envelope the original wrote, or the bare message.
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisFormatArg {
    Kombu,
    Raw,
}

/// Seconds, decimals allowed: "2", "0.5". Must be positive and at most a year.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 365.0 * 86400.0) {
        return Err(format!("{s:?}: expected more than 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where messages go (shared by `read` and `capture`).
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Where to write: "-" or "stdout", "file:PATH" (JSON lines), "tcp://HOST:PORT" (JSON
    /// lines to a listener), "redis://[:PASSWORD@]HOST[:PORT][/DB]" (the Redis list --queue),
    /// "amqp://USER:PASS@HOST[:PORT][/VHOST]" (RabbitMQ: --exchange, --queue, --routing-key,
    /// publisher confirms), "rabbitmq-stream://USER:PASS@HOST[:PORT][/VHOST]" (the RabbitMQ
    /// stream --queue over the stream protocol, port 5552; deduplicated, see --producer-name).
    /// Broker outputs connect at start and, once running, reconnect forever.
    /// A value without a scheme is a file path (as "file:PATH"). Default: stdout, or nothing
    /// when -w is given. A password on the command line is visible to every local user (ps):
    /// give the URL in FORWARD_BROKER_URL or the password in --password-file instead.
    #[arg(
        short,
        long,
        env = "FORWARD_BROKER_URL",
        hide_env_values = true,
        value_name = "DEST"
    )]
    pub output: Option<String>,

    /// The broker password: the first line of FILE (keep it mode 0600). Replaces any password
    /// in the URL; for redis:// and amqp:// outputs only.
    #[arg(long, env = "FORWARD_BROKER_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// What each Redis list element holds: kombu's envelope (readable by kombu and Celery
    /// consumers) or the packet JSON itself.
    #[arg(long, value_enum, default_value_t = RedisFormatArg::Kombu, value_name = "FORMAT")]
    pub redis_format: RedisFormatArg,

    /// Redis outputs: "list" (LPUSH, kombu or raw per --redis-format), "stream" (XADD
    /// <queue> MAXLEN ~ N * msg <packet JSON>) or "channel" (PUBLISH <queue> <packet JSON>;
    /// only subscribers connected now get it, never spooled: --when-full spool acts as drop).
    #[arg(long, value_enum, default_value_t = RedisModeArg::List, value_name = "MODE")]
    pub redis_mode: RedisModeArg,

    /// Stream mode: trim the stream to about N entries (XADD MAXLEN ~ N).
    #[arg(long, default_value_t = crate::sink::redis::DEFAULT_STREAM_MAXLEN, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_maxlen: u64,

    /// The queue (Redis list) messages go to.
    #[arg(
        long,
        env = "FORWARD_QUEUE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub queue: String,

    /// The exchange named in kombu envelopes and bindings.
    #[arg(
        long,
        env = "FORWARD_EXCHANGE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub exchange: String,

    /// The routing key named in kombu envelopes and bindings.
    #[arg(
        long,
        env = "FORWARD_ROUTING_KEY",
        default_value = "NEW_PACKETS",
        value_name = "KEY"
    )]
    pub routing_key: String,

    /// TLS settings for rediss:// and amqps:// as a JSON object with kombu's names:
    /// {"ca_certs": "ca.pem", "certfile": "client.pem", "keyfile": "client.key",
    /// "cert_reqs": "CERT_REQUIRED"} (cert_reqs: CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED or
    /// 0, 1, 2). Without ca_certs the system's CAs are trusted. Non-empty turns TLS on for
    /// redis:// and amqp:// too, as kombu does.
    #[arg(
        long,
        env = "FORWARD_SSL_OPTIONS",
        default_value = "{}",
        value_parser = SslOptions::parse_json,
        value_name = "JSON"
    )]
    pub ssl_options: SslOptions,

    /// amqp:// without publisher confirms: a batch counts as written once it is on the
    /// socket (faster; a lost connection may lose what the broker had not stored yet).
    #[arg(long)]
    pub no_confirms: bool,
    /// rabbitmq-stream://: the size limit of a stream created by this run (bytes; the broker
    /// drops the oldest segments beyond it).
    #[arg(long, value_name = "BYTES")]
    pub stream_max_bytes: Option<u64>,
    /// rabbitmq-stream://: the age limit of a stream created by this run, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub stream_max_age: Option<u64>,
    /// rabbitmq-stream://: the deduplication name of the producer; keep it across restarts
    /// [default: netpipe-fast-<host name>-<queue>].
    #[arg(long, value_name = "NAME")]
    pub producer_name: Option<String>,
    /// Spread the messages over N partitions by flow: the keys (Redis, every --redis-mode)
    /// or streams <queue>-0 .. <queue>-(N-1) instead of --queue. Both directions of a flow
    /// (its community_id) go to one partition, in order; packets without a community_id
    /// (no IP, later fragments) go to partition 0. 1 (the default) writes to --queue itself.
    /// Only for redis:// and rabbitmq-stream:// outputs.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::sink::MAX_PARTITIONS)))]
    pub partitions: u16,
    /// JSON to a file (-o PATH): write it with O_DIRECT, past the page cache, in aligned
    /// blocks from a 1 MiB buffer (less CPU per packet). Each write still puts every record
    /// in the file at once (the block not yet full goes through the page cache), and the file
    /// holds the same bytes. Where direct I/O is refused (tmpfs, pipes, /dev/null) one line
    /// says so and the page cache is used.
    #[arg(long)]
    pub direct_io: bool,
    /// What happens to messages while the output is down.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// The password in `--password-file` (or its environment variable), when one is named.
fn password_from(file: Option<&std::path::Path>) -> Result<Option<Secret>, String> {
    file.filter(|p| !p.as_os_str().is_empty())
        .map(read_password_file)
        .transpose()
}

impl OutputArgs {
    /// The `--output` value, "-" (stdout) when none is given.
    pub fn dest(&self) -> &str {
        self.output.as_deref().unwrap_or("-")
    }

    /// The broker settings of `--output`; fails when the password file cannot be read.
    pub fn output_options(&self) -> Result<OutputOptions, String> {
        Ok(OutputOptions {
            password: password_from(self.password_file.as_deref())?,
            redis_format: match self.redis_format {
                RedisFormatArg::Kombu => RedisFormat::Kombu,
                RedisFormatArg::Raw => RedisFormat::Raw,
            },
            queue: self.queue.clone(),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            ssl: self.ssl_options.clone(),
            amqp_confirms: !self.no_confirms,
            redis_mode: self.redis_mode.into(),
            redis_maxlen: self.redis_maxlen,
            redis_group: None,
            stream: crate::sink::StreamOptions {
                max_bytes: self.stream_max_bytes,
                max_age: self.stream_max_age.map(std::time::Duration::from_secs),
                producer_name: self.producer_name.clone(),
                ..Default::default()
            },
            partitions: self.partitions,
        })
    }
}

/// The subcommand run when the first argument is an option rather than a command word.
pub const DEFAULT_COMMAND: &str = "capture";

const TOP_LEVEL_HELP: &str = "\
Without a command word, `netpipe-fast --iface IFACE --workers N ...` is live capture, the same
as `netpipe-fast capture --iface IFACE --workers N ...` (see `netpipe-fast capture --help` for
its options and exit codes); with CAP_DEVICE set, `netpipe-fast` alone captures on it.
`netpipe-fast -r FILE ...` is `netpipe-fast read -r FILE ...`; `netpipe-fast -D` lists the
interfaces. As in tcpdump: -i interface, -w write pcap, -r read pcap, -c count, -s snaplen,
-p no promiscuous mode, -Z user, -G/-C/-W rotation, -q quiet; -j sets the workers.";

/// Puts [`DEFAULT_COMMAND`] in front of the arguments when they start with an option (other
/// than help or version), or when there are none and `CAP_DEVICE` names an interface, so
/// `netpipe-fast --iface eth1` means `netpipe-fast capture --iface eth1`. Any command word
/// (`read`, `capture`, `help`, and whatever subcommands are added later) passes through
/// untouched, so this needs no change when a subcommand is added.
pub fn with_default_command<I>(args: I, cap_device_set: bool) -> Vec<std::ffi::OsString>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let insert = match args.get(1).and_then(|a| a.to_str()) {
        None if args.len() == 1 => cap_device_set,
        Some(first) => {
            first.starts_with('-') && !matches!(first, "-h" | "--help" | "-V" | "--version")
        }
        // A first argument that is not UTF-8 is no command word and no option we know.
        None => false,
    };
    if insert {
        // tcpdump's `-r FILE` (before any `--`) reads files instead of capturing.
        let reads = args
            .iter()
            .skip(1)
            .filter_map(|a| a.to_str())
            .take_while(|a| *a != "--")
            .any(|a| {
                a == "-r"
                    || a == "--read-file"
                    || a.starts_with("--read-file=")
                    || (a.starts_with("-r") && !a.starts_with("--"))
            });
        let command = if reads { "read" } else { DEFAULT_COMMAND };
        args.insert(1.min(args.len()), command.into());
    }
    args
}

/// `--when-full`, `--spool-dir`, `--spool-mb`: what a broker output does when the broker is
/// slow or gone (shared by `read` and `capture`).
#[derive(Args, Debug)]
pub struct DeliveryArgs {
    /// When the broker is slow or gone: "spool" keeps what cannot be sent in an on-disk spool
    /// (--spool-dir) and sends it, in order, once the broker is back (also at the next start,
    /// if the process stopped first); "drop" drops it and counts it; "block" makes the
    /// workers wait (back-pressure; live capture then counts queue-full waits and the kernel
    /// drops when its ring fills). Only for tcp://, redis:// and amqp:// outputs.
    #[arg(long, value_enum, default_value_t = WhenFullArg::Spool, value_name = "MODE")]
    pub when_full: WhenFullArg,

    /// The spool directory [default: /var/lib/netpipe-fast/spool/<scheme-host-port-...-queue>
    /// for root, $XDG_STATE_HOME/netpipe-fast/spool/<...> (~/.local/state/...) for others; one
    /// per destination]. Every directory on its path must belong to you or root and not be
    /// writable by others (so not under /tmp).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Cap of the spool on disk, in MiB; past it new messages are dropped and counted
    /// ("spool full").
    #[arg(long, default_value_t = crate::sink::outbox::DEFAULT_SPOOL_MB, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub spool_mb: u64,
}

/// `--when-full` values: wait, drop the newest, or spool to disk while the output is down
/// or behind.
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhenFullArg {
    Block,
    Drop,
    Spool,
}

impl DeliveryArgs {
    /// The sink's delivery settings.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            when_full: match self.when_full {
                WhenFullArg::Block => WhenFull::Block,
                WhenFullArg::Drop => WhenFull::Drop,
                WhenFullArg::Spool => WhenFull::Spool,
            },
            spool_dir: self.spool_dir.clone(),
            spool_cap_bytes: self.spool_mb << 20,
            ..Delivery::default()
        }
    }
}

/// Per-packet choices shared by `read` and `capture`.
#[derive(Args, Debug, Clone, Copy)]
pub struct PacketArgs {
    /// Seed of the Community ID flow hash in every message (`community_id`); sensors that
    /// join their records must use the same seed.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,

    /// What follows the bottom MPLS label: `ip` (IPv4 or IPv6 by the first nibble, anything
    /// else raw) or `ether` (an Ethernet pseudowire without control word).
    #[arg(long, value_enum, default_value_t = MplsPayloadArg::Ip, value_name = "KIND")]
    pub mpls_payload: MplsPayloadArg,

    /// Reassemble IPv4 and IPv6 fragments: after the fragment that completes a datagram,
    /// one more message for the whole datagram, decoded through its upper layers and marked
    /// `"reassembled":{"fragments":N}`. Every fragment still gets its own message. Limits and
    /// give-up reasons: docs/FORMAT.md, "Fragment reassembly".
    #[arg(long)]
    pub reassemble: bool,

    /// With --reassemble: most memory all datagrams in progress may hold together, in MiB
    /// (the oldest are given up to make room, counted as memory_cap).
    #[arg(long, default_value_t = 64, value_name = "MB", requires = "reassemble",
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub reassembly_mb: u64,

    /// With --reassemble: a datagram not complete this many seconds of capture time after
    /// its first fragment is given up (timeout); 30 is Linux's ipfrag_time.
    #[arg(long, default_value_t = 30, value_name = "SECS", requires = "reassemble",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub reassembly_timeout: u64,

    /// With --reassemble: a datagram held this many seconds of real time is given up
    /// (global_timeout), whatever the packets' timestamps say (a quiet link, a pipe, a file
    /// whose timestamps stand still); 0 turns this limit off.
    #[arg(long, default_value_t = 60, value_name = "SECS", requires = "reassemble",
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub reassembly_global_timeout: u64,

    /// With --reassemble: most fragments one datagram may receive, duplicates included
    /// (more: given up as too_many_fragments).
    #[arg(long, default_value_t = 64, value_name = "N", requires = "reassemble",
          value_parser = clap::value_parser!(u16).range(2..))]
    pub reassembly_max_fragments: u16,
}

/// `--mpls-payload` values: what follows the bottom MPLS label, IP or Ethernet.
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MplsPayloadArg {
    Ip,
    Ether,
}

impl PacketArgs {
    /// The workers' packet options.
    pub fn options(&self) -> crate::pipeline::worker::PacketOptions {
        use crate::decode::mpls::MplsPayload;
        crate::pipeline::worker::PacketOptions {
            community_id_seed: self.community_id_seed,
            // Set from the output (`Output::partitions`) by the caller.
            partitions: 1,
            decode: crate::decode::DecodeOptions {
                mpls_payload: match self.mpls_payload {
                    MplsPayloadArg::Ip => MplsPayload::Ip,
                    MplsPayloadArg::Ether => MplsPayload::Ether,
                },
            },
            reassembly: self
                .reassemble
                .then(|| crate::source::reassembly::ReassemblyConfig {
                    memory_bytes: usize::try_from(self.reassembly_mb << 20).unwrap_or(usize::MAX),
                    timeout_ns: i64::try_from(self.reassembly_timeout)
                        .unwrap_or(i64::MAX / 1_000_000_000)
                        .saturating_mul(1_000_000_000),
                    global_timeout_ns: self.reassembly_global_timeout.saturating_mul(1_000_000_000),
                    max_fragments: self.reassembly_max_fragments,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    fn words(args: &[&str], cap_device_set: bool) -> Vec<String> {
        with_default_command(args.iter().copied(), cap_device_set)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn options_first_means_capture() {
        assert_eq!(
            words(&["np", "--iface", "eth1", "--workers", "2"], false),
            ["np", "capture", "--iface", "eth1", "--workers", "2"]
        );
        assert_eq!(
            words(&["np", "-i", "eth1"], false),
            ["np", "capture", "-i", "eth1"]
        );
        // Command words, help and version pass through.
        for args in [
            &["np", "read", "x.pcap"][..],
            &["np", "capture", "-i", "eth1"],
            &["np", "some-future-command", "--flag"],
            &["np", "--help"],
            &["np", "-h"],
            &["np", "--version"],
            &["np", "help", "capture"],
        ] {
            assert_eq!(words(args, true), args);
        }
        // tcpdump's -r means read, wherever it stands before `--`.
        assert_eq!(
            words(&["np", "-r", "x.pcap", "-c", "3"], false),
            ["np", "read", "-r", "x.pcap", "-c", "3"]
        );
        assert_eq!(
            words(&["np", "-q", "-rx.pcap"], false),
            ["np", "read", "-q", "-rx.pcap"]
        );
        assert_eq!(
            words(&["np", "-i", "eth0", "--", "-r"], false),
            ["np", "capture", "-i", "eth0", "--", "-r"]
        );
        // No arguments at all: capture only when CAP_DEVICE names the interface.
        assert_eq!(words(&["np"], true), ["np", "capture"]);
        assert_eq!(words(&["np"], false), ["np"]);
        let cli = Cli::try_parse_from(words(&["np", "--iface", "eth1", "--user", "nobody"], false))
            .unwrap();
        let Command::Capture(a) = cli.command else {
            panic!("not capture")
        };
        assert_eq!(
            (a.iface.as_deref(), a.user.as_deref()),
            (Some("eth1"), Some("nobody"))
        );
    }
}
