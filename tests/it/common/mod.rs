//! The helpers every test module shares (each uses a subset), so none is written twice:
//! here the program under test, its output, recorder CSVs and archives, spool segments and
//! ordering checks; `harness` scratch directories, child processes, live-test checks and
//! network namespaces; `brokers` free ports and private Redis/RabbitMQ servers; `kombu` the
//! kombu scripts and AMQP names; `frames` hand-built frames, pcap writing and an independent
//! pcap/pcapng record walker; `outage` the pieces of the broker-outage tests.
#![allow(dead_code)]

pub mod brokers;
pub mod frames;
pub mod harness;
pub mod kombu;
pub mod outage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FIXTURE: &str = "pcaps/mixed.pcap";
pub const FIXTURE_MESSAGES: usize = 13_620;

/// The program under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_netpipe-fast");

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the virtual environment `target/<name>-venv` (scripts/test.sh
/// makes them: kombu, pandas, prom, communityid, fingerprint).
pub fn venv_python(name: &str) -> PathBuf {
    root().join(format!("target/{name}-venv/bin/python"))
}

/// target/pandas-venv's Python (the oracles' pandas and csv module), which must exist.
pub fn pandas_python() -> PathBuf {
    let py = venv_python("pandas");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh (it makes the pandas virtual environment)",
        py.display()
    );
    py
}

/// Panics with `how` (how to get them) unless `python` can import `modules` (e.g.
/// "scapy, communityid"): an oracle test fails rather than skips without its oracle.
pub fn require_python_modules(python: &Path, modules: &str, how: &str) {
    let probe = Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} cannot import {modules}, which this test needs as its oracle: {how}\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run {} ({e}): {how}", python.display()),
    }
}

/// Runs `python tests/oracle/<script> --bin <the program under test> ARGS`; its output and
/// its stdout then stderr as one text.
pub fn run_oracle<S: AsRef<std::ffi::OsStr>>(
    python: &Path,
    script: &str,
    args: &[S],
) -> (Output, String) {
    let out = Command::new(python)
        .arg(root().join("tests/oracle").join(script))
        .arg("--bin")
        .arg(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run tests/oracle/{script}: {e}"));
    let report = combined(&out);
    (out, report)
}

/// A finished process's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A finished process's stdout then stderr, as text.
pub fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `read` of the fixture into `url`, which must fail to start: returns the exit code,
/// the first stderr line and all output (nothing may go to stdout).
pub fn start_failure(url: &str) -> (Option<i32>, String, String) {
    let out = bin().args(["read", FIXTURE, "-o", url]).output().unwrap();
    let all = combined(&out);
    assert!(out.stdout.is_empty(), "{url}: wrote to stdout");
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (out.status.code(), line, all)
}

/// `received` is `want` with at most `resent` messages repeated (the at-least-once window):
/// every wanted message in order; an extra one may only repeat one already received.
pub fn assert_in_order_at_least_once(received: &[Vec<u8>], want: &[Vec<u8>], resent: u64) {
    let dup = repeats_in_order("", received, want);
    assert!(dup <= resent, "{dup} duplicates but only {resent} resent");
}

/// Checks that `received` is every message of `want`, in order, with repeats of messages
/// already received mixed in (nothing lost, nothing foreign, nothing out of order); returns
/// the number of repeats. `what` starts each failure message (e.g. "partition 2: ").
pub fn repeats_in_order<W: AsRef<[u8]>>(what: &str, received: &[Vec<u8>], want: &[W]) -> u64 {
    assert!(
        received.len() >= want.len(),
        "{what}lost messages: {} received, {} sent",
        received.len(),
        want.len()
    );
    let mut w = 0;
    for (i, m) in received.iter().enumerate() {
        if w < want.len() && m.as_slice() == want[w].as_ref() {
            w += 1;
        } else {
            assert!(
                received[..i].contains(m),
                "{what}message {i} received is neither the next one sent nor a repeat"
            );
        }
    }
    assert_eq!(w, want.len(), "{what}not every message arrived in order");
    (received.len() - want.len()) as u64
}

/// Runs `read` of the fixture into `url`, which must fail to start with exit `code`, a first
/// stderr line containing one of `reasons`, and `secret` nowhere in the output.
pub fn assert_start_refused(url: &str, code: i32, reasons: &[&str], secret: &str) {
    let (got, line, all) = start_failure(url);
    assert_eq!(got, Some(code), "{all}");
    assert!(reasons.iter().any(|r| line.contains(r)), "{line}");
    assert!(!all.contains(secret), "{all}");
}

/// The binary, run from the repository root, with none of the environment variables that
/// would change where or how it publishes.
pub fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(root());
    for v in [
        "FORWARD_BROKER_URL",
        "FORWARD_BROKER_PASSWORD_FILE",
        "RECORD_INPUT_URL",
        "RECORD_INPUT_PASSWORD_FILE",
        "FORWARD_QUEUE",
        "FORWARD_EXCHANGE",
        "FORWARD_ROUTING_KEY",
        "SOURCE_HOST",
    ] {
        c.env_remove(v);
    }
    c
}

