//! Broker outages with `--when-full spool` (the default) and `--when-full drop`, against
//! private brokers each test starts itself (tests/common/brokers.rs), so the shared Redis and
//! RabbitMQ are never stopped.
//!
//! The binary reads pcaps from named pipes the test writes, so the test decides when each
//! part of the stream arrives (`read` sends a file's last messages when the file ends): one
//! copy of the fixture while the broker is up, one while it is down, one after it is back.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bytes of the pcap global header (records follow it).
const PCAP_HEADER_BYTES: usize = 24;

use crate::common;
use crate::common::assert_in_order_at_least_once;
use crate::common::brokers::{wait_for, PrivateRabbit, PrivateRedis};
use crate::common::harness::{mkfifo, Run, TempDir};
use crate::common::{bin, expected, root, spooled_records, unique, FIXTURE, FIXTURE_MESSAGES};

/// A scratch directory (under target/: the spool refuses a path through a world-writable
/// directory such as /tmp) that shows the runs' stderr files when the test failed.
struct Scratch(TempDir);

impl Scratch {
    fn new(what: &str) -> Scratch {
        Scratch(TempDir::scratch(what))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the runs said, to see why.
            for name in ["stderr", "stderr1"] {
                if let Ok(text) = std::fs::read_to_string(self.path(name)) {
                    eprintln!("--- {name} of the run:\n{text}");
                }
            }
        }
    }
}

/// `netpipe-fast read <fifos> <args>`, stderr to a file. The pipes are made here; the
/// reader opens them one after the other (the first once the output has connected).
fn start_reader(fifos: &[PathBuf], stderr: &Path, args: &[&str]) -> Run {
    for f in fifos {
        mkfifo(f);
    }
    Run(bin()
        .arg("read")
        .args(fifos)
        .args(args)
        .stdout(Stdio::null())
        .stderr(File::create(stderr).unwrap())
        .spawn()
        .unwrap())
}

/// Writes a whole pcap into a pipe (waiting for the reader to open it) and closes it.
fn feed(fifo: &Path, pcap: &[u8]) {
    let mut pipe = File::options().write(true).open(fifo).unwrap();
    pipe.write_all(pcap).unwrap();
}

fn parts(scratch: &Scratch, n: usize) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| scratch.path(&format!("part{i}.pcap")))
        .collect()
}

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(root().join(FIXTURE)).unwrap()
}

/// Seconds each copy of the fixture is moved later than the one before (a day, so even the
/// `created` text of every message differs between copies).
const COPY_SHIFT_SECS: u32 = 86_400;

/// Copy `copy` (0, 1, 2, ...) of the fixture: every packet's time moved `copy` days later,
/// so each copy's messages (`created`, `time_ns`) differ from every other copy's, and a
/// spool replayed in the wrong place, or a copy delivered twice instead of another, shows.
fn fixture_copy(copy: u32) -> Vec<u8> {
    let mut pcap = fixture_bytes();
    let le = match pcap[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{FIXTURE} is not a classic pcap"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    let mut at = PCAP_HEADER_BYTES;
    let mut records = 0;
    while at + 16 <= pcap.len() {
        let secs = u32_at(&pcap, at) + copy * COPY_SHIFT_SECS;
        let bytes = if le {
            secs.to_le_bytes()
        } else {
            secs.to_be_bytes()
        };
        pcap[at..at + 4].copy_from_slice(&bytes);
        at += 16 + u32_at(&pcap, at + 8) as usize;
        records += 1;
    }
    assert_eq!(at, pcap.len(), "{FIXTURE}: records do not end at the end");
    assert_eq!(records, FIXTURE_MESSAGES);
    pcap
}

/// The messages `read` makes of copies `0..copies` of the fixture, in order (`args` before
/// the file), checked to share no message between copies.
fn expected_copies(scratch: &Scratch, copies: u32, args: &[&str]) -> Vec<Vec<Vec<u8>>> {
    let all: Vec<Vec<Vec<u8>>> = (0..copies)
        .map(|k| {
            let path = scratch.path(&format!("expected-copy{k}.pcap"));
            std::fs::write(&path, fixture_copy(k)).unwrap();
            let mut a = args.to_vec();
            a.push(path.to_str().unwrap());
            let msgs = expected(&a);
            assert_eq!(msgs.len(), FIXTURE_MESSAGES);
            msgs
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (k, msgs) in all.iter().enumerate() {
        let mine: std::collections::HashSet<&Vec<u8>> = msgs.iter().collect();
        assert!(
            mine.iter().all(|m| !seen.contains(*m)),
            "copy {k} repeats a message of an earlier copy"
        );
        seen.extend(mine);
    }
    all
}

/// Whether `part` is `whole` with some messages left out (order kept).
fn is_subsequence(part: &[Vec<u8>], whole: &[Vec<u8>]) -> bool {
    let mut w = whole.iter();
    part.iter().all(|m| w.any(|x| x == m))
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("seg"))
                .count()
        })
        .unwrap_or(0)
}

