//! Command-line definitions (clap), with the original's environment variables as fallbacks.

use crate::broker::Secret;
use crate::exit;
use crate::sink::{read_password_file, Delivery, OutputOptions, RedisFormat, SslOptions, WhenFull};
use crate::source::ring::FanoutMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Take options from this TOML file (keys are the long option names; `[COMMAND]`
    /// sections; see `netpipe-fast config --help`). Flags given here win over the file, the
    /// file over environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

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

/// `config` subcommands.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check FILE: TOML syntax, every key (an option of some command, or of its section's
    /// command), every value's type and range, and that the file can be trusted. Exit 0 when
    /// it can be used, 2 with one line per problem (FILE:LINE: key "KEY": why) otherwise.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `generate` subcommands.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub command: GenerateCommand,
}

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Man pages (section 1) into DIR: netpipe-fast.1 and one per subcommand
    /// (netpipe-fast-read.1, netpipe-fast-dataset-prepare.1, ...).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng; "-" is stdin), read in order, then optionally a filter
    /// expression as tcpdump takes it: after the first file, words that name existing files
    /// (or end in .pcap, .pcapng, .cap) are files; the first other word starts the expression.
    #[arg(value_name = "FILE|EXPRESSION")]
    pub files: Vec<PathBuf>,

    /// A capture file to read, as tcpdump -r (repeat for more); then every word after the
    /// options is the filter expression.
    #[arg(short = 'r', long = "read-file", value_name = "FILE")]
    pub read_files: Vec<PathBuf>,

    #[command(flatten)]
    pub out: OutputArgs,

    #[command(flatten)]
    pub pcap: PcapOutArgs,

    #[command(flatten)]
    pub packet: PacketArgs,

    /// Keep only packets matching this tcpdump filter expression (compiled by libpcap).
    #[arg(short, long, env = "NETWORK_FILTER", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop after N packets (after the filter).
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,

    /// Decoding threads; the output keeps file order whatever the number.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// The "source" field of every message.
    #[arg(
        long,
        env = "SOURCE_HOST",
        default_value = "localdev",
        value_name = "NAME"
    )]
    pub source_host: String,

    /// Print a one-line running summary on stderr every SECS seconds (totals, rates since
    /// the last line, and the spool when there is one).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub stats_interval: Option<Duration>,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

/// File-name endings taken as capture files even when the file is missing (so a typo is
/// "cannot open", not a filter expression).
const CAPTURE_FILE_ENDINGS: [&str; 6] = [
    ".pcap",
    ".pcapng",
    ".cap",
    ".pcap.gz",
    ".pcap.zst",
    ".pcap.xz",
];

impl ReadArgs {
    /// The files to read and the filter: `-f`/NETWORK_FILTER or the words after the files
    /// (both at once is a usage error).
    pub fn inputs(&self) -> Result<(Vec<PathBuf>, Option<String>), String> {
        let mut files = self.read_files.clone();
        let mut words = self.files.iter();
        if files.is_empty() {
            match words.next() {
                Some(first) => files.push(first.clone()),
                None => return Err("read needs a capture file: read FILE... or -r FILE".into()),
            }
            let is_file = |w: &PathBuf| {
                let text = w.to_string_lossy();
                w.as_os_str() == "-"
                    || std::fs::symlink_metadata(w).is_ok()
                    || CAPTURE_FILE_ENDINGS.iter().any(|e| text.ends_with(e))
            };
            let mut rest = words.as_slice();
            while let Some((w, tail)) = rest.split_first() {
                if !is_file(w) {
                    break;
                }
                files.push(w.clone());
                rest = tail;
            }
            words = rest.iter();
        }
        let expression: Vec<String> = words.map(|w| w.to_string_lossy().into_owned()).collect();
        let expression = (!expression.is_empty()).then(|| expression.join(" "));
        let filter = self.filter.clone().filter(|f| !f.trim().is_empty());
        match (filter, expression) {
            (Some(_), Some(e)) => Err(format!(
                "two filters: -f (or NETWORK_FILTER) and the words {e:?} after the files; \
                 give one (if {e:?} is a file, it does not exist)"
            )),
            (f, e) => Ok((files, f.or(e))),
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

/// `--redis-mode` values.
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

/// `--redis-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisFormatArg {
    Kombu,
    Raw,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Interface to capture on (Ethernet).
    #[arg(
        short,
        long,
        env = "CAP_DEVICE",
        value_name = "IFACE",
        required_unless_present = "list_interfaces"
    )]
    pub iface: Option<String>,

    /// List the interfaces (index, name, link type, up or down, addresses) and exit, as
    /// tcpdump -D.
    #[arg(short = 'D', long)]
    pub list_interfaces: bool,

    /// A filter expression after the options, as tcpdump takes it (the words are joined);
    /// the same as -f.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,

    #[command(flatten)]
    pub out: OutputArgs,

    #[command(flatten)]
    pub pcap: PcapOutArgs,

    #[command(flatten)]
    pub packet: PacketArgs,

