//! `netpipe-fast record`: packet messages from a broker, a JSON-lines file or stdin into the
//! original recorder's CSV dataset and JSON archive (REFERENCE section 4), at-least-once and
//! in linear time, with optional AntiNex predictions.
//!
//! Data path: input ([`input`]) → envelope unwrapped (kombu's, body base64 or JSON text, or the
//! packet JSON itself) → [`flatten`] into a pending row and an archive entry → every
//! SAVE_AFTER_NUM messages a snapshot ([`csv`]) → the input acknowledges → AntiNex
//! ([`antinex`]). Messages that are not packet messages are rejected: counted, reported with
//! their position, and saved in `<csv>.rejected.jsonl` with the snapshot, so they too are
//! acknowledged only once saved.

pub mod amqp_input;
pub mod antinex;
pub mod csv;
pub mod flatten;
pub mod input;
pub mod input_common;
pub mod redis_stream;
pub mod stream_input;

use crate::broker::StartError;
use crate::sink::OutputOptions;
use antinex::{AntinexClient, AntinexConfig};
use csv::{Rejection, Store};
use flatten::{flatten_message, Columns, Rows, ALWAYS_COLUMNS};
use input_common::{Fetch, Input};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A snapshot is taken early when the pending rows or archive entries reach this size.
const MAX_PENDING_BYTES: usize = 1 << 30;
/// Buffers that grew past this for one big message or snapshot are shrunk back to it after
/// use, so a few large messages do not hold their peak memory for the rest of the run.
const KEEP_BUFFER_BYTES: usize = 4 << 20;
/// Default of `--max-columns`.
pub const DEFAULT_MAX_COLUMNS: usize = 4096;

/// Exit code: the CSV, archive or state cannot be opened, resumed or written (also: a state
/// file whose CSV is missing, or one not owned by this user).
pub const EXIT_FILES: u8 = crate::exit::RECORD_FILES;
/// Exit code: finished, but some messages were rejected as bad input.
pub const EXIT_REJECTED: u8 = crate::exit::record::REJECTED;
/// Exit code: the input failed while running (connection lost, read error).
pub const EXIT_INPUT_LOST: u8 = crate::exit::INPUT_LOST;

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordJob {
    /// `redis://...`, `rediss://...`, `amqp://...`, `amqps://...`, `rabbitmq-stream://...`
    /// (or `+tls`), `file:PATH` or `-` (stdin).
    pub input: String,
    /// Broker settings for the input (queue, exchange, TLS, password, Redis mode and group,
    /// stream reader name), shared with the publishing side.
    pub options: OutputOptions,
    /// Messages per snapshot (SAVE_AFTER_NUM); 0 is taken as 1.
    pub save_after: u64,
    /// Stop after this many messages read (STOP_AFTER_NUM); `None`: never.
    pub stop_after: Option<u64>,
    /// Recording stops (after a last snapshot) once this file exists; it must not exist at
    /// start.
    pub stop_file: PathBuf,
    /// The dataset's name (DS_NAME), written into the archive.
    pub dataset: String,
    /// The CSV; its state and rejected-messages files are named after it (`<csv>.state`,
    /// `<csv>.rejected.jsonl`).
    pub csv_path: PathBuf,
    /// The JSON archive of every recorded packet.
    pub archive_path: PathBuf,
    /// A snapshot also when nothing arrived for this long and messages are pending.
    pub idle_save: Option<Duration>,
    /// AMQP prefetch window: messages the broker hands over before any acknowledgement
    /// (other inputs ignore it).
    pub prefetch: u16,
    /// AntiNex predictions after each snapshot; `None`: off.
    pub antinex: Option<AntinexConfig>,
    /// Test hook (NETPIPE_RECORD_ABORT_AFTER_COMMIT=N): abort the process right after the
    /// N-th snapshot is committed and before its messages are acknowledged, to show that a
    /// restart neither loses nor duplicates them.
    pub abort_after_commit: Option<u64>,
    /// A longer line or message is rejected without being kept (`--max-line-bytes`).
    pub max_line_bytes: u64,
    /// The CSV never gets more columns than this besides `idx` (`--max-columns`): a message
    /// that would add more is rejected, so a flood of distinct keys cannot make every
    /// snapshot rewrite an ever wider CSV.
    pub max_columns: usize,
    /// `--csv-safe`: text cells starting with `= + - @` (or tab, CR) get a `'` first.
    pub csv_safe: bool,
    /// `--partitions N --partition LIST`: which of the input's partitions to read.
    pub partitions: Partitions,
}

