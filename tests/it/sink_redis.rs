//! The Redis sink against real servers: the shared Redis on 127.0.0.1:6379 (started by
//! scripts/test.sh; each test uses its own queue names in database 13 and deletes them), and
//! redis-server processes the tests start themselves on free ports (outage, password, and the
//! kombu consumers, whose fixed `unacked*` keys would otherwise be shared). The shared server on 6379 is never stopped.

use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::{Backoff, Output, OutputOptions, RedisConfig, RedisFormat, RedisSink};
use redis::Commands;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::common;
use crate::common::brokers::{free_port, wait_for, PrivateRedis};
use crate::common::harness::TempDir;
use crate::common::outage::HeldFeed;
use crate::common::{assert_start_refused, combined, start_failure};
use crate::common::{bin, expected, unique, FIXTURE, FIXTURE_MESSAGES};

const SHARED: &str = "redis://127.0.0.1:6379";
fn shared_redis(db: u8) -> redis::Connection {
    let url = format!("{SHARED}/{db}");
    let client = redis::Client::open(url.as_str()).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| {
            panic!("Redis is not answering on 127.0.0.1:6379 ({e}); run scripts/test.sh")
        })
}

/// The list from oldest to newest (LPUSH puts the newest at the head).
fn list_in_order(con: &mut redis::Connection, key: &str) -> Vec<Vec<u8>> {
    let mut items: Vec<Vec<u8>> = con.lrange(key, 0, -1).unwrap();
    items.reverse();
    items
}

/// Deletes the keys it names when dropped, also when a test fails.
struct Cleanup {
    db: u8,
    keys: Vec<String>,
    members: Vec<(String, Vec<u8>)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(format!("{SHARED}/{}", self.db).as_str()) {
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(5)) {
                for k in &self.keys {
                    let _: Result<i64, _> = con.del(k);
                }
                for (set, member) in &self.members {
                    let _: Result<i64, _> = con.srem(set, member);
                }
            }
        }
    }
}

fn binding_member(routing_key: &str, queue: &str) -> Vec<u8> {
    let mut m = routing_key.as_bytes().to_vec();
    m.extend_from_slice(b"\x06\x16\x06\x16");
    m.extend_from_slice(queue.as_bytes());
    m
}

fn b64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 symbol") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn is_uuid4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Checks one kombu envelope against REFERENCE section 3 and returns its decoded body.
fn open_envelope(item: &[u8], exchange: &str, routing_key: &str) -> (Vec<u8>, String) {
    let v: Value = serde_json::from_slice(item).expect("envelope is JSON");
    let obj = v.as_object().expect("envelope is an object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "body",
            "content-encoding",
            "content-type",
            "headers",
            "properties"
        ]
    );
    assert_eq!(v["content-encoding"], "utf-8");
    assert_eq!(v["content-type"], "application/json");
    assert_eq!(v["headers"], serde_json::json!({}));
    let p = &v["properties"];
    assert_eq!(p["delivery_mode"], 2);
    assert_eq!(p["priority"], 0);
    assert_eq!(p["body_encoding"], "base64");
    assert_eq!(
        p["delivery_info"],
        serde_json::json!({"exchange": exchange, "routing_key": routing_key})
    );
    let tag = p["delivery_tag"]
        .as_str()
        .expect("delivery_tag")
        .to_string();
    assert!(is_uuid4(&tag), "delivery_tag {tag} is not a uuid4");
    (b64_decode(v["body"].as_str().expect("body")), tag)
}