    /// Capture only packets matching this tcpdump filter expression (compiled by libpcap,
    /// run in the kernel before any packet reaches the ring).
    #[arg(short, long, env = "NETWORK_FILTER", value_name = "EXPR")]
    pub filter: Option<String>,

    /// One of the original's capture filters (combined with --filter when both are given):
    /// arp "arp", icmp "icmp", tcp "tcp and ( port 80 or port 443 or port 8010 or port
    /// 8443 )", ssh "tcp and ( port 22 )", telnet "tcp and ( port 23 )", udp "udp".
    #[arg(long, value_enum, value_name = "NAME")]
    pub preset: Option<PresetArg>,

    /// Also capture the output's own broker connection (by default it is left out, so that
    /// published packets are not captured again).
    #[arg(long)]
    pub capture_own_traffic: bool,

    /// Stop after writing exactly N packets (over all workers).
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,

    /// Stop after this many seconds (decimals allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,

    /// Capture threads, each with its own ring in one fanout group.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// How the kernel spreads packets over the workers' rings (hash keeps a flow on one
    /// worker, and the fragments of one IP datagram, every one of them captured).
    #[arg(long, value_enum, default_value_t = FanoutArg::Hash, value_name = "MODE")]
    pub fanout: FanoutArg,

    /// CPUs to pin the workers to, one per worker, e.g. "2,3" or "0-3" (default: the first
    /// CPUs this process may run on; workers beyond them are not pinned).
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// Ring memory in MiB for all workers together (split evenly between them).
    #[arg(long, default_value_t = 64, value_name = "MB",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub ring_mb: u32,

    /// Ring block size in KiB (a multiple of the page size).
    #[arg(long, default_value_t = 1024, value_name = "KB",
          value_parser = clap::value_parser!(u32).range(4..=1048576))]
    pub block_kb: u32,

    /// A block that is not full is handed over after this many milliseconds.
    #[arg(long, default_value_t = 10, value_name = "MS",
          value_parser = clap::value_parser!(u32).range(1..=60000))]
    pub block_timeout_ms: u32,

    /// Bytes kept of each packet.
    #[arg(short, long, default_value_t = 262144, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=262144))]
    pub snaplen: u32,

    /// Do not put the interface into promiscuous mode (tcpdump -p).
    #[arg(short = 'p', long)]
    pub no_promisc: bool,

    /// Print a one-line running summary on stderr every SECS seconds (totals, rates since
    /// the last line, and the spool when there is one).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub stats_interval: Option<Duration>,

    /// The "source" field of every message.
    #[arg(
        long,
        env = "SOURCE_HOST",
        default_value = "localdev",
        value_name = "NAME"
    )]
    pub source_host: String,

    /// Once the capture sockets are open, switch to this user (its groups, group and user
    /// id), as `tcpdump -Z` does, and give up every capability (bounding, ambient, permitted,
    /// effective, inheritable; no_new_privs set); the output is then opened as that user.
    #[arg(short = 'Z', long, value_name = "NAME")]
    pub user: Option<String>,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Do not print warnings, running summaries or the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

impl CaptureArgs {
    /// The filter: `-f`/NETWORK_FILTER or the words after the options (not both).
    pub fn filter_expression(&self) -> Result<Option<String>, String> {
        let words = (!self.expression.is_empty()).then(|| self.expression.join(" "));
        match (self.filter.clone().filter(|f| !f.trim().is_empty()), words) {
            (Some(_), Some(w)) => Err(format!(
                "two filters: -f (or NETWORK_FILTER) and the words {w:?} after the options; \
                 give one"
            )),
            (f, w) => Ok(f.or(w)),
        }
    }
}

/// `--fanout` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FanoutArg {
    Hash,
    Lb,
    Cpu,
    Rollover,
    Qm,
}

impl FanoutArg {
    pub fn mode(self) -> FanoutMode {
        match self {
            FanoutArg::Hash => FanoutMode::Hash,
            FanoutArg::Lb => FanoutMode::Lb,
            FanoutArg::Cpu => FanoutMode::Cpu,
            FanoutArg::Rollover => FanoutMode::Rollover,
            FanoutArg::Qm => FanoutMode::Qm,
        }
    }
}

/// A parsed `--cpus` list, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// "0,2-3,5" → [0, 2, 3, 5]; no duplicates, at most 4096 CPUs.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    const MAX_CPU: usize = 4095;
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_CPU)
                .ok_or_else(|| format!("{t:?} is not a CPU number (0 to {MAX_CPU})"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("{part:?}: range goes backwards"));
        }
        for cpu in lo..=hi {
            if cpus.contains(&cpu) {
                return Err(format!("CPU {cpu} is listed twice"));
            }
            cpus.push(cpu);
        }
    }
    Ok(CpuList(cpus))
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
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

