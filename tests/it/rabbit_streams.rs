//! `-o rabbitmq-stream://`: RabbitMQ Streams against the machine's RabbitMQ (stream plugin on
//! port 5552, enabled by scripts/test.sh), each test on a stream of its own.

use crate::common;

use crate::common::brokers::{wait_for, PrivateRabbit};
use crate::common::frames::packet_records;
use crate::common::harness::{read_stderr, wait_exit, TempDir};
use crate::common::kombu;
use crate::common::{archived_packets, committed_rows};
use crate::common::{bin, expected, unique, FIXTURE, FIXTURE_MESSAGES};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const STREAM_URL: &str = "rabbitmq-stream://guest:guest@127.0.0.1:5552";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672//";

/// Reads `count` messages of `stream` from its start with kombu over AMQP 0-9-1.
fn kombu_read(stream: &str, count: usize) -> Vec<Vec<u8>> {
    kombu::stream_messages(AMQP_URL, stream, count, 60)
}

/// Reads a whole stream with kombu (it holds at most the fixture's messages).
fn kombu_read_all(stream: &str) -> Vec<Vec<u8>> {
    kombu::whole_stream(AMQP_URL, stream, FIXTURE_MESSAGES, 15)
}

fn delete_stream(stream: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", stream])
        .output();
}

fn publish(stream: &str, producer: &str) -> std::process::Output {
    bin()
        .args(["read", "-r", FIXTURE, "-o", STREAM_URL, "--queue", stream])
        .args(["--producer-name", producer])
        .output()
        .unwrap()
}

#[test]
fn every_message_once_in_order_read_back_by_kombu() {
    let stream = unique("stream_kombu");
    let out = publish(&stream, &stream);
    assert!(out.status.success(), "publish failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{FIXTURE_MESSAGES} confirmed")),
        "{stderr}"
    );
    let want = expected(&["-r", FIXTURE]);
    assert_eq!(want.len(), FIXTURE_MESSAGES);
    let got = kombu_read(&stream, FIXTURE_MESSAGES);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "kombu got other messages or another order");
    delete_stream(&stream);
}

#[test]
fn a_second_run_continues_the_publishing_ids_and_is_not_dropped_as_duplicate() {
    // The broker keeps the last publishing id per producer name; a restarted publisher must
    // continue after it, or everything it sends is silently dropped as a duplicate.
    let stream = unique("stream_restart");
    for _ in 0..2 {
        let out = publish(&stream, &stream);
        assert!(out.status.success(), "publish failed: {out:?}");
    }
    let want = expected(&["-r", FIXTURE]);
    let got = kombu_read(&stream, 2 * FIXTURE_MESSAGES);
    assert_eq!(got.len(), 2 * FIXTURE_MESSAGES);
    assert!(got[..FIXTURE_MESSAGES] == want[..] && got[FIXTURE_MESSAGES..] == want[..]);
    delete_stream(&stream);
}

#[test]
fn unreachable_and_refused_credentials_have_their_exit_codes() {
    let port = common::brokers::free_port();
    let out = bin()
        .args(["read", "-r", FIXTURE, "--when-full", "block", "-o"])
        .arg(format!("rabbitmq-stream://guest:guest@127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let out = bin()
        .args(["read", "-r", FIXTURE, "--when-full", "block", "-o"])
        .arg("rabbitmq-stream://guest:wrong-secret@127.0.0.1:5552")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-secret"));
}

/// `record --input STREAM_URL --queue QUEUE ARGS` into `<name>.csv` and `<name>.json` in
/// `dir`, which must succeed (`what` names it in the failure); the archived packets.
fn record_stream(
    dir: &TempDir,
    name: &str,
    queue: &str,
    args: &[&str],
    what: &str,
) -> Vec<serde_json::Value> {
    let archive = dir.path(&format!("{name}.json"));
    let out = bin()
        .args(["record", "--input", STREAM_URL, "--queue", queue])
        .args(args)
        .arg("--output-csv")
        .arg(dir.path(&format!("{name}.csv")))
        .arg("--archive-json")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{what} failed: {out:?}");
    archived_packets(&archive)
}

#[test]
fn restarted_stream_recorder_resumes_from_its_stored_offset() {
    let stream = unique("stream_record");
    let out = publish(&stream, &stream);
    assert!(out.status.success(), "publish failed: {out:?}");
    // The stream holds exactly the capture (so a mismatch below is the recorder's).
    let whole = kombu_read_all(&stream);
    assert_eq!(
        whole.len(),
        FIXTURE_MESSAGES,
        "the stream holds another count"
    );
    assert!(
        whole == expected(&["-r", FIXTURE]),
        "the stream is not the capture"
    );
    let dir = TempDir::new("stream-record", "resume");
    let reader = unique("reader");
    let mut got = Vec::new();
    // First run stops after 5,000 messages; the second takes the rest, and nothing else.
    for (run, count) in [("a", 5_000usize), ("b", FIXTURE_MESSAGES - 5_000)] {
        let count = count.to_string();
        let args = ["--reader-name", &reader, "--save-after-num", "700"];
        let args = [&args[..], &["--stop-after-num", &count]].concat();
        got.extend(record_stream(
            &dir,
            run,
            &stream,
            &args,
            &format!("record run {run}"),
        ));
    }
    let want: Vec<serde_json::Value> = expected(&["-r", FIXTURE])
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the two runs did not read every message once, in order"
    );
    // A reader with another name reads everything again.
    let count = FIXTURE_MESSAGES.to_string();
    let other = unique("other");
    let args = ["--reader-name", &other, "--stop-after-num", &count];
    assert!(record_stream(&dir, "other", &stream, &args, "record as another reader") == want);
    delete_stream(&stream);
}

/// The fixture's bytes as its pcap global header and its records (each with its header).
fn fixture_records() -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = std::fs::read(common::root().join(FIXTURE)).unwrap();
    let records = packet_records(&bytes);
    assert_eq!(records.len(), FIXTURE_MESSAGES);
    let header = bytes[..records[0].0].to_vec();
    let records = records.iter().map(|&(a, b)| bytes[a..b].to_vec()).collect();
    (header, records)
}