/// The delivery layer's line of the summary.
fn delivery_line(summary: &str) -> &str {
    summary
        .lines()
        .find(|l| l.starts_with("delivery ("))
        .unwrap_or_else(|| panic!("no delivery line in the summary:\n{summary}"))
}

/// The number written just before `word` in the summary (`"... 123 spooled, ..."`).
fn count(summary: &str, word: &str) -> u64 {
    let at = summary
        .find(word)
        .unwrap_or_else(|| panic!("no \"{word}\" in the summary:\n{summary}"));
    summary[..at]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number before \"{word}\" in:\n{summary}"))
}

fn wait_exit(run: &mut Run, limit: Duration, stderr: &Path) -> String {
    let (code, text) = wait_exit_code(run, limit, stderr);
    assert_eq!(code, Some(0), "the run failed: {text}");
    text
}

/// Waits (at most `limit`) for the run to end; its exit code and stderr.
fn wait_exit_code(run: &mut Run, limit: Duration, stderr: &Path) -> (Option<i32>, String) {
    let child = &mut run.0;
    let mut status = None;
    wait_for("the run to end", limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let text = std::fs::read_to_string(stderr).unwrap();
    (status.and_then(|s| s.code()), text)
}

/// The Redis list, oldest first.
fn redis_list(server: &PrivateRedis, queue: &str) -> Vec<Vec<u8>> {
    let mut items: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .query(&mut server.connection())
        .unwrap();
    items.reverse();
    items
}

fn redis_len(server: &PrivateRedis, queue: &str) -> usize {
    redis::cmd("LLEN")
        .arg(queue)
        .query(&mut server.connection())
        .unwrap()
}

/// Redis killed mid-stream and started again on the same port: the messages of the outage
/// go to the spool and are sent, in order, before the ones after it.
#[test]
fn redis_outage_spools_and_replays_in_order() {
    let scratch = Scratch::new("outage_redis");
    let mut server = PrivateRedis::start(
        "outage_redis_srv",
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let queue = unique("outage_q");
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let url = server.url();
    let mut child = start_reader(
        &fifos,
        &stderr,
        &[
            "--output",
            &url,
            "--redis-format",
            "raw",
            "--queue",
            &queue,
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    );
    feed(&fifos[0], &fixture_copy(0));
    wait_for("the first copy in Redis", Duration::from_secs(60), || {
        redis_len(&server, &queue) == FIXTURE_MESSAGES
    });
    server.kill();
    feed(&fifos[1], &fixture_copy(1));
    wait_for(
        "the second copy in the spool",
        Duration::from_secs(60),
        || spooled_records(&spool) == FIXTURE_MESSAGES,
    );
    server.spawn();
    feed(&fifos[2], &fixture_copy(2));
    let summary = wait_exit(&mut child, Duration::from_secs(120), &stderr);

    let total = 3 * FIXTURE_MESSAGES as u64;
    assert_eq!(count(&summary, "packets read"), total, "{summary}");
    assert_eq!(count(&summary, "written"), total, "{summary}");
    let spooled = count(&summary, "spooled");
    assert!(spooled >= FIXTURE_MESSAGES as u64, "{summary}");
    assert_eq!(count(&summary, "replayed"), spooled, "{summary}");
    assert_eq!(count(&summary, "dropped"), 0, "{summary}");
    assert!(count(&summary, "outage(s)") >= 1, "{summary}");
    assert!(!summary.contains("left in the spool"), "{summary}");
    assert_eq!(segment_files(&spool), 0, "the spool was not emptied");

    // Copy 1 (spooled) between copies 0 and 2: each copy's messages are its own.
    let want: Vec<Vec<u8>> = expected_copies(&scratch, 3, &["--redis-format", "raw"]).concat();
    let received = redis_list(&server, &queue);
    assert_in_order_at_least_once(
        &received,
        &want,
        count(delivery_line(&summary), "resent after"),
    );
}

/// Kill -9 the publisher while the broker is down and the stream is in the spool; start it
/// again with the broker up: the spool is sent first, then the new run's messages; nothing
/// is lost and nothing is repeated.
#[test]
fn kill_9_while_spooling_then_the_next_start_replays_the_spool() {
    let scratch = Scratch::new("kill9");
    let mut server = PrivateRedis::start(
        "kill9_srv",
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let queue = unique("kill9_q");
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let spool_arg = spool.to_str().unwrap().to_string();
    let url = server.url();
    let common_args = [
        "--output",
        &url,
        "--redis-format",
        "raw",
        "--queue",
        &queue,
        "--spool-dir",
        &spool_arg,
    ];
    let stderr1 = scratch.path("stderr1");
    let mut child = start_reader(&fifos, &stderr1, &common_args);
    feed(&fifos[0], &fixture_copy(0));
    wait_for("the first copy in Redis", Duration::from_secs(60), || {
        redis_len(&server, &queue) == FIXTURE_MESSAGES
    });
    server.kill();
    feed(&fifos[1], &fixture_copy(1));
    wait_for(
        "the second copy in the spool",
        Duration::from_secs(60),
        || spooled_records(&spool) == FIXTURE_MESSAGES,
    );
    // The reader now waits on the third pipe, the spool holds the second copy.
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    server.spawn();

    // The next start, with another capture (and another source name, so its messages differ).
    let out = bin()
        .arg("read")
        .arg("pcaps/ethernet-icmp.pcap")
        .args(["--source-host", "second-run"])
        .args(common_args)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains(&format!(
            "{FIXTURE_MESSAGES} message(s) left in the spool {} by an earlier run",
            spool.display()
        )),
        "{summary}"
    );
    assert_eq!(
        count(&summary, "left by an earlier run"),
        FIXTURE_MESSAGES as u64
    );
    assert!(
        count(&summary, "replayed") >= FIXTURE_MESSAGES as u64,
        "{summary}"
    );
    assert_eq!(count(&summary, "dropped"), 0, "{summary}");
    assert_eq!(segment_files(&spool), 0, "the spool was not emptied");

    let copies = expected_copies(&scratch, 2, &["--redis-format", "raw"]);
    let second = expected(&[
        "--redis-format",
        "raw",
        "--source-host",
        "second-run",
        "pcaps/ethernet-icmp.pcap",
    ]);
    assert!(!second.is_empty());
    // The first run's copy 0, its spooled copy 1, then the second run's messages.
    let want: Vec<Vec<u8>> = copies[0]
        .iter()
        .chain(copies[1].iter())
        .chain(second.iter())
        .cloned()
        .collect();
    let received = redis_list(&server, &queue);
    assert_eq!(received.len(), want.len(), "lost or repeated messages");
    assert!(received == want, "messages out of order");
}

/// `--when-full drop` with a broker that stops answering (SIGSTOP): what the delivery thread
/// has no room for is dropped, and every message is either in Redis or counted as dropped.
#[test]
fn when_full_drop_counts_every_drop() {
    let scratch = Scratch::new("drop");
    let server = PrivateRedis::start("drop_srv", &[]);
    let queue = unique("drop_q");
    let fifos = parts(&scratch, 1);
    let stderr = scratch.path("stderr");
    let url = server.url();
    let mut child = start_reader(
        &fifos,
        &stderr,
        &[
            "--output",
            &url,
            "--redis-format",
            "raw",
            "--queue",
            &queue,
            "--when-full",
            "drop",
        ],
    );
    // Open the pipe first: the reader opens it once the output has connected.
    let mut pipe = File::options().write(true).open(&fifos[0]).unwrap();
    server.pause(true);
    // One pcap stream: copy 0 whole, then the records of copies 1 and 2.
    pipe.write_all(&fixture_copy(0)).unwrap();
    for k in 1..3 {
        pipe.write_all(&fixture_copy(k)[PCAP_HEADER_BYTES..])
            .unwrap();
    }
    drop(pipe);
    server.pause(false);
    let (code, summary) = wait_exit_code(&mut child, Duration::from_secs(120), &stderr);
    // Dropping is loss: not exit 0.
    assert_eq!(code, Some(16), "{summary}");
    assert!(
        summary.contains("not everything was delivered: "),
        "{summary}"
    );

    let total = 3 * FIXTURE_MESSAGES as u64;
    assert_eq!(count(&summary, "packets read"), total, "{summary}");
    let dropped = count(&summary, "dropped");
    assert!(dropped > 0, "nothing was dropped: {summary}");
    assert_eq!(count(&summary, "queue full"), dropped, "{summary}");
    let received = redis_list(&server, &queue);
    assert_eq!(
        received.len() as u64 + dropped,
        total,
        "received + dropped != read: {summary}"
    );
    assert_eq!(count(&summary, "written"), received.len() as u64);
    // What arrived, arrived in order, each message once.
    let want: Vec<Vec<u8>> = expected_copies(&scratch, 3, &["--redis-format", "raw"]).concat();
    let mut w = want.iter();
    for (i, m) in received.iter().enumerate() {
        assert!(w.any(|x| x == m), "message {i} out of order or repeated");
    }
}

/// `--when-full drop` with Redis killed mid-stream (the case: the run used to hold
/// the output and retry forever): the outage drops and counts, the run ends at once with
/// exit 16, and every message read was either acknowledged or counted as dropped.
#[test]
fn when_full_drop_with_the_broker_killed_ends_with_exit_16() {
    let scratch = Scratch::new("drop_kill");
    let mut server = PrivateRedis::start(
        "drop_kill_srv",
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let queue = unique("drop_kill_q");
    let fifos = parts(&scratch, 2);
    let stderr = scratch.path("stderr");
    let url = server.url();
    let mut child = start_reader(
        &fifos,
        &stderr,
        &[
            "--output",
            &url,
            "--redis-format",
            "raw",
            "--queue",
            &queue,
            "--when-full",
            "drop",
        ],
    );
    feed(&fifos[0], &fixture_copy(0));
    // Drop mode may drop some of the first copy too (queue full on a busy machine): wait
    // for the broker to have some of it, not all.
    wait_for("the first copy in Redis", Duration::from_secs(60), || {
        redis_len(&server, &queue) > 0
    });
    server.kill();
    feed(&fifos[1], &fixture_copy(1));
    // Bounded: nothing is held for a broker that is gone.
    let (code, summary) = wait_exit_code(&mut child, Duration::from_secs(30), &stderr);
    assert_eq!(code, Some(16), "{summary}");

    let total = 2 * FIXTURE_MESSAGES as u64;
    assert_eq!(count(&summary, "packets read"), total, "{summary}");
    let line = delivery_line(&summary);
    let acknowledged = count(line, "acknowledged by the broker");
    let dropped = count(line, "dropped");
    assert_eq!(acknowledged + dropped, total, "{summary}");
    // The second copy was read with the broker gone: all of it is dropped.
    assert!(dropped >= FIXTURE_MESSAGES as u64, "{summary}");
    assert!(line.contains("broker unreachable"), "{summary}");
    let last = summary.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("{dropped} message(s) dropped")),
        "the last line says how many were lost: {summary}"
    );
    // What Redis really holds (it kept every acknowledged write on disk): at least what was
    // acknowledged, nothing of the second copy.
    server.spawn();
    let stored = redis_list(&server, &queue);
    assert!(
        stored.len() as u64 >= acknowledged,
        "{} stored: {summary}",
        stored.len()
    );
    let copies = expected_copies(&scratch, 2, &["--redis-format", "raw"]);
    assert!(
        is_subsequence(&stored, &copies[0]),
        "Redis holds messages that are not of the first copy, in order: {summary}"
    );
}

/// `--spool-mb 1` with Redis killed: the spool takes what fits, the rest is dropped (spool
/// full), and what is in the spool at the end stays there: exit 16, and the last line says
/// how many were dropped and how many are left in which directory.
#[test]
fn spool_full_and_messages_left_in_the_spool_exit_16() {
    let scratch = Scratch::new("spool_full");
    let mut server = PrivateRedis::start("spool_full_srv", &[]);
    let queue = unique("spool_full_q");
    let fifos = parts(&scratch, 2);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let url = server.url();
    let mut child = start_reader(
        &fifos,
        &stderr,
        &[
            "--output",
            &url,
            "--redis-format",
            "raw",
            "--queue",
            &queue,
            "--spool-dir",
            spool.to_str().unwrap(),
            "--spool-mb",
            "1",
        ],
    );
    feed(&fifos[0], &fixture_copy(0));
    wait_for("the first copy in Redis", Duration::from_secs(60), || {
        redis_len(&server, &queue) == FIXTURE_MESSAGES
    });
    server.kill();
    feed(&fifos[1], &fixture_copy(1));
    // The run waits FINISH_PATIENCE (10 s) for the broker, then leaves the rest.
    let (code, summary) = wait_exit_code(&mut child, Duration::from_secs(60), &stderr);
    assert_eq!(code, Some(16), "{summary}");
    let line = delivery_line(&summary);
    let dropped = count(line, "dropped");
    let left = count(line, "left in the spool");
    let acknowledged = count(line, "acknowledged by the broker");
    assert!(dropped > 0, "{summary}");
    assert_eq!(count(line, "spool full"), dropped, "{summary}");
    assert!(left > 0, "{summary}");
    assert_eq!(
        acknowledged + dropped + left,
        2 * FIXTURE_MESSAGES as u64,
        "{summary}"
    );
    assert_eq!(spooled_records(&spool) as u64, left, "{summary}");
    // What the spool keeps is the second copy's (the first was all in Redis), in order.
    let copies = expected_copies(&scratch, 2, &["--redis-format", "raw"]);
    let kept: Vec<Vec<u8>> = segment_records(&spool)
        .into_iter()
        .flat_map(|(_, _, records)| records.into_iter().map(|(_, m)| m))
        .collect();
    assert_eq!(kept.len() as u64, left);
    assert!(
        is_subsequence(&kept, &copies[1]),
        "the spool holds messages that are not of the second copy, in order"
    );
    let last = summary.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("{dropped} message(s) dropped"))
            && last.contains(&format!(
                "{left} message(s) still in the spool {}",
                spool.display()
            )),
        "{summary}"
    );
}