/// A name no other test (or run) uses.
pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("netpipe_test_{what}_{}_{nanos}", std::process::id())
}

/// Non-empty lines of `bytes`.
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The messages `read` writes to stdout, one per line, in order.
pub fn expected(args: &[&str]) -> Vec<Vec<u8>> {
    let out = bin().arg("read").arg("-q").args(args).output().unwrap();
    assert!(out.status.success(), "read to stdout failed: {out:?}");
    lines(&out.stdout)
}

/// Messages in the spool's segment files in `dir` (every whole record after the 8-byte
/// magic, delivered or not: nothing is acknowledged while the broker is down); 0 while the
/// directory or a file cannot be read.
pub fn spooled_records(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("seg"))
        .map(|e| segment_record_spans(&std::fs::read(e.path()).unwrap_or_default()).len())
        .sum()
}

/// The whole records of one spool segment file's bytes, as (offset, payload): after the
/// 8-byte magic, each a u32 LE length, a u32 LE CRC-32C and the payload (the format of
/// src/sink/spool.rs, read here independently of it); a torn last record is left out.
pub fn segment_payloads(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    segment_record_spans(bytes)
        .into_iter()
        .map(|(at, len)| (at, bytes[at + 8..at + 8 + len].to_vec()))
        .collect()
}

/// As [`segment_payloads`], each record as its offset and payload length only (nothing
/// copied: [`spooled_records`] polls with it while the program under test runs).
fn segment_record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut records = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        records.push((at, len));
        at += 8 + len;
    }
    records
}

/// Rows the recorder writing `csv` has committed, from its state file (0 before the first
/// snapshot, or while the file is missing or being replaced).
pub fn committed_rows(csv: &Path) -> u64 {
    let state = netpipe_fast::record::csv::suffixed(csv, ".state");
    std::fs::read(&state)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["rows"].as_u64())
        .unwrap_or(0)
}

/// The packets of a recorder's archive (`--archive-json`), in order, without the fields the
/// recorder adds (`id`, `received`).
pub fn archived_packets(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut packets = doc["packets"].as_array().cloned().unwrap_or_default();
    for p in &mut packets {
        if let Some(o) = p.as_object_mut() {
            o.remove("id");
            o.remove("received");
        }
    }
    packets
}

