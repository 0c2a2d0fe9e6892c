//! The TCP sink against listeners the tests start on 127.0.0.1 (port 0): every message once
//! and in order; a listener that drops the connection mid-stream and accepts again gets
//! every message (at-least-once, duplicates within the resent window and counted); start-up
//! errors with their exit codes.

use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::{Backoff, Output, TcpConfig, TcpSink};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::brokers::free_port;
use crate::common::{bin, lines, root, FIXTURE, FIXTURE_MESSAGES};

fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = bin().arg("read").arg("-q").args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// Waits for a thread with a bounded deadline.
fn join_within<T>(h: thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish in {limit:?}"
        );
        thread::park_timeout(Duration::from_millis(20));
    }
    h.join().unwrap()
}

#[test]
fn tcp_receives_every_message_once_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let out = bin()
        .args(["read", FIXTURE, "-o", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let got = join_within(receiver, Duration::from_secs(60), "receiver");
    let want = stdout_of(&[FIXTURE]);
    assert_eq!(lines(&want).len(), FIXTURE_MESSAGES);
    assert!(
        got == want,
        "TCP stream differs from stdout ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

/// The listener reads part of the stream, drops the connection with data unread (a reset),
/// then accepts again: every message arrives; the second connection starts at a line
/// boundary at or before where the first stopped, and the overlap is within what the sink
/// counted as resent.
#[test]
fn tcp_reconnects_and_loses_nothing_when_the_listener_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_lines = 5_000;
    let receiver = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut first = Vec::new();
        let mut reader = BufReader::new(conn);
        let mut line = Vec::new();
        while first.len() < first_lines {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "stream ended early");
            first.push(line.strip_suffix(b"\n").unwrap().to_vec());
        }
        drop(reader); // unread data: the kernel answers with a reset
        let (mut conn, _) = listener.accept().unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        (first, rest)
    });
    let copies = 3;
    let mut cfg = TcpConfig::new("127.0.0.1", port);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
    };
    let sink = TcpSink::connect(cfg.clone()).unwrap();
    let counters = sink.counters();
    let job = ReadJob {
        files: (0..copies)
            .map(|_| root().join(FIXTURE))
            .collect::<Vec<PathBuf>>(),
        filter: None,
        count: None,
        workers: 2,
        source_host: "localdev".into(),
        packet: Default::default(),
        output: std::sync::Arc::new(Output::of(cfg)),
    };
    let runner = thread::spawn(move || job.run_with_sink(Box::new(sink)));
    let outcome = join_within(runner, Duration::from_secs(120), "the run");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let (first, rest) = join_within(receiver, Duration::from_secs(30), "receiver");
    assert!(rest.ends_with(b"\n"), "second connection ended mid-line");
    let second = lines(&rest);

    let one = lines(&stdout_of(&[FIXTURE]));
    let want: Vec<Vec<u8>> = (0..copies).flat_map(|_| one.iter().cloned()).collect();
    assert!(
        first[..] == want[..first.len()],
        "first connection out of order"
    );
    assert!(second.len() <= want.len());
    let start = want.len() - second.len();
    assert!(
        second[..] == want[start..],
        "second connection is not a tail of the stream"
    );
    assert!(
        start <= first.len(),
        "messages {start}..{} lost",
        first.len()
    );
    let duplicates = (first.len() - start) as u64;
    assert!(counters.reconnects() >= 1, "no reconnect counted");
    assert!(
        duplicates <= counters.resent(),
        "{duplicates} duplicates but {} counted as resent",
        counters.resent()
    );
    assert_eq!(counters.published(), want.len() as u64);
}

#[test]
fn tcp_start_up_errors() {
    // Nothing listening: exit 9, one line naming the address.
    let port = free_port();
    let out = bin()
        .args(["read", FIXTURE, "-o", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains(&format!("tcp://127.0.0.1:{port}")) && first.contains("cannot connect"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Malformed: usage error.
    for url in ["tcp://127.0.0.1", "tcp://127.0.0.1:http", "tcp://:9000"] {
        let out = bin().args(["read", FIXTURE, "-o", url]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("tcp://HOST:PORT"));
    }
}
