//! `netpipe-fast record` end to end: the CSV against pandas (tests/record/pandas_oracle.py in
//! target/pandas-venv, made by scripts/test.sh), bad input, resume, kill -9 with Redis, two
//! recorders on one Redis and one RabbitMQ queue, the AntiNex client against a local server.
//! Brokers: the shared Redis (database 13) and RabbitMQ on 127.0.0.1, unique names, cleaned up.

use redis::Commands;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::brokers::{free_port, wait_for};
use crate::common::harness::{read_stderr, wait_exit, TempDir};
use crate::common::kombu;
use crate::common::kombu::AmqpNames;
use crate::common::{bin, root, unique, FIXTURE, FIXTURE_MESSAGES};
use crate::common::{committed_rows, reference_recording};
use crate::common::{merge, read_csv, row_bag};
use crate::common::{rec, record_files as files};

const REDIS: &str = "redis://127.0.0.1:6379/13";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rows_in(path: &Path) -> usize {
    if !path.exists() {
        return 0;
    }
    read_csv(path).1.len()
}

#[test]
fn columns_and_values_match_pandas_json_normalize() {
    let py = common::pandas_python();
    let dir = TempDir::unique("rec_pandas");
    // Every golden file but the big one whole, every 40th message of the big one, the
    // original's own recorded messages and a kombu envelope: every layer combination we emit.
    let mut lines: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") {
            continue;
        }
        let body = std::fs::read_to_string(&p).unwrap();
        let step = if name.starts_with("mixed") { 40 } else { 1 };
        lines.extend(body.lines().step_by(step).map(str::to_string));
    }
    let ours_lines = lines.len();
    let originals: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("../shared/reference/original-messages.json")).unwrap(),
    )
    .unwrap();
    for p in originals["packets"].as_array().unwrap() {
        lines.push(p.to_string());
    }
    lines.push(
        std::fs::read_to_string(root().join("../shared/reference/kombu-redis-envelope.json"))
            .unwrap()
            .trim()
            .to_string(),
    );
    let jsonl = dir.path("in.jsonl");
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    // Frames nothing could be decoded from: no row (as in the original), not an error.
    let empty = lines.iter().filter(|l| l.contains("\"data\":{}")).count();
    assert!(empty > 0, "the fixture has no empty packet");
    let rows_expected = lines.len() - empty;
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "ours"))
        .args(["--save-after-num", "37"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let csv = dir.path("ours.csv");
    let oracle = Command::new(&py)
        .arg(root().join("tests/record/pandas_oracle.py"))
        .arg(&jsonl)
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        oracle.status.success(),
        "pandas oracle disagrees:\n{}{}",
        String::from_utf8_lossy(&oracle.stdout),
        String::from_utf8_lossy(&oracle.stderr)
    );
    let said = String::from_utf8_lossy(&oracle.stdout);
    assert!(
        said.contains(&format!("equal: {rows_expected} rows")),
        "{said}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{empty} without fields")),
        "{}",
        text(&out)
    );

    // The AntiNex feature columns are there, and filled wherever their layer is.
    let (header, rows) = read_csv(&csv);
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("no column {n}"))
    };
    for name in [
        "idx",
        "eth_id",
        "ipvsix_id",
        "tcp_fields_options.MSS",
        "tcp_fields_options.WScale",
        "ip_ihl",
        "arp_hwlen",
        "arp_op",
        "dns_qdcount",
        "icmp_type",
        "udp_sport",
        "raw_load",
    ] {
        col(name);
    }
    for (layer_col, feature) in [
        ("arp_op", "arp_hwlen"),
        ("ip_version", "ip_ihl"),
        ("tcp_sport", "tcp_dataofs"),
        ("dns_id", "dns_qdcount"),
    ] {
        let (l, f) = (col(layer_col), col(feature));
        // Our messages only: the original's kamene messages kept a few fields per layer.
        let ours = &rows[..ours_lines - empty];
        let with_layer = ours.iter().filter(|r| !r[l].is_empty()).count();
        assert!(with_layer > 0, "no row with {layer_col}");
        let filled = ours
            .iter()
            .filter(|r| !r[l].is_empty() && !r[f].is_empty())
            .count();
        assert_eq!(
            filled, with_layer,
            "{feature} empty where {layer_col} is set"
        );
    }
    // The JSON archive: every packet with id and received, and the totals.
    let archive: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("ours.json")).unwrap()).unwrap();
    assert_eq!(archive["num_packets"], rows_expected);
    let packets = archive["packets"].as_array().unwrap();
    assert_eq!(packets.len(), rows_expected);
    assert!(packets
        .iter()
        .all(|p| p["id"].is_string() && p["received"].is_string() && p["data"].is_object()));
}

/// The header row of a CSV the original's recorder wrote (../shared/reference), against ours:
/// the original's own messages give that header byte for byte, and our messages for the same
/// kind of traffic (Ethernet, IPv4, TCP with options, payload) give every one of its columns.
#[test]
fn original_recorders_header_is_reproduced() {
    let reference = root().join("../shared/reference");
    let original_header = std::fs::read_to_string(reference.join("original-csv-header.csv"))
        .unwrap()
        .trim_end()
        .to_string();
    let dir = TempDir::unique("rec_original_header");

    let originals: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reference.join("original-messages.json")).unwrap())
            .unwrap();
    let lines: Vec<String> = originals["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(!lines.is_empty());
    let jsonl = dir.path("original.jsonl");
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "original"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(dir.path("original.csv")).unwrap();
    assert_eq!(written.lines().next(), Some(original_header.as_str()));

    // Ours: the fixture's messages that carry what the original's did.
    let out = bin().args(["read", "-q", FIXTURE]).output().unwrap();
    assert!(out.status.success());
    let ours: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let d = &v["data"];
            let all_options = d["tcp"]["fields_options"].as_object().is_some_and(|o| {
                ["MSS", "NOP", "SAckOK", "Timestamp", "WScale"]
                    .iter()
                    .all(|k| o.contains_key(*k))
            });
            d["ether"].is_object()
                && d["ip"].is_object()
                && d["tcp"].is_object()
                && (all_options || d["raw"].is_object())
        })
        .collect();
    assert!(
        !ours.is_empty(),
        "the fixture has no TCP packet with those options"
    );
    let jsonl = dir.path("ours.jsonl");
    std::fs::write(&jsonl, ours.join("\n") + "\n").unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "ours"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (header, _) = read_csv(&dir.path("ours.csv"));
    let missing: Vec<&str> = original_header
        .split(',')
        .filter(|c| !header.iter().any(|h| h == c))
        .collect();
    assert!(
        missing.is_empty(),
        "columns of the original missing from ours: {missing:?}"
    );
}

#[test]
fn bad_input_is_counted_with_its_position_and_saved() {
    let dir = TempDir::unique("rec_bad");
    let good = r#"{"data":{"ether":{"type":2048},"ip":{"ihl":5}},"created":"x"}"#;
    let input = [
        good,
        "{not json",
        r#"{"created":"no data"}"#,
        "",
        r#"{"data":{}}"#,
        r#"{"data":{"ip":7}}"#,
        r#"{"body": "%%%", "properties": {"body_encoding": "base64"}}"#,
        "[1,2]",
        good,
    ]
    .join("\n");
    let jsonl = dir.path("bad.jsonl");
    std::fs::write(&jsonl, input).unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        err.contains("9 message(s) read") || err.contains("8 message(s) read"),
        "{err}"
    );
    assert!(
        err.contains("2 recorded, 5 rejected, 1 without fields"),
        "{err}"
    );
    assert!(err.contains("line 2: not a JSON packet message"), "{err}");
    assert!(err.contains("line 3: no \"data\" key"), "{err}");
    assert_eq!(rows_in(&dir.path("bad.csv")), 2);
    let rejected = std::fs::read_to_string(dir.path("bad.csv.rejected.jsonl")).unwrap();
    let positions: Vec<String> = rejected
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["position"].as_str().unwrap().to_string()
        })
        .collect();
    let lines: Vec<&str> = positions
        .iter()
        .map(|p| p.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(lines, ["2", "3", "5", "6", "7", "8"]);

    // A file that cannot be opened, and an unknown scheme: one line, distinct codes.
    let out = rec()
        .args(["--input", "file:/nonexistent/x.jsonl"])
        .args(files(&dir, "none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = rec()
        .args(["--input", "ftp://x"])
        .args(files(&dir, "none2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A CSV that exists without a state is not overwritten.
    std::fs::write(dir.path("mine.csv"), "precious\n").unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "mine"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path("mine.csv")).unwrap(),
        "precious\n"
    );
}

#[test]
fn resumed_file_recording_has_every_message_once() {
    let dir = TempDir::unique("rec_resume");
    let (jsonl, want) = reference_recording(&dir, 3000);
    let input = format!("file:{}", jsonl.display());
    // First run stops after 1234 messages (snapshots of 100, and a last one at the stop).
    let out = rec()
        .args(["--input", &input, "--save-after-num", "100"])
        .args(["--stop-after-num", "1234"])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_in(&dir.path("r.csv")), 1234);
    // A crash leaves bytes after the committed end: a partial row and a broken archive tail.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("r.csv"))
        .unwrap();
    f.write_all(b"1234,partial,row").unwrap();
    let mut a = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("r.json"))
        .unwrap();
    a.write_all(b"{\"half\":").unwrap();
    let out = rec()
        .args(["--input", &input, "--save-after-num", "100"])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(resumed)"));
    assert_eq!(row_bag(&dir.path("r.csv")), want);
    let (_, rows) = read_csv(&dir.path("r.csv"));
    let idx: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let want_idx: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    assert_eq!(idx, want_idx);
    let archive: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("r.json")).unwrap()).unwrap();
    assert_eq!(archive["num_packets"], 3000);
}

