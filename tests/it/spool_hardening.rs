//! The spool on a shared host (issue 9, item 1): what another local user plants where the
//! spool lives must never be published, and no link of theirs may make a root-run
//! netpipe-fast write through it. Each test does what that user would (directories, segments
//! and a `cursor.tmp` link owned by uid 65534, "nobody") and checks the safe outcome: the run
//! refuses with one line naming the path and exit code 8 before anything is published, or
//! (with the default spool, which is no longer in a world-writable folder) never looks there.
//!
//! These tests plant files as another user, so they need root; under
//! `NETPIPE_REQUIRE_LIVE=1` they fail instead of skipping without it.

use std::fs;
use std::os::unix::fs::{chown, lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::brokers::{free_port, wait_for, PrivateRedis};
use crate::common::harness::TempDir;
use crate::common::harness::{effective_uid_is_root, live_available, Process};
use crate::common::{bin, spooled_records, unique, FIXTURE, FIXTURE_MESSAGES};

/// The other local user of the host.
const ATTACKER_UID: u32 = 65534;
const PLANTED: &[u8] = b"{\"planted\":\"by another user\"}";
const PRECIOUS: &[u8] = b"root's file, not to be overwritten\n";

/// Whether this test can run: it plants files as another user, which needs root.
fn can_plant(what: &str) -> bool {
    if effective_uid_is_root() {
        return true;
    }
    if std::env::var("NETPIPE_REQUIRE_LIVE").as_deref() == Ok("1") {
        panic!("{what} needs root (NETPIPE_REQUIRE_LIVE=1 requires it)");
    }
    common::note_skip(&format!("skipping {what}: not running as root"));
    false
}

/// A spool segment holding one record, `message` (the format of src/sink/spool.rs, written
/// here independently: magic, u32 LE length, u32 LE CRC-32C, payload).
fn segment_with(message: &[u8]) -> Vec<u8> {
    let mut crc = !0u32;
    for &b in message {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    let mut out = b"NPFSPL01".to_vec();
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(message);
    out
}

/// What the attacker plants in `dir` (made, with everything in it, as uid 65534): a segment
/// holding their message and a `cursor.tmp` link to `victim`, a root-owned file.
fn plant(dir: &Path, victim: &Path) {
    fs::create_dir_all(dir).unwrap();
    chown(dir, Some(ATTACKER_UID), Some(ATTACKER_UID)).unwrap();
    let seg = dir.join("0000010000000000.seg");
    fs::write(&seg, segment_with(PLANTED)).unwrap();
    chown(&seg, Some(ATTACKER_UID), Some(ATTACKER_UID)).unwrap();
    symlink(victim, dir.join("cursor.tmp")).unwrap();
    lchown(
        dir.join("cursor.tmp"),
        Some(ATTACKER_UID),
        Some(ATTACKER_UID),
    )
    .unwrap();
}

fn victim_in(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    fs::write(&victim, PRECIOUS).unwrap();
    victim
}

/// Messages in the list `queue` of the shared Redis.
fn redis_items(queue: &str) -> Vec<Vec<u8>> {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    redis::cmd("LRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap()
}

fn redis_del(queue: &str) {
    if let Ok(mut c) =
        redis::Client::open("redis://127.0.0.1:6379/0").and_then(|c| c.get_connection())
    {
        let _: Result<i64, _> = redis::cmd("DEL").arg(queue).query(&mut c);
    }
}

/// `read FIXTURE -o redis://127.0.0.1:6379/0 --queue QUEUE` with `more` arguments.
fn read_to_redis(queue: &str, more: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(["read", FIXTURE, "--output", "redis://127.0.0.1:6379/0"])
        .args(["--redis-format", "raw", "--queue", queue])
        .args(more)
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The reproduction: a directory another user made in a world-writable folder (as
/// /var/tmp/netpipe-fast/... was), holding a segment and a `cursor.tmp` link to a root-owned
/// file. Pointing the spool there is refused, by name, before anything is published; the
/// file is untouched and the planted message is never sent.
#[test]
fn a_spool_planted_in_a_world_writable_folder_is_refused_before_anything_is_published() {
    if !can_plant("planted spool test") {
        return;
    }
    let scratch = TempDir::scratch("planted");
    let shared = scratch.0.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = victim_in(&scratch.0);
    let planted = shared.join("netpipe-fast/redis-127.0.0.1-6379-0-q");
    plant(&planted, &victim);
    let queue = unique("planted_q");
    let (code, stderr) = read_to_redis(&queue, &["--spool-dir", planted.to_str().unwrap()]);
    redis_del(&queue);
    assert_eq!(code, Some(8), "{stderr}");
    let line = format!(
        "{} is writable by group or others (mode 1777); refusing to use it for the spool",
        shared.display()
    );
    assert!(stderr.contains(&line), "{stderr}");
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("netpipe-fast: "))
        .count();
    assert_eq!(errors, 1, "one line: {stderr}");
    assert!(redis_items(&queue).is_empty(), "something was published");
    assert_eq!(fs::read(&victim).unwrap(), PRECIOUS);
    assert!(fs::symlink_metadata(planted.join("cursor.tmp"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// The same plant in a directory that is not world-writable but belongs to the other user,
/// and a segment of theirs inside a directory that is root's: both refused by name.
#[test]
fn a_spool_directory_or_segment_owned_by_another_user_is_refused() {
    if !can_plant("foreign owner test") {
        return;
    }
    let scratch = TempDir::scratch("foreign");
    let victim = victim_in(&scratch.0);
    let theirs = scratch.0.join("theirs");
    plant(&theirs, &victim);
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
    let queue = unique("foreign_q");
    let (code, stderr) = read_to_redis(&queue, &["--spool-dir", theirs.to_str().unwrap()]);
    assert_eq!(code, Some(8), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is owned by uid {ATTACKER_UID}, not by root or uid 0",
            theirs.display()
        )),
        "{stderr}"
    );

    // Root's directory, mode 0700, but a segment in it is theirs (and a link).
    let ours = scratch.0.join("ours");
    fs::create_dir(&ours).unwrap();
    fs::set_permissions(&ours, fs::Permissions::from_mode(0o700)).unwrap();
    let seg = ours.join("0000010000000000.seg");
    fs::write(&seg, segment_with(PLANTED)).unwrap();
    chown(&seg, Some(ATTACKER_UID), Some(ATTACKER_UID)).unwrap();
    let (code, stderr) = read_to_redis(&queue, &["--spool-dir", ours.to_str().unwrap()]);
    assert_eq!(code, Some(8), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is owned by uid {ATTACKER_UID}, not by uid 0",
            seg.display()
        )),
        "{stderr}"
    );
    fs::remove_file(&seg).unwrap();
    symlink(&victim, &seg).unwrap();
    let (code, stderr) = read_to_redis(&queue, &["--spool-dir", ours.to_str().unwrap()]);
    assert_eq!(code, Some(8), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is a symbolic link", seg.display())),
        "{stderr}"
    );
    redis_del(&queue);
    assert!(redis_items(&queue).is_empty(), "something was published");
    assert_eq!(fs::read(&victim).unwrap(), PRECIOUS);
}

/// With the default spool, a plant where the old default was (/var/tmp/netpipe-fast/<id>) is
/// never looked at: the run (as root) uses /var/lib/netpipe-fast/spool/<id> (seeded here with
/// one message of our own, which it sends first), publishes exactly that and its own
/// messages, leaves the victim alone, and removes the emptied directory.
#[test]
fn the_default_spool_is_private_and_ignores_the_old_world_writable_place() {
    if !can_plant("default spool test") {
        return;
    }
    let scratch = TempDir::scratch("default");
    let victim = victim_in(&scratch.0);
    let queue = unique("default_q");
    let identity = format!("redis-127.0.0.1-6379-0-{queue}");
    let old_root = Path::new("/var/tmp/netpipe-fast");
    let made_old_root = !old_root.exists();
    fs::create_dir_all(old_root).unwrap();
    let planted = old_root.join(&identity);
    plant(&planted, &victim);
    let spool = Path::new("/var/lib/netpipe-fast/spool").join(&identity);
    let ours = format!("{{\"seeded\":\"{queue}\"}}").into_bytes();
    fs::create_dir_all(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o700)).unwrap();
    let seg = spool.join("0000010000000000.seg");
    fs::write(&seg, segment_with(&ours)).unwrap();
    fs::set_permissions(&seg, fs::Permissions::from_mode(0o600)).unwrap();

    let (code, stderr) = read_to_redis(&queue, &[]);
    let items = redis_items(&queue);
    redis_del(&queue);
    let _ = fs::remove_dir_all(&planted);
    if made_old_root {
        let _ = fs::remove_dir(old_root);
    }
    let left = spool.exists();
    let _ = fs::remove_dir_all(&spool);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "1 message(s) left in the spool {} by an earlier run",
            spool.display()
        )),
        "{stderr}"
    );
    assert_eq!(items.len(), FIXTURE_MESSAGES + 1, "{stderr}");
    assert!(items.contains(&ours), "the default spool was not read");
    assert!(
        !items.iter().any(|m| m == PLANTED),
        "the planted message was sent"
    );
    assert_eq!(fs::read(&victim).unwrap(), PRECIOUS);
    assert!(!left, "the emptied spool directory was left behind");
    for dir in ["/var/lib/netpipe-fast", "/var/lib/netpipe-fast/spool"] {
        let m = fs::symlink_metadata(dir).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o022), (0, 0), "{dir}");
    }
}