#[test]
fn kombu_format_delivers_every_message_once_in_order() {
    let queue = unique("kombu_q");
    let exchange = unique("kombu_x");
    let routing_key = unique("kombu_rk");
    let binding = format!("_kombu.binding.{exchange}");
    let _clean = Cleanup {
        db: 13,
        keys: vec![
            queue.clone(),
            binding.clone(),
            format!("_kombu.binding_permanent.{exchange}"),
        ],
        members: vec![],
    };
    let want = expected(&[FIXTURE]);
    assert_eq!(want.len(), FIXTURE_MESSAGES);
    let out = bin()
        .args(["read", FIXTURE, "-o", &format!("{SHARED}/13")])
        .args(["--queue", &queue, "--exchange", &exchange])
        .args(["--routing-key", &routing_key])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "broker output also wrote to stdout");
    let mut con = shared_redis(13);
    let items = list_in_order(&mut con, &queue);
    assert_eq!(items.len(), want.len(), "messages in the list");
    let mut tags = std::collections::HashSet::new();
    for (i, (item, line)) in items.iter().zip(&want).enumerate() {
        let (body, tag) = open_envelope(item, &exchange, &routing_key);
        assert!(
            body == *line,
            "message {i}: body differs from the stdout line"
        );
        assert!(tags.insert(tag), "message {i}: delivery_tag repeated");
    }
    let bound: bool = con
        .sismember(&binding, binding_member(&routing_key, &queue))
        .unwrap();
    assert!(bound, "kombu binding {binding} missing");
    let bound: bool = con
        .sismember(
            format!("_kombu.binding_permanent.{exchange}"),
            binding_member(&routing_key, &queue),
        )
        .unwrap();
    assert!(bound, "kombu 5.7 permanent binding missing");
}

#[test]
fn raw_format_delivers_every_message_once_in_order_with_env_settings() {
    let queue = unique("raw_q");
    let _clean = Cleanup {
        db: 13,
        keys: vec![queue.clone()],
        members: vec![],
    };
    let want = expected(&[FIXTURE]);
    // The URL and queue from the original's environment variables.
    let out = bin()
        .args(["read", FIXTURE, "--redis-format", "raw"])
        .env("FORWARD_BROKER_URL", format!("{SHARED}/13"))
        .env("FORWARD_QUEUE", &queue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let mut con = shared_redis(13);
    let items = list_in_order(&mut con, &queue);
    assert_eq!(items.len(), FIXTURE_MESSAGES);
    assert!(items == want, "raw list differs from the stdout lines");
}

/// Runs tests/kombu/consume.py and returns its JSON lines.
fn consume(args: &[&str]) -> Vec<Value> {
    common::kombu::json_lines("consume.py", args)
}

/// The original's consumer library reads what we publish: kombu gets dictionaries equal to
/// the packet JSON, with kombu's content type, properties and delivery info.
#[test]
fn kombu_consumer_reads_our_messages() {
    let queue = unique("py_q");
    let raw_queue = unique("py_raw_q");
    let exchange = unique("py_x");
    let routing_key = unique("py_rk");
    // kombu keeps fixed keys (`unacked*`) per database: a server of this test's own, so no
    // other test's keys are touched and nothing shared is deleted.
    let server = PrivateRedis::start("kombu", &[]);
    let fixture_args = [FIXTURE, "--count", "300"];
    let want: Vec<Value> = expected(&fixture_args)
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(want.len(), 300);
    let url = server.url();
    for (format, q) in [("kombu", &queue), ("raw", &raw_queue)] {
        let out = bin()
            .arg("read")
            .args(fixture_args)
            .args(["-o", &url, "--redis-format", format, "--queue", q])
            .args(["--exchange", &exchange, "--routing-key", &routing_key])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let n = want.len().to_string();
    let got = consume(&[
        "--url",
        &url,
        "--queue",
        &queue,
        "--exchange",
        &exchange,
        "--routing-key",
        &routing_key,
        "--mode",
        "kombu",
        "--count",
        &n,
    ]);
    assert_eq!(got.len(), want.len() + 1, "kombu consumer lines");
    assert_eq!(got[want.len()], serde_json::json!({"left": 0}));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g["payload"] == *w,
            "kombu message {i}: {} != {w}",
            g["payload"]
        );
        assert_eq!(g["content_type"], "application/json");
        assert_eq!(g["content_encoding"], "utf-8");
        assert_eq!(
            g["delivery_info"],
            serde_json::json!({"exchange": exchange, "routing_key": routing_key})
        );
        assert_eq!(
            g["properties"],
            serde_json::json!({"delivery_mode": 2, "priority": 0, "body_encoding": "base64"})
        );
        assert!(is_uuid4(g["delivery_tag"].as_str().unwrap()));
    }
    // Raw format is not a kombu envelope; a plain Redis consumer reads it.
    let got = consume(&[
        "--url", &url, "--queue", &raw_queue, "--mode", "raw", "--count", &n,
    ]);
    assert_eq!(got.len(), want.len() + 1);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g["payload"] == *w, "raw message {i} differs");
    }
}

