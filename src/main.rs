//! `netpipe-fast`: flags, then one library call, then an exit code.

use clap::Parser;
use netpipe_fast::cli::{with_default_command, CaptureArgs, Cli, Command, RecordArgs};
use netpipe_fast::pipeline::capture::{
    effective_filter, stop_on_signals, CaptureError, CaptureJob,
};
use netpipe_fast::pipeline::read::{JobError, ReadJob};
use netpipe_fast::sink::{start_exit_code, Output};
use netpipe_fast::source::privilege::TargetUser;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> ExitCode {
    let cap_device_set = std::env::var_os("CAP_DEVICE").is_some_and(|v| !v.is_empty());
    let cli = Cli::parse_from(with_default_command(std::env::args_os(), cap_device_set));
    match cli.command {
        Command::Read(args) => {
            let output = match Output::parse_with(&args.out.output, &args.output_options()) {
                // A file can wait for a slow broker: spool only during outages.
                Ok(o) => o.with_delivery(netpipe_fast::sink::Delivery {
                    wait_while_connected: true,
                    ..args.out.delivery.delivery()
                }),
                Err(e) => {
                    eprintln!("netpipe-fast: {e}");
                    return ExitCode::from(2);
                }
            };
            let job = ReadJob {
                files: args.files,
                filter: args.filter.filter(|f| !f.trim().is_empty()),
                count: args.count,
                workers: usize::from(args.workers),
                source_host: args.source_host,
                output,
                packet: args.packet.options(),
            };
            let outcome = job.run();
            if let Some(e) = &outcome.error {
                eprintln!("netpipe-fast: {e}");
            }
            if !args.quiet {
                eprintln!("{}", outcome.summary);
                if let Some(report) = &outcome.sink_report {
                    eprintln!("{report}");
                }
            }
            match outcome.error {
                // A broker sink that could not start says which exit code fits (9, 10, 11).
                Some(JobError::Output { error, .. }) if start_exit_code(&error).is_some() => {
                    ExitCode::from(start_exit_code(&error).unwrap_or(8))
                }
                Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)),
                None => ExitCode::SUCCESS,
            }
        }
        Command::Capture(args) => capture(args),
        Command::Replay(args) => replay(args),
        Command::Dataset(args) => dataset(args),
        Command::Send(args) => send(args),
        Command::Listen(args) => listen(args),
        Command::Record(args) => record(args),
    }
}

fn capture(args: CaptureArgs) -> ExitCode {
    // Looked up before any socket is opened, so a wrong name fails at once.
    let drop_to = match args.user.as_deref().map(TargetUser::lookup).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    let output = match Output::parse_with(&args.out.output, &args.out.output_options()) {
        Ok(o) => o.with_delivery(args.out.delivery.delivery()),
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(2);
        }
    };
    let job = CaptureJob {
        iface: args.iface,
        filter: effective_filter(
            args.filter.as_deref(),
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
        output,
        packet: args.packet.options(),
        drop_to,
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        eprintln!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    let quiet = args.quiet;
    let outcome = job.run(&stop, &mut |line| {
        if !quiet {
            eprintln!("netpipe-fast: {line}");
        }
    });
    if let Some(e) = &outcome.error {
        eprintln!("netpipe-fast: {e}");
    }
    if outcome.started && !quiet {
        eprintln!("{}", outcome.summary);
        if let Some(report) = &outcome.sink_report {
            eprintln!("{report}");
        }
    }
    match outcome.error {
        Some(CaptureError::Output { error, .. }) if start_exit_code(&error).is_some() => {
            ExitCode::from(start_exit_code(&error).unwrap_or(8))
        }
        Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)),
        None => ExitCode::SUCCESS,
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
            eprintln!("netpipe-fast: dataset prepare: {e}");
            return ExitCode::from(2);
        }
    };
    match netpipe_fast::dataset::prepare::prepare(&config) {
        Ok(report) => {
            for p in &report.skipped_outputs {
                eprintln!(
                    "netpipe-fast: {}: matched an --input pattern but is this run's output; not read",
                    p.display()
                );
            }
            for (file, column) in &report.duplicate_headers {
                eprintln!(
                    "netpipe-fast: {}: column {column:?} appears twice in the header; the first is used",
                    file.display()
                );
            }
            for p in &report.problems {
                eprintln!("netpipe-fast: {p}");
            }
            let unlisted = report.rows_skipped - report.problems.len() as u64;
            if unlisted > 0 {
                eprintln!("netpipe-fast: {unlisted} more rows skipped (not listed)");
            }
            if args.show_summary == "1" {
                eprintln!("{}", report.summary(&config));
            }
            if report.rows_skipped > 0 {
                ExitCode::from(5)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("netpipe-fast: dataset prepare: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn send(args: netpipe_fast::cli::SendArgs) -> ExitCode {
    match netpipe_fast::tools::command::run_send(args, &mut |line| println!("{line}")) {
        Ok(code) => {
            if code == netpipe_fast::tools::send_exit::UNANSWERED {
                eprintln!("netpipe-fast: send: sent, but not every request was answered in time");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("netpipe-fast: send: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn listen(args: netpipe_fast::cli::ListenArgs) -> ExitCode {
    use netpipe_fast::tools::listen::{self, Proto};
    let cfg = match netpipe_fast::tools::command::listen_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netpipe-fast: listen: {e}");
            return ExitCode::from(e.code);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(&stop) {
        eprintln!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
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
        &mut |addr| {
            eprintln!("netpipe-fast: listening on {proto} {addr} (stops when {hook} exists)")
        },
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
            eprintln!("netpipe-fast: {}", summary.line(&cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netpipe-fast: listen: {e}");
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
        eprintln!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    let outcome = job.run(&stop);
    if let Some(e) = &outcome.error {
        eprintln!("netpipe-fast: {e}");
    }
    if outcome.started && !args.quiet {
        eprintln!("replay: {}", outcome.summary);
    }
    match outcome.error {
        Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)),
        None => ExitCode::SUCCESS,
    }
}

fn record(args: RecordArgs) -> ExitCode {
    use netpipe_fast::record::{antinex::AntinexConfig, file_stamp, RecordJob};
    use netpipe_fast::sink::{OutputOptions, RedisFormat};
    let antinex = match AntinexConfig::from_env(|k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netpipe-fast: {e}");
            return ExitCode::from(2);
        }
    };
    let stamp = file_stamp();
    let save_after = u64::try_from(args.save_after_num.max(1)).unwrap_or(1);
    let job = RecordJob {
        input: args.input,
        options: OutputOptions {
            redis_format: RedisFormat::Raw,
            queue: args.queue,
            exchange: args.exchange,
            routing_key: args.routing_key,
            ..OutputOptions::default()
        },
        save_after,
        stop_after: u64::try_from(args.stop_after_num).ok().filter(|&n| n > 0),
        stop_file: args.stop_file,
        csv_path: args
            .output_csv
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| args.ds_dir.join(format!("{}-{stamp}.csv", args.ds_name))),
        archive_path: args
            .archive_json
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| {
                args.ds_dir
                    .join(format!("packets-{}-{stamp}.json", args.ds_name))
            }),
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
        eprintln!("netpipe-fast: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    let outcome = job.run(&stop);
    if let Some((_, e)) = &outcome.error {
        eprintln!("netpipe-fast: {e}");
    }
    if !args.quiet {
        eprintln!("{}", outcome.summary());
    }
    ExitCode::from(outcome.exit_code())
}
