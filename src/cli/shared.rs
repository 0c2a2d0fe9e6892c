//! What `read` and `capture` share when they run: the JSON and `-w` outputs, the closing
//! summary lines, and the `--metrics` server.

use super::{MetricsArgs, OutputArgs, PcapOutArgs};
use crate::exit;
use crate::pipeline::metrics::{self, Metrics};
use crate::pipeline::pcap_writer::PcapOutConfig;
use crate::signals::stop_on_signals;
use crate::sink::{Output, Undelivered};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The JSON destination and the `-w` settings of `read` and `capture`: with `-w` and no
/// `-o`, no JSON; `-w -` and JSON on stdout together is a usage error, as is `--direct-io`
/// with JSON going anywhere but a file.
pub(super) fn outputs(
    out: &OutputArgs,
    pcap: &PcapOutArgs,
) -> Result<(Output, Option<PcapOutConfig>), String> {
    let pcap = pcap.config().transpose()?;
    let output = match (&pcap, out.output.as_deref()) {
        (Some(_), None) if out.partitions > 1 => {
            return Err(format!(
                "--partitions {} needs -o redis://... or rabbitmq-stream://... (-w alone \
                 writes no messages)",
                out.partitions
            ))
        }
        (Some(_), None) => Output::Discard,
        (_, dest) => Output::parse_with(dest.unwrap_or("-"), &out.output_options()?)?,
    };
    let output = if out.direct_io {
        output.with_direct_io()?
    } else {
        output
    };
    if pcap.as_ref().is_some_and(|p| p.is_stdout()) && output == Output::Stdout {
        return Err(
            "-w - writes the pcap to stdout, and so would the JSON: give -o FILE or a \
                    URL for the JSON, or leave -o (and FORWARD_BROKER_URL) out for no JSON"
                .into(),
        );
    }
    Ok((output, pcap))
}

/// The `-w` line of the summary (saying so when the messages went nowhere: `-w` without
/// `-o`, where the summary's "written" counts messages encoded and not kept).
fn pcap_line(pcap: &PcapOutConfig, written: Option<(u64, u64)>, output: &Output) -> Option<String> {
    let (frames, files) = written?;
    Some(format!(
        "{frames} frames written to {}{}{}",
        if pcap.is_stdout() {
            "stdout".to_owned()
        } else {
            pcap.path.display().to_string()
        },
        if files > 1 {
            format!(" ({files} files)")
        } else {
            String::new()
        },
        if *output == Output::Discard {
            "; no JSON kept (-w without -o)"
        } else {
            ""
        }
    ))
}

/// The closing lines of `read` and `capture`: the summary, the output's report, and what -w
/// wrote.
pub(super) fn summary_lines(
    summary: &dyn std::fmt::Display,
    sink_report: Option<&str>,
    pcap: Option<&PcapOutConfig>,
    pcap_written: Option<(u64, u64)>,
    output: &Output,
) {
    say!("{summary}");
    if let Some(report) = sink_report {
        say!("{report}");
    }
    if let Some(line) = pcap.and_then(|p| pcap_line(p, pcap_written, output)) {
        say!("{line}");
    }
}

/// A run that ended normally: 0, or 16 with one line (even with --quiet) when messages were
/// dropped or are still in the spool.
pub(super) fn loss_exit(undelivered: &Undelivered) -> u8 {
    if undelivered.any() {
        eprintln!("netpipe-fast: {}", undelivered.line());
        exit::UNDELIVERED
    } else {
        exit::SUCCESS
    }
}

/// `--metrics ADDR`: starts the server (it lives as long as the process); says where it
/// listens unless `quiet`. A bad or busy address ends the run with the usage-error code 2
/// before anything is read.
pub(super) fn serve_metrics(args: &MetricsArgs, quiet: bool) -> Result<Option<Arc<Metrics>>, u8> {
    let Some(addr) = &args.metrics else {
        return Ok(None);
    };
    let m = Metrics::new();
    match metrics::serve(addr, Arc::clone(&m)) {
        Ok(local) => {
            if !quiet {
                eprintln!("netpipe-fast: metrics on http://{local}/metrics");
            }
            Ok(Some(m))
        }
        Err(e) => {
            eprintln!("netpipe-fast: --metrics {addr}: cannot listen: {e}");
            Err(exit::USAGE)
        }
    }
}

/// The stop flag of a command that runs until SIGINT or SIGTERM (a second signal ends the
/// process at once, see [`stop_on_signals`]); when the handlers cannot be installed, says so
/// and gives the exit code ([`exit::INTERNAL`]).
pub(super) fn stop_flag() -> Result<Arc<AtomicBool>, u8> {
    let stop = Arc::new(AtomicBool::new(false));
    match stop_on_signals(&stop) {
        Ok(()) => Ok(stop),
        Err(e) => {
            say!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
            Err(exit::INTERNAL)
        }
    }
}

/// `--metrics-linger SECS`: keeps the process (and so the metrics server, with the run's
/// final counters) alive that long, or until SIGINT/SIGTERM sets `stop` (registered by the
/// caller with `stop_on_signals`, once: a second registration would make the next signal
/// end the process with code 1).
pub(super) fn linger(args: &MetricsArgs, stop: &AtomicBool) {
    let Some(wait) = args.metrics_linger else {
        return;
    };
    let end = Instant::now() + wait;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
}
