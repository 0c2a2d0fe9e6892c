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

/// The packets of a recorder's archive, without the fields the recorder adds.
fn archived(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut packets = doc["packets"].as_array().cloned().unwrap_or_default();
    for p in &mut packets {
        if let Some(o) = p.as_object_mut() {
            o.remove("id");
            o.remove("received");
        }
    }
    packets
}

#[test]
fn restarted_stream_recorder_resumes_from_its_stored_offset() {
    let stream = unique("stream_record");
    let out = publish(&stream, &stream);
    assert!(out.status.success(), "publish failed: {out:?}");
    let dir = common::harness::TempDir::new("stream-record", "resume");
    let reader = unique("reader");
    let mut got = Vec::new();
    // First run stops after 5,000 messages; the second takes the rest, and nothing else.
    for (run, count) in [("a", 5_000usize), ("b", FIXTURE_MESSAGES - 5_000)] {
        let archive = dir.path(&format!("{run}.json"));
        let out = bin()
            .args(["record", "--input", STREAM_URL, "--queue", &stream])
            .args(["--reader-name", &reader, "--save-after-num", "700"])
            .args(["--stop-after-num", &count.to_string()])
            .arg("--output-csv")
            .arg(dir.path(&format!("{run}.csv")))
            .arg("--archive-json")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(out.status.success(), "record run {run} failed: {out:?}");
        got.extend(archived(&archive));
    }
    let want: Vec<serde_json::Value> = expected(&["-r", FIXTURE])
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the two runs did not read every message once, in order");
    // A reader with another name reads everything again.
    let archive = dir.path("other.json");
    let out = bin()
        .args(["record", "--input", STREAM_URL, "--queue", &stream])
        .args(["--reader-name", &unique("other"), "--stop-after-num"])
        .arg(FIXTURE_MESSAGES.to_string())
        .arg("--output-csv")
        .arg(dir.path("other.csv"))
        .arg("--archive-json")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(archived(&archive) == want);
    delete_stream(&stream);
}
