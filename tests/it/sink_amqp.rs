//! The RabbitMQ sink against the real broker on 127.0.0.1:5672 (guest/guest, started by
//! scripts/test.sh). The broker is shared with other tests: each test declares its own
//! exchange and queue (unique names) and deletes them when it ends, also on failure, and
//! the connection-loss test closes only the connection it made (by its unique name), never
//! the broker itself.

use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::{AmqpConfig, AmqpSink, Backoff, Output, OutputOptions};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::brokers::{free_port, wait_for, PlainAmqpPort};
use crate::common::harness::TempDir;
use crate::common::kombu;
use crate::common::outage::HeldFeed;
use crate::common::{assert_start_refused, combined};
use crate::common::{bin, expected, root, unique, FIXTURE, FIXTURE_MESSAGES};

use crate::common::kombu::{bodies, AmqpNames, SHARED_AMQP as BROKER};

/// The sink's queue, exchange and routing key settings for `names`.
fn options(names: &AmqpNames) -> OutputOptions {
    OutputOptions {
        queue: names.queue.clone(),
        exchange: names.exchange.clone(),
        routing_key: names.routing_key.clone(),
        ..OutputOptions::default()
    }
}

#[test]
fn every_message_arrives_once_in_order_and_confirmed() {
    let names = AmqpNames::shared("all");
    let want = expected(&[FIXTURE]);
    assert_eq!(want.len(), FIXTURE_MESSAGES);
    let out = bin()
        .args(["read", FIXTURE, "-o", BROKER])
        .args(names.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "broker output also wrote to stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "published {FIXTURE_MESSAGES} to amqp://guest:***@127.0.0.1:5672/%2f exchange {} queue \
         {}, {FIXTURE_MESSAGES} confirmed, 0 resent after 0 reconnects",
        names.exchange, names.queue
    );
    assert!(stderr.contains(&report), "{stderr}");
    assert!(
        !stderr.contains("guest:guest"),
        "password printed: {stderr}"
    );

    let (got, left) = bodies(&names.consume(FIXTURE_MESSAGES, &[]));
    assert_eq!(got.len(), FIXTURE_MESSAGES);
    assert_eq!(left, 0, "more messages than the fixture has");
    let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
    assert_eq!(first_diff, None, "message differs from the stdout line");
}

/// The original's consumer library reads what we publish: kombu gets dictionaries equal to
/// the packet JSON, with kombu's content type, encoding and persistent delivery.
#[test]
fn kombu_consumer_gets_the_packet_dictionaries() {
    let names = AmqpNames::shared("kombu");
    let fixture_args = [FIXTURE, "--count", "300"];
    let want: Vec<Value> = expected(&fixture_args)
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(want.len(), 300);
    // The URL and names from the original's environment variables.
    let out = bin()
        .arg("read")
        .args(fixture_args)
        .env("FORWARD_BROKER_URL", BROKER)
        .env("FORWARD_QUEUE", &names.queue)
        .env("FORWARD_EXCHANGE", &names.exchange)
        .env("FORWARD_ROUTING_KEY", &names.routing_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = names.consume(want.len(), &[]);
    assert_eq!(got.len(), want.len() + 1);
    assert_eq!(got[want.len()], serde_json::json!({"left": 0}));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g["payload"] == *w, "message {i}: {} != {w}", g["payload"]);
        assert_eq!(g["content_type"], "application/json");
        assert_eq!(g["content_encoding"], "utf-8");
        assert_eq!(
            g["delivery_info"],
            serde_json::json!({
                "exchange": names.exchange,
                "routing_key": names.routing_key,
                "redelivered": false
            })
        );
        assert_eq!(g["properties"]["delivery_mode"], 2);
    }
}