/// The partitions a recorder reads: the publisher with `--partitions N` writes to
/// `<queue>-0 .. <queue>-(N-1)` (N = 1: to `<queue>` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    /// How many partitions the publisher writes (`--partitions`); at least 1.
    pub count: u32,
    /// Ascending, no duplicates, each below `count`.
    pub selected: Vec<u32>,
}

impl Default for Partitions {
    fn default() -> Self {
        Partitions {
            count: 1,
            selected: vec![0],
        }
    }
}

impl Partitions {
    /// `count` partitions, of which `list` ("0,2", "0-3", "1,4-6"; None: all) are read.
    pub fn parse(count: u32, list: Option<&str>) -> Result<Partitions, String> {
        if count == 0 {
            return Err("--partitions must be at least 1".into());
        }
        let Some(list) = list else {
            return Ok(Partitions {
                count,
                selected: (0..count).collect(),
            });
        };
        let bad = |why: String| format!("--partition \"{list}\": {why}");
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("\"{}\" is not a partition number", t.trim())))
        };
        let mut selected = Vec::new();
        for item in list.split(',') {
            let (from, to) = match item.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(item)?;
                    (n, n)
                }
            };
            if from > to {
                return Err(bad(format!("range {from}-{to} runs backwards")));
            }
            if to >= count {
                return Err(bad(format!(
                    "partition {to} does not exist with --partitions {count} (0 to {})",
                    count - 1
                )));
            }
            selected.extend(from..=to);
        }
        selected.sort_unstable();
        selected.dedup();
        Ok(Partitions { count, selected })
    }

    /// The names of the selected partitions of `queue`.
    pub fn names(&self, queue: &str) -> Vec<String> {
        if self.count == 1 {
            return vec![queue.to_string()];
        }
        self.selected
            .iter()
            .map(|i| format!("{queue}-{i}"))
            .collect()
    }
}

/// Why the recorder stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A file or stdin ended.
    EndOfInput,
    /// The stop file appeared.
    StopFile,
    /// STOP_AFTER_NUM messages were read.
    StopAfter,
    /// The `stop` flag was set (SIGINT/SIGTERM in the program).
    Signal,
    /// The input or the files failed; [`Outcome::error`] says how.
    Failed,
}

/// The run's outcome: counters for the summary and an error if it failed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages read from the input (rejected ones included).
    pub read: u64,
    /// Messages that became a CSV row.
    pub recorded: u64,
    /// Messages rejected as bad input (kept in the rejected-messages file).
    pub rejected: u64,
    /// Of the rejected: lines or messages over `--max-line-bytes`.
    pub rejected_too_long: u64,
    /// Of the rejected: messages that would have added columns past `--max-columns`.
    pub rejected_columns: u64,
    /// Whether the CSV was opened (else the summary has no row count to give).
    pub store_opened: bool,
    /// Packet messages without any field (undecodable frames): no row, kept with the
    /// rejected messages, not an error.
    pub empty: u64,
    /// Messages skipped because an earlier run had already recorded them (redeliveries).
    pub skipped_duplicates: u64,
    /// Snapshots committed by this run.
    pub snapshots: u64,
    /// Times the whole CSV was rewritten because a snapshot brought new columns.
    pub csv_rewrites: u64,
    /// Rows in the CSV at the end, earlier runs' included.
    pub rows_total: u64,
    /// Columns in the CSV besides `idx`.
    pub columns: usize,
    /// Whether an earlier recording was resumed (its state file found).
    pub resumed: bool,
    /// Whether the message in hand when the stop file appeared went back to its queue.
    pub given_back: bool,
    /// Why the run stopped; `None` when it ended before reading (the stop file existed, or
    /// the files or the input could not be opened).
    pub stop: Option<StopReason>,
    /// AntiNex job counts, when predictions were on.
    pub antinex: Option<antinex::AntinexCounters>,
    /// The exit code ([`crate::exit`]) and message of a failure.
    pub error: Option<(u8, String)>,
    /// The CSV recorded into.
    pub csv_path: PathBuf,
    /// The JSON archive recorded into.
    pub archive_path: PathBuf,
    /// Where rejected and empty messages are kept (`<csv>.rejected.jsonl`).
    pub rejected_path: PathBuf,
    /// The first rejection, `position: reason`, for the summary.
    pub first_rejection: Option<String>,
}