/// Messages the stream `stream` holds, as `node` counts them (0 while it is not listed).
fn stored(node: &PrivateRabbit, stream: &str) -> u64 {
    let text = node.ctl(&["list_queues", "-q", "name", "messages"]);
    text.lines()
        .find(|l| l.starts_with(stream))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits (at most 240 s) for the publisher `child` to end; it must succeed and have said
/// `needle` (if any) on stderr, which is returned.
fn publisher_finished(child: &mut Child, needle: Option<&str>) -> String {
    let status = wait_exit(child, "the publisher to finish", Duration::from_secs(240));
    let stderr = read_stderr(child);
    assert!(status.success(), "publisher failed: {status:?}\n{stderr}");
    if let Some(needle) = needle {
        assert!(stderr.contains(needle), "no {needle:?}: {stderr}");
    }
    stderr
}

/// The whole stream `stream`, read by kombu through `node`: exactly the fixture's messages,
/// in order (`publisher` is what the publisher said, for the failure message).
fn assert_stream_is_the_fixture(node: &PrivateRabbit, stream: &str, publisher: &str) {
    let url = format!("amqp://guest:guest@127.0.0.1:{}//", node.port);
    let got = kombu::whole_stream(&url, stream, FIXTURE_MESSAGES, 20);
    let want = expected(&["-r", FIXTURE]);
    assert_eq!(got.len(), want.len(), "publisher said:\n{publisher}");
    assert!(got == want, "messages out of order or changed");
}

/// Three private RabbitMQ nodes in one cluster, a stream replicated on all three; the
/// stream's leader is killed with SIGKILL while the publisher is running, and started again.
/// Every message is in the stream exactly once, in order (resends deduplicated by the broker).
#[test]
fn three_node_cluster_leader_killed_mid_stream_nothing_lost_no_duplicates() {
    use std::io::Write;
    let pid = std::process::id();
    let mut nodes: Vec<PrivateRabbit> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            PrivateRabbit::start_node(
                &format!("cluster_{n}"),
                &format!("rabbit-np-{n}-{pid}@localhost"),
                true,
            )
        })
        .collect();
    nodes[1].join(&nodes[0]);
    nodes[2].join(&nodes[0]);
    let stream = unique("cluster_stream");
    // Declared over AMQP with three replicas (x-initial-cluster-size), as an operator would.
    let declare = kombu::inline(
        "import sys, amqp\n\
             c = amqp.Connection(sys.argv[1]); c.connect(); ch = c.channel()\n\
             ch.queue_declare(sys.argv[2], durable=True, auto_delete=False,\n\
                 arguments={'x-queue-type': 'stream', 'x-initial-cluster-size': 3})\n\
             c.close()\n",
    )
    .arg(format!("127.0.0.1:{}", nodes[0].port))
    .arg(&stream)
    .output()
    .unwrap();
    assert!(declare.status.success(), "{declare:?}");
    let members = nodes[0].ctl(&["list_queues", "-q", "name", "members"]);
    let line = members
        .lines()
        .find(|l| l.starts_with(&stream))
        .unwrap_or("");
    for n in &nodes {
        assert!(line.contains(&n.node), "stream not on {}: {line}", n.node);
    }

    let (header, records) = fixture_records();
    // The spool of this run only (the default is under /var/lib, shared by every run); under
    // target/, since the spool refuses a path through a world-writable directory like /tmp.
    let spool = common::root()
        .join("target/test-scratch")
        .join(unique("stream_cluster_spool"));
    let url = format!(
        "rabbitmq-stream://guest:guest@127.0.0.1:{}",
        nodes[0].stream_port
    );
    let mut child = bin()
        .args(["read", "-r", "-", "-o", &url, "--queue", &stream])
        .args(["--producer-name", "cluster-test", "--spool-dir"])
        .arg(&spool)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&header).unwrap();
    let half = records.len() / 2;
    let fed = records[..half]
        .iter()
        .try_for_each(|r| stdin.write_all(r))
        .and_then(|()| stdin.flush());
    if let Err(e) = fed {
        let out = child.wait_with_output().unwrap();
        panic!(
            "the publisher stopped reading ({e}): {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Mid-stream: once the stream holds messages, its leader goes.
    wait_for("the first messages", Duration::from_secs(60), || {
        stored(&nodes[1], &stream) > 0
    });
    let leaders = nodes[1].ctl(&["list_queues", "-q", "name", "leader"]);
    let leader = leaders
        .lines()
        .find(|l| l.starts_with(&stream))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let victim = nodes.iter().position(|n| n.node == leader).unwrap();
    nodes[victim].kill();
    for r in &records[half..] {
        stdin.write_all(r).unwrap();
    }
    stdin.flush().unwrap();
    // The capture goes on while the node is down (the spool takes what cannot be sent), and
    // ends after the node is back.
    nodes[victim].spawn();
    drop(stdin);
    let stderr = publisher_finished(&mut child, None);
    // One more than was sent is asked for: the read must time out with exactly the total.
    assert_stream_is_the_fixture(&nodes[1], &stream, &stderr);
    eprintln!("publisher: {stderr}");
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn password_file_keeps_the_secret_out_of_argv_for_output_and_record() {
    let stream = unique("stream_pwfile");
    let dir = TempDir::new("stream-pw", "file");
    let good = dir.path("good");
    std::fs::write(&good, "guest\n").unwrap();
    let bad = dir.path("bad");
    std::fs::write(&bad, "not-the-password-42\n").unwrap();
    let url = "rabbitmq-stream://guest@127.0.0.1:5552";
    let publish_with = |password_file: &std::path::Path| {
        bin()
            .args(["read", "-r", FIXTURE, "-o", url, "--queue", &stream])
            .arg("--password-file")
            .arg(password_file)
            .output()
            .unwrap()
    };
    let out = publish_with(&good);
    assert!(out.status.success(), "{out:?}");
    let out = publish_with(&bad);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-the-password-42"));
    let out = bin()
        .args([
            "record",
            "--input",
            url,
            "--queue",
            &stream,
            "--stop-after-num",
            "10",
        ])
        .arg("--password-file")
        .arg(&good)
        .arg("--output-csv")
        .arg(dir.path("r.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    delete_stream(&stream);
}

/// `--partitions 3`: streams `<queue>-0..2`, one deduplicating producer each. Every message
/// is in exactly one partition, once; each partition keeps the capture's order; both
/// directions of a flow (one community id) are in one partition. Read back by kombu and by
/// our `record`, which must agree.
#[test]
fn partitions_every_message_once_in_order_and_flows_whole() {
    const N: usize = 3;
    let base = unique("stream_parts");
    let out = bin()
        .args(["read", "-r", FIXTURE, "-o", STREAM_URL, "--queue", &base])
        .args(["--producer-name", &base, "--partitions", &N.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "publish failed: {stderr}");
    assert!(
        stderr.contains(&format!("{FIXTURE_MESSAGES} confirmed")),
        "{stderr}"
    );
    let want = expected(&["-r", FIXTURE]);
    let position: std::collections::HashMap<&[u8], usize> = want
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_slice(), i))
        .collect();
    assert_eq!(position.len(), want.len(), "the fixture has repeated lines");
    let mut seen = vec![None; want.len()];
    let mut flows: std::collections::HashMap<String, usize> = Default::default();
    let mut used = 0;
    let dir = TempDir::new("stream-parts", "record");
    for p in 0..N {
        let stream = format!("{base}-{p}");
        let got = kombu_read_all(&stream);
        used += usize::from(!got.is_empty());
        let mut last = None;
        for m in &got {
            let &at = position
                .get(m.as_slice())
                .unwrap_or_else(|| panic!("partition {p}: a message no one published"));
            assert!(seen[at].is_none(), "message {at} stored twice");
            seen[at] = Some(p);
            assert!(last < Some(at), "partition {p}: out of the capture's order");
            last = Some(at);
            let v: serde_json::Value = serde_json::from_slice(m).unwrap();
            if let Some(id) = v["community_id"].as_str() {
                let first = *flows.entry(id.to_string()).or_insert(p);
                assert_eq!(first, p, "flow {id} split over partitions {first} and {p}");
            }
        }
        if got.is_empty() {
            continue;
        }
        // Our recorder reads the same partition, in the same order.
        let reader = unique("parts");
        let count = got.len().to_string();
        let recorded = record_stream(
            &dir,
            &p.to_string(),
            &stream,
            &["--reader-name", &reader, "--stop-after-num", &count],
            &format!("record of {stream}"),
        );
        let from_kombu: Vec<serde_json::Value> = got
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(
            recorded == from_kombu,
            "record and kombu disagree on {stream}"
        );
    }
    let missing = seen.iter().filter(|s| s.is_none()).count();
    assert_eq!(missing, 0, "{missing} message(s) in no partition");
    assert!(used > 1, "every message went to one partition");
    for p in 0..N {
        delete_stream(&format!("{base}-{p}"));
    }
}

/// `--when-full block`: no spool, the sink itself holds the output. A private node is killed
/// with SIGKILL while up to 8 batches are in flight and started again; the sink reconnects,
/// sends every unconfirmed message again with its publishing id, and the broker keeps each
/// message once: kombu reads back exactly the capture, in order.
#[test]
fn block_mode_node_killed_mid_stream_resends_in_flight_batches_without_duplicates() {
    use std::io::Write;
    let mut node = PrivateRabbit::start_node(
        "stream_block",
        &format!("{}@localhost", unique("npf-block")),
        true,
    );
    let stream = unique("block_stream");
    let (header, records) = fixture_records();
    let url = format!(
        "rabbitmq-stream://guest:guest@127.0.0.1:{}",
        node.stream_port
    );
    let mut child = bin()
        .args(["read", "-r", "-", "-o", &url, "--queue", &stream])
        .args(["--producer-name", &stream, "--when-full", "block"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&header).unwrap();
    let half = records.len() / 2;
    for r in &records[..half] {
        stdin.write_all(r).unwrap();
    }
    stdin.flush().unwrap();
    wait_for("the first messages", Duration::from_secs(60), || {
        stored(&node, &stream) > 0
    });
    node.kill();
    // The rest goes into the pipe while the node is down: the sink holds it (block mode).
    let feeder = std::thread::spawn(move || {
        for r in &records[half..] {
            if stdin.write_all(r).is_err() {
                return;
            }
        }
    });
    node.spawn();
    let stderr = publisher_finished(&mut child, Some("reconnected after"));
    feeder.join().unwrap();
    eprintln!("publisher: {stderr}");
    // One more than was sent is asked for: the read must time out with exactly the total.
    assert_stream_is_the_fixture(&node, &stream, &stderr);
}

/// `record --partitions 3 --partition 0,2` reads the streams `<q>-0` and `<q>-2` (as the
/// publisher's `--partitions 3` names them), one subscription each, and stores an offset per
/// partition under its reader name: a second run reads only what was added since, and never
/// anything of `<q>-1`.
#[test]
fn partitions_are_read_as_selected_with_an_offset_each() {
    let q = unique("parts");
    let name = |i: usize| format!("{q}-{i}");
    let publish_n = |stream: &str, n: usize, producer: &str| {
        let out = bin()
            .args(["read", "-c", &n.to_string(), FIXTURE, "-o", STREAM_URL])
            .args(["--queue", stream, "--producer-name", producer])
            .output()
            .unwrap();
        assert!(out.status.success(), "publish to {stream}: {out:?}");
    };
    for (i, n) in [(0, 300), (1, 500), (2, 200)] {
        publish_n(&name(i), n, &name(i));
    }
    let dir = TempDir::new("stream-record", "parts");
    let reader = unique("reader");
    let record = |run: &str, count: usize| {
        let count = count.to_string();
        let args = [
            "--partitions",
            "3",
            "--partition",
            "0,2",
            "--reader-name",
            &reader,
        ];
        let args = [
            &args[..],
            &["--save-after-num", "150", "--stop-after-num", &count],
        ]
        .concat();
        let mut got: Vec<String> =
            record_stream(&dir, run, &q, &args, &format!("record run {run}"))
                .iter()
                .map(|v| v.to_string())
                .collect();
        got.sort();
        got
    };
    let fixture = |n: usize| -> Vec<String> {
        expected(&["-c", &n.to_string(), FIXTURE])
            .iter()
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let mut want = fixture(300);
    want.extend(fixture(200));
    want.sort();
    let got = record("a", 500);
    assert_eq!(got.len(), 500);
    assert!(got == want, "partitions 0 and 2 were not read exactly once");
    // 100 more in partition 0 (another producer: not deduplicated), 100 in partition 1: the
    // same reader resumes each partition after its stored offset, and skips partition 1.
    publish_n(&name(0), 100, &unique("more"));
    publish_n(&name(1), 100, &unique("more"));
    let got = record("b", 100);
    let mut want = fixture(100);
    want.sort();
    assert!(
        got == want,
        "the second run did not read just the 100 new messages"
    );
    // Usage errors: a partition that does not exist.
    let out = bin()
        .args(["record", "--input", STREAM_URL, "--queue", &q])
        .args(["--partitions", "3", "--partition", "3"])
        .args(["--output-csv"])
        .arg(dir.path("bad.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition 3 does not exist"));
    for i in 0..3 {
        delete_stream(&name(i));
    }
}

/// A private node is stopped and started again while `record` reads its stream: the
/// recorder logs the lost connection, subscribes again right after the last message it read,
/// and records what is published after the restart: every message once, in order, in one run.
#[test]
fn stream_recorder_reconnects_after_a_broker_restart_and_resumes_after_its_last_message() {
    let pid = std::process::id();
    let mut node = PrivateRabbit::start_node(
        "restart_rec",
        &format!("rabbit-np-restart-{pid}@localhost"),
        true,
    );
    let url = format!(
        "rabbitmq-stream://guest:guest@127.0.0.1:{}",
        node.stream_port
    );
    let stream = unique("restart_stream");
    let publish_n = |args: &[&str], producer: &str| {
        bin()
            .arg("read")
            .args(args)
            .args(["-o", &url, "--queue", &stream, "--producer-name", producer])
            .output()
            .unwrap()
    };
    let out = publish_n(&["-c", "5000", FIXTURE], "before");
    assert!(out.status.success(), "publish: {out:?}");
    let dir = TempDir::new("stream-record", "restart");
    let csv = dir.path("r.csv");
    let archive = dir.path("r.json");
    let stop_file = dir.path("r.stop");
    let mut rec = bin()
        .args([
            "record",
            "--input",
            &url,
            "--queue",
            &stream,
            "--consumer",
            "rec",
        ])
        .args(["--save-after-num", "1000", "--idle-save-ms", "200"])
        .arg("--output-csv")
        .arg(&csv)
        .arg("--archive-json")
        .arg(&archive)
        .arg("--stop-file")
        .arg(&stop_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let committed = || committed_rows(&csv);
    wait_for("the first 5000 rows", Duration::from_secs(120), || {
        committed() == 5000
    });
    // A clean stop, not SIGKILL: the recorder loses its connection just the same. After a
    // SIGKILL the 3.10 node answered InternalError to the stream's declaration for over five
    // minutes in two loaded full-suite runs (it came back in seconds when run alone); the
    // publishing side's SIGKILL recovery is tested on the cluster (above).
    node.stop();
    node.spawn();
    // The restarted node takes a moment to bring the stream back (until then it answers
    // InternalError): publish again until it takes them. The producer name deduplicates
    // anything a failed attempt got through.
    // Under a loaded machine the node has taken over two minutes to serve the stream again:
    // the limit is generous, and a timeout names the publisher's last error. (A poll between
    // attempts, not a synchronisation: each attempt is a whole publishing run.)
    let back = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let out = publish_n(&["-r", FIXTURE], "after");
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < back,
            "the stream did not come back after the restart; last attempt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let total = 5000 + FIXTURE_MESSAGES as u64;
    wait_for(
        "every row after the restart",
        Duration::from_secs(180),
        || {
            assert!(
                rec.try_wait().unwrap().is_none(),
                "the recorder ended when the broker went away"
            );
            committed() == total
        },
    );
    std::fs::write(&stop_file, b"").unwrap();
    let out = rec.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("connection lost") && err.contains("subscribed again"),
        "{err}"
    );
    let mut want: Vec<serde_json::Value> = expected(&["-c", "5000", FIXTURE])
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    want.extend(
        expected(&["-r", FIXTURE])
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap()),
    );
    let got = archived_packets(&archive);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "not every message once and in order");
}
