//! `netpipe-fast`: flags, then one job, then an exit code. Each command's arguments become a
//! job in its own file under src/cli/ (`into_job()`); this file only parses, dispatches and
//! exits.

use clap::{CommandFactory, FromArgMatches};
use netpipe_fast::cli::{with_default_command, Cli, Command, Job, Refusal};
use netpipe_fast::exit;
use std::io::Write;
use std::process::ExitCode;

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
    // The command tree is built once (building it is a good part of start-up: every
    // subcommand's arguments, help and value parsers) and serves both --config and the parse.
    let command = Cli::command();
    let args = match netpipe_fast::config::apply(&command, args) {
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
    // What `Cli::parse_from` does, on the tree already built: usage errors, --help and
    // --version print and exit here as they would there.
    let mut matches = command.get_matches_from(args);
    let cli = Cli::from_arg_matches_mut(&mut matches)
        .unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    ExitCode::from(match cli.command {
        Command::Config(args) => run(args.into_job()),
        Command::Generate(args) => run(args.into_job()),
        Command::Read(args) => run(args.into_job()),
        Command::Capture(args) => run(args.into_job()),
        Command::Replay(args) => run(args.into_job()),
        Command::Dataset(args) => run(args.into_job()),
        Command::Send(args) => run(args.into_job()),
        Command::Listen(args) => run(args.into_job()),
        Command::Record(args) => run(args.into_job()),
    })
}

/// Runs a job to its exit code, or says why there is none and gives the refusal's code.
fn run(job: Result<impl Job, Refusal>) -> u8 {
    match job {
        Ok(job) => job.run(),
        Err(refusal) => {
            say!("{}", refusal.line);
            refusal.code
        }
    }
}
