//! `-o rabbitmq-stream://`: RabbitMQ Streams against the machine's RabbitMQ (stream plugin on
//! port 5552, enabled by scripts/test.sh), each test on a stream of its own.

mod common;

use common::{bin, expected, lines, unique, FIXTURE, FIXTURE_MESSAGES};
use std::process::Command;

const STREAM_URL: &str = "rabbitmq-stream://guest:guest@127.0.0.1:5552";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672//";

/// Reads `count` messages of `stream` from its start with kombu over AMQP 0-9-1.
fn kombu_read(stream: &str, count: usize) -> Vec<Vec<u8>> {
    let python = common::root().join("target/kombu-venv/bin/python");
    let out = Command::new(python)
        .arg(common::root().join("tests/kombu/consume_stream.py"))
        .args(["--url", AMQP_URL, "--stream", stream, "--count"])
        .arg(count.to_string())
        .args(["--timeout", "60"])
        .output()
        .expect("kombu venv (target/kombu-venv, made by scripts/test.sh)");
    assert!(
        out.status.success(),
        "kombu read fewer than {count} messages of {stream}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
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