impl ReadArgs {
    /// The broker settings of `--output`; fails when the password file cannot be read.
    pub fn output_options(&self) -> Result<OutputOptions, String> {
        self.out.output_options()
    }
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

/// Notes after the exit codes of `read --help`.
const READ_NOTES: &str = "\
Once running, tcp://, redis:// and amqp:// outputs reconnect forever with capped backoff,
spooling to disk meanwhile (--when-full spool, the default), holding the output
(--when-full block: back-pressure, nothing dropped) or dropping and counting
(--when-full drop: counted, and nothing waits for the broker at the end), and send again
what the lost connection
may not have delivered (redis: the unanswered LPUSH batches, at most 4; amqp: every
unconfirmed message; tcp:
the last tcp_wmem+tcp_rmem bytes of whole batches), so a receiver may see those messages
twice; they are counted as resent.";

/// Notes after the exit codes of `capture --help`.
const CAPTURE_NOTES: &str = "\
Stopping prints a tcpdump-style summary on stderr: packets captured (handed to the encoder),
received by filter and dropped by kernel (the kernel's counters over all rings), queue freezes,
dropped inside netpipe-fast (encoded but not written because the output failed), written.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap().0, vec![0]);
        assert_eq!(parse_cpu_list("3,0-2").unwrap().0, vec![3, 0, 1, 2]);
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("2-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("99999").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capture_flags_parse() {
        let cli = Cli::try_parse_from([
            "netpipe-fast",
            "capture",
            "--iface",
            "eth1",
            "--workers",
            "2",
            "--fanout",
            "lb",
            "--cpus",
            "0-1",
            "--count",
            "5",
            "-o",
            "file:/tmp/x",
        ])
        .unwrap();
        let Command::Capture(a) = cli.command else {
            panic!("not capture")
        };
        assert_eq!(a.iface.as_deref(), Some("eth1"));
        assert_eq!(a.workers, 2);
        assert_eq!(a.fanout.mode(), FanoutMode::Lb);
        assert_eq!(a.cpus, Some(CpuList(vec![0, 1])));
        assert_eq!(a.count, Some(5));
        assert_eq!(a.out.dest(), "file:/tmp/x");
        assert_eq!((a.ring_mb, a.block_kb, a.block_timeout_ms), (64, 1024, 10));
        assert!(!a.no_promisc);
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

/// `--preset` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    Arp,
    Icmp,
    Tcp,
    Ssh,
    Telnet,
    Udp,
}

impl PresetArg {
    pub fn preset(self) -> crate::pipeline::capture::Preset {
        use crate::pipeline::capture::Preset;
        match self {
            PresetArg::Arp => Preset::Arp,
            PresetArg::Icmp => Preset::Icmp,
            PresetArg::Tcp => Preset::Tcp,
            PresetArg::Ssh => Preset::Ssh,
            PresetArg::Telnet => Preset::Telnet,
            PresetArg::Udp => Preset::Udp,
        }
    }
}

/// `replay` arguments.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Interface to send on (Ethernet).
    #[arg(short, long, value_name = "IFACE")]
    pub iface: String,

    /// Capture files (pcap or pcapng) whose Ethernet frames are sent, in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Send at most this many frames per second (paced by the clock, in batches of about a
    /// millisecond); default: as fast as the interface takes them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pps: Option<u64>,

    /// Send the files this many times; 0 means until SIGINT or SIGTERM.
    #[arg(long = "loop", default_value_t = 1, value_name = "N")]
    pub loops: u64,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Notes after the exit codes of `replay --help`.
const REPLAY_NOTES: &str = "\
The summary on stderr counts frames sent, bytes, elapsed time and rate, frames the kernel
rejected, frames not sent because the interface cannot carry them (shorter than an Ethernet
header, longer than the MTU allows), and frames skipped because they are not Ethernet.";
// ---------------------------------------------------------------------------------------------
// dataset prepare (src/dataset/)
// ---------------------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Merge recorded CSVs into a labelled full CSV and a numeric-only clean CSV, each with
    /// its metadata JSON (the original's prepare_dataset.py).
    #[command(after_help = exit::help_after(DATASET_PREPARE_HELP, exit::DATASET_HELP))]
    Prepare(DatasetPrepareArgs),
}

#[derive(Args, Debug)]
pub struct DatasetPrepareArgs {
    /// Recorded CSVs: a glob pattern (`*`, `**`, `?`, `[..]`); repeat for more. Default:
    /// DS_GLOB_PATH, else DS_DIR/*/*.csv.
    #[arg(long = "input", value_name = "GLOB")]
    pub inputs: Vec<String>,