// ------------------------------------------------------------------------------------------
// Redis
// ------------------------------------------------------------------------------------------

fn redis_con() -> redis::Connection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| {
            panic!("Redis is not answering on 127.0.0.1:6379 ({e}); run scripts/test.sh")
        })
}

/// Deletes the queue and any processing list of it on drop.
struct RedisQueue(String);
impl Drop for RedisQueue {
    fn drop(&mut self) {
        if let Ok(c) = redis::Client::open(REDIS) {
            if let Ok(mut con) = c.get_connection_with_timeout(Duration::from_secs(5)) {
                let mut keys: Vec<String> = con
                    .keys(format!("{}.netpipe-*", self.0))
                    .unwrap_or_default();
                keys.push(self.0.clone());
                for k in keys {
                    let _: Result<i64, _> = con.del(k);
                }
            }
        }
    }
}

fn fill_redis(queue: &str, count: usize) {
    let out = bin()
        .args(["read", "-q", "-c", &count.to_string(), FIXTURE])
        .args(["-o", REDIS, "--queue", queue])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The fixture's first `count` messages on a staging list of their own, so that the test,
/// not the recorder's speed, decides how many are on the queue at each step ([`release`]).
fn stage(what: &str, count: usize) -> RedisQueue {
    let staging = RedisQueue(unique(what));
    fill_redis(&staging.0, count);
    staging
}

/// Moves the next `n` staged messages, oldest first, to the consumer end's far side of `queue`
/// (the order the sink would have pushed them in).
fn release(staging: &RedisQueue, queue: &str, n: usize) {
    let mut pipe = redis::pipe();
    for _ in 0..n {
        pipe.cmd("LMOVE")
            .arg(&staging.0)
            .arg(queue)
            .arg("RIGHT")
            .arg("LEFT");
    }
    let moved: Vec<Option<Vec<u8>>> = pipe.query(&mut redis_con()).unwrap();
    assert!(moved.iter().all(Option::is_some), "staging ran out");
}

/// Messages held in the recorders' processing lists of `queue`.
fn held(con: &mut redis::Connection, queue: &str) -> usize {
    let keys: Vec<String> = con.keys(format!("{queue}.netpipe-processing.*")).unwrap();
    keys.iter().map(|k| con.llen::<_, usize>(k).unwrap()).sum()
}

/// Sends `signal` (a name for kill(1)) to the process.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// Whether a SIGINT sent to the process is still pending (not yet taken by its handler).
fn sigint_pending(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false; // gone
    };
    status
        .lines()
        .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
        .any(|l| {
            let mask = u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("0"), 16);
            mask.unwrap_or(0) & (1 << 1) != 0 // SIGINT is signal 2, bit 1
        })
}

fn spawn(args: &[String]) -> Child {
    rec()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `--input` the shared Redis, `--queue QUEUE`, `--save-after-num N` and the files named
/// `name` in `dir`.
fn redis_recorder_args(queue: &str, save_after: u32, dir: &TempDir, name: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--input".into(),
        REDIS.into(),
        "--queue".into(),
        queue.into(),
        "--save-after-num".into(),
        save_after.to_string(),
    ];
    args.extend(files(dir, name));
    args
}

/// Creates the stop file and waits for the recorder to end; returns its stderr.
fn stop(mut child: Child, stop_file: &Path) -> String {
    std::fs::write(stop_file, b"").unwrap();
    let status = wait_exit(&mut child, "the recorder to stop", Duration::from_secs(30));
    let err = read_stderr(&mut child);
    assert!(status.success(), "recorder failed: {status:?} {err}");
    err
}

