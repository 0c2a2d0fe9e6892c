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