    /// Used when no --input is given.
    #[arg(
        long,
        env = "DS_GLOB_PATH",
        value_name = "GLOB",
        hide_env_values = true
    )]
    pub glob_path: Option<String>,

    /// Folder of recorded datasets, for the default pattern DS_DIR/*/*.csv.
    #[arg(
        long,
        env = "DS_DIR",
        default_value = "/opt/antinex/datasets",
        value_name = "DIR"
    )]
    pub ds_dir: PathBuf,

    /// Folder of the two CSVs when their paths are not given.
    #[arg(long, env = "OUTPUT_DIR", default_value = "/tmp", value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Full CSV [default: OUTPUT_DIR/fulldata_attack_scans.csv].
    #[arg(long, env = "FULLDATA_FILE", value_name = "FILE")]
    pub fulldata_file: Option<PathBuf>,

    /// Clean CSV [default: OUTPUT_DIR/cleaned_attack_scans.csv].
    #[arg(long, env = "CLEANED_FILE", value_name = "FILE")]
    pub cleaned_file: Option<PathBuf>,

    /// Label rows: the second label when the number is above N (a draw from 0..=100, or the
    /// --label-column value), else the first. Without it no label columns are added.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub label_above: Option<f64>,

    /// Take the label's number from this column instead of a seeded draw.
    #[arg(long, value_name = "COLUMN", requires = "label_above")]
    pub label_column: Option<String>,

    /// The two label names (below, above).
    #[arg(long, value_name = "BELOW,ABOVE", value_delimiter = ',',
          default_values_t = ["not_attack".to_owned(), "attack".to_owned()])]
    pub label_names: Vec<String>,

    /// The two label values (below, above).
    #[arg(long, value_name = "BELOW,ABOVE", value_delimiter = ',',
          allow_hyphen_values = true, default_values_t = [0i64, 1])]
    pub label_values: Vec<i64>,

    /// Seed of the label draw; the same inputs and seed give byte-identical CSVs. Default: from
    /// the clock (printed, and kept in the metadata).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Columns never used as features (repeat; replaces the default list).
    #[arg(long = "drop-column", value_name = "COLUMN",
          default_values_t = crate::dataset::prepare::DEFAULT_DROP_COLUMNS.map(String::from))]
    pub drop_columns: Vec<String>,

    /// Clean CSV: write this number into empty cells instead of dropping the row.
    #[arg(long, value_name = "NUMBER", allow_negative_numbers = true)]
    pub fill_missing: Option<String>,

    /// Do not print the summary at exit (SHOW_SUMMARY=0 does the same, as in the original).
    #[arg(short, long)]
    pub quiet: bool,

    /// The original's spelling of -q (0 silences the summary); kept for old scripts.
    #[arg(long, env = "SHOW_SUMMARY", default_value = "1", value_name = "0|1",
          value_parser = ["0", "1"], hide = true)]
    pub show_summary: String,
}

impl DatasetPrepareArgs {
    /// The library's configuration, defaults filled in as the original did.
    pub fn config(&self, clock_seed: u64) -> Result<crate::dataset::PrepareConfig, String> {
        if self.label_names.len() != 2 || self.label_values.len() != 2 {
            return Err(
                "--label-names and --label-values take two values each: BELOW,ABOVE".into(),
            );
        }
        let inputs = if !self.inputs.is_empty() {
            self.inputs.clone()
        } else if let Some(g) = self.glob_path.as_ref().filter(|g| !g.trim().is_empty()) {
            vec![g.clone()]
        } else {
            vec![format!("{}/*/*.csv", self.ds_dir.display())]
        };
        let label = self.label_above.map(|above| crate::dataset::LabelRule {
            above,
            column: self.label_column.clone(),
            names: [self.label_names[0].clone(), self.label_names[1].clone()],
            values: [self.label_values[0], self.label_values[1]],
        });
        Ok(crate::dataset::PrepareConfig {
            inputs,
            fulldata_file: self
                .fulldata_file
                .clone()
                .unwrap_or_else(|| self.output_dir.join("fulldata_attack_scans.csv")),
            cleaned_file: self
                .cleaned_file
                .clone()
                .unwrap_or_else(|| self.output_dir.join("cleaned_attack_scans.csv")),
            drop_columns: self.drop_columns.clone(),
            label,
            seed: self.seed.unwrap_or(clock_seed),
            fill_missing: self.fill_missing.clone(),
        })
    }
}

const DATASET_PREPARE_HELP: &str = "\
Columns of the full CSV: src_file, then every input column (first-seen order), then
label_value and label_name when --label-above is given. A row whose field count differs from
its file's header (or that is not UTF-8) is skipped and reported as FILE:LINE.

The clean CSV keeps a column when it is not dropped (--drop-column, label_name), some row has a
value in it, and every value in it is a decimal number (sign, digits, fraction, exponent); a
row with an empty cell in a kept column is left out (or filled: --fill-missing).
fulldata_metadata.json and cleaned_metadata.json are written beside the two CSVs.";

// ---------------------------------------------------------------------------------------------
// Traffic tools: send / listen (src/tools/)
// ---------------------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(subcommand)]
    pub kind: SendKind,
}

#[derive(Subcommand, Debug)]
pub enum SendKind {
    /// One TCP message (MSG, or a timestamped test message), then half-close.
    Tcp(TcpSendArgs),
    /// One large TCP message: the message plus " large_random_data=" and 10,000 UUIDs.
    TcpLarge(TcpSendArgs),
    /// One UDP datagram to UDP_SEND_TO_HOST:UDP_SEND_TO_PORT.
    Udp(UdpSendArgs),
    /// ICMP echo requests (raw socket as root, else an unprivileged ping socket if allowed).
    Icmp(IcmpSendArgs),
    /// One ARP request on an interface (AF_PACKET: needs root), waiting for the reply.
    Arp(ArpSendArgs),
}