/// `--partitions 3` in kombu format: a kombu consumer of each list `<queue>-<i>` gets exactly
/// that partition's messages (by the documented rule), in order, and the exchange's binding
/// set names every partition's list.
#[test]
fn kombu_consumers_read_each_partition() {
    let queue = unique("py_pq");
    let exchange = unique("py_px");
    let n = 3;
    // A server of this test's own, as in kombu_consumer_reads_our_messages.
    let server = PrivateRedis::start("kombu-partitions", &[]);
    let fixture_args = [FIXTURE, "--count", "600"];
    let lines = expected(&fixture_args);
    let url = server.url();
    let out = bin()
        .arg("read")
        .args(fixture_args)
        .args(["-o", &url, "--queue", &queue, "--exchange", &exchange])
        .args(["--partitions", &n.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut con = server.connection();
    let members: Vec<Vec<u8>> = con.smembers(format!("_kombu.binding.{exchange}")).unwrap();
    assert_eq!(members.len(), n);
    for p in 0..n {
        assert!(members.contains(&binding_member("NEW_PACKETS", &format!("{queue}-{p}"))));
        let want: Vec<Value> = lines
            .iter()
            .filter(|l| common::documented_partition(l, n) == p)
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(!want.is_empty(), "partition {p} is empty");
        let got = consume(&[
            "--url",
            &url,
            "--queue",
            &format!("{queue}-{p}"),
            "--exchange",
            &exchange,
            "--mode",
            "kombu",
            "--count",
            &want.len().to_string(),
        ]);
        assert_eq!(
            got.last(),
            Some(&serde_json::json!({"left": 0})),
            "partition {p}"
        );
        let payloads: Vec<&Value> = got[..got.len() - 1].iter().map(|g| &g["payload"]).collect();
        assert!(
            payloads == want.iter().collect::<Vec<_>>(),
            "partition {p}: {} messages, want {} in order",
            payloads.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Servers of our own
// ---------------------------------------------------------------------------------------------

/// `received` must be `expected` with at most one block of `dup` messages sent twice,
/// `dup <= resent`.
fn assert_at_least_once(received: &[Vec<u8>], expected: &[Vec<u8>], resent: u64) {
    assert!(
        received.len() >= expected.len(),
        "lost messages: {} received, {} expected",
        received.len(),
        expected.len()
    );
    let dup = received.len() - expected.len();
    assert!(dup as u64 <= resent, "{dup} duplicates but {resent} resent");
    let i = received
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len());
    assert!(
        received[..i] == expected[..i] && received[i + dup..] == expected[i..],
        "received is not the expected sequence with {dup} duplicates at {i}"
    );
}

/// Kill -9 the server mid-stream, start it again on the same port: with an append-only
/// file synced before every reply, an acknowledged LPUSH survives, so nothing may be lost;
/// the batches in flight at the kill may arrive twice (counted as resent).
#[test]
fn redis_outage_mid_stream_loses_nothing() {
    let mut server = PrivateRedis::durable("outage");
    // Three copies of the fixture through named pipes; the feed stops half-way through the
    // second until the server is back, so the run is mid-stream at the kill, whatever the
    // rate.
    let copies = 3;
    let dir = TempDir::unique("redis-outage");
    let files: Vec<PathBuf> = (1..=copies)
        .map(|i| dir.path(&format!("part{i}.pcap")))
        .collect();
    let feed = HeldFeed::start(&files, 1);
    let queue = unique("outage_q");
    let options = OutputOptions {
        redis_format: RedisFormat::Kombu,
        queue: queue.clone(),
        ..OutputOptions::default()
    };
    let mut cfg = RedisConfig::parse(&server.url(), &options).unwrap();
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let cfg_window = cfg.window_commands;
    let sink = RedisSink::connect(cfg.clone()).unwrap();
    let counters = sink.counters();
    let job = ReadJob {
        files,
        filter: None,
        count: None,
        workers: 1,
        source_host: "localdev".into(),
        packet: Default::default(),
        output: std::sync::Arc::new(Output::of(cfg)),
    };
    let runner = std::thread::spawn(move || job.run_with_sink(Box::new(sink)));

    // Kill once the first copy is in.
    let mut con = server.connection();
    wait_for(
        "the first copy in the queue",
        Duration::from_secs(60),
        || {
            assert!(!runner.is_finished(), "the run ended before the outage");
            con.llen::<_, usize>(&queue).unwrap() >= FIXTURE_MESSAGES
        },
    );
    drop(con);
    server.kill();
    server.spawn();
    feed.release();
    wait_for(
        "the end of the run after the restart",
        Duration::from_secs(120),
        || runner.is_finished(),
    );
    let outcome = runner.join().unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    feed.finish();
    assert_eq!(outcome.summary.written as usize, copies * FIXTURE_MESSAGES);
    assert!(counters.reconnects() >= 1, "the sink never reconnected");

    let want_one = expected(&[FIXTURE]);
    let want: Vec<Vec<u8>> = (0..copies).flat_map(|_| want_one.iter().cloned()).collect();
    // `spawn` waited until the server answered PING, so its append-only file is loaded.
    let items: Vec<Vec<u8>> = server.connection().lrange(&queue, 0, -1).unwrap();
    let bodies: Vec<Vec<u8>> = items
        .iter()
        .rev()
        .map(|item| open_envelope(item, "NEW_PACKETS", "NEW_PACKETS").0)
        .collect();
    assert_at_least_once(&bodies, &want, counters.resent());
    // Every unanswered LPUSH is sent again: at most the window of batches in flight.
    let window = cfg_window as u64 * 1024;
    assert!(
        counters.resent() <= window,
        "resent {} > the in-flight window of {window}",
        counters.resent()
    );
}

#[test]
fn start_up_errors_are_one_line_with_distinct_codes_and_no_password() {
    let secret = "s3cr3t-pw";
    let server = PrivateRedis::start("auth", &["--requirepass", secret]);
    let port = server.port;

    // Wrong password, and no password at all.
    assert_start_refused(
        &format!("redis://:wrong-{secret}@127.0.0.1:{port}/0"),
        10,
        &["authentication refused"],
        secret,
    );
    let (code, line, _) = start_failure(&format!("redis://127.0.0.1:{port}/0"));
    assert_eq!(code, Some(10), "{line}");
    assert!(line.contains("wants a password"), "{line}");

    // The right password works.
    let queue = unique("auth_q");
    let out = bin()
        .args(["read", FIXTURE, "--count", "10", "--queue", &queue])
        .args(["-o", &format!("redis://:{secret}@127.0.0.1:{port}/0")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", combined(&out));
    assert!(!combined(&out).contains(secret));
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        "127.0.0.1".into(),
        port,
    ))
    .unwrap()
    .set_redis_settings(redis::RedisConnectionInfo::default().set_password(secret));
    let client = redis::Client::open(info).unwrap();
    let len: usize = client.get_connection().unwrap().llen(&queue).unwrap();
    assert_eq!(len, 10);

    // Nothing listening.
    let dead = free_port();
    assert_start_refused(
        &format!("redis://:{secret}@127.0.0.1:{dead}/0"),
        9,
        &["cannot connect"],
        secret,
    );

    // Malformed URLs: usage error.
    for url in [
        format!("redis://:{secret}@127.0.0.1:notaport/0"),
        format!("redis://:{secret}@127.0.0.1:6379/db"),
        format!("nosuch://:{secret}@127.0.0.1:6379/0"),
    ] {
        assert_start_refused(&url, 2, &["URL", "unsupported output"], secret);
    }

    // TLS spoken to a plain port: the handshake fails (tests/sink_tls.rs has the rest).
    assert_start_refused(
        &format!("rediss://:{secret}@127.0.0.1:{port}/0"),
        11,
        &["TLS"],
        secret,
    );
}
