//! Redis Streams and channels (issue 10, items 2 and 3-Redis), against a private
//! redis-server per test (tests/common/brokers.rs) and read back by redis-py (in
//! target/kombu-venv, made by scripts/test.sh) as well as by our own `record`.

use redis::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::brokers::{wait_for, PrivateRedis};
use crate::common::harness::Process;
use crate::common::harness::{mkfifo, read_stderr, wait_exit as wait_child, Run, TempDir};
use crate::common::kombu;
use crate::common::outage::{
    expected_copies, feed, first_copy_then_outage, fixture_copy, parts, resent, start_reader,
    wait_exit, Scratch,
};
use crate::common::{
    bin, documented_partition, expected, root, spooled_records, unique, FIXTURE, FIXTURE_MESSAGES,
};
use crate::common::{committed_rows, merge, row_bag};
use crate::common::{rec, record_files as files};

/// Runs a redis-py script (`PORT`, `KEY` and argv[1..] given) and returns its stdout lines.
fn redis_py(script: &str, port: u16, key: &str, args: &[&str]) -> Vec<Vec<u8>> {
    let out = kombu::inline(script)
        .arg(port.to_string())
        .arg(key)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::lines(&out.stdout)
}

/// redis-py XRANGE over the whole stream: the `msg` field of each entry, one per line, and
/// the set of field names seen (last line).
const XRANGE_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
fields = set()
last = "-"
out = sys.stdout.buffer
while True:
    entries = r.xrange(sys.argv[2], min=last, max="+", count=1000)
    if last != "-":
        entries = entries[1:]
    if not entries:
        break
    for eid, kv in entries:
        fields.update(kv.keys())
        out.write(kv[b"msg"] + b"\n")
    last = entries[-1][0]
out.write(b"FIELDS " + b",".join(sorted(fields)) + b"\n")
"#;

/// redis-py XREADGROUP of a new group from the start until the stream has no more.
const XREADGROUP_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
key, group = sys.argv[2], sys.argv[3]
r.xgroup_create(key, group, id="0")
out = sys.stdout.buffer
while True:
    got = r.xreadgroup(group, "py", {key: ">"}, count=1000, block=200)
    if not got:
        break
    for _, entries in got:
        ids = []
        for eid, kv in entries:
            out.write(kv[b"msg"] + b"\n")
            ids.append(eid)
        r.xack(key, group, *ids)
pending = r.xpending(key, group)["pending"]
out.write(b"PENDING %d\n" % pending)
"#;

/// redis-py subscriber: says READY once subscribed, then prints COUNT messages.
const SUBSCRIBE_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
p = r.pubsub(ignore_subscribe_messages=True)
p.subscribe(sys.argv[2])
while p.get_message(timeout=1.0) is None and not p.subscribed:
    pass
print("READY", flush=True)
want = int(sys.argv[3])
out = sys.stdout.buffer
n = 0
while n < want:
    m = p.get_message(timeout=30.0)
    if m is None:
        break
    out.write(m["data"] + b"\n")
    n += 1
out.flush()
"#;

/// The stream's `msg` fields in order, by our redis client (for the tests that only need
/// the contents; redis-py reads it in the first test).
fn stream_msgs(server: &PrivateRedis, key: &str) -> Vec<Vec<u8>> {
    let mut con = server.connection();
    let v: Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let Value::Array(entries) = v else {
        panic!("XRANGE: {v:?}")
    };
    entries
        .into_iter()
        .map(|e| match e {
            Value::Array(mut pair) => match pair.pop() {
                Some(Value::Array(kv)) => match &kv[..] {
                    [Value::BulkString(f), Value::BulkString(m)] if f == b"msg" => m.clone(),
                    other => panic!("entry fields {other:?}"),
                },
                other => panic!("entry {other:?}"),
            },
            other => panic!("entry {other:?}"),
        })
        .collect()
}

