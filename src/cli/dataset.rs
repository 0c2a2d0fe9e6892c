//! `dataset prepare` (src/dataset/).

use super::{Job, Refusal};
use crate::exit;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `dataset` arguments.
#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// Which `dataset` subcommand.
    #[command(subcommand)]
    pub command: DatasetCommand,
}

/// `dataset` subcommands.
#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Merge recorded CSVs into a labelled full CSV and a numeric-only clean CSV, each with
    /// its metadata JSON (the original's prepare_dataset.py).
    #[command(after_help = exit::help_after(DATASET_PREPARE_HELP, exit::DATASET_HELP))]
    Prepare(DatasetPrepareArgs),
}

/// `dataset prepare` arguments.
#[derive(Args, Debug)]
pub struct DatasetPrepareArgs {
    /// Recorded CSVs: a glob pattern (`*`, `**`, `?`, `[..]`); repeat for more. Default:
    /// DS_GLOB_PATH, else DS_DIR/*/*.csv.
    #[arg(long = "input", value_name = "GLOB")]
    pub inputs: Vec<String>,

    /// Used when no --input is given.
    #[arg(
        long,
        env = "DS_GLOB_PATH",
        value_name = "GLOB",
        hide_env_values = true
    )]
    pub glob_path: Option<String>,

    /// Folder of recorded datasets, for the default pattern DS_DIR/*/*.csv.
    #[arg(
        long,
        env = "DS_DIR",
        default_value = "/opt/antinex/datasets",
        value_name = "DIR"
    )]
    pub ds_dir: PathBuf,

    /// Folder of the two CSVs when their paths are not given.
    #[arg(long, env = "OUTPUT_DIR", default_value = "/tmp", value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Full CSV [default: OUTPUT_DIR/fulldata_attack_scans.csv].
    #[arg(long, env = "FULLDATA_FILE", value_name = "FILE")]
    pub fulldata_file: Option<PathBuf>,

    /// Clean CSV [default: OUTPUT_DIR/cleaned_attack_scans.csv].
    #[arg(long, env = "CLEANED_FILE", value_name = "FILE")]
    pub cleaned_file: Option<PathBuf>,

    /// Label rows: the second label when the number is above N (a draw from 0..=100, or the
    /// --label-column value), else the first. Without it no label columns are added.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub label_above: Option<f64>,

    /// Take the label's number from this column instead of a seeded draw.
    #[arg(long, value_name = "COLUMN", requires = "label_above")]
    pub label_column: Option<String>,

    /// The two label names (below, above).
    #[arg(long, value_name = "BELOW,ABOVE", value_delimiter = ',',
          default_values_t = ["not_attack".to_owned(), "attack".to_owned()])]
    pub label_names: Vec<String>,

    /// The two label values (below, above).
    #[arg(long, value_name = "BELOW,ABOVE", value_delimiter = ',',
          allow_hyphen_values = true, default_values_t = [0i64, 1])]
    pub label_values: Vec<i64>,

    /// Seed of the label draw; the same inputs and seed give byte-identical CSVs. Default: from
    /// the clock (printed, and kept in the metadata).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Columns never used as features (repeat; replaces the default list).
    #[arg(long = "drop-column", value_name = "COLUMN",
          default_values_t = crate::dataset::prepare::DEFAULT_DROP_COLUMNS.map(String::from))]
    pub drop_columns: Vec<String>,

    /// Clean CSV: write this number into empty cells instead of dropping the row.
    #[arg(long, value_name = "NUMBER", allow_negative_numbers = true)]
    pub fill_missing: Option<String>,

    /// Do not print the summary at exit (SHOW_SUMMARY=0 does the same, as in the original).
    #[arg(short, long)]
    pub quiet: bool,

    /// The original's spelling of -q (0 silences the summary); kept for old scripts.
    #[arg(long, env = "SHOW_SUMMARY", default_value = "1", value_name = "0|1",
          value_parser = ["0", "1"], hide = true)]
    pub show_summary: String,
}

impl DatasetPrepareArgs {
    /// The library's configuration, defaults filled in as the original did.
    pub fn config(&self, clock_seed: u64) -> Result<crate::dataset::PrepareConfig, String> {
        if self.label_names.len() != 2 || self.label_values.len() != 2 {
            return Err(
                "--label-names and --label-values take two values each: BELOW,ABOVE".into(),
            );
        }
        let inputs = if !self.inputs.is_empty() {
            self.inputs.clone()
        } else if let Some(g) = self.glob_path.as_ref().filter(|g| !g.trim().is_empty()) {
            vec![g.clone()]
        } else {
            vec![format!("{}/*/*.csv", self.ds_dir.display())]
        };
        let label = self.label_above.map(|above| crate::dataset::LabelRule {
            above,
            column: self.label_column.clone(),
            names: [self.label_names[0].clone(), self.label_names[1].clone()],
            values: [self.label_values[0], self.label_values[1]],
        });
        Ok(crate::dataset::PrepareConfig {
            inputs,
            fulldata_file: self
                .fulldata_file
                .clone()
                .unwrap_or_else(|| self.output_dir.join("fulldata_attack_scans.csv")),
            cleaned_file: self
                .cleaned_file
                .clone()
                .unwrap_or_else(|| self.output_dir.join("cleaned_attack_scans.csv")),
            drop_columns: self.drop_columns.clone(),
            label,
            seed: self.seed.unwrap_or(clock_seed),
            fill_missing: self.fill_missing.clone(),
        })
    }
}

