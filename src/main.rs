//! `netpipe-fast`: flags, then one library call, then an exit code.

use clap::Parser;
use netpipe_fast::cli::{Cli, Command};
use netpipe_fast::pipeline::read::{JobError, ReadJob};
use netpipe_fast::sink::{start_exit_code, Output};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Read(args) => {
            let output = match Output::parse_with(&args.output, &args.output_options()) {
                Ok(o) => o,
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
    }
}