impl Outcome {
    /// The process exit code: the failure's, else [`EXIT_REJECTED`] when any message was
    /// rejected, else 0.
    pub fn exit_code(&self) -> u8 {
        match &self.error {
            Some((code, _)) => *code,
            None if self.rejected > 0 => EXIT_REJECTED,
            None => crate::exit::SUCCESS,
        }
    }

    /// The closing summary line (stderr): counts, files, and why the run stopped.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "record: {} message(s) read, {} recorded, {} rejected",
            self.read, self.recorded, self.rejected,
        );
        if self.rejected_too_long + self.rejected_columns > 0 {
            s.push_str(&format!(
                " ({} over --max-line-bytes, {} past --max-columns)",
                self.rejected_too_long, self.rejected_columns
            ));
        }
        s.push_str(&format!(
            ", {} without fields, {} skipped as already recorded; {} snapshot(s), {} CSV \
             rewrite(s) for new columns; ",
            self.empty, self.skipped_duplicates, self.snapshots, self.csv_rewrites,
        ));
        if self.store_opened {
            s.push_str(&format!(
                "CSV {} has {} row(s) and {} column(s){}",
                self.csv_path.display(),
                self.rows_total,
                self.columns + 1,
                if self.resumed { " (resumed)" } else { "" },
            ));
        } else {
            s.push_str(&format!("CSV {} not opened", self.csv_path.display()));
        }
        s.push_str(&format!("; archive {}", self.archive_path.display()));
        if self.rejected + self.empty > 0 {
            s.push_str(&format!(
                "; rejected and empty messages in {} (first rejected: {})",
                self.rejected_path.display(),
                self.first_rejection.as_deref().unwrap_or("none")
            ));
        }
        if let Some(a) = &self.antinex {
            s.push_str(&format!(
                "; antinex: {} job(s) sent ({} rows), {} failed, {} login(s)",
                a.jobs_sent, a.rows_sent, a.jobs_failed, a.logins
            ));
        }
        let why = match self.stop {
            Some(StopReason::EndOfInput) => "end of input",
            Some(StopReason::StopFile) if self.given_back => {
                "stop file found (the message in hand went back to the queue)"
            }
            Some(StopReason::StopFile) => "stop file found",
            Some(StopReason::StopAfter) => "STOP_AFTER_NUM reached",
            Some(StopReason::Signal) => "signal",
            Some(StopReason::Failed) | None => "error",
        };
        s.push_str(&format!("; stopped: {why}"));
        s
    }
}

/// One line on stderr, prefixed.
pub(crate) fn log(args: std::fmt::Arguments) {
    eprintln!("netpipe-fast record: {args}");
}

/// `%Y-%m-%d %H:%M:%S`, UTC, now.
pub(crate) fn now_text() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    String::from_utf8_lossy(&crate::time::format_created(secs)).into_owned()
}

/// `-%Y-%m-%d-%H-%M-%S` as the original named its files (UTC).
pub fn file_stamp() -> String {
    now_text().replace([' ', ':'], "-")
}

