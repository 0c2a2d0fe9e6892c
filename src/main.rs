//! `netpipe-fast`: flags, then one library call, then an exit code.

use clap::Parser;
use netpipe_fast::cli::{Cli, Command};
use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::Output;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Read(args) => {
            let output = match Output::parse(&args.output) {
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
            }
            match outcome.error {
                Some(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)),
                None => ExitCode::SUCCESS,
            }
        }
    }
}
