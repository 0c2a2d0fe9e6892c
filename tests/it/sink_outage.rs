//! Broker outages with `--when-full spool` (the default) and `--when-full drop`, against
//! private brokers each test starts itself (tests/common/brokers.rs), so the shared Redis and
//! RabbitMQ are never stopped.
//!
//! The binary reads pcaps from named pipes the test writes, so the test decides when each
//! part of the stream arrives (`read` sends a file's last messages when the file ends): one
//! copy of the fixture while the broker is up, one while it is down, one after it is back.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::assert_in_order_at_least_once;
use crate::common::brokers::{wait_for, PrivateRabbit, PrivateRedis};
use crate::common::kombu::{bodies, AmqpNames};
use crate::common::outage::{
    count, delivery_line, expected_copies, feed, first_copy_then_outage, fixture_bytes,
    fixture_copy, parts, resent, segment_files, segment_records, start_reader, wait_exit,
    wait_exit_code, Scratch, PCAP_HEADER_BYTES,
};
use crate::common::{bin, expected, spooled_records, unique, FIXTURE_MESSAGES};

/// Whether `part` is `whole` with some messages left out (order kept).
fn is_subsequence(part: &[Vec<u8>], whole: &[Vec<u8>]) -> bool {
    let mut w = whole.iter();
    part.iter().all(|m| w.any(|x| x == m))
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

/// One Redis outage test's pieces: its scratch directory, a private server (`durable`: see
/// [`PrivateRedis::durable`]), a queue of its own and the named pipes `part1..<n>.pcap`.
fn redis_case(tag: &str, durable: bool, n: usize) -> (Scratch, PrivateRedis, String, Vec<PathBuf>) {
    let scratch = Scratch::new(tag);
    let srv = format!("{tag}_srv");
    let server = if durable {
        PrivateRedis::durable(&srv)
    } else {
        PrivateRedis::start(&srv, &[])
    };
    let fifos = parts(&scratch, n);
    (scratch, server, unique(&format!("{tag}_q")), fifos)
}

/// `--output <server> --redis-format raw --queue <queue>` and `more`.
fn raw_list_args(server: &PrivateRedis, queue: &str, more: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--output".to_string(),
        server.url(),
        "--redis-format".into(),
        "raw".into(),
        "--queue".into(),
        queue.into(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    args
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
    let (scratch, mut server, queue, fifos) = redis_case("outage_redis", true, 3);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let args = raw_list_args(&server, &queue, &["--spool-dir", spool.to_str().unwrap()]);
    let mut child = start_reader(&fifos, &stderr, &args);
    first_copy_then_outage(
        &mut server,
        &fifos,
        &spool,
        |s| redis_len(s, &queue) == FIXTURE_MESSAGES,
        |n| n == FIXTURE_MESSAGES,
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
    assert_in_order_at_least_once(&received, &want, resent(&summary));
}

/// Kill -9 the publisher while the broker is down and the stream is in the spool; start it
/// again with the broker up: the spool is sent first, then the new run's messages; nothing
/// is lost and nothing is repeated.
#[test]
fn kill_9_while_spooling_then_the_next_start_replays_the_spool() {
    let (scratch, mut server, queue, fifos) = redis_case("kill9", true, 3);
    let spool = scratch.path("spool");
    let common_args = raw_list_args(&server, &queue, &["--spool-dir", spool.to_str().unwrap()]);
    let stderr1 = scratch.path("stderr1");
    let mut child = start_reader(&fifos, &stderr1, &common_args);
    first_copy_then_outage(
        &mut server,
        &fifos,
        &spool,
        |s| redis_len(s, &queue) == FIXTURE_MESSAGES,
        |n| n == FIXTURE_MESSAGES,
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
        .args(&common_args)
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
    let (scratch, server, queue, fifos) = redis_case("drop", false, 1);
    let stderr = scratch.path("stderr");
    let args = raw_list_args(&server, &queue, &["--when-full", "drop"]);
    let mut child = start_reader(&fifos, &stderr, &args);
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
    let (scratch, mut server, queue, fifos) = redis_case("drop_kill", true, 2);
    let stderr = scratch.path("stderr");
    let args = raw_list_args(&server, &queue, &["--when-full", "drop"]);
    let mut child = start_reader(&fifos, &stderr, &args);
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
    let (scratch, mut server, queue, fifos) = redis_case("spool_full", false, 2);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let args = raw_list_args(
        &server,
        &queue,
        &["--spool-dir", spool.to_str().unwrap(), "--spool-mb", "1"],
    );
    let mut child = start_reader(&fifos, &stderr, &args);
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

/// A spool written by the binary (Redis killed, the reader killed -9 while spooling), then
/// damaged as the issue found it: a flipped byte in record 3 of a segment, a cursor pointing
/// inside a record of it, and a cursor past the end of every other segment. The next start
/// moves the damaged segment aside (`*.damaged`, named in the summary), sends every other
/// record (from the record the cursor points into), deletes nothing unsent, and ends with
/// exit 16 because a damaged segment was set aside.
#[test]
fn a_damaged_spool_and_bad_cursors_still_deliver_every_good_record() {
    let (scratch, mut server, queue, fifos) = redis_case("damaged", false, 3);
    let spool = scratch.path("spool");
    let common_args = raw_list_args(&server, &queue, &["--spool-dir", spool.to_str().unwrap()]);
    let mut child = start_reader(&fifos, &scratch.path("stderr1"), &common_args);
    first_copy_then_outage(
        &mut server,
        &fifos,
        &spool,
        |s| redis_len(s, &queue) == FIXTURE_MESSAGES,
        |n| n == FIXTURE_MESSAGES,
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
    std::fs::write(&empty, &fixture_bytes()[..PCAP_HEADER_BYTES]).unwrap();
    let out = bin()
        .arg("read")
        .arg(&empty)
        .args(&common_args)
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
    let scratch = Scratch::new("outage_amqp");
    let mut node = PrivateRabbit::start("outage_amqp_node");
    let url = node.url();
    let names = AmqpNames::private(&url, "outage");
    let args = names.args();
    let fifos = parts(&scratch, 3);
    let spool = scratch.path("spool");
    let stderr = scratch.path("stderr");
    let mut run_args: Vec<&str> = vec!["--output", &url, "--spool-dir", spool.to_str().unwrap()];
    run_args.extend(args.iter().map(String::as_str));
    let mut child = start_reader(&fifos, &stderr, &run_args);
    // The first copy is in once it is confirmed: the queue holds it (rabbitmqctl counts it).
    // Then at least the second copy in the spool: the queue counts messages before their
    // confirms reach us, so some of the first copy may be unconfirmed at the kill and spooled
    // too.
    first_copy_then_outage(
        &mut node,
        &fifos,
        &spool,
        |n| {
            let out = Command::new("rabbitmqctl")
                .args(["-q", "-n", &n.node, "list_queues", "name", "messages"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                l.starts_with(&names.queue) && l.trim_end().ends_with(&FIXTURE_MESSAGES.to_string())
            })
        },
        |n| n >= FIXTURE_MESSAGES,
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

    let (received, _) =
        bodies(&names.consume(total as usize + 100_000, &["--drain", "--timeout", "3"]));
    let want: Vec<Vec<u8>> = expected_copies(&scratch, 3, &[]).concat();
    assert_in_order_at_least_once(&received, &want, resent(&summary));
}