/// The CSV and archive paths. Given names are kept; a missing one is made from the other
/// (archive `packets-<csv stem>.json` beside the CSV, CSV `<archive stem without packets->.csv`
/// beside the archive), so that running the same command again resumes the same recording;
/// with neither, both are new names in `ds_dir` stamped with `stamp` (the original's).
pub fn output_paths(
    ds_dir: &std::path::Path,
    ds_name: &str,
    csv: Option<&std::path::Path>,
    archive: Option<&std::path::Path>,
    stamp: &str,
) -> (PathBuf, PathBuf) {
    let csv = csv.filter(|p| !p.as_os_str().is_empty());
    let archive = archive.filter(|p| !p.as_os_str().is_empty());
    let stem = |p: &std::path::Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match (csv, archive) {
        (Some(c), Some(a)) => (c.to_path_buf(), a.to_path_buf()),
        (Some(c), None) => {
            let a = c.with_file_name(format!("packets-{}.json", stem(c)));
            (c.to_path_buf(), a)
        }
        (None, Some(a)) => {
            let s = stem(a);
            let name = s.strip_prefix("packets-").unwrap_or(&s);
            (a.with_file_name(format!("{name}.csv")), a.to_path_buf())
        }
        (None, None) => (
            ds_dir.join(format!("{ds_name}-{stamp}.csv")),
            ds_dir.join(format!("packets-{ds_name}-{stamp}.json")),
        ),
    }
}

/// The packet JSON inside a message: kombu's envelope (body base64 when
/// `properties.body_encoding` says so, else the JSON text itself), or the message itself.
pub fn unwrap_envelope<'a>(raw: &'a [u8], body: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    // Our own messages start with {"data": skip the envelope parse for them.
    let start = raw
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if raw[start..].starts_with(b"{\"data\"") {
        return Ok(raw);
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'x> {
        #[serde(borrow)]
        body: Option<&'x serde_json::value::RawValue>,
        #[serde(default)]
        properties: Option<Properties>,
        #[serde(default)]
        data: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Properties {
        #[serde(default)]
        body_encoding: Option<String>,
    }
    let env: Envelope = match serde_json::from_slice(raw) {
        Ok(e) => e,
        // Not JSON at all: let the flattener report it.
        Err(_) => return Ok(raw),
    };
    let (Some(b), None) = (env.body, env.data) else {
        return Ok(raw);
    };
    let text: String = match serde_json::from_str::<serde_json::Value>(b.get()) {
        Ok(serde_json::Value::String(s)) => s,
        // A body that is an object already.
        Ok(serde_json::Value::Object(_)) => {
            body.clear();
            body.extend_from_slice(b.get().as_bytes());
            return Ok(body);
        }
        _ => return Err("kombu envelope with a \"body\" that is neither text nor object".into()),
    };
    body.clear();
    let base64 = env
        .properties
        .and_then(|p| p.body_encoding)
        .is_some_and(|e| e == "base64");
    if base64 {
        base64_decode(text.as_bytes(), body)
            .ok_or_else(|| "kombu envelope: body is not valid base64".to_string())?;
    } else {
        body.extend_from_slice(text.as_bytes());
    }
    Ok(body)
}

/// Standard base64 (padding optional, no line breaks) appended to `out`; `None` (and `out`
/// as it was) when `input` is not base64.
pub fn base64_decode(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    // kombu pads; other writers may not. Stray low bits in the last symbol are accepted, as
    // Python's base64.b64decode does.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let start = out.len();
    out.resize(start + base64::decoded_len_estimate(input.len()), 0);
    match LENIENT.decode_slice(input, &mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Some(())
        }
        Err(_) => {
            out.truncate(start);
            None
        }
    }
}

/// Pending work between snapshots.
struct Pending {
    rows: Rows,
    archive: Vec<u8>,
    archive_count: u64,
    rejections: Vec<Rejection>,
    body: Vec<u8>,
    /// `received` text, refreshed every 200 ms rather than formatted per message.
    received: String,
    received_at: Instant,
}

