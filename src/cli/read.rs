//! `read`: pcap/pcapng files to JSON messages.

use super::{parse_seconds, MetricsArgs, OutputArgs, PacketArgs, PcapOutArgs};
use crate::sink::OutputOptions;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

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

impl ReadArgs {
    /// The broker settings of `--output`; fails when the password file cannot be read.
    pub fn output_options(&self) -> Result<OutputOptions, String> {
        self.out.output_options()
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