#[test]
fn start_up_errors_are_one_line_with_distinct_codes_and_no_password() {
    kombu::shared_rabbit_up();
    let secret = "s3cr3t-amqp-pw";

    // Wrong password, unknown user.
    for url in [
        format!("amqp://guest:{secret}@127.0.0.1:5672/%2f"),
        format!("amqp://nobody:{secret}@127.0.0.1:5672/"),
    ] {
        assert_start_refused(&url, 10, &["authentication refused"], secret);
    }
    // A virtual host that does not exist.
    assert_start_refused(
        &format!("amqp://guest:{secret}@127.0.0.1:5672/no-such-vhost"),
        10,
        &["refused"],
        secret,
    );

    // Nothing listening.
    let dead = free_port();
    assert_start_refused(
        &format!("amqp://guest:{secret}@127.0.0.1:{dead}/"),
        9,
        &["cannot connect"],
        secret,
    );

    // Malformed URLs: usage error.
    for url in [
        format!("amqp://guest:{secret}@127.0.0.1:notaport/"),
        format!("amqp://guest:{secret}@:5672/"),
        format!("amqp://guest:{secret}@127.0.0.1:5672/?heartbeat=5"),
    ] {
        assert_start_refused(&url, 2, &["URL"], secret);
    }

    // TLS spoken to a plain AMQP port (one that answers as RabbitMQ's does): the handshake
    // fails (tests/sink_tls.rs has the rest, against a RabbitMQ node's own plain port).
    let plain = PlainAmqpPort::start();
    assert_start_refused(
        &format!("amqps://guest:{secret}@127.0.0.1:{}/", plain.port),
        11,
        &["TLS"],
        secret,
    );
}

/// The pid (in `rabbitmqctl` form) of the broker connections named `name`.
fn connections_named(name: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl is installed with RabbitMQ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("\"{name}\"")))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `received` must be `expected` with at most `resent` messages repeated, in order: each
/// message after the first occurrence of a repeat is either the next expected one or a
/// re-delivery of one already received.
fn assert_at_least_once(received: &[Vec<u8>], expected: &[Vec<u8>], resent: u64) {
    let dup = received.len().saturating_sub(expected.len());
    assert!(
        received.len() >= expected.len(),
        "lost messages: {} received, {} expected",
        received.len(),
        expected.len()
    );
    assert!(dup as u64 <= resent, "{dup} duplicates but {resent} resent");
    // Removing the repeats (a resend starts again somewhere before the next new message)
    // must give back the expected sequence.
    let mut next = 0usize;
    for (i, m) in received.iter().enumerate() {
        if next < expected.len() && *m == expected[next] {
            next += 1;
        } else {
            let back = expected[..next].iter().rposition(|e| e == m);
            assert!(
                back.is_some_and(|b| next - b <= resent as usize),
                "message {i} is neither the next expected one nor a recent repeat"
            );
        }
    }
    assert_eq!(next, expected.len(), "not every message arrived");
}

