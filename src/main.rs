//! `netpipe-fast`: flags, then one library call, then an exit code.

use clap::{CommandFactory, Parser};
use netpipe_fast::cli::{with_default_command, CaptureArgs, Cli, Command, MetricsArgs, RecordArgs};
use netpipe_fast::exit;
use netpipe_fast::pipeline::capture::{
    effective_filter, stop_on_signals, CaptureError, CaptureJob,
};
use netpipe_fast::pipeline::metrics::{self, Metrics};
use netpipe_fast::pipeline::pcap_writer::{PcapOutConfig, PcapWriter};
use netpipe_fast::pipeline::read::{JobError, Observe, ReadJob};
use netpipe_fast::sink::{start_exit_code, Output, Undelivered};
use netpipe_fast::source::privilege::TargetUser;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A line on stderr that cannot panic: `2>&1 | head` closing the pipe must not turn a
/// finished run into a crash (eprintln! panics when the write fails).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cap_device_set = std::env::var_os("CAP_DEVICE").is_some_and(|v| !v.is_empty());
    let args = with_default_command(std::env::args_os(), cap_device_set);
    // --config FILE: the file's values join the arguments (below the real flags, above the
    // environment) before clap parses them.
    let args = match netpipe_fast::config::apply(&Cli::command(), args) {
        Ok((args, warnings)) => {
            for w in warnings {
                say!("netpipe-fast: warning: {w}");
            }
            args
        }
        Err(e) => {
            say!("netpipe-fast: --config: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Config(args) => config(args),
        Command::Generate(args) => generate(args),
        Command::Read(args) => read(args),
        Command::Capture(args) => capture(args),
        Command::Replay(args) => replay(args),
        Command::Dataset(args) => dataset(args),
        Command::Send(args) => send(args),
        Command::Listen(args) => listen(args),
        Command::Record(args) => record(args),
    }
}

/// The JSON destination and the `-w` settings of `read` and `capture`: with `-w` and no
/// `-o`, no JSON; `-w -` and JSON on stdout together is a usage error.
fn outputs(
    out: &netpipe_fast::cli::OutputArgs,
    pcap: &netpipe_fast::cli::PcapOutArgs,
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
    if pcap.as_ref().is_some_and(|p| p.is_stdout()) && output == Output::Stdout {
        return Err(
            "-w - writes the pcap to stdout, and so would the JSON: give -o FILE or a \
                    URL for the JSON, or leave -o (and FORWARD_BROKER_URL) out for no JSON"
                .into(),
        );
    }
    Ok((output, pcap))
}

/// Checks a filter expression before any output is created, for the link type of the first
/// file (Ethernet for stdin or a file that cannot be opened; that error comes later).
fn check_filter(expr: &str, first_file: Option<&std::path::Path>) -> Result<(), String> {
    use netpipe_fast::source::filter::BpfFilter;
    use netpipe_fast::source::pcap_file::CaptureReader;
    let link_type = first_file
        .filter(|p| p.as_os_str() != "-")
        .and_then(|p| CaptureReader::open(p).ok())
        .and_then(|r| r.link_types().first().copied())
        .unwrap_or(1);
    BpfFilter::compile(expr, link_type)
        .map(|_| ())
        .map_err(|e| e.to_string())
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
fn summary_lines(
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

fn read(args: netpipe_fast::cli::ReadArgs) -> ExitCode {
    let (files, filter) = match args.inputs() {
        Ok(i) => i,
        Err(e) => {
            say!("netpipe-fast: read: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        say!("netpipe-fast: read: stdin (-) can be read once");
        return ExitCode::from(exit::USAGE);
    }
    let (output, pcap) = match outputs(&args.out, &args.pcap) {
        Ok(o) => o,
        Err(e) => {
            say!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(expr) = &filter {
        if let Err(e) = check_filter(expr, files.first().map(|p| p.as_path())) {
            say!("netpipe-fast: {e}");
            return ExitCode::from(exit::FILTER);
        }
    }
    // A file can wait for a slow broker: spool only during outages.
    let output = output.with_delivery(netpipe_fast::sink::Delivery {
        wait_while_connected: true,
        ..args.out.delivery.delivery()
    });
    let writer = match &pcap {
        Some(cfg) => match PcapWriter::create(cfg.clone(), None) {
            Ok(w) => Some(w),
            Err(e) => {
                say!("netpipe-fast: -w {}: {e}", cfg.path.display());
                return ExitCode::from(exit::OUTPUT_FAILED);
            }
        },
        None => None,
    };
    let metrics = match serve_metrics(&args.metrics, args.quiet) {
        Ok(m) => m,
        Err(code) => return code,
    };
    // The bar only where a person watches stderr, and not over JSON going to the same
    // terminal.
    let progress = !args.quiet
        && std::io::stderr().is_terminal()
        && !(output == Output::Stdout && std::io::stdout().is_terminal());
    let quiet = args.quiet;
    // The workers store flow hashes only when the output partitions.
    let packet = netpipe_fast::pipeline::worker::PacketOptions {
        partitions: output.partitions(),
        ..args.packet.options()
    };
    let job = ReadJob {
        files,
        filter,
        count: args.count,
        workers: usize::from(args.workers),
        source_host: args.source_host,
        output: Arc::new(output.clone()),
        packet,
    };
    let outcome = job.run_observed(
        &Observe {
            metrics: metrics.clone(),
            progress,
            stats_interval: args.stats_interval.filter(|_| !quiet),
            notify: Some(Arc::new(|line: &str| say!("netpipe-fast: {line}"))),
        },
        writer,
    );
    if let Some(e) = &outcome.error {
        say!("netpipe-fast: {e}");
    }
    if !args.quiet {
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
            linger(&args.metrics, &stop);
        }
    }
    match outcome.error {
        // A broker sink that could not start says which exit code fits (9, 10, 11).
        Some(JobError::Output { error, .. }) if start_exit_code(&error).is_some() => {
            ExitCode::from(start_exit_code(&error).unwrap_or(exit::OUTPUT_FAILED))
        }
        Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL)),
        None => loss_exit(&outcome.undelivered),
    }
}

/// `-D`: one line per interface on stdout.
fn list_interfaces() -> ExitCode {
    match netpipe_fast::source::interfaces::list() {
        Ok(all) => {
            let mut out = std::io::stdout().lock();
            for i in all {
                if writeln!(out, "{}", i.line()).is_err() {
                    // `-D | head -1`: the reader has what it wanted.
                    return ExitCode::SUCCESS;
                }
            }
            let _ = writeln!(out, "{}", netpipe_fast::source::interfaces::ANY_LINE);
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("netpipe-fast: cannot list the interfaces: {e}");
            ExitCode::from(exit::SOCKET)
        }
    }
}

fn capture(args: CaptureArgs) -> ExitCode {
    if args.list_interfaces {
        return list_interfaces();
    }
    let Some(iface) = args.iface.clone() else {
        say!("netpipe-fast: capture needs an interface: -i IFACE (or CAP_DEVICE)");
        return ExitCode::from(exit::USAGE);
    };
    let user_filter = match args.filter_expression() {
        Ok(f) => f,
        Err(e) => {
            say!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // Looked up before any socket is opened, so a wrong name fails at once.
    let drop_to = match args.user.as_deref().map(TargetUser::lookup).transpose() {
        Ok(u) => u,
        Err(e) => {
            say!("netpipe-fast: {e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL));
        }
    };
    let (output, pcap) = match outputs(&args.out, &args.pcap) {
        Ok((o, p)) => (o.with_delivery(args.out.delivery.delivery()), p),
        Err(e) => {
            say!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // The workers store flow hashes only when the output partitions.
    let packet = netpipe_fast::pipeline::worker::PacketOptions {
        partitions: output.partitions(),
        ..args.packet.options()
    };
    let job = CaptureJob {
        iface,
        pcap_out: pcap.clone(),
        filter: effective_filter(
            user_filter.as_deref(),
            args.preset.map(|p| p.preset()),
            if args.capture_own_traffic {
                None
            } else {
                output.endpoint()
            },
        ),
        count: args.count,
        duration: args.duration,
        workers: usize::from(args.workers),
        fanout: args.fanout.mode(),
        cpus: args.cpus.map(|c| c.0),
        ring_budget_bytes: args.ring_mb as usize * (1 << 20),
        block_bytes: args.block_kb as usize * 1024,
        block_timeout_ms: args.block_timeout_ms,
        snaplen: args.snaplen,
        promisc: !args.no_promisc,
        stats_interval: args.stats_interval,
        source_host: args.source_host,
        output: Arc::new(output.clone()),
        packet,
        drop_to,
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        say!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(exit::INTERNAL);
    }
    let quiet = args.quiet;
    let metrics = match serve_metrics(&args.metrics, quiet) {
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
            pcap.as_ref(),
            outcome.pcap_written,
            &output,
        );
        if let Some(r) = &outcome.summary.reassembly {
            say!("{}", r.line());
        }
    }
    if outcome.started && metrics.is_some() {
        // The signal that ended the capture does not end the linger; the next one does.
        stop.store(false, Ordering::Relaxed);
        linger(&args.metrics, &stop);
    }
    match outcome.error {
        Some(CaptureError::Output { error, .. }) if start_exit_code(&error).is_some() => {
            ExitCode::from(start_exit_code(&error).unwrap_or(exit::OUTPUT_FAILED))
        }
        Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL)),
        // Packets the kernel dropped are lost as surely as messages the output dropped.
        None => {
            let lines = outcome.loss_lines(&job.iface);
            for line in &lines {
                eprintln!("netpipe-fast: {line}");
            }
            if lines.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::UNDELIVERED)
            }
        }
    }
}

/// A run that ended normally: 0, or 16 with one line (even with --quiet) when messages were
/// dropped or are still in the spool.
fn loss_exit(undelivered: &Undelivered) -> ExitCode {
    if undelivered.any() {
        eprintln!("netpipe-fast: {}", undelivered.line());
        ExitCode::from(exit::UNDELIVERED)
    } else {
        ExitCode::SUCCESS
    }
}

fn dataset(args: netpipe_fast::cli::DatasetArgs) -> ExitCode {
    let netpipe_fast::cli::DatasetCommand::Prepare(args) = args.command;
    // Without --seed the draw still has to be reproducible afterwards: the seed is printed
    // and kept in the metadata.
    // Kept below 2^53 so the metadata's JSON number survives readers that use doubles.
    let clock_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_nanos() % (1u128 << 53)) as u64)
        .unwrap_or(0);
    let config = match args.config(clock_seed) {
        Ok(c) => c,
        Err(e) => {
            say!("netpipe-fast: dataset prepare: {e}");
            return ExitCode::from(exit::dataset::USAGE);
        }
    };
    match netpipe_fast::dataset::prepare::prepare(&config) {
        Ok(report) => {
            for p in &report.skipped_outputs {
                say!(
                    "netpipe-fast: {}: matched an --input pattern but is this run's output; not read",
                    p.display()
                );
            }
            for (file, column) in &report.duplicate_headers {
                say!(
                    "netpipe-fast: {}: column {column:?} appears twice in the header; the first is used",
                    file.display()
                );
            }
            for p in &report.problems {
                say!("netpipe-fast: {p}");
            }
            let unlisted = report.rows_skipped - report.problems.len() as u64;
            if unlisted > 0 {
                say!("netpipe-fast: {unlisted} more rows skipped (not listed)");
            }
            if args.show_summary == "1" && !args.quiet {
                say!("{}", report.summary(&config));
            }
            if report.rows_skipped > 0 {
                ExitCode::from(exit::dataset::ROWS_SKIPPED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            say!("netpipe-fast: dataset prepare: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn send(args: netpipe_fast::cli::SendArgs) -> ExitCode {
    // A reader that went away (`| head -c 10`) has seen what it wanted: the send itself has
    // happened, so its exit code stands and nothing panics.
    let mut print = |line: &str| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    match netpipe_fast::tools::command::run_send(args, &mut print) {
        Ok(code) => {
            if code == netpipe_fast::tools::send_exit::UNANSWERED {
                say!("netpipe-fast: send: sent, but not every request was answered in time");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            say!("netpipe-fast: send: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn listen(args: netpipe_fast::cli::ListenArgs) -> ExitCode {
    use netpipe_fast::tools::listen::{self, Proto};
    let cfg = match netpipe_fast::tools::command::listen_config(args) {
        Ok(c) => c,
        Err(e) => {
            say!("netpipe-fast: listen: {e}");
            return ExitCode::from(e.code);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        say!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(exit::INTERNAL);
    }
    let proto = if cfg.proto == Proto::Tcp {
        "tcp"
    } else {
        "udp"
    };
    let hook = cfg.shutdown_hook.display().to_string();
    let result = listen::listen(
        &cfg,
        &stop,
        &mut |addr| say!("netpipe-fast: listening on {proto} {addr} (stops when {hook} exists)"),
        &mut |line| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // Flushed per message so a reader sees it at once, not when a buffer fills.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        },
    );
    match result {
        Ok(summary) => {
            say!("netpipe-fast: {}", summary.line(&cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("netpipe-fast: listen: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn replay(args: netpipe_fast::cli::ReplayArgs) -> ExitCode {
    use netpipe_fast::tools::replay::ReplayJob;
    let job = ReplayJob {
        iface: args.iface,
        files: args.files,
        pps: args.pps,
        loops: args.loops,
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        say!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(exit::INTERNAL);
    }
    let outcome = job.run(&stop);
    if let Some(e) = &outcome.error {
        say!("netpipe-fast: {e}");
    }
    if outcome.started && !args.quiet {
        say!("replay: {}", outcome.summary);
    }
    match outcome.error {
        Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL)),
        None => ExitCode::SUCCESS,
    }
}

fn record(args: RecordArgs) -> ExitCode {
    use netpipe_fast::record::{antinex::AntinexConfig, file_stamp, output_paths, RecordJob};
    use netpipe_fast::sink::{OutputOptions, RedisFormat};
    let antinex = match AntinexConfig::from_env(|k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            say!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let password = match args.input_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let redis_group = match args.redis_group() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let partitions = match args.partitions() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let (csv_path, archive_path) = output_paths(
        &args.ds_dir,
        &args.ds_name,
        args.output_csv.as_deref(),
        args.archive_json.as_deref(),
        &file_stamp(),
    );
    let save_after = u64::try_from(args.save_after_num.max(1)).unwrap_or(1);
    let job = RecordJob {
        input: args.input,
        options: OutputOptions {
            redis_format: RedisFormat::Raw,
            queue: args.queue,
            exchange: args.exchange,
            routing_key: args.routing_key,
            ssl: args.ssl_options,
            password,
            redis_mode: args.redis_mode.into(),
            redis_group,
            stream: netpipe_fast::sink::StreamOptions {
                // --consumer (alias --reader-name) names the reader of both stream kinds.
                reader_name: args.consumer.clone(),
                ..Default::default()
            },
            ..OutputOptions::default()
        },
        save_after,
        stop_after: u64::try_from(args.stop_after_num).ok().filter(|&n| n > 0),
        stop_file: args
            .stop_file
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| netpipe_fast::record::csv::suffixed(&csv_path, ".stop")),
        csv_path,
        archive_path,
        max_line_bytes: args.max_line_bytes,
        max_columns: args.max_columns,
        csv_safe: args.csv_safe,
        partitions,
        dataset: args.ds_name,
        idle_save: (args.idle_save_ms > 0)
            .then(|| std::time::Duration::from_millis(args.idle_save_ms)),
        prefetch: args
            .prefetch
            .unwrap_or_else(|| u16::try_from(save_after).unwrap_or(u16::MAX)),
        antinex,
        abort_after_commit: std::env::var("NETPIPE_RECORD_ABORT_AFTER_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        say!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(exit::INTERNAL);
    }
    let outcome = job.run(&stop);
    if let Some((_, e)) = &outcome.error {
        say!("netpipe-fast: {e}");
    }
    if !args.quiet {
        say!("{}", outcome.summary());
    }
    ExitCode::from(outcome.exit_code())
}

/// `--metrics ADDR`: starts the server (it lives as long as the process); says where it
/// listens unless `quiet`. A bad or busy address ends the run with the usage-error code 2
/// before anything is read.
fn serve_metrics(args: &MetricsArgs, quiet: bool) -> Result<Option<Arc<Metrics>>, ExitCode> {
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
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// `--metrics-linger SECS`: keeps the process (and so the metrics server, with the run's
/// final counters) alive that long, or until SIGINT/SIGTERM sets `stop` (registered by the
/// caller with [`stop_on_signals`], once: a second registration would make the next signal
/// end the process with code 1).
fn linger(args: &MetricsArgs, stop: &AtomicBool) {
    let Some(wait) = args.metrics_linger else {
        return;
    };
    let end = Instant::now() + wait;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `config check FILE`.
fn config(args: netpipe_fast::cli::ConfigArgs) -> ExitCode {
    let netpipe_fast::cli::ConfigCommand::Check { file } = args.command;
    match netpipe_fast::config::check(&file, &Cli::command()) {
        Ok((settings, warnings)) => {
            for w in warnings {
                say!("netpipe-fast: warning: {w}");
            }
            let _ = writeln!(
                std::io::stdout(),
                "{}: ok ({settings} settings)",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("{e}");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// `generate man DIR` / `generate completions SHELL`: from the same clap definition the
/// program parses with, so the pages and completions cannot drift from the options.
fn generate(args: netpipe_fast::cli::GenerateArgs) -> ExitCode {
    use netpipe_fast::cli::GenerateCommand;
    let mut cmd = Cli::command();
    match args.command {
        GenerateCommand::Man { dir } => match write_man_pages(cmd, &dir) {
            Ok(n) => {
                say!("netpipe-fast: {n} man pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                say!("netpipe-fast: generate man {}: {e}", dir.display());
                ExitCode::from(exit::OUTPUT_FAILED)
            }
        },
        GenerateCommand::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "netpipe-fast", &mut out);
            if shell == clap_complete::Shell::Bash {
                // clap_complete 4.6 spells a hyphenated program name two ways in the bash
                // script (`netpipe__fast` where it tracks the words, `netpipe__subcmd__fast`
                // in the cases that complete a subcommand's options), so nothing after the
                // subcommand word completed; one spelling makes them meet
                // (tests/operations.rs completes `capture --when-full`).
                let text = String::from_utf8_lossy(&out).replace(
                    &"netpipe-fast".replace('-', "__subcmd__"),
                    &"netpipe-fast".replace('-', "__"),
                );
                out = text.into_bytes();
            }
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                // A reader that went away (`| head`) has what it wanted.
                return ExitCode::SUCCESS;
            }
            ExitCode::SUCCESS
        }
    }
}

/// netpipe-fast.1 and one page per visible subcommand, nested ones included
/// (netpipe-fast-dataset-prepare.1). Returns how many were written.
fn write_man_pages(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<usize> {
    fn write(cmd: clap::Command, dir: &std::path::Path, n: &mut usize) -> std::io::Result<()> {
        let name = cmd.get_name().to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        *n += 1;
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let full = format!("{name}-{}", sub.get_name());
            write(sub.clone().name(full.clone()).bin_name(full), dir, n)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let mut n = 0;
    write(cmd, dir, &mut n)?;
    Ok(n)
}
