//! `record`: packet messages into the recorder's CSV dataset and JSON archive.

use super::shared::stop_flag;
use super::{password_from, Job, RedisModeArg, Refusal};
use crate::broker::Secret;
use crate::exit;
use crate::record::{antinex::AntinexConfig, file_stamp, output_paths, RecordJob};
use crate::sink::{OutputOptions, RedisFormat, SslOptions};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `record` arguments.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where messages come from: "redis://[:PASSWORD@]HOST[:PORT][/DB]" (the list --queue;
    /// kombu envelopes or packet JSON, told apart per message), "amqp://USER:PASS@HOST[:PORT]
    /// [/VHOST]" (the queue --queue, bound to --exchange with --routing-key), "file:PATH"
    /// (JSON lines) or "-" (JSON lines on stdin). A password on the command line is visible
    /// to every local user (ps): give the URL in RECORD_INPUT_URL or the password in
    /// --password-file instead.
    #[arg(
        long,
        env = "RECORD_INPUT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub input: String,

    /// The broker password: the first line of FILE (keep it mode 0600). Replaces any password
    /// in the URL; for redis:// and amqp:// inputs only.
    #[arg(long, env = "RECORD_INPUT_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// TLS settings for rediss://, amqps:// and rabbitmq-stream+tls:// inputs, as `read`
    /// takes them: a JSON object with kombu's names ({"ca_certs": "ca.pem", "certfile":
    /// "client.pem", "keyfile": "client.key", "cert_reqs": "CERT_REQUIRED"}). Without ca_certs
    /// the system's CAs are trusted. Non-empty turns TLS on for redis:// and amqp:// too.
    #[arg(
        long,
        env = "FORWARD_SSL_OPTIONS",
        default_value = "{}",
        value_parser = SslOptions::parse_json,
        value_name = "JSON"
    )]
    pub ssl_options: SslOptions,

    /// The queue (Redis list or RabbitMQ queue) to consume.
    #[arg(
        long,
        env = "FORWARD_QUEUE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub queue: String,

    /// The exchange the RabbitMQ queue is bound to.
    #[arg(
        long,
        env = "FORWARD_EXCHANGE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub exchange: String,

    /// The routing key of the RabbitMQ binding.
    #[arg(
        long,
        env = "FORWARD_ROUTING_KEY",
        default_value = "NEW_PACKETS",
        value_name = "KEY"
    )]
    pub routing_key: String,

    /// redis:// input: "list" (the list --queue, reliable fetch) or "stream" (the stream
    /// --queue through the consumer group --group as --consumer: XREADGROUP, XACK after each
    /// snapshot, XAUTOCLAIM of a dead recorder's entries).
    #[arg(long, value_enum, default_value_t = RedisModeArg::List, value_name = "MODE")]
    pub redis_mode: RedisModeArg,

    /// Stream mode: the consumer group (created with MKSTREAM if missing). Recorders in one
    /// group share the stream; each group gets every entry.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,

    /// Stream inputs: the name this recorder reads as; keep it across restarts. Redis stream
    /// mode: its consumer name in --group (required; unique per running recorder), so the
    /// entries it read but had not saved are read again first. rabbitmq-stream://: the name
    /// its offset is stored under in the broker, so a restart resumes after it [default:
    /// netpipe-fast-record-<queue>]. --reader-name is another name for this option.
    #[arg(long, visible_alias = "reader-name", value_name = "NAME")]
    pub consumer: Option<String>,

    /// Stream mode: entries another consumer of the group has held this long without
    /// acknowledging them are taken over (XAUTOCLAIM), at start and then this often.
    #[arg(long, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(100..))]
    pub claim_idle_ms: u64,

    /// Stream mode: where a group this recorder creates starts: "0" (every entry already in
    /// the stream) or "$" (only entries added from now on). An existing group is not moved.
    #[arg(long, default_value = "0", value_name = "ID",
          value_parser = clap::builder::PossibleValuesParser::new(["0", "$"]))]
    pub group_start: String,

    /// Save a snapshot (CSV rows, archive, state) every N messages; messages are acknowledged
    /// only once in a snapshot.
    #[arg(long, env = "SAVE_AFTER_NUM", default_value_t = 100, value_name = "N")]
    pub save_after_num: i64,

    /// Stop after N messages (-1: never).
    #[arg(long, env = "STOP_AFTER_NUM", default_value_t = -1, value_name = "N",
          allow_hyphen_values = true)]
    pub stop_after_num: i64,

    /// Stop when this file exists (and is owned by this user or root); the message in hand
    /// goes back to the queue [default: <OUTPUT_CSV>.stop, beside the CSV].
    #[arg(long, env = "STOP_FILE", value_name = "PATH")]
    pub stop_file: Option<PathBuf>,

    /// Dataset name (file names and the archive's "dataset").
    #[arg(long, env = "DS_NAME", default_value = "netdata", value_name = "NAME")]
    pub ds_name: String,

    /// Folder of the default file names.
    #[arg(long, env = "DS_DIR", default_value = "/tmp", value_name = "DIR")]
    pub ds_dir: PathBuf,

    /// The CSV (default: beside ARCHIVE_JSON, named after it without "packets-", when that is
    /// given; else DS_DIR/DS_NAME-%Y-%m-%d-%H-%M-%S.csv). An existing one with its .state file
    /// beside it is resumed.
    #[arg(long, env = "OUTPUT_CSV", value_name = "PATH")]
    pub output_csv: Option<PathBuf>,

    /// The JSON archive (default: packets-<CSV name>.json beside OUTPUT_CSV when that is
    /// given, so the same command resumes; else DS_DIR/packets-DS_NAME-%Y-%m-%d-%H-%M-%S.json).
    #[arg(long, env = "ARCHIVE_JSON", value_name = "PATH")]
    pub archive_json: Option<PathBuf>,

    /// Reject a line or message longer than this many bytes (counted, its position and length
    /// in <csv>.rejected.jsonl, the bytes not kept).
    #[arg(long, default_value_t = crate::record::input::DEFAULT_MAX_LINE_BYTES,
          value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=(1u64 << 32)))]
    pub max_line_bytes: u64,

    /// At most this many CSV columns besides idx and the ten <layer>_id columns; a message that
    /// would add more is rejected and counted (so a flood of distinct keys cannot make every
    /// snapshot rewrite an ever wider CSV).
    #[arg(long, default_value_t = crate::record::DEFAULT_MAX_COLUMNS, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_columns: usize,

    /// Prefix text cells that start with = + - @ (or a tab or CR) with ' so that a
    /// spreadsheet shows them instead of running them as formulas (numbers stay as they are).
    #[arg(long)]
    pub csv_safe: bool,

    /// Also save a snapshot when no message came for this many milliseconds (0: only every
    /// SAVE_AFTER_NUM messages, as the original).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub idle_save_ms: u64,

    /// RabbitMQ prefetch window (default: SAVE_AFTER_NUM, at most 65535).
    #[arg(long, value_name = "N")]
    pub prefetch: Option<u16>,

    /// The input was published with `--partitions N`: its messages are in N streams or
    /// queues named <queue>-0 .. <queue>-(N-1) (N = 1: just <queue>).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,

    /// With --partitions: which partitions this recorder reads, as a list of numbers and
    /// ranges ("0,2", "0-3", "1,4-6") [default: all]. Several recorders (or groups) can take
    /// disjoint sets. Redis streams: one XREADGROUP over the selected streams; RabbitMQ
    /// streams: one subscription per partition, offsets stored per partition. Rows of several
    /// partitions interleave in the CSV (each partition's rows stay in its order).
    #[arg(long, value_name = "LIST")]
    pub partition: Option<String>,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