#[derive(Args, Debug)]
pub struct TcpSendArgs {
    /// Host to connect to (the original's was fixed at 127.0.0.1).
    #[arg(long, env = "TCP_SEND_TO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port (the original's was fixed at 80).
    #[arg(long, env = "TCP_SEND_TO_PORT", default_value_t = 80)]
    pub port: u16,
    /// The message [default: "testing msg time=<now> - <uuid>"].
    #[arg(long, env = "MSG")]
    pub msg: Option<String>,
    /// Wait for and print the reply (up to 1024 bytes).
    #[arg(long, env = "NEED_RESPONSE")]
    pub need_response: bool,
    /// Give up connecting or waiting for the reply after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

#[derive(Args, Debug)]
pub struct UdpSendArgs {
    /// Destination (the original's default 0.0.0.0 also meant this host).
    #[arg(long, env = "UDP_SEND_TO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Destination port.
    #[arg(long, env = "UDP_SEND_TO_PORT", default_value_t = 17000)]
    pub port: u16,
    /// The message [default: "testing UDP msg time=<now> - <uuid>"].
    #[arg(long, env = "MSG")]
    pub msg: Option<String>,
    /// Wait for and print one reply datagram.
    #[arg(long, env = "NEED_RESPONSE")]
    pub need_response: bool,
    /// Give up waiting for the reply after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

#[derive(Args, Debug)]
pub struct IcmpSendArgs {
    /// Host to ping.
    #[arg(long, env = "ICMP_DST", default_value = "localhost")]
    pub dst: String,
    /// Echo requests to send.
    #[arg(long, env = "ICMP_COUNT", default_value_t = 3)]
    pub count: u32,
    /// ICMP message size in bytes (8-byte header included), as the original counted it.
    #[arg(long, env = "ICMP_PACKET_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(8..=65_000))]
    pub size: u16,
    /// Seconds to wait for each reply.
    #[arg(
        long,
        env = "ICMP_TIMEOUT",
        default_value_t = 2.0,
        value_name = "SECONDS"
    )]
    pub timeout: f64,
    /// Milliseconds from one request to the next (the original paced one per second).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub interval_ms: u64,
    /// Print only the final line.
    #[arg(long, env = "ICMP_SILENT")]
    pub silent: bool,
}

#[derive(Args, Debug)]
pub struct ArpSendArgs {
    /// Interface to send on (the original's default was enp0s3; loopback here).
    #[arg(short, long, env = "ARP_INTERFACE", default_value = "lo")]
    pub iface: String,
    /// Address asked for [default: the interface's own IPv4 address, as the original].
    #[arg(long, env = "ARP_DST_IP")]
    pub dst_ip: Option<std::net::Ipv4Addr>,
    /// Ethernet destination [default: the interface's own MAC address, as the original].
    #[arg(long, env = "ARP_DST_MAC")]
    pub dst_mac: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    #[command(subcommand)]
    pub kind: ListenKind,
}

#[derive(Subcommand, Debug)]
pub enum ListenKind {
    /// Accept TCP connections one at a time: echo the first read back, read to the end, print
    /// one JSON line per message. Stops when the shutdown file exists.
    #[command(after_help = exit::help_after(LISTEN_HELP, exit::LISTEN_HELP))]
    Tcp(TcpListenArgs),
    /// Receive UDP datagrams, one JSON line each. Stops when the shutdown file exists.
    #[command(after_help = exit::help_after(LISTEN_HELP, exit::LISTEN_HELP))]
    Udp(UdpListenArgs),
}

#[derive(Args, Debug)]
pub struct TcpListenArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ON_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// TCP port (0: any free port, printed at start).
    #[arg(long, env = "LISTEN_ON_PORT", default_value_t = 80)]
    pub port: u16,
    /// listen(2) backlog.
    #[arg(long, env = "LISTEN_BACKLOG", default_value_t = 5)]
    pub backlog: i32,
    /// Bytes per read (the first read is echoed back).
    #[arg(long, env = "LISTEN_SIZE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub size: u32,
    /// Seconds between checks of the shutdown file while idle.
    #[arg(
        long,
        env = "LISTEN_SLEEP",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub sleep: f64,
    /// Stop when this file exists [default: STATE_DIR/shutdown-listen-server-HOST-PORT].
    #[arg(long, env = "LISTEN_SHUTDOWN_HOOK", value_name = "FILE")]
    pub shutdown_hook: Option<PathBuf>,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Close a connection silent for this many seconds (what it sent is reported), so one
    /// idle peer cannot hold the clients queued behind it.
    #[arg(
        long,
        env = "LISTEN_IDLE_TIMEOUT",
        default_value_t = 5.0,
        value_name = "SECONDS"
    )]
    pub idle_timeout: f64,
}