impl Pending {
    fn messages(&self) -> u64 {
        self.rows.len() as u64 + self.rejections.len() as u64
    }
}

impl RecordJob {
    /// Runs until the input ends, the stop file appears, STOP_AFTER_NUM messages were read or
    /// `stop` is set (signals). Everything read is in the files when it returns, except after
    /// a failure to write them (then nothing unsaved was acknowledged).
    pub fn run(&self, stop: &AtomicBool) -> Outcome {
        let mut out = Outcome {
            csv_path: self.csv_path.clone(),
            archive_path: self.archive_path.clone(),
            rejected_path: csv::suffixed(&self.csv_path, ".rejected.jsonl"),
            ..Outcome::default()
        };
        if self.stop_file_present() {
            out.error = Some((
                2,
                format!(
                    "the stop file {} exists already: remove it to record",
                    self.stop_file.display()
                ),
            ));
            return out;
        }
        let mut store = match Store::open(
            self.csv_path.clone(),
            self.archive_path.clone(),
            self.dataset.clone(),
        ) {
            Ok(s) => s,
            Err(e) => {
                out.error = Some((EXIT_FILES, e.0));
                return out;
            }
        };
        store.csv_safe = self.csv_safe;
        store
            .columns
            .set_limit(self.max_columns.saturating_add(ALWAYS_COLUMNS.len()));
        out.store_opened = true;
        out.rows_total = store.state.rows;
        out.columns = store.state.columns.len();
        out.resumed = store.resumed;
        let mut input = match input::open(
            &self.input,
            &self.options,
            &self.partitions,
            self.prefetch,
            &store.state.input,
            self.max_line_bytes,
        ) {
            Ok(i) => i,
            Err(StartError { exit_code, message }) => {
                // A failed start leaves no state file behind (when this run made it).
                store.discard_new();
                out.error = Some((exit_code, message));
                return out;
            }
        };
        let mut antinex = self.antinex.clone().map(AntinexClient::new);
        let mut pending = Pending {
            rows: Rows::default(),
            archive: Vec::with_capacity(1 << 20),
            archive_count: 0,
            rejections: Vec::new(),
            body: Vec::new(),
            received: now_text(),
            received_at: Instant::now(),
        };
        let mut raw = Vec::with_capacity(4096);
        let mut last_stop_check = Instant::now();
        let mut last_message = Instant::now();
        let save_after = self.save_after.max(1);
        let stop_check = Duration::from_millis(50);
        let reason = loop {
            if stop.load(Ordering::Relaxed) {
                break StopReason::Signal;
            }
            let mut room = save_after.saturating_sub(pending.messages()).max(1);
            if let Some(limit) = self.stop_after {
                room = room.min(limit.saturating_sub(out.read).max(1));
            }
            match input.next(&mut raw, usize::try_from(room).unwrap_or(usize::MAX)) {
                Err(e) => {
                    out.error = Some((EXIT_INPUT_LOST, e.0));
                    break StopReason::Failed;
                }
                Ok(Fetch::End) => break StopReason::EndOfInput,
                Ok(Fetch::TooLong(length)) => {
                    out.read += 1;
                    self.reject_too_long(length, &*input, &mut pending, &mut out);
                    last_message = Instant::now();
                    if pending.messages() >= save_after {
                        if let Err(e) = self.snapshot(
                            &mut store,
                            &mut *input,
                            &mut pending,
                            &mut antinex,
                            &mut out,
                        ) {
                            out.error = Some(e);
                            break StopReason::Failed;
                        }
                    }
                    if self.stop_after.is_some_and(|n| out.read >= n) {
                        break StopReason::StopAfter;
                    }
                    continue;
                }
                Ok(Fetch::Idle) => {
                    if self.stop_file_present() {
                        break StopReason::StopFile;
                    }
                    let idle_due = self.idle_save.is_some_and(|d| last_message.elapsed() >= d);
                    if (pending.messages() > 0 || input.unacked_skips() > 0) && idle_due {
                        if let Err(e) = self.snapshot(
                            &mut store,
                            &mut *input,
                            &mut pending,
                            &mut antinex,
                            &mut out,
                        ) {
                            out.error = Some(e);
                            break StopReason::Failed;
                        }
                    }
                    continue;
                }
                Ok(Fetch::Message) => {}
            }
            last_message = Instant::now();
            if last_message.duration_since(last_stop_check) >= stop_check {
                last_stop_check = last_message;
                if self.stop_file_present() {
                    if let Err(e) = input.give_back_last() {
                        out.error = Some((EXIT_INPUT_LOST, e.0));
                        break StopReason::Failed;
                    }
                    out.given_back = true;
                    break StopReason::StopFile;
                }
            }
            out.read += 1;
            if raw.len() as u64 > self.max_line_bytes {
                // A broker message over the cap (a file's line never gets here).
                self.reject_too_long(raw.len() as u64, &*input, &mut pending, &mut out);
            } else {
                self.take(
                    &raw,
                    &mut *input,
                    &mut store.columns,
                    &mut pending,
                    &mut out,
                );
            }
            if raw.capacity() > KEEP_BUFFER_BYTES {
                raw = Vec::with_capacity(4096);
            }
            if pending.body.capacity() > KEEP_BUFFER_BYTES {
                pending.body = Vec::new();
            }
            // Offsets in the pending buffers are 32-bit, and memory stays bounded.
            let big = pending.rows.text.len().max(pending.archive.len()) >= MAX_PENDING_BYTES;
            if pending.messages() >= save_after || big {
                if let Err(e) = self.snapshot(
                    &mut store,
                    &mut *input,
                    &mut pending,
                    &mut antinex,
                    &mut out,
                ) {
                    out.error = Some(e);
                    break StopReason::Failed;
                }
            }
            if self.stop_after.is_some_and(|n| out.read >= n) {
                break StopReason::StopAfter;
            }
        };
        out.stop = Some(reason);
        // After an input failure nothing more is saved: the messages not yet in a snapshot
        // stay with the broker (Redis: in this recorder's processing list, taken up at the next
        // start; RabbitMQ: unacknowledged, so delivered again; a file: read again after the
        // last saved line). Saving them now could save messages whose move the broker made but
        // whose reply was lost, and then drop that list as done.
        if reason != StopReason::Failed {
            let released = input.release_unused();
            if let Err(e) = &released {
                out.error = Some((EXIT_INPUT_LOST, e.0.clone()));
            }
            if released.is_ok() && (pending.messages() > 0 || input.unacked_skips() > 0) {
                if let Err(e) = self.snapshot(
                    &mut store,
                    &mut *input,
                    &mut pending,
                    &mut antinex,
                    &mut out,
                ) {
                    if out.error.is_none() {
                        out.error = Some(e);
                    } else {
                        log(format_args!("{}", e.1));
                    }
                }
            }
        }
        out.skipped_duplicates = input.skipped();
        out.csv_rewrites = store.csv_rewrites;
        out.rows_total = store.state.rows;
        out.columns = store.state.columns.len();
        out.antinex = antinex.map(|a| a.counters);
        out
    }