fn publish_stream(server: &PrivateRedis, key: &str, count: usize) {
    let out = bin()
        .args(["read", "-q", "-c", &count.to_string(), FIXTURE])
        .args([
            "-o",
            &server.url(),
            "--redis-mode",
            "stream",
            "--queue",
            key,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- CSV comparison: each row as its non-empty named cells (a multiset) -------------------

/// The recording of the first `count` fixture messages made from a JSON-lines file.
fn reference(dir: &TempDir, count: usize) -> HashMap<String, usize> {
    common::reference_recording(dir, count).1
}

/// A recorder `name` of group `g` on `key` that saves every `save` messages (and not when
/// idle) and takes over entries idle for `claim_ms`: its files in `dir`.
fn claiming_args(
    server: &PrivateRedis,
    key: &str,
    dir: &TempDir,
    name: &str,
    save: &str,
    claim_ms: &str,
) -> Vec<String> {
    let mut a = stream_args(server, key, "g", name);
    a.extend(files(dir, name));
    for s in [
        "--save-after-num",
        save,
        "--idle-save-ms",
        "0",
        "--claim-idle-ms",
        claim_ms,
    ] {
        a.push(s.to_string());
    }
    a
}

fn stream_args(server: &PrivateRedis, key: &str, group: &str, consumer: &str) -> Vec<String> {
    [
        "--input",
        &server.url(),
        "--redis-mode",
        "stream",
        "--queue",
        key,
        "--group",
        group,
        "--consumer",
        consumer,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn_rec(args: &[String], stderr: Stdio) -> Run {
    Run(rec()
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap())
}

/// Creates the stop file, waits for the recorder to end with success; returns its stderr.
fn stop(mut run: Run, stop_file: &Path) -> String {
    std::fs::write(stop_file, b"").unwrap();
    let status = wait_child(&mut run.0, "the recorder to stop", Duration::from_secs(60));
    let mut err = String::new();
    if let Some(mut e) = run.0.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    assert!(status.success(), "recorder failed: {err}");
    err
}

/// XPENDING summary count of `group`.
fn pending(server: &PrivateRedis, key: &str, group: &str) -> u64 {
    let v: Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query(&mut server.connection())
        .unwrap();
    match v {
        Value::Array(parts) => match parts.first() {
            Some(Value::Int(n)) => *n as u64,
            other => panic!("XPENDING {other:?}"),
        },
        other => panic!("XPENDING {other:?}"),
    }
}

/// Every message once and in order, read back by redis-py (XRANGE and XREADGROUP) and by
/// two recorders in two groups, each of which gets everything.
#[test]
fn stream_output_every_message_once_in_order_for_redis_py_and_two_groups() {
    let dir = TempDir::scratch("rs_once");
    let server = PrivateRedis::start("rs_once_srv", &[]);
    let key = unique("stream");
    publish_stream(&server, &key, FIXTURE_MESSAGES);
    let want = expected(&[FIXTURE]);
    assert_eq!(want.len(), FIXTURE_MESSAGES);

    let mut by_xrange = redis_py(XRANGE_PY, server.port, &key, &[]);
    assert_eq!(by_xrange.pop(), Some(b"FIELDS msg".to_vec()));
    assert!(by_xrange == want, "XRANGE differs from read's stdout");
    let mut by_group = redis_py(XREADGROUP_PY, server.port, &key, &["pygroup"]);
    assert_eq!(by_group.pop(), Some(b"PENDING 0".to_vec()));
    assert!(by_group == want, "XREADGROUP differs from read's stdout");

    let reference = reference(&dir, FIXTURE_MESSAGES);
    // g2's snapshots hold 5,000 entries: the hold script works in slices.
    for (group, save) in [("g1", "500"), ("g2", "5000")] {
        let mut args = stream_args(&server, &key, group, "c1");
        args.extend(files(&dir, group));
        args.extend(["--save-after-num".into(), save.into()]);
        let csv = dir.path(&format!("{group}.csv"));
        let run = spawn_rec(&args, Stdio::piped());
        wait_for("every row", Duration::from_secs(120), || {
            committed_rows(&csv) as usize >= FIXTURE_MESSAGES
        });
        stop(run, &dir.path(&format!("{group}.stop")));
        assert_eq!(row_bag(&csv), reference, "group {group}");
        assert_eq!(pending(&server, &key, group), 0, "group {group}");
    }
}

/// Redis killed while messages stream in: the spool takes them, everything arrives in
/// order once Redis is back, and duplicates are at most what was resent.
#[test]
fn redis_killed_mid_stream_the_spool_takes_over() {
    let key = unique("stream");
    let (scratch, server, summary) = stream_outage("rs_outage", &key, None);
    assert!(summary.contains("stream "), "{summary}");

    // Copy 1 (spooled) between copies 0 and 2: each copy's messages are its own.
    let want: Vec<Vec<u8>> = expected_copies(&scratch, 3, &[]).concat();
    let got = stream_msgs(&server, &key);
    common::assert_in_order_at_least_once(&got, &want, resent(&summary));
}

/// `read` of three copies of the fixture (common::outage) from named pipes into the stream
/// `key` of a durable private server, or with `partitions` into `<key>-0..`: the server is
/// killed once copy 0 is in, started again once copy 1 is in the spool, then copy 2 follows;
/// the run must succeed. The scratch directory, the server and the run's summary.
fn stream_outage(
    tag: &str,
    key: &str,
    partitions: Option<usize>,
) -> (Scratch, PrivateRedis, String) {
    let scratch = Scratch::new(tag);
    let mut server = PrivateRedis::durable(&format!("{tag}_srv"));
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let mut args = vec![
        "-o".to_string(),
        server.url(),
        "--redis-mode".into(),
        "stream".into(),
        "--queue".into(),
        key.into(),
    ];
    let keys: Vec<String> = match partitions {
        Some(n) => {
            args.extend(["--partitions".into(), n.to_string()]);
            (0..n).map(|i| format!("{key}-{i}")).collect()
        }
        None => vec![key.to_string()],
    };
    args.extend(["--spool-dir".into(), spool.display().to_string()]);
    let mut run = start_reader(&fifos, &stderr, &args);
    // Every entry of the stream(s), by XLEN.
    let total = |s: &PrivateRedis| -> usize {
        let mut con = s.connection();
        keys.iter()
            .map(|k| redis::cmd("XLEN").arg(k).query::<usize>(&mut con).unwrap())
            .sum()
    };
    first_copy_then_outage(
        &mut server,
        &fifos,
        &spool,
        |s| total(s) == FIXTURE_MESSAGES,
        |n| n == FIXTURE_MESSAGES,
    );
    server.spawn();
    feed(&fifos[2], &fixture_copy(2));
    let summary = wait_exit(&mut run, Duration::from_secs(120), &stderr);
    (scratch, server, summary)
}

/// Two recorders of group "g" on a stream of 2,500 fixture messages that take over entries
/// idle for `claim_ms`: A saves every 1,000, B every 50.
struct ClaimCase {
    dir: TempDir,
    server: PrivateRedis,
    key: String,
    claim_ms: &'static str,
    /// The recording of the 2,500 messages made from a file.
    reference: HashMap<String, usize>,
}

impl ClaimCase {
    /// The stream published; A started (stderr to `a_stderr`) and waited for until it has
    /// saved 2,000 rows and holds the other 500 read but unsaved.
    fn a_holding_500(tag: &str, claim_ms: &'static str, a_stderr: Stdio) -> (ClaimCase, Run) {
        let dir = TempDir::scratch(tag);
        let server = PrivateRedis::start(&format!("{tag}_srv"), &[]);
        let key = unique("stream");
        let total = 2500;
        let reference = reference(&dir, total);
        publish_stream(&server, &key, total);
        let case = ClaimCase {
            dir,
            server,
            key,
            claim_ms,
            reference,
        };
        let a = spawn_rec(&case.args("a"), a_stderr);
        wait_for("A: 2000 saved, 500 held", Duration::from_secs(60), || {
            committed_rows(&case.csv("a")) == 2000 && case.pending() == 500
        });
        (case, a)
    }

    /// Recorder `name`'s arguments ("a" saves every 1,000, others every 50).
    fn args(&self, name: &str) -> Vec<String> {
        let save = if name == "a" { "1000" } else { "50" };
        claiming_args(
            &self.server,
            &self.key,
            &self.dir,
            name,
            save,
            self.claim_ms,
        )
    }

    fn csv(&self, name: &str) -> PathBuf {
        self.dir.path(&format!("{name}.csv"))
    }

    fn pending(&self) -> u64 {
        pending(&self.server, &self.key, "g")
    }

    /// B started and waited for until it has saved A's 500 entries and none is pending.
    fn b_takes_over(&self) -> Run {
        let b = spawn_rec(&self.args("b"), Stdio::piped());
        wait_for("B: A's entries saved", Duration::from_secs(60), || {
            committed_rows(&self.csv("b")) == 500 && self.pending() == 0
        });
        b
    }

    /// The rows of A's and B's CSVs together.
    fn both(&self) -> HashMap<String, usize> {
        merge(row_bag(&self.csv("a")), row_bag(&self.csv("b")))
    }
}

/// A recorder killed with SIGKILL while it holds read, unsaved entries: another recorder
/// of the group takes them over (XAUTOCLAIM) and every message is in exactly one CSV.
/// The killed one started again with its name re-reads nothing already saved.
#[test]
fn recorder_killed_mid_batch_another_in_the_group_claims_its_entries() {
    let (case, mut a) = ClaimCase::a_holding_500("rs_claim", "1000", Stdio::null());
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let b = case.b_takes_over();
    let err = stop(b, &case.dir.path("b.stop"));
    assert!(err.contains("took over"), "{err}");
    assert_eq!(case.both(), case.reference);
    // A again, same name: its state says what it committed; nothing is pending for it.
    let mut a = Process::start(
        rec().args(case.args("a")).stdout(Stdio::null()),
        Duration::from_secs(60),
    );
    a.wait_for_stderr("reading as consumer a");
    std::fs::write(case.dir.path("a.stop"), b"").unwrap();
    let (status, lines) = a.finish();
    let err = lines.join("\n");
    assert!(status.success(), "{err}");
    assert!(err.contains("(resumed)"), "{err}");
    assert_eq!(committed_rows(&case.csv("a")), 2000);
}

/// A recorder stopped between reads comes back and reads its own pending entries first:
/// kill -9 after a snapshot with more entries held, restart with the same consumer name.
#[test]
fn restarted_recorder_rereads_its_pending_entries_first() {
    let dir = TempDir::scratch("rs_resume");
    let server = PrivateRedis::start("rs_resume_srv", &[]);
    let key = unique("stream");
    let total = 1500;
    let reference = reference(&dir, total);
    publish_stream(&server, &key, total);
    let mut args = stream_args(&server, &key, "g", "solo");
    args.extend(files(&dir, "s"));
    args.extend(
        ["--save-after-num", "1000", "--idle-save-ms", "0"]
            .iter()
            .map(|s| s.to_string()),
    );
    let csv = dir.path("s.csv");
    let mut run = spawn_rec(&args, Stdio::null());
    wait_for("1000 saved, 500 held", Duration::from_secs(60), || {
        committed_rows(&csv) == 1000 && pending(&server, &key, "g") == 500
    });
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let mut args2 = args.clone();
    // The rest arrive as one short snapshot: save when idle.
    let at = args2.iter().position(|a| a == "--idle-save-ms").unwrap();
    args2[at + 1] = "200".into();
    let run = spawn_rec(&args2, Stdio::piped());
    wait_for("every row", Duration::from_secs(60), || {
        committed_rows(&csv) as usize == total && pending(&server, &key, "g") == 0
    });
    stop(run, &dir.path("s.stop"));
    assert_eq!(row_bag(&csv), reference);
}

/// Starts the redis-py subscriber `script` (arguments: port, `key`, `count`), waits until it
/// is READY, then runs `read ARGS` into channel `key` of `server`, which must succeed with
/// every message reaching a subscriber; returns the lines the subscriber printed.
fn through_a_subscriber(
    script: &str,
    server: &PrivateRedis,
    key: &str,
    count: usize,
    args: &[&str],
) -> Vec<Vec<u8>> {
    let mut sub = Run(kombu::inline(script)
        .arg(server.port.to_string())
        .arg(key)
        .arg(count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());
    let mut out = BufReader::new(sub.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let run = bin()
        .arg("read")
        .args(args)
        .args([
            "-o",
            &server.url(),
            "--redis-mode",
            "channel",
            "--queue",
            key,
        ])
        // Waits for the server instead of dropping what the delivery thread has no room
        // for (a file is read faster than PUBLISH goes: the default drops some).
        .args(["--when-full", "block"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{summary}");
    assert!(summary.contains("0 reached no subscriber"), "{summary}");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    common::lines(&rest)
}

/// Channel mode: a redis-py subscriber that keeps up receives every message, in order.
#[test]
fn channel_mode_reaches_a_redis_py_subscriber() {
    let server = PrivateRedis::start("rs_channel_srv", &[]);
    let channel = unique("channel");
    let count = 2000;
    let got = through_a_subscriber(
        SUBSCRIBE_PY,
        &server,
        &channel,
        count,
        &["-c", &count.to_string(), FIXTURE],
    );
    let want = expected(&["-c", &count.to_string(), FIXTURE]);
    assert!(
        got == want,
        "{} of {count} received, or out of order",
        got.len()
    );
}

/// Channel mode never spools, whatever --when-full says: with nobody able to take the
/// messages they are dropped and counted, and the run ends with exit code 16.
#[test]
fn channel_mode_is_never_spooled() {
    let scratch = TempDir::scratch("rs_chan_nospool");
    let mut server = PrivateRedis::start("rs_chan_nospool_srv", &[]);
    let fifo = scratch.path("in.pcap");
    mkfifo(&fifo);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let mut run = Run(bin()
        .arg("read")
        .arg(&fifo)
        .args([
            "-o",
            &server.url(),
            "--redis-mode",
            "channel",
            "--queue",
            "c",
        ])
        .args([
            "--when-full",
            "spool",
            "--spool-dir",
            spool.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap());
    // Connected (the pipe is opened only after the output is), then the broker goes away.
    let mut pipe = File::options().write(true).open(&fifo).unwrap();
    server.kill();
    pipe.write_all(&std::fs::read(root().join(FIXTURE)).unwrap())
        .unwrap();
    drop(pipe);
    let status = wait_child(&mut run.0, "the run to end", Duration::from_secs(60));
    let summary = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(16), "{summary}");
    assert_eq!(spooled_records(&spool), 0, "{summary}");
    assert!(summary.contains("dropped"), "{summary}");
}

/// Stream settings that cannot work are usage errors (exit 2), before anything is created.
#[test]
fn stream_input_usage_errors() {
    let dir = TempDir::scratch("rs_usage");
    for (args, why) in [
        (
            &[
                "--input",
                "redis://127.0.0.1:1/0",
                "--redis-mode",
                "stream",
                "--consumer",
                "c",
            ][..],
            "needs --group",
        ),
        (
            &[
                "--input",
                "redis://127.0.0.1:1/0",
                "--redis-mode",
                "stream",
                "--group",
                "g",
            ][..],
            "needs --consumer",
        ),
        (
            &[
                "--input",
                "redis://127.0.0.1:1/0",
                "--group",
                "g",
                "--consumer",
                "c",
            ][..],
            "need --redis-mode stream",
        ),
        (
            &[
                "--input",
                "redis://127.0.0.1:1/0",
                "--redis-mode",
                "channel",
            ][..],
            "cannot read a Redis channel",
        ),
        (
            &[
                "--input",
                "file:/dev/null",
                "--redis-mode",
                "stream",
                "--group",
                "g",
                "--consumer",
                "c",
            ][..],
            "needs a redis:// input",
        ),
    ] {
        let out = rec().args(args).args(files(&dir, "u")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!dir.path("u.csv").exists(), "{args:?}");
    }
}

/// A recorder that stalls (SIGSTOP) longer than --claim-idle-ms loses its entries to another
/// recorder of the group; when it wakes it stops with exit 17 instead of saving them too.
#[test]
fn stalled_recorder_whose_entries_were_taken_over_stops_without_saving_them() {
    let (case, mut a) = ClaimCase::a_holding_500("rs_stall", "900", Stdio::piped());
    let signal = |sig: &str, pid: u32| {
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP", a.0.id());
    let b = case.b_takes_over();
    signal("-CONT", a.0.id());
    let status = wait_child(&mut a.0, "A to notice and stop", Duration::from_secs(60));
    let err = read_stderr(&mut a.0);
    assert_eq!(status.code(), Some(17), "{err}");
    assert!(err.contains("taken over by another recorder"), "{err}");
    stop(b, &case.dir.path("b.stop"));
    assert_eq!(committed_rows(&case.csv("a")), 2000);
    assert_eq!(case.both(), case.reference);
}

/// `--partitions 4 --partition 0,2` reads the streams `<key>-0` and `<key>-2` with one
/// XREADGROUP; a second recorder of the group with `--partition 1,3` reads the other two.
/// Each entry is recorded once and acknowledged on its own stream. A Redis list input reads
/// one partition at a time: selecting two is refused with a clear error.
#[test]
fn partitions_are_read_as_selected_in_one_group() {
    let dir = TempDir::scratch("rs_parts");
    let server = PrivateRedis::start("rs_parts_srv", &[]);
    let key = unique("pstream");
    let counts = [300usize, 500, 200, 50];
    for (i, n) in counts.iter().enumerate() {
        publish_stream(&server, &format!("{key}-{i}"), *n);
    }
    let mut bags = Vec::new();
    for (name, list) in [("even", "0,2"), ("odd", "1-3")] {
        let mut args = stream_args(&server, &key, "g", name);
        args.extend(files(&dir, name));
        args.extend(
            [
                "--partitions",
                "4",
                "--partition",
                list,
                "--idle-save-ms",
                "200",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let want: usize = match name {
            "even" => counts[0] + counts[2],
            // Partition 2's entries were all taken by "even", in the same group.
            _ => counts[1] + counts[3],
        };
        let csv = dir.path(&format!("{name}.csv"));
        let run = spawn_rec(&args, Stdio::piped());
        wait_for(
            "every row of the partitions",
            Duration::from_secs(60),
            || committed_rows(&csv) as usize == want,
        );
        stop(run, &dir.path(&format!("{name}.stop")));
        bags.push(row_bag(&csv));
    }
    // A scratch folder per reference: a second recording into the same CSV would resume it.
    let r = |n| reference(&TempDir::scratch("rs_parts_ref"), n);
    assert_eq!(bags[0], merge(r(300), r(200)));
    // "1-3" is partitions 1, 2 and 3: partition 2's entries were all taken by "even" in the
    // same group, so this one gets 1 and 3 only.
    assert_eq!(bags[1], merge(r(500), r(50)));
    for i in 0..4 {
        assert_eq!(
            pending(&server, &format!("{key}-{i}"), "g"),
            0,
            "partition {i}"
        );
    }
    let out = rec()
        .args(["--input", &server.url(), "--queue", &key])
        .args(["--partitions", "4", "--partition", "0,1"])
        .args(files(&dir, "list"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one partition at a time"), "{err}");
}

// --- --partitions (issue 10 item 4) -------------------------------------------------------

/// redis-py: every entry of `<key>-0` .. `<key>-(N-1)` as `<partition> <msg>` lines (streams
/// by XRANGE, lists by LRANGE from the tail, the oldest first), then `BARE <n>`: whether the
/// unsuffixed key exists.
const PARTITIONS_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
key, n, kind = sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = sys.stdout.buffer
for i in range(n):
    name = "%s-%d" % (key, i)
    if kind == "stream":
        last = "-"
        while True:
            entries = r.xrange(name, min=last, max="+", count=1000)
            if last != "-":
                entries = entries[1:]
            if not entries:
                break
            for eid, kv in entries:
                out.write(b"%d " % i + kv[b"msg"] + b"\n")
            last = entries[-1][0]
    else:
        for m in reversed(r.lrange(name, 0, -1)):
            out.write(b"%d " % i + m + b"\n")
out.write(b"BARE %d\n" % r.exists(key))
"#;

/// One end of a flow: address and port.
type End = (String, u64);

/// A TCP or UDP message's flow as both directions share it: the two ends in order, the
/// protocol, and whether the message goes from the lower end; `None` for other packets.
fn two_way_flow(m: &[u8]) -> Option<(End, End, String, bool)> {
    let v: serde_json::Value = serde_json::from_slice(m).unwrap();
    let data = &v["data"];
    let ip = data.get("ip").or_else(|| data.get("ipv6"))?;
    let l4 = ["tcp", "udp"]
        .into_iter()
        .find(|l| data.get(*l).is_some())?;
    let a = (ip["src"].as_str()?.to_string(), data[l4]["sport"].as_u64()?);
    let b = (ip["dst"].as_str()?.to_string(), data[l4]["dport"].as_u64()?);
    let forward = a <= b;
    let (lo, hi) = if forward { (a, b) } else { (b, a) };
    Some((lo, hi, l4.to_string(), forward))
}

/// The messages of each partition, read back by redis-py, and whether the bare key exists.
fn read_partitions(
    server: &PrivateRedis,
    key: &str,
    n: usize,
    kind: &str,
) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut lines = redis_py(PARTITIONS_PY, server.port, key, &[&n.to_string(), kind]);
    let bare = lines.pop().unwrap();
    let mut parts = vec![Vec::new(); n];
    for l in lines {
        let sp = l.iter().position(|&b| b == b' ').unwrap();
        let i: usize = std::str::from_utf8(&l[..sp]).unwrap().parse().unwrap();
        parts[i].push(l[sp + 1..].to_vec());
    }
    (parts, bare == b"BARE 1")
}

/// `read --partitions N` into Redis `kind` (stream or list, raw), exit status checked.
fn publish_partitioned(server: &PrivateRedis, key: &str, n: usize, kind: &str) {
    let out = bin()
        .args(["read", "-q", FIXTURE, "-o", &server.url()])
        .args([
            "--redis-mode",
            kind,
            "--redis-format",
            "raw",
            "--queue",
            key,
        ])
        .args(["--partitions", &n.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks what redis-py read from N partitions against `read`'s stdout: every message once,
/// each partition holding exactly the messages of its flows in `read`'s order, both
/// directions of every TCP/UDP flow in one partition, no partition empty.
fn check_partitions(parts: &[Vec<Vec<u8>>], want: &[Vec<u8>]) {
    let n = parts.len();
    for (p, got) in parts.iter().enumerate() {
        let mine: Vec<Vec<u8>> = want
            .iter()
            .filter(|m| documented_partition(m, n) == p)
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "partition {p} of {n} is empty");
        assert!(
            *got == mine,
            "partition {p}: {} messages, want {} in read's order",
            got.len(),
            mine.len()
        );
    }
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), want.len());
    let mut flows: HashMap<_, (std::collections::HashSet<usize>, [bool; 2])> = HashMap::new();
    for (p, got) in parts.iter().enumerate() {
        for m in got {
            if let Some((lo, hi, proto, forward)) = two_way_flow(m) {
                let e = flows.entry((lo, hi, proto)).or_default();
                e.0.insert(p);
                e.1[usize::from(forward)] = true;
            }
        }
    }
    let both_ways = flows.values().filter(|(_, d)| d[0] && d[1]).count();
    assert!(both_ways >= 10, "only {both_ways} flows seen both ways");
    for (flow, (ps, _)) in &flows {
        assert_eq!(ps.len(), 1, "{flow:?} is split over partitions {ps:?}");
    }
}

/// `--partitions 4` on Redis streams, read back by redis-py XRANGE: `<queue>-0..3` hold every
/// message once, per partition in `read`'s order, each flow (both directions) in one.
#[test]
fn partitioned_streams_keep_flows_together_and_order_per_partition() {
    let server = PrivateRedis::start("rs_parts_srv", &[]);
    let key = unique("pstream");
    publish_partitioned(&server, &key, 4, "stream");
    let want = expected(&[FIXTURE]);
    let (parts, bare) = read_partitions(&server, &key, 4, "stream");
    assert!(!bare, "the unsuffixed stream was written too");
    check_partitions(&parts, &want);
}

/// Lists (one LPUSH per partition per batch) partition the same way; `--partitions 1` is
/// today's output: the one list `--queue`, no `-0` key.
#[test]
fn partitioned_lists_and_one_partition_is_the_queue_itself() {
    let server = PrivateRedis::start("rs_plist_srv", &[]);
    let key = unique("plist");
    publish_partitioned(&server, &key, 3, "list");
    let want = expected(&[FIXTURE]);
    let (parts, bare) = read_partitions(&server, &key, 3, "list");
    assert!(!bare);
    check_partitions(&parts, &want);

    let one = unique("one");
    publish_partitioned(&server, &one, 1, "stream");
    let (parts, bare) = read_partitions(&server, &one, 1, "stream");
    assert!(bare, "--partitions 1 must write the stream --queue itself");
    assert!(parts[0].is_empty(), "--partitions 1 wrote <queue>-0");
    assert!(stream_msgs(&server, &one) == want);
}

/// Redis killed mid-run with `--partitions 3`: what the spool kept is sent, once Redis is
/// back, to the partitions it would have gone to (the spool keeps no hash: it is found again
/// from each message), every message arrives, in order per partition, duplicates ≤ resent.
#[test]
fn partitions_survive_the_spool() {
    let key = unique("pspool");
    let n = 3;
    let (scratch, server, summary) = stream_outage("rs_parts_outage", &key, Some(n));
    assert!(
        summary.contains(&format!("stream {key}-0..{key}-2")),
        "{summary}"
    );
    let resent = resent(&summary);
    // Copy 1 (spooled) between copies 0 and 2 in each partition.
    let all = expected_copies(&scratch, 3, &[]).concat();
    let mut dup = 0u64;
    for p in 0..n {
        let want: Vec<&Vec<u8>> = all
            .iter()
            .filter(|m| documented_partition(m, n) == p)
            .collect();
        let got = stream_msgs(&server, &format!("{key}-{p}"));
        dup += common::repeats_in_order(&format!("partition {p}: "), &got, &want);
    }
    assert!(dup <= resent, "{dup} duplicates, {resent} resent");
}

/// `--partitions` where messages have no keys is refused with one line and exit code 2,
/// before any output exists: files, stdout, tcp://, amqp://, -w alone, and out of range.
#[test]
fn partitions_are_refused_where_they_cannot_work() {
    let dir = TempDir::scratch("rs_parts_usage");
    let file = dir.path("out.jsonl");
    let file_arg = format!("file:{}", file.display());
    for args in [
        vec!["-o", file_arg.as_str(), "--partitions", "2"],
        vec!["-o", "-", "--partitions", "2"],
        vec!["-o", "tcp://127.0.0.1:9", "--partitions", "2"],
        vec!["-o", "amqp://guest:s3cret@127.0.0.1", "--partitions", "4"],
        vec!["-w", file.to_str().unwrap(), "--partitions", "2"],
        vec!["-o", "redis://127.0.0.1:9", "--partitions", "0"],
        vec!["-o", "redis://127.0.0.1:9", "--partitions", "1025"],
    ] {
        let out = bin()
            .args(["read", "-q", FIXTURE])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("partitions"), "{args:?}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote messages");
        assert!(!file.exists(), "{args:?} created the output");
    }
    // Live capture checks the same before it opens a socket (no root needed to be refused).
    let out = bin()
        .args([
            "capture",
            "-i",
            "lo",
            "-o",
            "tcp://127.0.0.1:9",
            "--partitions",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{:?}", out);
}

/// redis-py: PSUBSCRIBE `<key>-*`, READY once subscribed, then COUNT messages as
/// `<channel> <msg>` lines.
const PSUBSCRIBE_PY: &str = r#"
import sys, redis
r = redis.Redis(port=int(sys.argv[1]))
p = r.pubsub(ignore_subscribe_messages=True)
p.psubscribe(sys.argv[2] + "-*")
while p.get_message(timeout=1.0) is None and not p.subscribed:
    pass
print("READY", flush=True)
want = int(sys.argv[3])
out = sys.stdout.buffer
n = 0
while n < want:
    m = p.get_message(timeout=30.0)
    if m is None:
        break
    out.write(m["channel"] + b" " + m["data"] + b"\n")
    n += 1
out.flush()
"#;

/// Channel mode publishes each message to its partition's channel `<queue>-<i>`: a redis-py
/// pattern subscriber gets every message once, each channel's in order, flows together.
#[test]
fn partitioned_channels_reach_a_pattern_subscriber() {
    let server = PrivateRedis::start("rs_pchan_srv", &[]);
    let key = unique("pchan");
    let n = 2;
    let got = through_a_subscriber(
        PSUBSCRIBE_PY,
        &server,
        &key,
        FIXTURE_MESSAGES,
        &[FIXTURE, "--partitions", &n.to_string()],
    );
    let mut parts = vec![Vec::new(); n];
    for l in got {
        let sp = l.iter().position(|&b| b == b' ').unwrap();
        let channel = std::str::from_utf8(&l[..sp]).unwrap();
        let i: usize = channel
            .strip_prefix(&format!("{key}-"))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("message on channel {channel}"));
        parts[i].push(l[sp + 1..].to_vec());
    }
    check_partitions(&parts, &expected(&[FIXTURE]));
}