#[derive(Args, Debug)]
pub struct UdpListenArgs {
    /// Address to listen on.
    #[arg(long, env = "UDP_LISTEN_ON_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// UDP port (0: any free port, printed at start).
    #[arg(long, env = "UDP_LISTEN_ON_PORT", default_value_t = 17000)]
    pub port: u16,
    /// Accepted for the original's sake; datagrams are read whole (64 KiB buffer) whatever it
    /// says, so none is cut short.
    #[arg(long, env = "UDP_LISTEN_SIZE", default_value_t = 1024)]
    pub size: u32,
    /// Seconds between checks of the shutdown file while idle.
    #[arg(
        long,
        env = "UDP_LISTEN_SLEEP",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub sleep: f64,
    /// Stop when this file exists [default: STATE_DIR/udp-shutdown-listen-server-HOST-PORT].
    #[arg(long, env = "UDP_LISTEN_SHUTDOWN_HOOK", value_name = "FILE")]
    pub shutdown_hook: Option<PathBuf>,
    /// Stop after N datagrams.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

const LISTEN_HELP: &str = "\
Each message is one JSON line on stdout: {\"msg\": N, \"proto\", \"peer\", \"bytes\", \"data\"}
(data as UTF-8 text, invalid bytes replaced). The shutdown file is checked at least every
SLEEP seconds; if it exists at start the listener refuses to start, as the original did.
It counts only if owned by this user or root. STATE_DIR: /var/lib/netpipe-fast for root, else
$XDG_STATE_HOME/netpipe-fast or ~/.local/state/netpipe-fast (made 0700 at start); the
original's /tmp names could be created by any user. TCP connections are served one at a time;
one silent for --idle-timeout seconds is closed, so an idle peer cannot block the rest.
SIGINT/SIGTERM stop it too. The last line on stderr counts the messages and bytes received.";

const SEND_HELP: &str = "\
Every send prints one JSON line on stdout saying what was sent (and what came back).
Defaults target this host only (127.0.0.1, localhost, lo).";

#[cfg(test)]
mod dataset_and_tools_tests {
    use super::*;

    fn prepare_args(args: &[&str]) -> DatasetPrepareArgs {
        let cli =
            Cli::try_parse_from([&["netpipe-fast", "dataset", "prepare"], args].concat()).unwrap();
        let Command::Dataset(DatasetArgs {
            command: DatasetCommand::Prepare(a),
        }) = cli.command
        else {
            panic!("not dataset prepare")
        };
        a
    }

    #[test]
    fn prepare_defaults_follow_the_original() {
        let a = prepare_args(&["--ds-dir", "/data/ds", "--output-dir", "/out"]);
        let c = a.config(9).unwrap();
        assert_eq!(c.inputs, ["/data/ds/*/*.csv"]);
        assert_eq!(
            c.fulldata_file,
            PathBuf::from("/out/fulldata_attack_scans.csv")
        );
        assert_eq!(
            c.cleaned_file,
            PathBuf::from("/out/cleaned_attack_scans.csv")
        );
        assert_eq!(c.drop_columns.len(), 10);
        assert_eq!(c.label, None);
        assert_eq!(c.seed, 9);
    }

    #[test]
    fn prepare_label_flags() {
        let a = prepare_args(&[
            "--input",
            "a/*.csv",
            "--input",
            "b.csv",
            "--label-above",
            "85",
            "--label-names",
            "ok,bad",
            "--label-values",
            "-1,1",
            "--seed",
            "3",
        ]);
        let c = a.config(0).unwrap();
        assert_eq!(c.inputs, ["a/*.csv", "b.csv"]);
        let rule = c.label.unwrap();
        assert_eq!(rule.above, 85.0);
        assert_eq!(rule.names, ["ok".to_owned(), "bad".to_owned()]);
        assert_eq!(rule.values, [-1, 1]);
        assert_eq!(c.seed, 3);
        let three = prepare_args(&["--label-above", "1", "--label-names", "a,b,c"]);
        assert!(three.config(0).is_err());
    }