    /// Whether the stop file is there. One owned by another user (not root) does not count,
    /// so that in a shared folder nobody else can stop this recorder.
    fn stop_file_present(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.stop_file) {
            Ok(m) => {
                let euid = nix::unistd::geteuid().as_raw();
                m.uid() == euid || m.uid() == 0
            }
            Err(_) => false,
        }
    }

    /// A line or message over `--max-line-bytes`: rejected with its position and length, its
    /// bytes not copied anywhere.
    fn reject_too_long(&self, length: u64, input: &dyn Input, p: &mut Pending, out: &mut Outcome) {
        let position = input.position();
        let error = format!(
            "{length} bytes, over --max-line-bytes {} (skipped, not copied)",
            self.max_line_bytes
        );
        if out.first_rejection.is_none() {
            out.first_rejection = Some(format!("{position}: {error}"));
        }
        if out.rejected < 10 {
            log(format_args!("rejected {position}: {error}"));
        }
        out.rejected += 1;
        out.rejected_too_long += 1;
        p.rejections.push(Rejection {
            position,
            error,
            message: Vec::new(),
            length: Some(length),
        });
    }

    /// One message: unwrapped, flattened, archived; or rejected.
    fn take(
        &self,
        raw: &[u8],
        input: &mut dyn Input,
        columns: &mut Columns,
        p: &mut Pending,
        out: &mut Outcome,
    ) {
        let result = unwrap_envelope(raw, &mut p.body).and_then(|payload| {
            let info = flatten_message(payload, columns, &mut p.rows)?;
            Ok((payload, info))
        });
        match result {
            Ok((payload, info)) => {
                if p.archive_count > 0 {
                    p.archive.extend_from_slice(b",\n");
                }
                let now = Instant::now();
                if now.duration_since(p.received_at) >= Duration::from_millis(200) {
                    p.received = now_text();
                    p.received_at = now;
                }
                append_archive_entry(&mut p.archive, payload, info, &p.received);
                p.archive_count += 1;
                out.recorded += 1;
            }
            Err(error) if error == flatten::EMPTY_PACKET => {
                out.empty += 1;
                p.rejections.push(Rejection {
                    position: input.position(),
                    error,
                    message: raw.to_vec(),
                    length: None,
                });
            }
            Err(error) => {
                if error.starts_with(flatten::TOO_MANY_COLUMNS) {
                    out.rejected_columns += 1;
                }
                let position = input.position();
                if out.first_rejection.is_none() {
                    out.first_rejection = Some(format!("{position}: {error}"));
                }
                if out.rejected < 10 {
                    log(format_args!("rejected {position}: {error}"));
                }
                out.rejected += 1;
                p.rejections.push(Rejection {
                    position,
                    error,
                    message: raw.to_vec(),
                    length: None,
                });
            }
        }
    }

    /// Saves the pending messages, commits, acknowledges, then sends the rows to AntiNex.
    fn snapshot(
        &self,
        store: &mut Store,
        input: &mut dyn Input,
        p: &mut Pending,
        antinex: &mut Option<AntinexClient>,
        out: &mut Outcome,
    ) -> Result<(), (u8, String)> {
        let first_idx = store.state.rows;
        input.before_commit().map_err(|e| (EXIT_INPUT_LOST, e.0))?;
        store
            .snapshot(
                &p.rows,
                &p.archive,
                p.archive_count,
                &p.rejections,
                &input.state(),
            )
            .map_err(|e| {
                (
                    EXIT_FILES,
                    format!(
                        "cannot save the snapshot ({} or beside it): {e}; the {} message(s) of \
                         this snapshot were not acknowledged",
                        self.csv_path.display(),
                        p.messages()
                    ),
                )
            })?;
        out.snapshots += 1;
        let marked = input.commit_mark();
        if self.abort_after_commit == Some(out.snapshots) {
            // Test hook: a crash between the commit and the acknowledgement.
            std::process::abort();
        }
        let acked = input.committed();
        if let Some(client) = antinex.as_mut() {
            if let Err(e) = client.publish(store, &p.rows, first_idx) {
                log(format_args!(
                    "antinex: {e} ({} row(s) not predicted; recording goes on)",
                    p.rows.len()
                ));
            }
        }
        p.rows.clear();
        p.archive.clear();
        p.archive_count = 0;
        p.rejections.clear();
        p.rows.shrink_to(KEEP_BUFFER_BYTES);
        p.archive.shrink_to(KEEP_BUFFER_BYTES);
        p.rejections.shrink_to(1024);
        marked.and(acked).map_err(|e| (EXIT_INPUT_LOST, e.0))
    }
}