const DATASET_PREPARE_HELP: &str = "\
Columns of the full CSV: src_file, then every input column (first-seen order), then
label_value and label_name when --label-above is given. A row whose field count differs from
its file's header (or that is not UTF-8) is skipped and reported as FILE:LINE.

The clean CSV keeps a column when it is not dropped (--drop-column, label_name), some row has a
value in it, and every value in it is a decimal number (sign, digits, fraction, exponent); a
row with an empty cell in a kept column is left out (or filled: --fill-missing).
fulldata_metadata.json and cleaned_metadata.json are written beside the two CSVs.";

impl DatasetArgs {
    /// The job: the library's configuration (seeded from the clock when `--seed` is not
    /// given), or why the arguments cannot make one.
    pub fn into_job(self) -> Result<DatasetRun, Refusal> {
        let DatasetCommand::Prepare(args) = self.command;
        // Without --seed the draw still has to be reproducible afterwards: the seed is printed
        // and kept in the metadata.
        // Kept below 2^53 so the metadata's JSON number survives readers that use doubles.
        let clock_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_nanos() % (1u128 << 53)) as u64)
            .unwrap_or(0);
        let config = args.config(clock_seed).map_err(|e| {
            Refusal::new(
                exit::dataset::USAGE,
                format!("netpipe-fast: dataset prepare: {e}"),
            )
        })?;
        Ok(DatasetRun {
            config,
            summary: args.show_summary == "1" && !args.quiet,
        })
    }
}

/// `dataset prepare`, ready to run.
#[derive(Debug)]
pub struct DatasetRun {
    config: crate::dataset::PrepareConfig,
    /// Print the summary at the end.
    summary: bool,
}

impl Job for DatasetRun {
    fn run(self) -> u8 {
        let config = self.config;
        match crate::dataset::prepare::prepare(&config) {
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
                if self.summary {
                    say!("{}", report.summary(&config));
                }
                if report.rows_skipped > 0 {
                    exit::dataset::ROWS_SKIPPED
                } else {
                    exit::SUCCESS
                }
            }
            Err(e) => {
                say!("netpipe-fast: dataset prepare: {e}");
                e.exit_code()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn prepare_args(args: &[&str]) -> DatasetPrepareArgs {
        let cli =
            Cli::try_parse_from([&["netpipe-fast", "dataset", "prepare"], args].concat()).unwrap();
        let Command::Dataset(DatasetArgs {
            command: DatasetCommand::Prepare(a),
        }) = cli.command
        else {
            panic!("not dataset prepare")
        };
        a
    }

    #[test]
    fn prepare_defaults_follow_the_original() {
        let a = prepare_args(&["--ds-dir", "/data/ds", "--output-dir", "/out"]);
        let c = a.config(9).unwrap();
        assert_eq!(c.inputs, ["/data/ds/*/*.csv"]);
        assert_eq!(
            c.fulldata_file,
            PathBuf::from("/out/fulldata_attack_scans.csv")
        );
        assert_eq!(
            c.cleaned_file,
            PathBuf::from("/out/cleaned_attack_scans.csv")
        );
        assert_eq!(c.drop_columns.len(), 10);
        assert_eq!(c.label, None);
        assert_eq!(c.seed, 9);
    }

    #[test]
    fn prepare_label_flags() {
        let a = prepare_args(&[
            "--input",
            "a/*.csv",
            "--input",
            "b.csv",
            "--label-above",
            "85",
            "--label-names",
            "ok,bad",
            "--label-values",
            "-1,1",
            "--seed",
            "3",
        ]);
        let c = a.config(0).unwrap();
        assert_eq!(c.inputs, ["a/*.csv", "b.csv"]);
        let rule = c.label.unwrap();
        assert_eq!(rule.above, 85.0);
        assert_eq!(rule.names, ["ok".to_owned(), "bad".to_owned()]);
        assert_eq!(rule.values, [-1, 1]);
        assert_eq!(c.seed, 3);
        let three = prepare_args(&["--label-above", "1", "--label-names", "a,b,c"]);
        assert!(three.config(0).is_err());
    }
}