#[test]
fn redis_recorder_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let dir = TempDir::unique("rec_kill");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let queue = RedisQueue(unique("rec_kill"));
    let staging = stage("rec_kill_stage", FIXTURE_MESSAGES);
    let args = redis_recorder_args(&queue.0, 20, &dir, "k");
    let csv = dir.path("k.csv");
    // Only 2010 messages on the queue and no idle snapshot: the recorder commits 2000 and holds
    // 10 uncommitted when it is killed, however fast it is.
    let mut first = args.clone();
    first.extend(["--idle-save-ms".into(), "0".into()]);
    release(&staging, &queue.0, 2010);
    let mut child = spawn(&first);
    let mut con = redis_con();
    wait_for("2000 rows saved, 10 held", Duration::from_secs(60), || {
        committed_rows(&csv) == 2000
            && con.llen::<_, usize>(&queue.0).unwrap() == 0
            && held(&mut con, &queue.0) == 10
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(committed_rows(&csv), 2000);
    release(&staging, &queue.0, FIXTURE_MESSAGES - 2010);
    let child = spawn(&args);
    wait_for("every row", Duration::from_secs(60), || {
        committed_rows(&csv) as usize >= FIXTURE_MESSAGES
    });
    let err = stop(child, &dir.path("k.stop"));
    assert!(err.contains("(resumed)"), "{err}");
    assert_eq!(row_bag(&csv), want, "rows differ from the file recording");
    let left: usize = con.llen(&queue.0).unwrap();
    assert_eq!(left, 0);
    let lists: Vec<String> = con
        .keys(format!("{}.netpipe-processing.*", queue.0))
        .unwrap();
    assert!(lists.is_empty(), "processing lists left: {lists:?}");
}

#[test]
fn two_recorders_split_one_redis_queue() {
    let dir = TempDir::unique("rec_two_redis");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let queue = RedisQueue(unique("rec_two"));
    let mk = |name: &str| {
        let mut a: Vec<String> = vec![
            "--input".into(),
            REDIS.into(),
            "--queue".into(),
            queue.0.clone(),
            "--save-after-num".into(),
            "50".into(),
        ];
        a.extend(files(&dir, name));
        a
    };
    // The test controls the input: 100 messages for A alone, then the bulk for both, then
    // (A stopped) the last 100 for B alone; so each has rows whatever the timing.
    let staging = stage("rec_two_stage", FIXTURE_MESSAGES);
    let (ca, cb) = (dir.path("a.csv"), dir.path("b.csv"));
    let a = spawn(&mk("a"));
    release(&staging, &queue.0, 100);
    wait_for("A: the first 100 saved", Duration::from_secs(60), || {
        committed_rows(&ca) == 100
    });
    let b = spawn(&mk("b"));
    release(&staging, &queue.0, FIXTURE_MESSAGES - 200);
    wait_for(
        "all but the last 100 in one CSV or the other",
        Duration::from_secs(60),
        || (committed_rows(&ca) + committed_rows(&cb)) as usize == FIXTURE_MESSAGES - 100,
    );
    stop(a, &dir.path("a.stop"));
    release(&staging, &queue.0, 100);
    wait_for(
        "every row in one CSV or the other",
        Duration::from_secs(60),
        || (committed_rows(&ca) + committed_rows(&cb)) as usize >= FIXTURE_MESSAGES,
    );
    stop(b, &dir.path("b.stop"));
    let (ra, rb) = (rows_in(&ca), rows_in(&cb));
    assert!(ra >= 100 && rb >= 100, "rows: {ra} / {rb}");
    assert_eq!(merge(row_bag(&ca), row_bag(&cb)), want);
}

/// Recorder A takes 2500 messages with snapshots of 1000 and no idle snapshot and dies (kill -9
/// when `abort_after_commit` is None: 500 taken and not saved; else the test hook aborts it
/// right after that commit, before its list is removed); it never comes back. Recorder B, on
/// another CSV, must end with exactly the messages A did not commit. Returns B's stderr.
fn dead_recorder_taken_up(what: &str, abort_after_commit: Option<u32>) -> String {
    let dir = TempDir::unique(what);
    let (_, want) = reference_recording(&dir, 2500);
    let queue = RedisQueue(unique(what));
    fill_redis(&queue.0, 2500);
    let mk = |name: &str, save: &str| {
        let mut a: Vec<String> = vec![
            "--input".into(),
            REDIS.into(),
            "--queue".into(),
            queue.0.clone(),
            "--save-after-num".into(),
            save.into(),
            "--idle-save-ms".into(),
            "0".into(),
        ];
        a.extend(files(&dir, name));
        a
    };
    let (ca, cb) = (dir.path("a.csv"), dir.path("b.csv"));
    let mut con = redis_con();
    let processing = format!("{}.netpipe-processing.*", queue.0);
    let mut a = rec();
    a.args(mk("a", "1000"))
        .env("NETPIPE_RECORD_LEASE_MS", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = abort_after_commit {
        a.env("NETPIPE_RECORD_ABORT_AFTER_COMMIT", n.to_string());
        let status = a.status().unwrap();
        assert!(!status.success(), "the test hook did not abort");
    } else {
        let mut a = a.spawn().unwrap();
        wait_for("A: 2000 saved, 500 taken", Duration::from_secs(60), || {
            let keys: Vec<String> = con.keys(&processing).unwrap();
            let held: usize = keys.iter().map(|k| con.llen::<_, usize>(k).unwrap()).sum();
            committed_rows(&ca) == 2000 && held == 500
        });
        a.kill().unwrap(); // SIGKILL: no clean-up, the lease stays until it expires
        a.wait().unwrap();
    }
    assert_eq!(committed_rows(&ca), 2000);
    assert_eq!(rows_in(&ca), 2000);
    let left: Vec<String> = con.keys(&processing).unwrap();
    assert_eq!(left.len(), 1, "A's processing list: {left:?}");
    let mut b = rec();
    b.args(mk("b", "50"))
        .env("NETPIPE_RECORD_LEASE_MS", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let b = b.spawn().unwrap();
    wait_for(
        "B: A's list gone and the rest saved",
        Duration::from_secs(60),
        || {
            let keys: Vec<String> = con.keys(&processing).unwrap();
            let queued: usize = con.llen(&queue.0).unwrap();
            // B's own list is empty between snapshots once everything is saved.
            keys.iter()
                .all(|k| con.llen::<_, usize>(k).unwrap() == 0 && !k.contains(&left[0]))
                && queued == 0
                && committed_rows(&cb) == 500
        },
    );
    let err = stop(b, &dir.path("b.stop"));
    assert_eq!(
        merge(row_bag(&ca), row_bag(&cb)),
        want,
        "A's and B's rows are not every message once"
    );
    let keys: Vec<String> = con.keys(format!("{}.netpipe-*", queue.0)).unwrap();
    assert!(keys.is_empty(), "keys left: {keys:?}");
    err
}

#[test]
fn dead_redis_recorder_unsaved_messages_go_to_another_recorder() {
    let err = dead_recorder_taken_up("rec_dead_kill", None);
    assert!(err.contains("put 500 message(s)"), "{err}");
}

#[test]
fn dead_redis_recorder_committed_list_is_dropped_not_recorded_twice() {
    let err = dead_recorder_taken_up("rec_dead_abort", Some(2));
    assert!(
        err.contains("dropped") && err.contains("(1000 message(s)"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------------
// RabbitMQ
// ------------------------------------------------------------------------------------------

#[test]
fn two_recorders_split_one_rabbitmq_queue() {
    kombu::shared_rabbit_up();
    let dir = TempDir::unique("rec_two_amqp");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let names = AmqpNames::shared("rec_two");
    let mk = |name: &str| {
        let mut a: Vec<String> = vec![
            "--input".into(),
            AMQP.into(),
            "--save-after-num".into(),
            "50".into(),
        ];
        a.extend(names.args());
        a.extend(files(&dir, name));
        a
    };
    // The test controls the input: the fixture cut in three (editcap, packets 1-100, the bulk,
    // the last 100); A alone gets the first part, both the bulk, B alone (A stopped) the last.
    let n = FIXTURE_MESSAGES;
    let parts: Vec<PathBuf> = [
        "1-100".to_string(),
        format!("101-{}", n - 100),
        format!("{}-{n}", n - 99),
    ]
    .iter()
    .enumerate()
    .map(|(i, range)| {
        let part = dir.path(&format!("part{i}.pcap"));
        let out = Command::new("editcap")
            .args(["-F", "pcap", "-r", FIXTURE])
            .arg(&part)
            .arg(range)
            .output()
            .expect("editcap (installed with tshark by scripts/test.sh) is needed by this test");
        assert!(out.status.success(), "{}", text(&out));
        part
    })
    .collect();
    let publish = |part: &Path| {
        let out = bin()
            .args(["read", "-q"])
            .arg(part)
            .args(["-o", AMQP])
            .args(names.args())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    let (ca, cb) = (dir.path("a.csv"), dir.path("b.csv"));
    let a = spawn(&mk("a"));
    // The first recorder declares the queue; wait for it before publishing.
    wait_for(
        "the first recorder's state file",
        Duration::from_secs(30),
        || dir.path("a.csv.state").exists(),
    );
    publish(&parts[0]);
    wait_for("A: the first 100 saved", Duration::from_secs(60), || {
        committed_rows(&ca) == 100
    });
    let b = spawn(&mk("b"));
    publish(&parts[1]);
    wait_for(
        "all but the last 100 in one CSV or the other",
        Duration::from_secs(60),
        || (committed_rows(&ca) + committed_rows(&cb)) as usize == n - 100,
    );
    stop(a, &dir.path("a.stop"));
    publish(&parts[2]);
    wait_for(
        "every row in one CSV or the other",
        Duration::from_secs(60),
        || (committed_rows(&ca) + committed_rows(&cb)) as usize >= n,
    );
    stop(b, &dir.path("b.stop"));
    let (ra, rb) = (rows_in(&ca), rows_in(&cb));
    assert!(ra >= 100 && rb >= 100, "rows: {ra} / {rb}");
    assert_eq!(merge(row_bag(&ca), row_bag(&cb)), want);
}

// ------------------------------------------------------------------------------------------
// AntiNex
// ------------------------------------------------------------------------------------------

/// Method, path, headers (lower-case names), body.
type Request = (String, String, HashMap<String, String>, Vec<u8>);

/// One HTTP/1.1 request.
fn read_request(r: &mut BufReader<std::net::TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

fn respond(s: &mut std::net::TcpStream, status: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn antinex_client_logs_in_sends_jwt_and_logs_in_again_after_401() {
    let dir = TempDir::unique("rec_antinex");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server: login → t1; job with t1 → 401; login → t2; job with t2 → checked, 201.
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut logins = 0;
        let mut job_body = None;
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            while let Some((method, path, headers, body)) = read_request(&mut r) {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                seen.push(format!(
                    "{method} {path} {}",
                    headers.get("authorization").cloned().unwrap_or_default()
                ));
                match path.as_str() {
                    "/api-token-auth/" => {
                        assert_eq!(v["username"], "alice");
                        assert_eq!(v["password"], "s3cret");
                        logins += 1;
                        respond(&mut s, "200 OK", &format!("{{\"token\": \"t{logins}\"}}"));
                    }
                    "/ml/"
                        if headers.get("authorization").map(String::as_str) == Some("JWT t1") =>
                    {
                        respond(&mut s, "401 Unauthorized", "{\"detail\": \"expired\"}");
                    }
                    "/ml/" => {
                        job_body = Some(v);
                        respond(&mut s, "201 Created", "{\"id\": 1}");
                    }
                    _ => respond(&mut s, "404 Not Found", "{}"),
                }
            }
            if let Some(body) = job_body.take() {
                return (seen, body);
            }
        }
        unreachable!()
    });
    let jsonl = dir.path("in.jsonl");
    std::fs::write(
        &jsonl,
        [
            r#"{"data":{"ether":{"type":2048},"ip":{"ihl":5,"src":"10.0.0.1"},"tcp":{"dport":80,"fields_options":{"MSS":1460}}}}"#,
            r#"{"data":{"ether":{"type":2054},"arp":{"hwlen":6,"op":1}}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let request_file = dir.path("req.json");
    std::fs::write(
        &request_file,
        r#"{"ml_type": "classification", "keep": "me"}"#,
    )
    .unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "ax"))
        .env("ANTINEX_PUBLISH_ENABLED", "1")
        .env("ANTINEX_URL", format!("http://127.0.0.1:{port}"))
        .env("ANTINEX_USER", "alice")
        .env("ANTINEX_PASSWORD", "s3cret")
        .env("ANTINEX_USE_MODEL_NAME", "Model-X")
        .env("ANTINEX_PUBLISH_REQUEST_FILE", &request_file)
        .env("ANTINEX_MISSING_VALUE", "-1.0")
        .env(
            "ANTINEX_FEATURES_TO_PROCESS",
            "ip_ihl,tcp_dport,tcp_fields_options.MSS,arp_hwlen,ip_src,label_value",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("antinex: 1 job(s) sent (2 rows), 0 failed, 2 login(s)"),
        "{err}"
    );
    let (seen, body) = server.join().unwrap();
    assert_eq!(
        seen,
        [
            "POST /api-token-auth/ ",
            "POST /ml/ JWT t1",
            "POST /api-token-auth/ ",
            "POST /ml/ JWT t2"
        ]
    );
    assert_eq!(body["label"], "Model-X");
    assert_eq!(body["keep"], "me");
    assert_eq!(body["predict_feature"], "label_value");
    assert_eq!(body["publish_to_core"], true);
    assert_eq!(
        body["features_to_process"],
        serde_json::json!([
            "ip_ihl",
            "tcp_dport",
            "tcp_fields_options.MSS",
            "arp_hwlen",
            "ip_src"
        ])
    );
    let rows = body["predict_rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ip_ihl"], 5.0);
    assert_eq!(rows[0]["tcp_fields_options.MSS"], 1460.0);
    assert_eq!(rows[0]["arp_hwlen"], -1.0, "missing value");
    // An address does not convert to a float: filled with the missing value.
    assert_eq!(rows[0]["ip_src"], -1.0);
    assert_eq!(rows[0]["label_value"], -1.0);
    assert_eq!(rows[1]["arp_hwlen"], 6.0);
    assert_eq!(rows[1]["tcp_dport"], -1.0);
    assert_eq!(rows[1]["idx"], 1);

    // An AntiNex that does not answer: counted as failed, the recording is complete.
    let dead_port = free_port();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "dead"))
        .env("ANTINEX_PUBLISH_ENABLED", "1")
        .env("ANTINEX_URL", format!("http://127.0.0.1:{dead_port}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 job(s) sent (0 rows), 1 failed"), "{err}");
    assert_eq!(rows_in(&dir.path("dead.csv")), 2);
}

#[test]
fn stop_file_gives_the_message_in_hand_back_and_a_restart_finishes_the_queue() {
    let dir = TempDir::unique("rec_stopfile");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let queue = RedisQueue(unique("rec_stop"));
    let staging = stage("rec_stop_stage", FIXTURE_MESSAGES);
    let args = redis_recorder_args(&queue.0, 10, &dir, "s");
    let csv = dir.path("s.csv");
    // Only 1005 on the queue until the stop: 1000 saved and 5 held when the stop file appears,
    // whatever the recorder's speed (no idle snapshot in the first run).
    let mut first = args.clone();
    first.extend(["--idle-save-ms".into(), "0".into()]);
    release(&staging, &queue.0, 1005);
    let child = spawn(&first);
    let mut con = redis_con();
    wait_for("1000 rows saved, 5 held", Duration::from_secs(60), || {
        committed_rows(&csv) == 1000
            && con.llen::<_, usize>(&queue.0).unwrap() == 0
            && held(&mut con, &queue.0) == 5
    });
    let err = stop(child, &dir.path("s.stop"));
    assert!(err.contains("stopped: stop file found"), "{err}");
    let left: usize = con.llen(&queue.0).unwrap();
    let rows = rows_in(&csv);
    assert_eq!(rows + left, 1005, "{err}");
    let lists: Vec<String> = con
        .keys(format!("{}.netpipe-processing.*", queue.0))
        .unwrap();
    assert!(lists.is_empty(), "processing lists left: {lists:?}");
    // With the stop file still there the recorder refuses to start.
    let out = rec().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::remove_file(dir.path("s.stop")).unwrap();
    release(&staging, &queue.0, FIXTURE_MESSAGES - 1005);
    let child = spawn(&args);
    wait_for("every row", Duration::from_secs(60), || {
        committed_rows(&csv) as usize >= FIXTURE_MESSAGES
    });
    stop(child, &dir.path("s.stop"));
    assert_eq!(row_bag(&csv), want);
}

#[test]
fn environment_variables_and_stdin() {
    let dir = TempDir::unique("rec_env");
    let packets = bin()
        .args(["read", "-q", "-c", "20", FIXTURE])
        .output()
        .unwrap();
    assert!(packets.status.success());
    let mut child = rec()
        .args(["--input", "-"])
        .env("SAVE_AFTER_NUM", "7")
        .env("DS_DIR", &dir.0)
        .env("DS_NAME", "envset")
        .env("STOP_FILE", dir.path("never"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&packets.stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("20 recorded"), "{err}");
    assert!(err.contains("3 snapshot(s)"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let csv = names
        .iter()
        .find(|n| n.starts_with("envset-") && n.ends_with(".csv"))
        .unwrap_or_else(|| panic!("no DS_DIR/DS_NAME-*.csv in {names:?}"));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("packets-envset-") && n.ends_with(".json")),
        "{names:?}"
    );
    assert_eq!(rows_in(&dir.path(csv)), 20);
    // STOP_AFTER_NUM from the environment, and the flag winning over it.
    let jsonl = dir.path("in.jsonl");
    std::fs::write(&jsonl, &packets.stdout).unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "after2"))
        .env("STOP_AFTER_NUM", "5")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_in(&dir.path("after2.csv")), 5);
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "after3"))
        .args(["--stop-after-num", "8"])
        .env("STOP_AFTER_NUM", "5")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_in(&dir.path("after3.csv")), 8);
}