impl RecordArgs {
    /// `--partitions` and `--partition` as the partitions to read.
    pub fn partitions(&self) -> Result<crate::record::Partitions, String> {
        crate::record::Partitions::parse(self.partitions, self.partition.as_deref())
    }

    /// `--redis-mode stream` with its group settings; `None` in list mode. Fails when the
    /// mode is channel or a name is missing.
    pub fn redis_group(&self) -> Result<Option<crate::sink::RedisGroup>, String> {
        match self.redis_mode {
            RedisModeArg::List => {
                let redis =
                    self.input.starts_with("redis://") || self.input.starts_with("rediss://");
                // --consumer also names a RabbitMQ stream reader; a Redis list has none.
                if self.group.is_some() || (redis && self.consumer.is_some()) {
                    return Err("--group and --consumer need --redis-mode stream".into());
                }
                Ok(None)
            }
            RedisModeArg::Channel => Err(
                "record cannot read a Redis channel (PUBLISH keeps nothing to acknowledge); \
                 use --redis-mode stream or list"
                    .into(),
            ),
            RedisModeArg::Stream => {
                let named = |v: &Option<String>, flag: &str| match v.as_deref() {
                    Some(n) if !n.is_empty() => Ok(n.to_string()),
                    _ => Err(format!("--redis-mode stream needs {flag} NAME")),
                };
                Ok(Some(crate::sink::RedisGroup {
                    group: named(&self.group, "--group")?,
                    consumer: named(&self.consumer, "--consumer")?,
                    claim_idle: Duration::from_millis(self.claim_idle_ms),
                    start: self.group_start.clone(),
                }))
            }
        }
    }