    #[test]
    fn send_and_listen_parse() {
        let cli =
            Cli::try_parse_from(["netpipe-fast", "send", "tcp-large", "--port", "9"]).unwrap();
        let Command::Send(SendArgs {
            kind: SendKind::TcpLarge(a),
        }) = cli.command
        else {
            panic!("not send tcp-large")
        };
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 9));
        let cli = Cli::try_parse_from(["netpipe-fast", "listen", "udp", "--count", "2"]).unwrap();
        let Command::Listen(ListenArgs {
            kind: ListenKind::Udp(u),
        }) = cli.command
        else {
            panic!("not listen udp")
        };
        assert_eq!((u.port, u.count), (17000, Some(2)));
        assert!(Cli::try_parse_from(["netpipe-fast", "send", "smtp"]).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// record
// ---------------------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where messages come from: "redis://[:PASSWORD@]HOST[:PORT][/DB]" (the list --queue;
    /// kombu envelopes or packet JSON, told apart per message), "amqp://USER:PASS@HOST[:PORT]
    /// [/VHOST]" (the queue --queue, bound to --exchange with --routing-key), "file:PATH"
    /// (JSON lines) or "-" (JSON lines on stdin). A password on the command line is visible
    /// to every local user (ps): give the URL in RECORD_INPUT_URL or the password in
    /// --password-file instead.
    #[arg(
        long,
        env = "RECORD_INPUT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub input: String,

    /// The broker password: the first line of FILE (keep it mode 0600). Replaces any password
    /// in the URL; for redis:// and amqp:// inputs only.
    #[arg(long, env = "RECORD_INPUT_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// TLS settings for rediss://, amqps:// and rabbitmq-stream+tls:// inputs, as `read`
    /// takes them: a JSON object with kombu's names ({"ca_certs": "ca.pem", "certfile":
    /// "client.pem", "keyfile": "client.key", "cert_reqs": "CERT_REQUIRED"}). Without ca_certs
    /// the system's CAs are trusted. Non-empty turns TLS on for redis:// and amqp:// too.
    #[arg(
        long,
        env = "FORWARD_SSL_OPTIONS",
        default_value = "{}",
        value_parser = SslOptions::parse_json,
        value_name = "JSON"
    )]
    pub ssl_options: SslOptions,

    /// The queue (Redis list or RabbitMQ queue) to consume.
    #[arg(
        long,
        env = "FORWARD_QUEUE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub queue: String,

    /// The exchange the RabbitMQ queue is bound to.
    #[arg(
        long,
        env = "FORWARD_EXCHANGE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub exchange: String,

    /// The routing key of the RabbitMQ binding.
    #[arg(
        long,
        env = "FORWARD_ROUTING_KEY",
        default_value = "NEW_PACKETS",
        value_name = "KEY"
    )]
    pub routing_key: String,

    /// redis:// input: "list" (the list --queue, reliable fetch) or "stream" (the stream
    /// --queue through the consumer group --group as --consumer: XREADGROUP, XACK after each
    /// snapshot, XAUTOCLAIM of a dead recorder's entries).
    #[arg(long, value_enum, default_value_t = RedisModeArg::List, value_name = "MODE")]
    pub redis_mode: RedisModeArg,

    /// Stream mode: the consumer group (created with MKSTREAM if missing). Recorders in one
    /// group share the stream; each group gets every entry.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,

    /// Stream inputs: the name this recorder reads as; keep it across restarts. Redis stream
    /// mode: its consumer name in --group (required; unique per running recorder), so the
    /// entries it read but had not saved are read again first. rabbitmq-stream://: the name
    /// its offset is stored under in the broker, so a restart resumes after it [default:
    /// netpipe-fast-record-<queue>]. --reader-name is another name for this option.
    #[arg(long, visible_alias = "reader-name", value_name = "NAME")]
    pub consumer: Option<String>,

    /// Stream mode: entries another consumer of the group has held this long without
    /// acknowledging them are taken over (XAUTOCLAIM), at start and then this often.
    #[arg(long, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(100..))]
    pub claim_idle_ms: u64,

    /// Stream mode: where a group this recorder creates starts: "0" (every entry already in
    /// the stream) or "$" (only entries added from now on). An existing group is not moved.
    #[arg(long, default_value = "0", value_name = "ID",
          value_parser = clap::builder::PossibleValuesParser::new(["0", "$"]))]
    pub group_start: String,

    /// Save a snapshot (CSV rows, archive, state) every N messages; messages are acknowledged
    /// only once in a snapshot.
    #[arg(long, env = "SAVE_AFTER_NUM", default_value_t = 100, value_name = "N")]
    pub save_after_num: i64,

    /// Stop after N messages (-1: never).
    #[arg(long, env = "STOP_AFTER_NUM", default_value_t = -1, value_name = "N",
          allow_hyphen_values = true)]
    pub stop_after_num: i64,

    /// Stop when this file exists (and is owned by this user or root); the message in hand
    /// goes back to the queue [default: <OUTPUT_CSV>.stop, beside the CSV].
    #[arg(long, env = "STOP_FILE", value_name = "PATH")]
    pub stop_file: Option<PathBuf>,

    /// Dataset name (file names and the archive's "dataset").
    #[arg(long, env = "DS_NAME", default_value = "netdata", value_name = "NAME")]
    pub ds_name: String,

    /// Folder of the default file names.
    #[arg(long, env = "DS_DIR", default_value = "/tmp", value_name = "DIR")]
    pub ds_dir: PathBuf,

    /// The CSV (default: beside ARCHIVE_JSON, named after it without "packets-", when that is
    /// given; else DS_DIR/DS_NAME-%Y-%m-%d-%H-%M-%S.csv). An existing one with its .state file
    /// beside it is resumed.
    #[arg(long, env = "OUTPUT_CSV", value_name = "PATH")]
    pub output_csv: Option<PathBuf>,

    /// The JSON archive (default: packets-<CSV name>.json beside OUTPUT_CSV when that is
    /// given, so the same command resumes; else DS_DIR/packets-DS_NAME-%Y-%m-%d-%H-%M-%S.json).
    #[arg(long, env = "ARCHIVE_JSON", value_name = "PATH")]
    pub archive_json: Option<PathBuf>,

    /// Reject a line or message longer than this many bytes (counted, its position and length
    /// in <csv>.rejected.jsonl, the bytes not kept).
    #[arg(long, default_value_t = crate::record::input::DEFAULT_MAX_LINE_BYTES,
          value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=(1u64 << 32)))]
    pub max_line_bytes: u64,

    /// At most this many CSV columns besides idx and the ten <layer>_id columns; a message that
    /// would add more is rejected and counted (so a flood of distinct keys cannot make every
    /// snapshot rewrite an ever wider CSV).
    #[arg(long, default_value_t = crate::record::DEFAULT_MAX_COLUMNS, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_columns: usize,

    /// Prefix text cells that start with = + - @ (or a tab or CR) with ' so that a
    /// spreadsheet shows them instead of running them as formulas (numbers stay as they are).
    #[arg(long)]
    pub csv_safe: bool,

    /// Also save a snapshot when no message came for this many milliseconds (0: only every
    /// SAVE_AFTER_NUM messages, as the original).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub idle_save_ms: u64,

    /// RabbitMQ prefetch window (default: SAVE_AFTER_NUM, at most 65535).
    #[arg(long, value_name = "N")]
    pub prefetch: Option<u16>,

    /// The input was published with `--partitions N`: its messages are in N streams or
    /// queues named <queue>-0 .. <queue>-(N-1) (N = 1: just <queue>).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,

    /// With --partitions: which partitions this recorder reads, as a list of numbers and
    /// ranges ("0,2", "0-3", "1,4-6") [default: all]. Several recorders (or groups) can take
    /// disjoint sets. Redis streams: one XREADGROUP over the selected streams; RabbitMQ
    /// streams: one subscription per partition, offsets stored per partition. Rows of several
    /// partitions interleave in the CSV (each partition's rows stay in its order).
    #[arg(long, value_name = "LIST")]
    pub partition: Option<String>,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