/// The records of each segment file in `dir`, oldest segment first: the file, its id, and
/// each record's offset and payload (read independently of src/sink/spool.rs: magic, then
/// u32 LE length, u32 LE CRC-32C, payload).
type SegmentRecords = (PathBuf, u64, Vec<(usize, Vec<u8>)>);

fn segment_records(dir: &Path) -> Vec<SegmentRecords> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        let Some(id) = name
            .strip_suffix(".seg")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let bytes = std::fs::read(e.path()).unwrap();
        let mut records = Vec::new();
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if at + 8 + len > bytes.len() {
                break;
            }
            records.push((at, bytes[at + 8..at + 8 + len].to_vec()));
            at += 8 + len;
        }
        out.push((e.path(), id, records));
    }
    out.sort_by_key(|s| s.1);
    out
}

/// A spool written by the binary (Redis killed, the reader killed -9 while spooling), then
/// damaged as the issue found it: a flipped byte in record 3 of a segment, a cursor pointing
/// inside a record of it, and a cursor past the end of every other segment. The next start
/// moves the damaged segment aside (`*.damaged`, named in the summary), sends every other
/// record (from the record the cursor points into), deletes nothing unsent, and ends with
/// exit 16 because a damaged segment was set aside.
#[test]
fn a_damaged_spool_and_bad_cursors_still_deliver_every_good_record() {
    let scratch = Scratch::new("damaged");
    let mut server = PrivateRedis::start("damaged_srv", &[]);
    let queue = unique("damaged_q");
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let spool_arg = spool.to_str().unwrap().to_string();
    let url = server.url();
    let common_args = [
        "--output",
        &url,
        "--redis-format",
        "raw",
        "--queue",
        &queue,
        "--spool-dir",
        &spool_arg,
    ];
    let mut child = start_reader(&fifos, &scratch.path("stderr1"), &common_args);
    let pcap = fixture_bytes();
    feed(&fifos[0], &pcap);
    wait_for("the first copy in Redis", Duration::from_secs(60), || {
        redis_len(&server, &queue) == FIXTURE_MESSAGES
    });
    server.kill();
    feed(&fifos[1], &pcap);
    wait_for(
        "the second copy in the spool",
        Duration::from_secs(60),
        || spooled_records(&spool) == FIXTURE_MESSAGES,
    );
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    let segments = segment_records(&spool);
    let (damaged_at, _) = segments
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| s.2.len())
        .unwrap();
    let mut cursor = String::new();
    let mut want = Vec::new();
    let mut damaged_name = String::new();
    for (i, (path, id, records)) in segments.iter().enumerate() {
        if i == damaged_at {
            assert!(records.len() > 4, "{} records", records.len());
            let mut bytes = std::fs::read(path).unwrap();
            bytes[records[2].0 + 8 + 1] ^= 0x01;
            std::fs::write(path, &bytes).unwrap();
            cursor.push_str(&format!("{id:016x} {}\n", records[1].0 + 3));
            want.push(records[1].1.clone());
            want.extend(records[3..].iter().map(|r| r.1.clone()));
            damaged_name = format!("{}.damaged", path.file_name().unwrap().to_str().unwrap());
        } else {
            let len = std::fs::metadata(path).unwrap().len();
            cursor.push_str(&format!("{id:016x} {}\n", len + 1000));
            want.extend(records.iter().map(|r| r.1.clone()));
        }
    }
    std::fs::write(spool.join("cursor"), cursor).unwrap();
    // Without --appendonly the restarted server starts empty: Redis then holds exactly what
    // the next run sends.
    server.spawn();
    assert_eq!(redis_len(&server, &queue), 0);

    let empty = scratch.path("empty.pcap");
    std::fs::write(&empty, &pcap[..PCAP_HEADER_BYTES]).unwrap();
    let out = bin()
        .arg("read")
        .arg(&empty)
        .args(common_args)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(16), "{summary}");
    let received = redis_list(&server, &queue);
    assert_eq!(received.len(), want.len(), "{summary}");
    assert!(
        received == want,
        "not every good record arrived in order: {summary}"
    );
    assert!(
        summary.contains(&format!(
            "1 damaged spool segment(s) moved aside ({damaged_name})"
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "did not point at a record boundary in {} segment(s)",
            segments.len()
        )),
        "{summary}"
    );
    assert!(spool.join(&damaged_name).exists());
    assert_eq!(segment_files(&spool), 0, "the spool was not emptied");
}