    /// The password in `--password-file`, when one is named; fails when it cannot be read.
    pub fn input_password(&self) -> Result<Option<Secret>, String> {
        password_from(self.password_file.as_deref())
    }
}

impl RecordArgs {
    /// The job: the input with its settings, the files to write and when to save and stop,
    /// or why the arguments (or the AntiNex environment) cannot make one.
    pub fn into_job(self) -> Result<RecordRun, Refusal> {
        let usage = |e: String| Refusal::new(exit::USAGE, format!("netpipe-fast: {e}"));
        let antinex =
            AntinexConfig::from_env(|k| std::env::var(k).ok()).map_err(|e| usage(e.to_string()))?;
        let password = self.input_password().map_err(usage)?;
        let redis_group = self.redis_group().map_err(usage)?;
        let partitions = self.partitions().map_err(usage)?;
        let (csv_path, archive_path) = output_paths(
            &self.ds_dir,
            &self.ds_name,
            self.output_csv.as_deref(),
            self.archive_json.as_deref(),
            &file_stamp(),
        );
        let save_after = u64::try_from(self.save_after_num.max(1)).unwrap_or(1);
        let job = RecordJob {
            input: self.input,
            options: OutputOptions {
                redis_format: RedisFormat::Raw,
                queue: self.queue,
                exchange: self.exchange,
                routing_key: self.routing_key,
                ssl: self.ssl_options,
                password,
                redis_mode: self.redis_mode.into(),
                redis_group,
                stream: crate::sink::StreamOptions {
                    // --consumer (alias --reader-name) names the reader of both stream kinds.
                    reader_name: self.consumer.clone(),
                    ..Default::default()
                },
                ..OutputOptions::default()
            },
            save_after,
            stop_after: u64::try_from(self.stop_after_num).ok().filter(|&n| n > 0),
            stop_file: self
                .stop_file
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| crate::record::csv::suffixed(&csv_path, ".stop")),
            csv_path,
            archive_path,
            max_line_bytes: self.max_line_bytes,
            max_columns: self.max_columns,
            csv_safe: self.csv_safe,
            partitions,
            dataset: self.ds_name,
            idle_save: (self.idle_save_ms > 0)
                .then(|| std::time::Duration::from_millis(self.idle_save_ms)),
            prefetch: self
                .prefetch
                .unwrap_or_else(|| u16::try_from(save_after).unwrap_or(u16::MAX)),
            antinex,
            abort_after_commit: std::env::var("NETPIPE_RECORD_ABORT_AFTER_COMMIT")
                .ok()
                .and_then(|v| v.parse().ok()),
        };
        Ok(RecordRun {
            job: Box::new(job),
            quiet: self.quiet,
        })
    }
}

/// `record`, ready to run.
#[derive(Debug)]
pub struct RecordRun {
    job: Box<RecordJob>,
    quiet: bool,
}

impl Job for RecordRun {
    fn run(self) -> u8 {
        let stop = match stop_flag() {
            Ok(stop) => stop,
            Err(code) => return code,
        };
        let outcome = self.job.run(&stop);
        if let Some((_, e)) = &outcome.error {
            say!("netpipe-fast: {e}");
        }
        if !self.quiet {
            say!("{}", outcome.summary());
        }
        outcome.exit_code()
    }
}

/// Exit codes and files of `record`, shown by `record --help`.
pub(super) const RECORD_HELP: &str = "\
Files: the CSV, the archive, <csv>.state (what is committed; lets a restart resume without
duplicates), <csv>.rejected.jsonl (messages that are not packet messages, with position and
reason) and the stop file <csv>.stop. New files are created mode 0600 without following
symbolic links; temporaries get random names beside their target. The same command resumes:
with --output-csv alone the archive name comes from the CSV's. A file input is resumed only if
it is the same file (path, device, inode, not shorter); stdin is always read from its start.
AntiNex predictions: ANTINEX_PUBLISH_ENABLED=1 and the other ANTINEX_* variables.

Spreadsheets: a cell starting with = + - @ is a formula to Excel or LibreOffice (CSV
injection). Packet fields can hold such text (DNS names, payload text): open the CSV in a
spreadsheet only with --csv-safe, which writes ' before such text cells. Numbers (-1, +3.5)
are never prefixed; --csv-safe changes the text, so the CSV then differs from the original's.";
