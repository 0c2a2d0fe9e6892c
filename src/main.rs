//! `netpipe-fast`: flags, then one library call, then an exit code.

use clap::Parser;
use netpipe_fast::cli::{CaptureArgs, Cli, Command};
use netpipe_fast::pipeline::capture::{
    effective_filter, stop_on_signals, CaptureError, CaptureJob,
};
use netpipe_fast::pipeline::read::{JobError, ReadJob};
use netpipe_fast::sink::{start_exit_code, Output};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    }
}

fn capture(args: CaptureArgs) -> ExitCode {
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
