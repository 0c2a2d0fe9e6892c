//! `read`: pcap/pcapng files to JSON messages.

use super::shared::{loss_exit, outputs, serve_metrics, summary_lines};
use super::{parse_seconds, Job, MetricsArgs, OutputArgs, PacketArgs, PcapOutArgs, Refusal};
use crate::exit;
use crate::pipeline::pcap_writer::{PcapOutConfig, PcapWriter};
use crate::pipeline::read::{JobError, Observe, ReadJob};
use crate::signals::stop_on_signals;
use crate::sink::{start_exit_code, Output, OutputOptions};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// `read` arguments.
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

    /// Where the JSON messages go.
    #[command(flatten)]
    pub out: OutputArgs,

    /// `-w` and its rotation.
    #[command(flatten)]
    pub pcap: PcapOutArgs,

    /// How packets are decoded.
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

    /// `--metrics`.
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

impl ReadArgs {
    /// The broker settings of `--output`; fails when the password file cannot be read.
    pub fn output_options(&self) -> Result<OutputOptions, String> {
        self.out.output_options()
    }
}

impl ReadArgs {
    /// The job: the files, the filter (checked for the first file's link type) and the
    /// outputs, or why they cannot be used.
    pub fn into_job(self) -> Result<ReadRun, Refusal> {
        let (files, filter) = self
            .inputs()
            .map_err(|e| Refusal::new(exit::USAGE, format!("netpipe-fast: read: {e}")))?;
        if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
            return Err(Refusal::new(
                exit::USAGE,
                "netpipe-fast: read: stdin (-) can be read once",
            ));
        }
        let (output, pcap) = outputs(&self.out, &self.pcap)
            .map_err(|e| Refusal::new(exit::USAGE, format!("netpipe-fast: {e}")))?;
        if let Some(expr) = &filter {
            check_filter(expr, files.first().map(|p| p.as_path()))
                .map_err(|e| Refusal::new(exit::FILTER, format!("netpipe-fast: {e}")))?;
        }
        // A file can wait for a slow broker: spool only during outages.
        let output = output.with_delivery(crate::sink::Delivery {
            wait_while_connected: true,
            ..self.out.delivery.delivery()
        });
        // The workers store flow hashes only when the output partitions.
        let packet = crate::pipeline::worker::PacketOptions {
            partitions: output.partitions(),
            ..self.packet.options()
        };
        Ok(ReadRun {
            job: ReadJob {
                files,
                filter,
                count: self.count,
                workers: usize::from(self.workers),
                source_host: self.source_host,
                output: Arc::new(output.clone()),
                packet,
            },
            output,
            pcap,
            metrics: self.metrics,
            stats_interval: self.stats_interval,
            quiet: self.quiet,
        })
    }
}

/// Checks a filter expression before any output is created, for the link type of the first
/// file (Ethernet for stdin or a file that cannot be opened; that error comes later).
fn check_filter(expr: &str, first_file: Option<&std::path::Path>) -> Result<(), String> {
    use crate::source::filter::BpfFilter;
    use crate::source::pcap_file::CaptureReader;
    let link_type = first_file
        .filter(|p| p.as_os_str() != "-")
        .and_then(|p| CaptureReader::open(p).ok())
        .and_then(|r| r.link_types().first().copied())
        .unwrap_or(1);
    BpfFilter::compile(expr, link_type)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `read`, ready to run: the engine's job, the `-w` settings and how to report.
#[derive(Debug)]
pub struct ReadRun {
    job: ReadJob,
    output: Output,
    pcap: Option<PcapOutConfig>,
    metrics: MetricsArgs,
    stats_interval: Option<Duration>,
    quiet: bool,
}

impl Job for ReadRun {
    fn run(self) -> u8 {
        let ReadRun {
            job,
            output,
            pcap,
            metrics: metrics_args,
            stats_interval,
            quiet,
        } = self;
        let writer = match &pcap {
            Some(cfg) => match PcapWriter::create(cfg.clone(), None) {
                Ok(w) => Some(w),
                Err(e) => {
                    say!("netpipe-fast: -w {}: {e}", cfg.path.display());
                    return exit::OUTPUT_FAILED;
                }
            },
            None => None,
        };
        let metrics = match serve_metrics(&metrics_args, quiet) {
            Ok(m) => m,
            Err(code) => return code,
        };
        // The bar only where a person watches stderr, and not over JSON going to the same
        // terminal.
        let progress = !quiet
            && std::io::stderr().is_terminal()
            && !(output == Output::Stdout && std::io::stdout().is_terminal());
        let outcome = job.run_observed(
            &Observe {
                metrics: metrics.clone(),
                progress,
                stats_interval: stats_interval.filter(|_| !quiet),
                notify: Some(Arc::new(|line: &str| say!("netpipe-fast: {line}"))),
            },
            writer,
        );
        if let Some(e) = &outcome.error {
            say!("netpipe-fast: {e}");
        }
        if !quiet {
            summary_lines(
                &outcome.summary,
                outcome.sink_report.as_deref(),
                pcap.as_ref(),
                outcome.pcap_written,
                &output,
            );
            if let Some(r) = &outcome.summary.reassembly {
                say!("{}", r.line());
            }
        }
        if metrics.as_ref().is_some_and(|m| m.has_run()) {
            let stop = Arc::new(AtomicBool::new(false));
            if stop_on_signals(&stop).is_ok() {
                super::shared::linger(&metrics_args, &stop);
            }
        }
        match outcome.error {
            // A broker sink that could not start says which exit code fits (9, 10, 11).
            Some(JobError::Output { error, .. }) if start_exit_code(&error).is_some() => {
                start_exit_code(&error).unwrap_or(exit::OUTPUT_FAILED)
            }
            Some(e) => u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL),
            None => loss_exit(&outcome.undelivered),
        }
    }
}

/// Notes after the exit codes of `read --help`.
pub(super) const READ_NOTES: &str = "\
Once running, tcp://, redis:// and amqp:// outputs reconnect forever with capped backoff,
spooling to disk meanwhile (--when-full spool, the default), holding the output
(--when-full block: back-pressure, nothing dropped) or dropping and counting
(--when-full drop: counted, and nothing waits for the broker at the end), and send again
what the lost connection
may not have delivered (redis: the unanswered LPUSH batches, at most 4; amqp: every
unconfirmed message; tcp:
the last tcp_wmem+tcp_rmem bytes of whole batches), so a receiver may see those messages
twice; they are counted as resent.";