/// `capture --user nobody` with the default spool: the spool directory is checked and opened
/// as root and given to nobody, so spooling during an outage works after the switch (the
/// segments are nobody's, 0600, in a 0700 directory under root's /var/lib/netpipe-fast), the
/// run ends with exit 16 saying what is left, and the next run (as nobody again) sends it.
/// Captures UDP datagrams to a port of its own on `lo`.
#[test]
fn capture_with_user_keeps_the_default_spool_working() {
    if !live_available("capture --user spool test", &[]) {
        return;
    }
    let nobody_uid: u32 = String::from_utf8(
        Command::new("id")
            .args(["-u", "nobody"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .expect("a user nobody");
    let mut server = PrivateRedis::start("user_spool_srv", &[]);
    let queue = unique("user_q");
    let spool = Path::new("/var/lib/netpipe-fast/spool")
        .join(format!("redis-127.0.0.1-{}-0-{queue}", server.port));
    let _ = fs::remove_dir_all(&spool);
    let port = free_port();
    let receiver = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let filter = format!("udp and dst port {port}");
    let url = server.url();
    let capture = || {
        let mut cmd = bin();
        cmd.args(["capture", "--iface", "lo", "--filter", &filter])
            .args(["--user", "nobody", "--output", &url])
            .args(["--redis-format", "raw", "--queue", &queue])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut p = Process::start(&mut cmd, Duration::from_secs(60));
        p.wait_for_stderr("switched to user \"nobody\"");
        p.wait_for_stderr("listening on lo");
        p
    };
    const SENT: usize = 40;
    let send = |from: usize| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in from..from + SENT {
            s.send_to(format!("datagram {i}").as_bytes(), ("127.0.0.1", port))
                .unwrap();
        }
    };

    let run = capture();
    server.kill();
    send(0);
    // On lo a datagram is seen going out and coming in: at least SENT messages.
    wait_for(
        "the datagrams in the spool",
        Duration::from_secs(60),
        || spooled_records(&spool) >= SENT,
    );
    run.signal("-INT");
    let (status, stderr) = run.finish();
    let text = stderr.join("\n");
    assert_eq!(status.code(), Some(16), "{text}");
    let left = spooled_records(&spool);
    assert!(
        text.contains(&format!(
            "not everything was delivered: {left} message(s) still in the spool {}",
            spool.display()
        )),
        "{text}"
    );
    let meta = fs::metadata(&spool).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (nobody_uid, 0o700));
    for e in fs::read_dir(&spool).unwrap().flatten() {
        let m = e.metadata().unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o777),
            (nobody_uid, 0o600),
            "{}",
            e.path().display()
        );
    }

    server.spawn();
    let run = capture();
    wait_for("the spool sent to Redis", Duration::from_secs(60), || {
        redis::cmd("LLEN")
            .arg(&queue)
            .query::<usize>(&mut server.connection())
            .unwrap()
            == left
    });
    run.signal("-INT");
    let (status, stderr) = run.finish();
    let _ = fs::remove_dir_all(&spool);
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    assert_eq!(spooled_records(&spool), 0);
    drop(receiver);
}