impl RecordArgs {
    /// `--partitions` and `--partition` as the partitions to read.
    pub fn partitions(&self) -> Result<crate::record::Partitions, String> {
        crate::record::Partitions::parse(self.partitions, self.partition.as_deref())
    }

    /// `--redis-mode stream` with its group settings; `None` in list mode. Fails when the
    /// mode is channel or a name is missing.
    pub fn redis_group(&self) -> Result<Option<crate::sink::RedisGroup>, String> {
        match self.redis_mode {
            RedisModeArg::List => {
                let redis =
                    self.input.starts_with("redis://") || self.input.starts_with("rediss://");
                // --consumer also names a RabbitMQ stream reader; a Redis list has none.
                if self.group.is_some() || (redis && self.consumer.is_some()) {
                    return Err("--group and --consumer need --redis-mode stream".into());
                }
                Ok(None)
            }
            RedisModeArg::Channel => Err(
                "record cannot read a Redis channel (PUBLISH keeps nothing to acknowledge); \
                 use --redis-mode stream or list"
                    .into(),
            ),
            RedisModeArg::Stream => {
                let named = |v: &Option<String>, flag: &str| match v.as_deref() {
                    Some(n) if !n.is_empty() => Ok(n.to_string()),
                    _ => Err(format!("--redis-mode stream needs {flag} NAME")),
                };
                Ok(Some(crate::sink::RedisGroup {
                    group: named(&self.group, "--group")?,
                    consumer: named(&self.consumer, "--consumer")?,
                    claim_idle: Duration::from_millis(self.claim_idle_ms),
                    start: self.group_start.clone(),
                }))
            }
        }
    }

    /// The password in `--password-file`, when one is named; fails when it cannot be read.
    pub fn input_password(&self) -> Result<Option<Secret>, String> {
        password_from(self.password_file.as_deref())
    }
}

/// Exit codes and files of `record`, shown by `record --help`.
const RECORD_HELP: &str = "\
Files: the CSV, the archive, <csv>.state (what is committed; lets a restart resume without
duplicates), <csv>.rejected.jsonl (messages that are not packet messages, with position and
reason) and the stop file <csv>.stop. New files are created mode 0600 without following
symbolic links; temporaries get random names beside their target. The same command resumes:
with --output-csv alone the archive name comes from the CSV's. A file input is resumed only if
it is the same file (path, device, inode, not shorter); stdin is always read from its start.
AntiNex predictions: ANTINEX_PUBLISH_ENABLED=1 and the other ANTINEX_* variables.

Spreadsheets: a cell starting with = + - @ is a formula to Excel or LibreOffice (CSV
injection). Packet fields can hold such text (DNS names, payload text): open the CSV in a
spreadsheet only with --csv-safe, which writes ' before such text cells. Numbers (-1, +3.5)
are never prefixed; --csv-safe changes the text, so the CSV then differs from the original's.";
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

/// `--when-full` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhenFullArg {
    Block,
    Drop,
    Spool,
}

impl DeliveryArgs {
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
    #[arg(long, default_value_t = 64, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub reassembly_mb: u64,

    /// With --reassemble: a datagram not complete this many seconds of capture time after
    /// its first fragment is given up (timeout); 30 is Linux's ipfrag_time.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub reassembly_timeout: u64,

    /// With --reassemble: most fragments one datagram may receive, duplicates included
    /// (more: given up as too_many_fragments).
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u16).range(2..))]
    pub reassembly_max_fragments: u16,
}

/// `--mpls-payload` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MplsPayloadArg {
    Ip,
    Ether,
}

impl PacketArgs {
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
                    max_fragments: self.reassembly_max_fragments,
                }),
        }
    }
}
