//! `capture`: live capture from an interface.

use super::shared::{linger, outputs, serve_metrics, stop_flag, summary_lines};
use super::{
    parse_seconds, Job, MetricsArgs, OutputArgs, PacketArgs, PcapOutArgs, PresetArg, Refusal,
};
use crate::exit;
use crate::pipeline::capture::{effective_filter, CaptureError, CaptureJob};
use crate::sink::{start_exit_code, Output};
use crate::source::privilege::TargetUser;
use crate::source::ring::FanoutMode;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `capture` arguments.
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

    /// Where the JSON messages go.
    #[command(flatten)]
    pub out: OutputArgs,

    /// `-w` and its rotation.
    #[command(flatten)]
    pub pcap: PcapOutArgs,

    /// How packets are decoded.
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

    /// `--metrics`.
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

impl CaptureArgs {
    /// The job: `-D`, or the capture with its interface, filter, user to become and outputs,
    /// or why they cannot be used.
    pub fn into_job(self) -> Result<CaptureRun, Refusal> {
        if self.list_interfaces {
            return Ok(CaptureRun::ListInterfaces);
        }
        let Some(iface) = self.iface.clone() else {
            return Err(Refusal::new(
                exit::USAGE,
                "netpipe-fast: capture needs an interface: -i IFACE (or CAP_DEVICE)",
            ));
        };
        let user_filter = self
            .filter_expression()
            .map_err(|e| Refusal::new(exit::USAGE, format!("netpipe-fast: {e}")))?;
        // Looked up before any socket is opened, so a wrong name fails at once.
        let drop_to = self
            .user
            .as_deref()
            .map(TargetUser::lookup)
            .transpose()
            .map_err(|e| {
                Refusal::new(
                    u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL),
                    format!("netpipe-fast: {e}"),
                )
            })?;
        let (output, pcap) = match outputs(&self.out, &self.pcap) {
            Ok((o, p)) => (o.with_delivery(self.out.delivery.delivery()), p),
            Err(e) => return Err(Refusal::new(exit::USAGE, format!("netpipe-fast: {e}"))),
        };
        // The workers store flow hashes only when the output partitions.
        let packet = crate::pipeline::worker::PacketOptions {
            partitions: output.partitions(),
            ..self.packet.options()
        };
        let job = CaptureJob {
            iface,
            pcap_out: pcap,
            filter: effective_filter(
                user_filter.as_deref(),
                self.preset.map(|p| p.preset()),
                if self.capture_own_traffic {
                    None
                } else {
                    output.endpoint()
                },
            ),
            count: self.count,
            duration: self.duration,
            workers: usize::from(self.workers),
            fanout: self.fanout.mode(),
            cpus: self.cpus.map(|c| c.0),
            ring_budget_bytes: self.ring_mb as usize * (1 << 20),
            block_bytes: self.block_kb as usize * 1024,
            block_timeout_ms: self.block_timeout_ms,
            snaplen: self.snaplen,
            promisc: !self.no_promisc,
            stats_interval: self.stats_interval,
            source_host: self.source_host,
            output: Arc::new(output.clone()),
            packet,
            drop_to,
        };
        Ok(CaptureRun::Capture {
            job: Box::new(job),
            output,
            metrics: self.metrics,
            quiet: self.quiet,
        })
    }
}

/// `capture`, ready to run.
#[derive(Debug)]
pub enum CaptureRun {
    /// `-D`: list the interfaces.
    ListInterfaces,
    /// Capture as the engine's job says, reporting as asked.
    Capture {
        /// The engine's job.
        job: Box<CaptureJob>,
        /// Where the messages go (for the summary lines).
        output: Output,
        /// `--metrics` and `--metrics-linger`.
        metrics: MetricsArgs,
        /// `--quiet`.
        quiet: bool,
    },
}

impl Job for CaptureRun {
    fn run(self) -> u8 {
        match self {
            CaptureRun::ListInterfaces => list_interfaces(),
            CaptureRun::Capture {
                job,
                output,
                metrics,
                quiet,
            } => capture(*job, &output, &metrics, quiet),
        }
    }
}

/// `-D`: one line per interface on stdout.
fn list_interfaces() -> u8 {
    match crate::source::interfaces::list() {
        Ok(all) => {
            let mut out = std::io::stdout().lock();
            for i in all {
                if writeln!(out, "{}", i.line()).is_err() {
                    // `-D | head -1`: the reader has what it wanted.
                    return exit::SUCCESS;
                }
            }
            let _ = writeln!(out, "{}", crate::source::interfaces::ANY_LINE);
            let _ = out.flush();
            exit::SUCCESS
        }
        Err(e) => {
            say!("netpipe-fast: cannot list the interfaces: {e}");
            exit::SOCKET
        }
    }
}

fn capture(job: CaptureJob, output: &Output, metrics_args: &MetricsArgs, quiet: bool) -> u8 {
    let stop = match stop_flag() {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    let metrics = match serve_metrics(metrics_args, quiet) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let outcome = job.run_observed(
        &stop,
        &mut |line| {
            if !quiet {
                say!("netpipe-fast: {line}");
            }
        },
        metrics.as_ref(),
    );
    if let Some(e) = &outcome.error {
        say!("netpipe-fast: {e}");
    }
    if outcome.started && !quiet {
        summary_lines(
            &outcome.summary,
            outcome.sink_report.as_deref(),
            job.pcap_out.as_ref(),
            outcome.pcap_written,
            output,
        );
        if let Some(r) = &outcome.summary.reassembly {
            say!("{}", r.line());
        }
    }
    if outcome.started && metrics.is_some() {
        // The signal that ended the capture does not end the linger; the next one does.
        stop.store(false, Ordering::Relaxed);
        linger(metrics_args, &stop);
    }
    match outcome.error {
        Some(CaptureError::Output { error, .. }) if start_exit_code(&error).is_some() => {
            start_exit_code(&error).unwrap_or(exit::OUTPUT_FAILED)
        }
        Some(e) => u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL),
        // Packets the kernel dropped are lost as surely as messages the output dropped.
        None => {
            let lines = outcome.loss_lines(&job.iface);
            for line in &lines {
                eprintln!("netpipe-fast: {line}");
            }
            if lines.is_empty() {
                exit::SUCCESS
            } else {
                exit::UNDELIVERED
            }
        }
    }
}

/// `--fanout` values: the kernel's fanout modes of the same names (`hash` by flow, `lb`
/// round robin, `cpu` by arrival CPU, `rollover` fill one then the next, `qm` by NIC queue).
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FanoutArg {
    Hash,
    Lb,
    Cpu,
    Rollover,
    Qm,
}

impl FanoutArg {
    /// The ring's fanout mode.
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