// ---- the spool of an AMQP run replayed by the next run ----

/// The sum of the `name{...} N` samples at `url` (http://host:port/...) whose labels contain
/// `label` (e.g. `worker="all"`; empty: every sample).
fn metric_sum(url: &str, name: &str, label: &str) -> u64 {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).expect("connect to /metrics");
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                && l.contains(label)
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no value in {l:?}")) as u64
        })
        .sum()
}

/// The number of messages in `queue` on the private node, as `rabbitmqctl list_queues` says.
fn queue_depth(node: &common::brokers::PrivateRabbit, queue: &str) -> u64 {
    node.ctl(&["-q", "list_queues", "name", "messages"])
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(queue)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// The UDP source port of a message (a packet record as JSON).
fn udp_sport(body: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON message");
    v["data"]["udp"]["sport"]
        .as_u64()
        .unwrap_or_else(|| panic!("no udp.sport: {v}"))
}

/// The spool of a live capture into RabbitMQ survives a SIGINT during an outage and is sent
/// by the next run, exactly once and first. `capture` on `lo` (UDP to a port of the test's
/// own) publishes to a private node with a spool of its own: batch A is sent while the node
/// is up (the node is killed once /metrics says everything written was acknowledged), batch
/// B while it is down; SIGINT then ends the run with exit 16 and the number of messages still
/// in the spool, which holds batch B only. With the node back a second capture replays the
/// spool while batch C arrives; kombu then reads A's acknowledged messages, the spool's
/// records byte for byte in their order, then C's, and nothing more.
#[test]
fn capture_spool_into_rabbitmq_left_by_sigint_is_replayed_once_first_after_restart() {
    if !live_available("capture into RabbitMQ spool test", &[]) {
        return;
    }
    use crate::common::kombu::{bodies, AmqpNames};
    use crate::common::outage::{count, segment_records, Scratch};
    let scratch = Scratch::new("amqp_spool_restart");
    let mut node = common::brokers::PrivateRabbit::start("amqp_spool_restart_node");
    let url = node.url();
    let names = AmqpNames::private(&url, "spool_restart");
    let spool = scratch.path("spool");
    let port = free_port();
    let receiver = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let filter = format!("udp and dst port {port}");
    let capture = || {
        let mut cmd = bin();
        cmd.args(["capture", "--iface", "lo", "--filter", &filter])
            .args(["--output", &url, "--spool-dir"])
            .arg(&spool)
            .args(names.args())
            .args(["--metrics", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut p = Process::start(&mut cmd, Duration::from_secs(120));
        let line = p.wait_for_stderr("metrics on http://");
        let metrics = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a URL")
            .to_string();
        p.wait_for_stderr("listening on lo");
        (p, metrics)
    };
    const SENT: u64 = 40;
    // Each batch from a socket of its own: its messages carry that source port.
    let send = |batch: &str| -> u64 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..SENT {
            s.send_to(
                format!("batch {batch} datagram {i}").as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
        }
        u64::from(s.local_addr().unwrap().port())
    };
    let written = |m: &str| metric_sum(m, "netpipe_packets_written_total", "worker=\"all\"");
    let published = |m: &str| metric_sum(m, "netpipe_messages_published_total", "");
    let limit = Duration::from_secs(60);

    // Run 1: batch A delivered, then the outage and batch B.
    let (run, metrics) = capture();
    let port_a = send("A");
    wait_for("batch A acknowledged", limit, || {
        let w = written(&metrics);
        w >= SENT && published(&metrics) == w
    });
    node.kill();
    let port_b = send("B");
    let before_b = published(&metrics);
    wait_for("batch B in the spool", limit, || {
        let w = written(&metrics);
        w >= before_b + SENT && spooled_records(&spool) as u64 == w - before_b
    });
    run.signal("-INT");
    let (status, stderr) = run.finish();
    let text = stderr.join("\n");
    assert_eq!(status.code(), Some(16), "{text}");
    let left = spooled_records(&spool) as u64;
    assert!(left >= SENT, "{text}");
    assert!(
        text.contains(&format!(
            "not everything was delivered: {left} message(s) still in the spool {}",
            spool.display()
        )),
        "{text}"
    );
    let summary = stderr
        .iter()
        .find(|l| l.contains("packets captured"))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let written_1 = count(summary, " written");
    let delivered_1 = written_1 - left;
    assert!(delivered_1 >= SENT, "{text}");
    let kept: Vec<Vec<u8>> = segment_records(&spool)
        .into_iter()
        .flat_map(|(_, _, recs)| recs.into_iter().map(|(_, p)| p))
        .collect();
    assert_eq!(kept.len() as u64, left);
    assert!(
        kept.iter().all(|m| udp_sport(m) == port_b),
        "the spool holds messages that are not batch B's"
    );

    // Run 2, with the node back: the spool is replayed while batch C arrives.
    node.spawn();
    let (run, metrics) = capture();
    let port_c = send("C");
    let mut written_2 = 0;
    wait_for("the spool and batch C in the queue", limit, || {
        written_2 = written(&metrics);
        written_2 >= SENT
            && published(&metrics) >= written_2
            && queue_depth(&node, &names.queue) == delivered_1 + left + written_2
    });
    run.signal("-INT");
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    assert_eq!(spooled_records(&spool), 0, "the spool was not emptied");
    assert!(
        stderr.iter().any(|l| l.contains(&format!(
            "{left} message(s) left in the spool {} by an earlier run",
            spool.display()
        ))),
        "{stderr:?}"
    );

    let total = (delivered_1 + left + written_2) as usize;
    let (received, after) = bodies(&names.consume(total, &[]));
    assert_eq!(after, 0, "more messages than were written: some twice");
    let (a, rest) = received.split_at(delivered_1 as usize);
    let (spooled, c) = rest.split_at(left as usize);
    assert!(a.iter().all(|m| udp_sport(m) == port_a), "first: batch A");
    assert!(spooled == kept, "then the spool, byte for byte, in order");
    assert_eq!(c.len() as u64, written_2);
    assert!(c.iter().all(|m| udp_sport(m) == port_c), "last: batch C");
    drop(receiver);
}