/// RabbitMQ: a private node killed mid-stream and started again on the same ports and
/// database: nothing is lost (confirmed messages are persistent; unconfirmed ones come back
/// from the spool).
///
/// The node is killed and started again rather than stopped with `rabbitmqctl stop_app` and
/// `start_app`: on the RabbitMQ 3.10.8 / Erlang 25 of this machine, `start_app` after
/// `stop_app` fails to open the AMQP listener again (`eaddrinuse`, though nothing listens on
/// the port) and leaves the node unable to start its application, so that outage could not
/// end.
#[test]
fn rabbitmq_outage_spools_and_replays() {
    let py = common::venv_python("kombu");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh, which makes the kombu virtual environment",
        py.display()
    );
    let scratch = Scratch::new("outage_amqp");
    let mut node = PrivateRabbit::start("outage_amqp_node");
    let names = [
        ("--queue", unique("oq")),
        ("--exchange", unique("ox")),
        ("--routing-key", unique("ork")),
    ];
    let mut args: Vec<String> = Vec::new();
    for (flag, name) in &names {
        args.push(flag.to_string());
        args.push(name.clone());
    }
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let url = node.url();
    let mut run_args: Vec<&str> = vec!["--output", &url, "--spool-dir", spool.to_str().unwrap()];
    run_args.extend(args.iter().map(String::as_str));
    let mut child = start_reader(&fifos, &stderr, &run_args);
    feed(&fifos[0], &fixture_copy(0));
    // The first copy confirmed: the queue holds it (rabbitmqctl counts it).
    let queue = names[0].1.clone();
    let node_name = node.node.clone();
    wait_for(
        "the first copy in RabbitMQ",
        Duration::from_secs(60),
        || {
            let out = Command::new("rabbitmqctl")
                .args(["-q", "-n", &node_name, "list_queues", "name", "messages"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                l.starts_with(&queue) && l.trim_end().ends_with(&FIXTURE_MESSAGES.to_string())
            })
        },
    );
    node.kill();
    feed(&fifos[1], &fixture_copy(1));
    // At least the second copy: the queue counts messages before their confirms reach us, so
    // some of the first copy may be unconfirmed at the kill and spooled too.
    wait_for(
        "the second copy in the spool",
        Duration::from_secs(60),
        || spooled_records(&spool) >= FIXTURE_MESSAGES,
    );
    node.spawn();
    feed(&fifos[2], &fixture_copy(2));
    let summary = wait_exit(&mut child, Duration::from_secs(180), &stderr);
    let total = 3 * FIXTURE_MESSAGES as u64;
    assert_eq!(count(&summary, "written"), total, "{summary}");
    assert_eq!(count(&summary, "dropped"), 0, "{summary}");
    assert!(count(&summary, "outage(s)") >= 1, "{summary}");
    let spooled = count(&summary, "spooled");
    assert!(spooled >= FIXTURE_MESSAGES as u64, "{summary}");
    assert_eq!(count(&summary, "replayed"), spooled, "{summary}");
    assert_eq!(segment_files(&spool), 0, "the spool was not emptied");

    let out = Command::new(&py)
        .arg(root().join("tests/kombu/consume_amqp.py"))
        .args(["--url", &url, "--count", &(total + 100_000).to_string()])
        .args(["--drain", "--timeout", "3"])
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "consume_amqp.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let received: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|r| r["body"].as_str().map(|b| b.as_bytes().to_vec()))
        .collect();
    let want: Vec<Vec<u8>> = expected_copies(&scratch, 3, &[]).concat();
    assert_in_order_at_least_once(
        &received,
        &want,
        count(delivery_line(&summary), "resent after"),
    );
}