/// The broker closes our connection mid-stream (as at a broker restart): the sink reconnects,
/// declares again, sends every unconfirmed message again, and nothing is lost. Duplicates
/// stay within the counted resends. Only this test's own connection is closed.
#[test]
fn connection_closed_by_the_broker_mid_stream_loses_nothing() {
    let names = AmqpNames::shared("outage");
    // Three copies of the fixture through named pipes; the feed stops half-way through the
    // second until the connection is closed, so the run is mid-stream then, whatever the
    // broker's rate.
    let copies = 3;
    let dir = TempDir::unique("amqp-outage");
    let files: Vec<PathBuf> = (1..=copies)
        .map(|i| dir.path(&format!("part{i}.pcap")))
        .collect();
    let feed = HeldFeed::start(&files, 1);
    let mut cfg = AmqpConfig::parse(BROKER, &options(&names)).unwrap();
    cfg.endpoint.connection_name = unique("conn");
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let sink = AmqpSink::connect(cfg.clone()).unwrap();
    let counters = sink.counters();
    let job = ReadJob {
        files,
        filter: None,
        count: None,
        workers: 1,
        source_host: "localdev".into(),
        packet: Default::default(),
        output: std::sync::Arc::new(Output::of(cfg.clone())),
    };
    let runner = std::thread::spawn(move || job.run_with_sink(Box::new(sink)));

    // Close it once the first copy is confirmed.
    wait_for("the first copy confirmed", Duration::from_secs(60), || {
        assert!(!runner.is_finished(), "the run ended before the outage");
        counters.published() >= FIXTURE_MESSAGES as u64
    });
    let pids = connections_named(&cfg.endpoint.connection_name);
    assert_eq!(pids.len(), 1, "our connection in rabbitmqctl: {pids:?}");
    let status = Command::new("rabbitmqctl")
        .args([
            "-q",
            "close_connection",
            &pids[0],
            "netpipe-fast test outage",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    feed.release();
    wait_for("the end of the run", Duration::from_secs(120), || {
        runner.is_finished()
    });
    let outcome = runner.join().unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    feed.finish();
    assert_eq!(outcome.summary.written as usize, copies * FIXTURE_MESSAGES);
    assert!(counters.reconnects() >= 1, "the sink never reconnected");
    assert_eq!(counters.published() as usize, copies * FIXTURE_MESSAGES);
    let report = outcome.sink_report.unwrap_or_default();
    assert!(report.contains("reconnects"), "{report}");

    let want_one = expected(&[FIXTURE]);
    let want: Vec<Vec<u8>> = (0..copies).flat_map(|_| want_one.iter().cloned()).collect();
    let resent = counters.resent();
    // Every message was confirmed, so all are in the queue: read until it is empty (at most
    // the upper bound, one more to see an excess).
    let records = names.consume(
        want.len() + resent as usize + 1,
        &["--drain", "--timeout", "3"],
    );
    let (got, left) = bodies(&records);
    assert_eq!(left, 0);
    assert_at_least_once(&got, &want, resent);
}

/// Rough rates (`cargo test --release --test sink_amqp -- --ignored --nocapture`): 12 copies
/// of the fixture through the library, with publisher confirms and without.
#[test]
#[ignore = "measurement, not a check"]
fn measure_publish_rates() {
    let copies = 12;
    for confirms in [true, false] {
        let names = AmqpNames::shared("rate");
        let mut cfg = AmqpConfig::parse(BROKER, &options(&names)).unwrap();
        cfg.confirms = confirms;
        let sink = AmqpSink::connect(cfg.clone()).unwrap();
        let job = ReadJob {
            files: (0..copies).map(|_| root().join(FIXTURE)).collect(),
            filter: None,
            count: None,
            workers: 1,
            source_host: "localdev".into(),
            packet: Default::default(),
            output: std::sync::Arc::new(Output::of(cfg)),
        };
        let started = Instant::now();
        let outcome = job.run_with_sink(Box::new(sink));
        let secs = started.elapsed().as_secs_f64();
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let n = outcome.summary.written as f64;
        println!(
            "confirms {}: {n} messages in {secs:.2} s = {:.0} messages/s",
            if confirms { "on" } else { "off" },
            n / secs
        );
    }
}

/// With --no-confirms the run ends only after the broker has processed every publish (a
/// synchronous call on the same channel at the end), with and without the spool: nothing still
/// in the client's socket buffers is lost when the process exits.
///
/// The queue's depth is polled, not read once: RabbitMQ routes a publish from the channel
/// process to the queue process by an asynchronous message, and the queue process answers
/// the depth question (a passive declare, from another connection) ahead of deliveries still
/// in its mailbox, so right after the exit the depth can lag by tens of thousands of messages
/// on a loaded machine and then climb to the total. A real loss leaves it short for good.
#[test]
fn without_confirms_every_message_still_arrives() {
    // Enough messages that the broker is still working through them when the client is
    // done writing (the loss this guards against needs a backlog of more than a second).
    let copies = 8;
    let total = copies * FIXTURE_MESSAGES;
    // Not `drop`: it drops by design when the producer outruns the broker.
    for mode in ["spool", "block"] {
        let names = AmqpNames::shared(&format!("noconfirm_{mode}"));
        let out = bin()
            .arg("read")
            .args(vec![FIXTURE; copies])
            .args(["-o", BROKER, "--no-confirms", "--when-full", mode])
            .args(names.args())
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {}", combined(&out));
        assert!(
            combined(&out).contains("confirms off"),
            "{mode}: {}",
            combined(&out)
        );
        let depth = poll_depth(
            &names,
            total,
            Duration::from_secs(20),
            Duration::from_secs(180),
        );
        assert_eq!(depth, total, "{mode}: messages lost on exit");
    }
}

/// Reads the queue's depth until it reaches `want`, stops rising for `patience` or
/// `deadline` passes; returns the last depth read. Never more than `want`: more would be
/// duplicates.
fn poll_depth(names: &AmqpNames, want: usize, patience: Duration, deadline: Duration) -> usize {
    let mut last = 0usize;
    let started = Instant::now();
    let mut rose_at = started;
    loop {
        let (bodies, left) = bodies(&names.consume(0, &[]));
        assert!(bodies.is_empty());
        let depth = left as usize;
        assert!(depth <= want, "{depth} messages in the queue, {want} sent");
        if depth == want {
            return depth;
        }
        if depth > last {
            last = depth;
            rose_at = Instant::now();
        } else if rose_at.elapsed() > patience || started.elapsed() > deadline {
            return depth;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