/// Runs a recorder that aborts right after its 20th commit (before acknowledging), checks
/// that it did, then a normal one on the same CSV until every message is in; returns the
/// second one's stderr.
fn crash_between_commit_and_ack(args: &[String], csv: &Path, stop_file: &Path) -> String {
    let out = rec()
        .args(args)
        .env("NETPIPE_RECORD_ABORT_AFTER_COMMIT", "20")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the test hook did not abort: {}",
        text(&out)
    );
    assert_eq!(committed_rows(csv), 20 * 50);
    let child = spawn(args);
    wait_for("every row", Duration::from_secs(60), || {
        committed_rows(csv) as usize >= FIXTURE_MESSAGES
    });
    stop(child, stop_file)
}

#[test]
fn crash_between_commit_and_ack_duplicates_nothing_redis() {
    let dir = TempDir::unique("rec_crash_redis");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let queue = RedisQueue(unique("rec_crash"));
    fill_redis(&queue.0, FIXTURE_MESSAGES);
    let args = redis_recorder_args(&queue.0, 50, &dir, "c");
    let csv = dir.path("c.csv");
    // After the abort the committed snapshot's processing list is still there.
    let err = crash_between_commit_and_ack(&args, &csv, &dir.path("c.stop"));
    assert!(err.contains("(resumed)"), "{err}");
    assert_eq!(row_bag(&csv), want);
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl (the broker's own tool) is needed by this test");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The broker's id of the recorder's connection (its name carries the process id).
fn recorder_connection(pid: u32) -> Option<String> {
    let marker = format!("netpipe-fast record {pid}");
    rabbitmqctl(&["list_connections", "pid", "client_properties"])
        .lines()
        .find(|l| l.contains(&marker))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

/// (unacknowledged, total) messages of a queue.
fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    rabbitmqctl(&["list_queues", "name", "messages_unacknowledged", "messages"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 3 && f[0] == queue)
        .and_then(|f| Some((f[1].parse().ok()?, f[2].parse().ok()?)))
}

#[test]
fn rabbitmq_connection_closed_by_the_broker_reconnects_without_duplicates() {
    let dir = TempDir::unique("rec_amqp_reconnect");
    let (_, want) = reference_recording(&dir, 2500);
    let names = AmqpNames::shared("rec_reconnect");
    let mut args: Vec<String> = vec![
        "--input".into(),
        AMQP.into(),
        "--save-after-num".into(),
        "1000".into(),
        "--idle-save-ms".into(),
        "0".into(),
    ];
    args.extend(names.args());
    args.extend(files(&dir, "r"));
    let csv = dir.path("r.csv");
    let child = spawn(&args);
    let pid = child.id();
    wait_for("the recorder's connection", Duration::from_secs(30), || {
        recorder_connection(pid).is_some()
    });
    let out = bin()
        .args(["read", "-q", "-c", "2500", FIXTURE, "-o", AMQP])
        .args(names.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Two snapshots committed, 500 rows pending and unacknowledged.
    wait_for("2000 saved, 500 held", Duration::from_secs(60), || {
        committed_rows(&csv) == 2000 && queue_counts(&names.queue) == Some((500, 500))
    });
    let first = recorder_connection(pid).unwrap();
    rabbitmqctl(&[
        "close_connection",
        &first,
        "test: connection closed by the broker",
    ]);
    // A new connection, and the 500 delivered again to it (recognised, held unacknowledged).
    wait_for("the new connection", Duration::from_secs(60), || {
        recorder_connection(pid).is_some_and(|c| c != first)
            && queue_counts(&names.queue) == Some((500, 500))
    });
    let err = stop(child, &dir.path("r.stop"));
    assert!(err.contains("reconnected"), "{err}");
    assert_eq!(rows_in(&csv), 2500, "{err}");
    assert_eq!(row_bag(&csv), want);
    assert_eq!(queue_counts(&names.queue), Some((0, 0)), "{err}");
}

#[test]
fn crash_between_commit_and_ack_duplicates_nothing_rabbitmq() {
    kombu::shared_rabbit_up();
    let dir = TempDir::unique("rec_crash_amqp");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let names = AmqpNames::shared("rec_crash");
    let mut args: Vec<String> = vec![
        "--input".into(),
        AMQP.into(),
        "--save-after-num".into(),
        "50".into(),
    ];
    args.extend(names.args());
    args.extend(files(&dir, "c"));
    let out = bin()
        .args(["read", "-q", FIXTURE, "-o", AMQP])
        .args(names.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The aborted run's last snapshot (50 messages) was never acknowledged: the broker
    // delivers it again, and the restart recognises it from the state's hashes.
    let err = crash_between_commit_and_ack(&args, &dir.path("c.csv"), &dir.path("c.stop"));
    assert!(err.contains("50 skipped as already recorded"), "{err}");
    assert_eq!(row_bag(&dir.path("c.csv")), want);
}

// ------------------------------------------------------------------------------------------
// Hardening (issue 9): items 3, 8, 9, 11, 12
// ------------------------------------------------------------------------------------------

/// The peak resident memory of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Item 3: an owner record planted in Redis names `/dev/zero` (and a root-only file) as the
/// dead recorder's state file. The recorder that takes the orphaned list up must not open
/// either: it finishes the queue quickly, with bounded memory, and records the orphaned
/// messages (at-least-once: no commit mark, so they go back to the queue).
#[test]
fn hostile_owner_record_path_is_never_opened() {
    let dir = TempDir::unique("rec_owner_path");
    let (_, want) = reference_recording(&dir, 40);
    let queue = RedisQueue(unique("rec_owner_path"));
    let mut con = redis_con();
    // 40 messages in two dead recorders' processing lists (30 and 10), nothing on the queue.
    fill_redis(&queue.0, 40);
    let orphan = format!("{}.netpipe-processing.deadbeef.1", queue.0);
    let _: () = redis::cmd("RENAME")
        .arg(&queue.0)
        .arg(&orphan)
        .query(&mut con)
        .unwrap();
    let orphan2 = format!("{}.netpipe-processing.cafef00d.3", queue.0);
    for _ in 0..10 {
        let _: Option<Vec<u8>> = redis::cmd("LMOVE")
            .arg(&orphan)
            .arg(&orphan2)
            .arg("RIGHT")
            .arg("LEFT")
            .query(&mut con)
            .unwrap();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let secret = dir.path("root-only-secret");
    std::fs::write(&secret, b"not for the broker").unwrap();
    for (owner, path) in [
        ("deadbeef", "/dev/zero".to_string()),
        ("cafef00d", secret.display().to_string()),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(format!("{}.netpipe-owner.{owner}", queue.0))
            .arg("host")
            .arg(host.trim())
            .arg("state")
            .arg(&path)
            .query(&mut con)
            .unwrap();
    }
    let mut args = vec![
        "--input".to_string(),
        REDIS.into(),
        "--queue".into(),
        queue.0.clone(),
        "--save-after-num".into(),
        "10".into(),
    ];
    args.extend(files(&dir, "b"));
    let child = spawn(&args);
    let pid = child.id();
    wait_for(
        "the orphaned messages recorded",
        Duration::from_secs(20),
        || committed_rows(&dir.path("b.csv")) == 40,
    );
    let hwm = vm_hwm_kib(pid);
    assert!(hwm < 200 * 1024, "peak RSS {hwm} KiB: something was read");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !fds.iter().any(|p| p == "/dev/zero" || p.contains("secret")),
        "{fds:?}"
    );
    let err = stop(child, &dir.path("b.stop"));
    assert!(
        err.contains("put 30 message(s)") && err.contains("put 10 message(s)"),
        "{err}"
    );
    assert_eq!(row_bag(&dir.path("b.csv")), want);
}

/// Item 8: a line over --max-line-bytes is skipped to its newline, counted as rejected with
/// its position and length, and not copied into rejected.jsonl; the lines around it are
/// recorded.
#[test]
fn overlong_line_is_rejected_by_position_and_length_not_copied() {
    let dir = TempDir::unique("rec_long_line");
    let good = r#"{"data":{"ip":{"src":"10.0.0.1","ttl":64}}}"#;
    let long_len = 3 << 20;
    let mut input = Vec::new();
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    let mut long = br#"{"data":{"ip":{"src":""#.to_vec();
    long.resize(long_len - 4, b'A');
    long.extend_from_slice(br#""}}}"#);
    assert_eq!(long.len(), long_len);
    input.extend_from_slice(&long);
    input.push(b'\n');
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    std::fs::write(dir.path("in.jsonl"), &input).unwrap();
    let out = rec()
        .args([
            "--input",
            &format!("file:{}", dir.path("in.jsonl").display()),
        ])
        .args(["--max-line-bytes", "1048576"])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 message(s) read, 2 recorded, 1 rejected (1 over --max-line-bytes"));
    assert_eq!(rows_in(&dir.path("r.csv")), 2);
    let rejected = std::fs::read(dir.path("r.csv.rejected.jsonl")).unwrap();
    assert!(rejected.len() < 1024, "{} bytes", rejected.len());
    let v: serde_json::Value = serde_json::from_slice(&rejected).unwrap();
    assert_eq!(v["length"], long_len);
    assert!(v["position"].as_str().unwrap().ends_with("line 2"), "{v}");
    assert!(v.get("message").is_none(), "{v}");
}

/// Item 8: a flood of distinct keys stops at --max-columns: the messages that would add
/// more columns are rejected and counted, and the CSV keeps its width.
#[test]
fn distinct_key_flood_stops_at_max_columns() {
    let dir = TempDir::unique("rec_columns");
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(&format!("{{\"data\":{{\"ip\":{{\"k{i:04}\":{i}}}}}}}\n"));
    }
    std::fs::write(dir.path("in.jsonl"), input).unwrap();
    let out = rec()
        .args([
            "--input",
            &format!("file:{}", dir.path("in.jsonl").display()),
        ])
        .args(["--max-columns", "50", "--save-after-num", "7"])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("300 message(s) read, 50 recorded, 250 rejected (0 over --max-line-bytes, 250 past --max-columns)"),
        "{err}"
    );
    let (header, rows) = read_csv(&dir.path("r.csv"));
    // idx, the ten <layer>_id columns, 50 of the flood.
    assert_eq!(header.len(), 1 + 10 + 50, "{header:?}");
    assert_eq!(rows.len(), 50);
    // A rejected message adds no column: the ones kept are the first 50 keys.
    assert!(header.contains(&"ip_k0049".to_string()) && !header.contains(&"ip_k0050".to_string()));
}

/// Item 11: --csv-safe writes ' before text cells a spreadsheet would run as formulas;
/// numbers (even negative ones) are left alone, and without the flag nothing changes.
#[test]
fn csv_safe_prefixes_formula_text_but_not_numbers() {
    let dir = TempDir::unique("rec_csv_safe");
    let msg = r#"{"data":{"dns":{"qname":"=HYPERLINK(\"http://x\",\"y\")","an":"+1-2","ar":"@SUM(A1)","ns":"-cmd","ok":"plain","ttl":-1,"w":2.5}}}"#;
    std::fs::write(dir.path("in.jsonl"), format!("{msg}\n")).unwrap();
    let input = format!("file:{}", dir.path("in.jsonl").display());
    for (name, safe) in [("safe", true), ("plain", false)] {
        let mut c = rec();
        c.args(["--input", &input]).args(files(&dir, name));
        if safe {
            c.arg("--csv-safe");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let (header, rows) = read_csv(&dir.path(&format!("{name}.csv")));
        let cell = |c: &str| rows[0][header.iter().position(|h| h == c).unwrap()].clone();
        let p = if safe { "'" } else { "" };
        assert_eq!(
            cell("dns_qname"),
            format!("{p}=HYPERLINK(\"http://x\",\"y\")")
        );
        assert_eq!(cell("dns_an"), format!("{p}+1-2"));
        assert_eq!(cell("dns_ar"), format!("{p}@SUM(A1)"));
        assert_eq!(cell("dns_ns"), format!("{p}-cmd"));
        assert_eq!(cell("dns_ok"), "plain");
        assert_eq!(cell("dns_ttl"), "-1");
        assert_eq!(cell("dns_w"), "2.5");
    }
}

/// A folder like /tmp (sticky, world-writable) with a root-owned victim file in it.
fn shared_folder(what: &str) -> (TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::unique(what);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path("victim");
    std::fs::write(&victim, b"precious").unwrap();
    (dir, victim)
}

/// A symbolic link at `at` to `to`, owned by another user (nobody), as an attacker plants it.
fn plant_link(to: &Path, at: &Path) {
    std::os::unix::fs::symlink(to, at).unwrap();
    std::os::unix::fs::lchown(at, Some(65534), Some(65534)).unwrap();
}

/// Item 9: links planted by another user at the recorder's names are never followed: the old
/// fixed temporary name is not used any more, a link at the CSV or the archive stops the run
/// before anything is written through it, and a state file that is not ours is refused.
#[test]
fn links_planted_at_the_recorders_names_are_not_followed() {
    if !common::harness::root_available("planted-link test (files owned by another uid)") {
        return;
    }
    let (dir, victim) = shared_folder("rec_links");
    let packets = dir.path("in.jsonl");
    let out = bin()
        .args(["read", "-q", "-c", "20", FIXTURE])
        .output()
        .unwrap();
    std::fs::write(&packets, &out.stdout).unwrap();
    let input = format!("file:{}", packets.display());
    // The old fixed temporaries: <csv>.state.tmp and <csv>.tmp, linked to the victim.
    plant_link(&victim, &dir.path("a.csv.state.tmp"));
    plant_link(&victim, &dir.path("a.csv.tmp"));
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "a"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_in(&dir.path("a.csv")), 20);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    use std::os::unix::fs::PermissionsExt;
    for f in ["a.csv", "a.json", "a.csv.state"] {
        let mode = std::fs::metadata(dir.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // A dangling link at the archive name (to make a file where the attacker wants it) and
    // a link at the CSV name: refused, nothing created or changed through them.
    let made = dir.path("made-by-root");
    plant_link(&made, &dir.path("b.json"));
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "b"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    assert!(!made.exists());
    assert!(
        !dir.path("b.csv.state").exists(),
        "a failed start left its state"
    );
    plant_link(&victim, &dir.path("c.csv"));
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "c"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // A state file planted by another user (it says what to cut the CSV back to): refused.
    std::fs::copy(dir.path("a.csv.state"), dir.path("d.csv.state")).unwrap();
    std::os::unix::fs::lchown(dir.path("d.csv.state"), Some(65534), Some(65534)).unwrap();
    std::fs::copy(&victim, dir.path("d.csv")).unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not trusted: owned by uid 65534"));
    assert_eq!(std::fs::read(dir.path("d.csv")).unwrap(), b"precious");
    // A CSV swapped for another user's file between two runs is not resumed (cut, appended).
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "f"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let theirs = std::fs::read(dir.path("f.csv")).unwrap();
    std::fs::remove_file(dir.path("f.csv")).unwrap();
    std::fs::write(dir.path("f.csv"), &theirs).unwrap();
    std::os::unix::fs::lchown(dir.path("f.csv"), Some(65534), Some(65534)).unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "f"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not resumed: owned by uid 65534"));
    assert_eq!(std::fs::read(dir.path("f.csv")).unwrap(), theirs);
    // A stop file made by another user does not stop this recorder.
    let stop_file = dir.path("e.stop");
    std::fs::write(&stop_file, b"").unwrap();
    std::os::unix::fs::lchown(&stop_file, Some(65534), Some(65534)).unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "e"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_in(&dir.path("e.csv")), 20);
}

/// Runs `record --input -` with `stdin` and the given arguments.
fn record_stdin(stdin: &[u8], args: &[String]) -> Output {
    let mut child = rec()
        .args(["--input", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Item 12: resuming from stdin skips nothing, the same command (only --output-csv, so the
/// archive name and the stop file come from it) runs again and resumes, and the summary
/// gives the CSV's real row count.
#[test]
fn stdin_resume_skips_nothing_and_output_csv_alone_runs_again() {
    let dir = TempDir::unique("rec_stdin_again");
    let first = bin()
        .args(["read", "-q", "-c", "30", FIXTURE])
        .output()
        .unwrap();
    let second = bin()
        .args(["read", "-q", "-c", "20", FIXTURE])
        .output()
        .unwrap();
    let csv = dir.path("icmp.csv");
    let args = vec!["--output-csv".to_string(), csv.display().to_string()];
    let out = record_stdin(&first.stdout, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.path("packets-icmp.json").exists());
    let out = record_stdin(&second.stdout, &args);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("20 message(s) read, 20 recorded"), "{err}");
    assert!(
        err.contains(&format!("CSV {} has 50 row(s)", csv.display())),
        "{err}"
    );
    assert!(err.contains("(resumed)"), "{err}");
    assert_eq!(rows_in(&csv), 50);
    let archive: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("packets-icmp.json")).unwrap()).unwrap();
    assert_eq!(archive["num_packets"], 50);
}

/// Item 12: the resume offset of a file input applies only to that file: a new file at the
/// same path (another inode) is read from its first line.
#[test]
fn file_resume_offset_applies_only_to_the_same_file() {
    let dir = TempDir::unique("rec_same_file");
    let packets = bin()
        .args(["read", "-q", "-c", "30", FIXTURE])
        .output()
        .unwrap();
    let path = dir.path("in.jsonl");
    std::fs::write(&path, &packets.stdout).unwrap();
    let input = format!("file:{}", path.display());
    let out = rec()
        .args(["--input", &input, "--stop-after-num", "10"])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Same path, another file (the old one rotated away, so a new inode): 30 lines, none
    // skipped.
    std::fs::rename(&path, dir.path("in.jsonl.1")).unwrap();
    std::fs::write(&path, &packets.stdout).unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("30 message(s) read, 30 recorded"), "{err}");
    assert!(err.contains("is read from its first line"), "{err}");
    assert_eq!(rows_in(&dir.path("r.csv")), 40);
    // The same file again, grown: only the new lines.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&packets.stdout[..packets.stdout.iter().position(|&b| b == b'\n').unwrap() + 1])
        .unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 message(s) read, 1 recorded"), "{err}");
    assert_eq!(rows_in(&dir.path("r.csv")), 41);
    // Deleted and written again at once: the file system may give the new file the old
    // inode number; its birth time still tells it apart (where the file system keeps one).
    if std::fs::metadata(&path).unwrap().created().is_ok() {
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &packets.stdout).unwrap();
        let out = rec()
            .args(["--input", &input])
            .args(files(&dir, "r"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("30 message(s) read, 30 recorded"), "{err}");
        assert_eq!(rows_in(&dir.path("r.csv")), 71);
    }
}

/// Item 12: a usage error or a failed start leaves no state file (nor CSV) behind.
#[test]
fn failed_start_leaves_no_state_file() {
    let dir = TempDir::unique("rec_failed_start");
    for (name, url, code) in [
        ("bad", "bogus://x", 2),
        ("gone", "redis://127.0.0.1:1/0", 9),
        ("nofile", "file:/nonexistent/in.jsonl", 3),
    ] {
        let out = rec()
            .args(["--input", url])
            .args(files(&dir, name))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{url}: {}", text(&out));
        let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
        assert!(left.is_empty(), "{url}: left {left:?}");
    }
}

/// Item 12: a state file whose CSV was deleted gives one clear line and exit 15.
#[test]
fn stale_state_with_missing_csv_says_what_to_delete() {
    let dir = TempDir::unique("rec_stale_state");
    let packets = bin()
        .args(["read", "-q", "-c", "12", FIXTURE])
        .output()
        .unwrap();
    let path = dir.path("in.jsonl");
    std::fs::write(&path, &packets.stdout).unwrap();
    let input = format!("file:{}", path.display());
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(dir.path("r.csv")).unwrap();
    let out = rec()
        .args(["--input", &input])
        .args(files(&dir, "r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    let state = dir.path("r.csv.state");
    let line = format!(
        "state file {} records 12 rows of {}, which is missing: delete {} to start over",
        state.display(),
        dir.path("r.csv").display(),
        state.display()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&line), "{err}");
    assert!(err.contains("not opened"), "{err}");
}

/// The CSV the recorder wrote by hand before it used the csv crate, for the messages of
/// `quoted_fields_survive_rewrites_a_torn_restart_and_read_back_in_python` (made with that
/// binary, `d278bc1`): the csv crate writes the same bytes.
const QUOTED_CSV: &[u8] = b"idx,arp_id,dns_both,dns_cr,dns_f,dns_id,\"dns_k,\"\"\n\",dns_multi,dns_n,\
dns_qname,dns_txt,eth_id,icmp_id,ip_id,ipvsix_id,pad_id,raw_id,tcp_id,udp_id,udp_note,udp_sport\n\
0,,\"\"\",\n\r\"\"\",\"x\ry\",\"[1,\"\"a,b\"\"]\",,,\"l1\nl2\",-3,\"a,b\",\"say \"\"hi\"\"\",,,,,,,,,,\n\
1,,,,,,odd key,,7,plain,,,,,,,,,,,\n\
2,,,,,,,\"end\n\",,\"\"\"start\",,,,,,,,,,=1+2,53\n\
3,,,,,,\"x\"\"y\",,,\"after, resume\",,,,,,,,,,,\n";

/// Cells that need quoting (comma, quote, LF, CR, in values and in a column name) through
/// every CSV path: new file, appends, rewrites for new columns (the committed rows read back
/// and widened), and a restart after a crash that renamed a rewrite in but did not commit it
/// (the wider header kept, the committed row found past its quoted newlines, a torn row cut).
/// The file is byte for byte what the hand-written writer made, and Python's csv module and
/// pandas read back every cell as it was sent.
#[test]
fn quoted_fields_survive_rewrites_a_torn_restart_and_read_back_in_python() {
    let py = common::pandas_python();
    let dir = TempDir::unique("rec_quoted");
    let first = concat!(
        r#"{"data":{"dns":{"qname":"a,b","txt":"say \"hi\"","multi":"l1\nl2","cr":"x\ry","both":"\",\n\r\"","n":-3,"f":[1,"a,b"]}}}"#,
        "\n",
        r#"{"data":{"dns":{"qname":"plain","n":7,"k,\"\n":"odd key"}}}"#,
        "\n",
        r#"{"data":{"udp":{"sport":53,"note":"=1+2"},"dns":{"qname":"\"start","multi":"end\n"}}}"#,
        "\n"
    );
    let last = concat!(
        r#"{"data":{"dns":{"qname":"after, resume","k,\"\n":"x\"y"}}}"#,
        "\n"
    );
    let jsonl = dir.path("in.jsonl");
    std::fs::write(&jsonl, first).unwrap();
    let csv = dir.path("r.csv");
    let state = netpipe_fast::record::csv::suffixed(&csv, ".state");
    let run = |extra: &[&str]| {
        let out = rec()
            .args(["--input", &format!("file:{}", jsonl.display())])
            .args(files(&dir, "r"))
            .args(["--save-after-num", "1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    // One message committed; keep that state.
    run(&["--stop-after-num", "1"]);
    let one = std::fs::read(&state).unwrap();
    // The other two: each brings columns, so each rewrites the CSV.
    run(&[]);
    assert_eq!(committed_rows(&csv), 3);
    // A crash after the last rewrite's rename and before its commit: the state of one
    // message, the CSV three rows and two columns sets wider, a row torn at its end.
    std::fs::write(&state, &one).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&csv)
        .unwrap()
        .write_all(b"9,\"torn")
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&jsonl)
        .unwrap()
        .write_all(last.as_bytes())
        .unwrap();
    run(&[]);
    assert_eq!(committed_rows(&csv), 4);
    let written = std::fs::read(&csv).unwrap();
    assert!(
        written == QUOTED_CSV,
        "not the hand-written writer's bytes:\n{:?}\n{:?}",
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(QUOTED_CSV)
    );

    let script = r#"
import csv, json, sys
import pandas as pd
with open(sys.argv[1], encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))
df = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
print(json.dumps({"csv": rows, "pandas": [list(df.columns)] + df.values.tolist()}))
"#;
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let read: HashMap<String, Vec<Vec<String>>> = serde_json::from_slice(&out.stdout).unwrap();
    let k = "dns_k,\"\n";
    let expected: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("idx", "0"),
            ("dns_both", "\",\n\r\""),
            ("dns_cr", "x\ry"),
            ("dns_f", "[1,\"a,b\"]"),
            ("dns_multi", "l1\nl2"),
            ("dns_n", "-3"),
            ("dns_qname", "a,b"),
            ("dns_txt", "say \"hi\""),
        ],
        vec![
            ("idx", "1"),
            (k, "odd key"),
            ("dns_n", "7"),
            ("dns_qname", "plain"),
        ],
        vec![
            ("idx", "2"),
            ("dns_multi", "end\n"),
            ("dns_qname", "\"start"),
            ("udp_note", "=1+2"),
            ("udp_sport", "53"),
        ],
        vec![("idx", "3"), (k, "x\"y"), ("dns_qname", "after, resume")],
    ];
    for reader in ["csv", "pandas"] {
        let table = &read[reader];
        let (header, rows) = (&table[0], &table[1..]);
        assert_eq!(header.len(), 21, "{reader}: {header:?}");
        assert!(header.contains(&k.to_string()), "{reader}: {header:?}");
        let cells: Vec<Vec<(&str, &str)>> = rows
            .iter()
            .map(|r| {
                assert_eq!(r.len(), header.len(), "{reader}: {r:?}");
                let mut row: Vec<(&str, &str)> = header
                    .iter()
                    .zip(r)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.as_str(), v.as_str()))
                    .collect();
                row.sort();
                row
            })
            .collect();
        let mut want = expected.clone();
        want.iter_mut().for_each(|r| r.sort());
        assert_eq!(cells, want, "{reader}");
    }
}

/// SIGINT to a recorder on a Redis queue: it exits 0 with everything it took either in the
/// committed CSV or back on the queue, and a restart gives every message exactly once.
#[test]
fn sigint_stops_a_redis_recorder_cleanly_and_a_restart_finishes_the_queue() {
    let dir = TempDir::unique("rec_sigint");
    let (_, want) = reference_recording(&dir, FIXTURE_MESSAGES);
    let queue = RedisQueue(unique("rec_sigint"));
    let staging = stage("rec_sigint_stage", FIXTURE_MESSAGES);
    let args = redis_recorder_args(&queue.0, 50, &dir, "i");
    let csv = dir.path("i.csv");
    // 1010 on the queue, no idle snapshot: at the signal 1000 are saved and 10 held.
    let mut first = args.clone();
    first.extend(["--idle-save-ms".into(), "0".into()]);
    release(&staging, &queue.0, 1010);
    let mut child = spawn(&first);
    let mut con = redis_con();
    wait_for("1000 rows saved, 10 held", Duration::from_secs(60), || {
        committed_rows(&csv) == 1000
            && con.llen::<_, usize>(&queue.0).unwrap() == 0
            && held(&mut con, &queue.0) == 10
    });
    send_signal(child.id(), "INT");
    let status = wait_exit(&mut child, "the recorder to stop", Duration::from_secs(30));
    let err = read_stderr(&mut child);
    assert!(status.success(), "{status:?} {err}");
    assert!(err.contains("stopped: signal"), "{err}");
    let rows = rows_in(&csv);
    assert_eq!(rows as u64, committed_rows(&csv), "{err}");
    assert!(rows >= 1000, "{err}");
    let left: usize = con.llen(&queue.0).unwrap();
    assert_eq!(rows + left, 1010, "messages lost or doubled: {err}");
    assert_eq!(held(&mut con, &queue.0), 0, "processing lists left");
    release(&staging, &queue.0, FIXTURE_MESSAGES - 1010);
    let child = spawn(&args);
    wait_for("every row", Duration::from_secs(60), || {
        committed_rows(&csv) as usize >= FIXTURE_MESSAGES
    });
    let err = stop(child, &dir.path("i.stop"));
    assert!(err.contains("(resumed)"), "{err}");
    assert_eq!(row_bag(&csv), want, "not every message once");
}

/// A second SIGINT while the recorder is finishing (here: stuck sending its AntiNex job to a
/// server that never answers, 30 s timeout) ends it at once with exit code 1, as
/// `stop_on_signals` documents; the snapshot committed before the job stays.
#[test]
fn second_sigint_while_finishing_ends_at_once_with_code_1() {
    let dir = TempDir::unique("rec_sigint2");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let jsonl = dir.path("in.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"data":{"ether":{"type":2048},"ip":{"ihl":5,"src":"10.0.0.1"}}}"#.to_string() + "\n",
    )
    .unwrap();
    let mut child = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(&dir, "s2"))
        .env("ANTINEX_PUBLISH_ENABLED", "1")
        .env("ANTINEX_URL", format!("http://127.0.0.1:{port}"))
        .env("ANTINEX_USER", "alice")
        .env("ANTINEX_PASSWORD", "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The recorder has committed its one row and is waiting for the login answer.
    let (conn, _) = listener.accept().unwrap();
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.starts_with("POST /api-token-auth/"), "{first}");
    assert_eq!(committed_rows(&dir.path("s2.csv")), 1);
    let pid = child.id();
    send_signal(pid, "INT");
    wait_for("the first SIGINT taken", Duration::from_secs(10), || {
        !sigint_pending(pid)
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first SIGINT ended the recorder"
    );
    send_signal(pid, "INT");
    let status = wait_exit(&mut child, "the second SIGINT", Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{}", read_stderr(&mut child));
    assert_eq!(rows_in(&dir.path("s2.csv")), 1);
    drop(r);
}

// ---------------------------------------------------------------------------------------------
// Tunnels: the column names of repeated layers (docs/FORMAT.md, "Repeated layers in `record`
// CSVs"; README "From capture to a recorded CSV"), derived here from the documented rules and
// from scapy's dissection (tests/oracle/scapy_json.py), not from the recorder's own code.
// ---------------------------------------------------------------------------------------------

/// The column prefix of a layer key, as documented: the original recorder's ten, else
/// `<key>_` (a suffixed key keeps its suffix: `ether_2` is `ether_2_`, not `eth_2_`).
fn documented_prefix(key: &str) -> String {
    match key {
        "ether" => "eth_",
        "ip" => "ip_",
        "ipv6" => "ipv6_",
        "tcp" => "tcp_",
        "udp" => "udp_",
        "dns" => "dns_",
        "icmp" => "icmp_",
        "arp" => "arp_",
        "raw" => "raw_",
        "padding" => "pad_",
        other => return format!("{other}_"),
    }
    .to_string()
}

/// The ten `*_id` columns every CSV has (README, "What you get").
const DOCUMENTED_ID_COLUMNS: [&str; 10] = [
    "eth_id",
    "ip_id",
    "ipvsix_id",
    "icmp_id",
    "arp_id",
    "tcp_id",
    "udp_id",
    "dns_id",
    "raw_id",
    "pad_id",
];

/// A layer's cells as pandas `json_normalize` makes them: nested object keys joined with `.`,
/// an empty object no column, every other value one cell.
fn normalized(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v.as_object() {
        Some(map) => {
            for (k, inner) in map {
                let name = if prefix.ends_with('_') {
                    format!("{prefix}{k}")
                } else {
                    format!("{prefix}.{k}")
                };
                normalized(&name, inner, out);
            }
        }
        None => out.push((prefix.to_string(), v.clone())),
    }
}

/// The documented cells of one packet's `data`.
fn documented_cells(data: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut cells = Vec::new();
    for (key, layer) in data.as_object().expect("data is an object") {
        assert!(layer.is_object(), "layer {key} is not an object");
        normalized(&documented_prefix(key), layer, &mut cells);
    }
    cells
}

/// Whether a CSV cell holds `v` as documented: numbers as digits, strings as they are,
/// `True`/`False`, null empty, lists as JSON text.
fn cell_holds(cell: &str, v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => cell.is_empty(),
        Value::Bool(b) => cell == if *b { "True" } else { "False" },
        Value::Number(n) if n.is_u64() || n.is_i64() => cell == n.to_string(),
        Value::Number(n) => panic!("no float expected in the tunnel fixture: {n}"),
        Value::String(s) => cell == s,
        Value::Array(_) => serde_json::from_str::<Value>(cell).ok().as_ref() == Some(v),
        Value::Object(_) => unreachable!("objects are flattened"),
    }
}

/// `read` then `record` of `jsonl` lines (written to `dir/<name>.jsonl`); the CSV.
fn record_lines(dir: &TempDir, name: &str, lines: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let jsonl = dir.path(&format!("{name}.jsonl"));
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let out = rec()
        .args(["--input", &format!("file:{}", jsonl.display())])
        .args(files(dir, name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out));
    read_csv(&dir.path(&format!("{name}.csv")))
}

/// `idx`, then the sorted union of the documented names of `cells` and the ten id columns.
fn documented_header<'a>(cells: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = cells.into_iter().map(str::to_string).collect();
    names.extend(DOCUMENTED_ID_COLUMNS.iter().map(|s| s.to_string()));
    names.sort_unstable();
    names.dedup();
    std::iter::once("idx".to_string()).chain(names).collect()
}

#[test]
fn tunnel_columns_are_the_documented_names_and_keep_outer_values() {
    let pcap = "pcaps/tunnels.pcap";
    let dir = TempDir::unique("rec_tunnels");
    let read = bin().args(["read", "-q", pcap]).output().unwrap();
    assert!(read.status.success(), "{}", text(&read));
    let ours_text = String::from_utf8(read.stdout).unwrap();
    let ours: Vec<&str> = ours_text.lines().collect();

    // scapy's dissection of the same file, in the message format (the differential test's
    // oracle): the expected columns and values come from it.
    let scapy = Command::new("/usr/bin/python3")
        .arg(root().join("tests/oracle/scapy_json.py"))
        .arg(root().join(pcap))
        .output()
        .unwrap();
    assert!(scapy.status.success(), "scapy oracle: {}", text(&scapy));
    let oracle: Vec<serde_json::Value> = String::from_utf8(scapy.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(oracle.len(), ours.len(), "packets: scapy vs read");
    let expected: Vec<Vec<(String, serde_json::Value)>> = oracle
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let data = m
                .get("data")
                .unwrap_or_else(|| panic!("scapy: frame {}: {m}", i + 1));
            documented_cells(data)
        })
        .collect();

    // The whole file: the header is exactly the documented one.
    let (header, rows) = record_lines(&dir, "all", &ours);
    let want_header = documented_header(expected.iter().flatten().map(|(n, _)| n.as_str()));
    assert_eq!(header, want_header, "CSV header of {pcap}");
    // The documented examples and every tunnel kind of the fixture are among them: outer
    // layers under the plain prefixes, tunnel headers under their own, inner layers suffixed
    // (two and three deep).
    for name in [
        "eth_dst",
        "ip_src",
        "ipv6_src",
        "udp_dport",
        "tcp_dport",
        "dot1q_vlan",
        "vxlan_vni",
        "geneve_vni",
        "geneve_options",
        "gre_key",
        "gre_sequence_number",
        "gre_chksum",
        "gre_pptp_call_id",
        "erspan_ii_session_id",
        "erspan_iii_session_id",
        "erspan_platformspecific_platf_id",
        "mpls_label",
        "mpls_2_label",
        "pppoe_sessionid",
        "pppoed_code",
        "ppp_proto",
        "ether_2_dst",
        "ether_3_dst",
        "ip_2_src",
        "ip_3_src",
        "ipv6_2_dst",
        "udp_2_sport",
    ] {
        assert!(header.iter().any(|h| h == name), "no column {name}");
    }
    assert!(!header
        .iter()
        .any(|h| h.starts_with("eth_2") || h.starts_with("pad_2")));

    // Every row holds exactly scapy's values under the documented names: no outer value
    // overwritten by an inner one, nothing in a column its packet does not have.
    assert_eq!(rows.len(), expected.len());
    let col: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    for (i, (row, cells)) in rows.iter().zip(&expected).enumerate() {
        let frame = i + 1;
        assert_eq!(row.len(), header.len(), "frame {frame}: ragged row");
        assert_eq!(row[0], i.to_string(), "frame {frame}: idx");
        let mut filled = vec![false; header.len()];
        filled[0] = true;
        for (name, value) in cells {
            let c = col[name.as_str()];
            assert!(
                cell_holds(&row[c], value),
                "frame {frame}: {name} is {:?}, scapy says {value}",
                row[c]
            );
            filled[c] = true;
        }
        for (c, cell) in row.iter().enumerate() {
            assert!(
                filled[c] || cell.is_empty(),
                "frame {frame}: {} holds {cell:?}, but the packet has no such field",
                header[c]
            );
        }
    }
    // Spot checks read straight off the capture's layout (README of pcaps/): the first
    // packet is VXLAN between the tunnel endpoints around tenant TCP; frame 19 is VXLAN in
    // GRE (three IPv4 headers); frame 24 VXLAN under two MPLS labels (1000, 2000) in GRE.
    let cell = |frame: usize, name: &str| rows[frame - 1][col[name]].as_str();
    assert_eq!(
        [cell(1, "ip_src"), cell(1, "ip_2_src"), cell(1, "tcp_dport")],
        ["203.0.113.11", "192.0.2.101", "80"]
    );
    assert_eq!(
        [
            cell(19, "ip_src"),
            cell(19, "ip_2_src"),
            cell(19, "ip_3_src")
        ],
        ["203.0.113.1", "203.0.113.11", "192.0.2.101"]
    );
    assert_eq!(
        [cell(24, "mpls_label"), cell(24, "mpls_2_label")],
        ["1000", "2000"]
    );

    // Stable: a second run gives the same CSV, and each packet recorded on its own gives the
    // columns of its own layers and values only (they do not depend on the traffic mix),
    // so two files of the same shape have the same header.
    let (header_again, rows_again) = record_lines(&dir, "again", &ours);
    assert_eq!((&header_again, &rows_again), (&header, &rows));
    let mut by_shape: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
    for (i, line) in ours.iter().enumerate() {
        let (alone_header, alone_rows) = record_lines(&dir, &format!("frame{}", i + 1), &[line]);
        let want = documented_header(expected[i].iter().map(|(n, _)| n.as_str()));
        assert_eq!(alone_header, want, "frame {} recorded alone", i + 1);
        assert_eq!(alone_rows.len(), 1);
        for (c, name) in alone_header.iter().enumerate().skip(1) {
            assert_eq!(
                alone_rows[0][c],
                rows[i][col[name.as_str()]],
                "frame {}: {name} alone and in the whole file",
                i + 1
            );
        }
        by_shape.entry(alone_header).or_default().push(i + 1);
    }
    // Shapes the fixture has more than once (VXLAN both ways; GRE around IPv4 both ways).
    assert!(
        by_shape.values().filter(|frames| frames.len() > 1).count() >= 2,
        "{by_shape:?}"
    );
}