/// A test that skips itself says so with `line` ("skipping WHAT: WHY") on stderr, and, when
/// `NETPIPE_SKIP_LOG` names a file (scripts/test.sh sets it), appends the line there, so the
/// run can count the tests that did not really run.
pub fn note_skip(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("NETPIPE_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// The partition of a message by the documented rule, computed here from the message with
/// serde_json and the base64 crate: the first four bytes of the `community_id` digest,
/// big-endian, modulo N; 0 without a community_id.
pub fn documented_partition(m: &[u8], n: usize) -> usize {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(m).unwrap();
    let Some(id) = v["community_id"].as_str() else {
        return 0;
    };
    let digest = base64::engine::general_purpose::STANDARD
        .decode(id.strip_prefix("1:").unwrap())
        .unwrap();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as usize % n
}

/// Every `.pcap` and `.pcapng` file in `dir`, sorted by name.
pub fn capture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("read a directory entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap") | Some("pcapng")
            )
        })
        .collect();
    files.sort();
    files
}

/// Header and rows of a CSV the recorder wrote, read by the csv crate (the recorder's
/// dialect: `\n` ends a record, a CR is data); ragged rows are kept as they are.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_path(path)
        .unwrap();
    let mut all: Vec<Vec<String>> = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    let header = all.remove(0);
    (header, all)
}

/// Each row of a recorder CSV as "name=value;..." of its non-empty cells, idx left out: a
/// row's identity that does not depend on the column set or the row's position. Counted (a
/// multiset).
pub fn row_bag(path: &Path) -> HashMap<String, usize> {
    let (header, rows) = read_csv(path);
    let mut bag = HashMap::new();
    for r in rows {
        assert_eq!(r.len(), header.len(), "ragged row in {}", path.display());
        let key: Vec<String> = header
            .iter()
            .zip(&r)
            .skip(1)
            .filter(|(_, v)| !v.is_empty())
            .map(|(h, v)| format!("{h}={v}"))
            .collect();
        *bag.entry(key.join(";")).or_insert(0) += 1;
    }
    bag
}

/// The union of two row bags (counts added).
pub fn merge(mut a: HashMap<String, usize>, b: HashMap<String, usize>) -> HashMap<String, usize> {
    for (k, n) in b {
        *a.entry(k).or_insert(0) += n;
    }
    a
}

/// `netpipe-fast record` with none of the recorder's variables from the caller's environment.
pub fn rec() -> Command {
    let mut c = bin();
    c.arg("record");
    for (k, _) in std::env::vars() {
        if k.starts_with("ANTINEX_")
            || [
                "SAVE_AFTER_NUM",
                "STOP_AFTER_NUM",
                "STOP_FILE",
                "DS_NAME",
                "DS_DIR",
                "OUTPUT_CSV",
                "ARCHIVE_JSON",
            ]
            .contains(&k.as_str())
        {
            c.env_remove(k);
        }
    }
    c
}

/// `record` arguments naming the files of one recording in `dir` (prefix `name`).
pub fn record_files(dir: &harness::TempDir, name: &str) -> Vec<String> {
    vec![
        "--output-csv".into(),
        dir.path(&format!("{name}.csv")).display().to_string(),
        "--archive-json".into(),
        dir.path(&format!("{name}.json")).display().to_string(),
        "--stop-file".into(),
        dir.path(&format!("{name}.stop")).display().to_string(),
    ]
}

/// The first `count` fixture messages as JSON lines (`fixture.jsonl` in `dir`), and the
/// recording `record` makes of that file (`reference.*` in `dir`, one snapshot): its rows as
/// a [`row_bag`], checked to hold `count` rows.
pub fn reference_recording(
    dir: &harness::TempDir,
    count: usize,
) -> (PathBuf, HashMap<String, usize>) {
    let jsonl = dir.path("fixture.jsonl");
    let out = bin()
        .args(["read", "-q", "-c", &count.to_string(), FIXTURE])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&jsonl, &out.stdout).unwrap();
    let mut args = record_files(dir, "reference");
    args.extend(["--save-after-num".into(), "100000".into()]);
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", combined(&out));
    let bag = row_bag(&dir.path("reference.csv"));
    assert_eq!(bag.values().sum::<usize>(), count);
    (jsonl, bag)
}
