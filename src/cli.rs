//! Command-line definitions (clap), with the original's environment variables as fallbacks.

use crate::sink::{Delivery, OutputOptions, RedisFormat, WhenFull};
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
                  (one JSON object per packet, scapy layer and field names; see docs/FORMAT.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read pcap/pcapng files and write one JSON message per packet.
    #[command(after_help = READ_EXIT_CODES)]
    Read(ReadArgs),
    /// Capture live from an interface (TPACKET_V3 rings, one per worker, in one fanout
    /// group) and write one JSON message per packet. Needs CAP_NET_RAW (root).
    #[command(after_help = CAPTURE_EXIT_CODES)]
    Capture(CaptureArgs),
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng), read in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub out: OutputArgs,

    /// Keep only packets matching this tcpdump filter expression (compiled by libpcap).
    #[arg(short, long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop after N packets (after the filter).
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,

    /// Decoding threads; the output keeps file order whatever the number.
    #[arg(short, long, default_value_t = 1, value_name = "N",
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

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
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
    #[arg(short, long, env = "CAP_DEVICE", value_name = "IFACE")]
    pub iface: String,

    #[command(flatten)]
    pub out: OutputArgs,

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
    #[arg(short, long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// How the kernel spreads packets over the workers' rings (hash keeps a flow, IP
    /// fragments included, on one worker).
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

    /// Do not put the interface into promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,

    /// Print a one-line running summary on stderr every SECS seconds.
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

    /// Do not print warnings, running summaries or the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
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
    /// publisher confirms).
    /// Broker outputs connect at start and, once running, reconnect forever.
    #[arg(
        short,
        long,
        env = "FORWARD_BROKER_URL",
        hide_env_values = true,
        default_value = "-",
        value_name = "DEST"
    )]
    pub output: String,

    /// What each Redis list element holds: kombu's envelope (readable by kombu and Celery
    /// consumers) or the packet JSON itself.
    #[arg(long, value_enum, default_value_t = RedisFormatArg::Kombu, value_name = "FORMAT")]
    pub redis_format: RedisFormatArg,

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

    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

impl ReadArgs {
    /// The broker settings of `--output`.
    pub fn output_options(&self) -> OutputOptions {
        self.out.output_options()
    }
}

impl OutputArgs {
    /// The broker settings of `--output`.
    pub fn output_options(&self) -> OutputOptions {
        OutputOptions {
            redis_format: match self.redis_format {
                RedisFormatArg::Kombu => RedisFormat::Kombu,
                RedisFormatArg::Raw => RedisFormat::Raw,
            },
            queue: self.queue.clone(),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
        }
    }
}

/// Exit codes of `read`, shown by `read --help`.
const READ_EXIT_CODES: &str = "\
Exit codes:
  0  done
  2  usage error, or a malformed --output URL
  3  a file cannot be opened      4  not a capture file
  5  truncated or corrupt capture  6  unsupported link type
  7  bad filter expression         8  output failed while writing
  9  broker unreachable at start (refused, unknown host, timeout)
  10 broker refused the credentials at start
  11 TLS output (rediss://, amqps://) not supported by this build yet

Once running, tcp://, redis:// and amqp:// outputs reconnect forever with capped backoff,
spooling to disk meanwhile (--when-full spool, the default) or holding the output
(--when-full block: back-pressure, nothing dropped), and send again what the lost connection
may not have delivered (redis: the one batch in flight; amqp: every unconfirmed message; tcp:
the last tcp_wmem+tcp_rmem bytes of whole batches), so a receiver may see those messages
twice; they are counted as resent.";

/// Exit codes of `capture`, shown by `capture --help`.
const CAPTURE_EXIT_CODES: &str = "\
Exit codes:
  0  stopped by --count, --duration, SIGINT or SIGTERM
  2  usage error, a malformed --output URL, or a ring setting the kernel refuses
  6  the interface is not Ethernet   7  bad filter expression
  8  output failed while writing    9, 10, 11  broker output could not start (as for read)
  12 no permission: live capture needs CAP_NET_RAW (run as root)
  13 no such interface, or it is (or went) down
  14 any other socket or ring failure

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
        assert_eq!(a.iface, "eth1");
        assert_eq!(a.workers, 2);
        assert_eq!(a.fanout.mode(), FanoutMode::Lb);
        assert_eq!(a.cpus, Some(CpuList(vec![0, 1])));
        assert_eq!(a.count, Some(5));
        assert_eq!(a.out.output, "file:/tmp/x");
        assert_eq!((a.ring_mb, a.block_kb, a.block_timeout_ms), (64, 1024, 10));
        assert!(!a.no_promisc);
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

    /// The spool directory [default: /var/tmp/netpipe-fast/<scheme-host-port-...-queue>, one
    /// per destination].
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