/// The message as the archive keeps it: the packet JSON with `id` (a UUID) and `received`
/// added, as the original did (kept as they are when the message has them already).
fn append_archive_entry(
    out: &mut Vec<u8>,
    payload: &[u8],
    info: flatten::MessageInfo,
    received: &str,
) {
    let mut end = payload.len();
    while end > 0 && payload[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let start = payload
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    // flatten_message accepted it, so it is an object: ends with '}'.
    let body = &payload[start..end.saturating_sub(1)];
    out.extend_from_slice(body);
    if !info.has_id {
        out.extend_from_slice(b",\"id\":\"");
        out.extend_from_slice(
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        out.push(b'"');
    }
    if !info.has_received {
        out.extend_from_slice(b",\"received\":\"");
        out.extend_from_slice(received.as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let mut body = Vec::new();
        let raw = br#"{"data":{"ip":{"a":1}}}"#;
        assert_eq!(unwrap_envelope(raw, &mut body).unwrap(), raw);
        let env = br#"{"body": "eyJkYXRhIjogMX0=", "properties": {"body_encoding": "base64"}}"#;
        assert_eq!(unwrap_envelope(env, &mut body).unwrap(), br#"{"data": 1}"#);
        let env = br#"{"body": "{\"data\": 2}", "content-type": "application/json"}"#;
        assert_eq!(unwrap_envelope(env, &mut body).unwrap(), br#"{"data": 2}"#);
        let bad = br#"{"body": "!!!", "properties": {"body_encoding": "base64"}}"#;
        assert!(unwrap_envelope(bad, &mut body).is_err());
    }

    #[test]
    fn a_missing_output_name_comes_from_the_other() {
        use std::path::Path;
        let d = Path::new("/data");
        let (c, a) = output_paths(d, "n", Some(Path::new("/x/icmp.csv")), None, "S");
        assert_eq!(
            (c.to_str(), a.to_str()),
            (Some("/x/icmp.csv"), Some("/x/packets-icmp.json"))
        );
        let (c, a) = output_paths(d, "n", None, Some(Path::new("/y/packets-tcp.json")), "S");
        assert_eq!(
            (c.to_str(), a.to_str()),
            (Some("/y/tcp.csv"), Some("/y/packets-tcp.json"))
        );
        let (c, a) = output_paths(d, "n", None, None, "S");
        assert_eq!(
            (c.to_str(), a.to_str()),
            (Some("/data/n-S.csv"), Some("/data/packets-n-S.json"))
        );
    }

    #[test]
    fn partitions_are_parsed_from_lists_and_ranges() {
        let p = |n, l| Partitions::parse(n, l).map(|p| p.selected);
        assert_eq!(p(4, None), Ok(vec![0, 1, 2, 3]));
        assert_eq!(p(4, Some("0,2")), Ok(vec![0, 2]));
        assert_eq!(p(8, Some("5, 0-2,1")), Ok(vec![0, 1, 2, 5]));
        assert_eq!(p(1, None), Ok(vec![0]));
        for (n, bad) in [
            (4, "4"),
            (4, "2-1"),
            (4, "x"),
            (4, ""),
            (4, "1-"),
            (4, "0-9"),
        ] {
            assert!(p(n, Some(bad)).is_err(), "{bad}");
        }
        let two = Partitions::parse(4, Some("1,3")).unwrap();
        assert_eq!(two.names("q"), ["q-1", "q-3"]);
        assert_eq!(Partitions::default().names("q"), ["q"]);
    }

    #[test]
    fn base64() {
        let mut out = Vec::new();
        base64_decode(b"aGVsbG8=", &mut out).unwrap();
        assert_eq!(out, b"hello");
        out.clear();
        base64_decode(b"aGk", &mut out).unwrap();
        assert_eq!(out, b"hi");
        assert!(base64_decode(b"a", &mut Vec::new()).is_none());
        assert!(base64_decode(b"a$==", &mut Vec::new()).is_none());
    }

    #[test]
    fn archive_entry_adds_id_and_received() {
        let mut out = Vec::new();
        append_archive_entry(
            &mut out,
            br#" {"data":{"ip":{"a":1}}} "#,
            flatten::MessageInfo::default(),
            &now_text(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
        assert_eq!(v["received"].as_str().unwrap().len(), 19);
    }
}
