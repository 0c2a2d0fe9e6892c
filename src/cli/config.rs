//! `config check` and the hidden `generate` (man pages, shell completions).

use super::{Cli, Job, Refusal};
use crate::exit;
use clap::{Args, CommandFactory, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// `config` arguments.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Which `config` subcommand.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `config` subcommands.
// A doc comment on a variant's field would become clap's help for that argument and
// change `--help`; each variant's own doc names its argument.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check FILE: TOML syntax, every key (an option of some command, or of its section's
    /// command), every value's type and range, and that the file can be trusted. Exit 0 when
    /// it can be used, 2 with one line per problem (FILE:LINE: key "KEY": why) otherwise.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `generate` arguments.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Which `generate` subcommand.
    #[command(subcommand)]
    pub command: GenerateCommand,
}

/// `generate` subcommands.
// A doc comment on a variant's field would become clap's help for that argument and
// change `--help`; each variant's own doc names its argument.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Man pages (section 1) into DIR: netpipe-fast.1 and one per subcommand
    /// (netpipe-fast-read.1, netpipe-fast-dataset-prepare.1, ...).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

impl ConfigArgs {
    /// The job: the file to check.
    pub fn into_job(self) -> Result<ConfigRun, Refusal> {
        let ConfigCommand::Check { file } = self.command;
        Ok(ConfigRun { file })
    }
}

/// `config check FILE`, ready to run.
#[derive(Debug)]
pub struct ConfigRun {
    file: PathBuf,
}

impl Job for ConfigRun {
    fn run(self) -> u8 {
        let file = self.file;
        match crate::config::check(&file, &Cli::command()) {
            Ok((settings, warnings)) => {
                for w in warnings {
                    say!("netpipe-fast: warning: {w}");
                }
                let _ = writeln!(
                    std::io::stdout(),
                    "{}: ok ({settings} settings)",
                    file.display()
                );
                exit::SUCCESS
            }
            Err(e) => {
                say!("{e}");
                exit::USAGE
            }
        }
    }
}

impl GenerateArgs {
    /// The job: what to generate.
    pub fn into_job(self) -> Result<GenerateRun, Refusal> {
        Ok(GenerateRun {
            command: self.command,
        })
    }
}

/// `generate man DIR` / `generate completions SHELL`, ready to run: from the same clap
/// definition the program parses with, so the pages and completions cannot drift from the
/// options.
#[derive(Debug)]
pub struct GenerateRun {
    command: GenerateCommand,
}

impl Job for GenerateRun {
    fn run(self) -> u8 {
        let mut cmd = Cli::command();
        match self.command {
            GenerateCommand::Man { dir } => match write_man_pages(cmd, &dir) {
                Ok(n) => {
                    say!("netpipe-fast: {n} man pages written to {}", dir.display());
                    exit::SUCCESS
                }
                Err(e) => {
                    say!("netpipe-fast: generate man {}: {e}", dir.display());
                    exit::OUTPUT_FAILED
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
                    // (tests/it/operations.rs completes `capture --when-full`).
                    let text = String::from_utf8_lossy(&out).replace(
                        &"netpipe-fast".replace('-', "__subcmd__"),
                        &"netpipe-fast".replace('-', "__"),
                    );
                    out = text.into_bytes();
                }
                let mut stdout = std::io::stdout().lock();
                // A reader that went away (`| head`) has what it wanted: success either way.
                let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
                exit::SUCCESS
            }
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
