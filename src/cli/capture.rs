//! `capture`: live capture from an interface.

use super::{parse_seconds, MetricsArgs, OutputArgs, PacketArgs, PcapOutArgs, PresetArg};
use crate::source::ring::FanoutMode;
use clap::{Args, ValueEnum};
use std::time::Duration;

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

/// Notes after the exit codes of `capture --help`.
pub(super) const CAPTURE_NOTES: &str = "\
Stopping prints a tcpdump-style summary on stderr: packets captured (handed to the encoder),
received by filter and dropped by kernel (the kernel's counters over all rings), queue freezes,
dropped inside netpipe-fast (encoded but not written because the output failed), written.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

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
}
