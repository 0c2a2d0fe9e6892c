//! Helpers shared by the sink tests (each test crate uses a different subset).
#![allow(dead_code)]

pub mod brokers;
pub mod frames;
pub mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FIXTURE: &str = "pcaps/mixed.pcap";
pub const FIXTURE_MESSAGES: usize = 13_620;

/// The program under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_netpipe-fast");

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the virtual environment `target/<name>-venv` (scripts/test.sh
/// makes them: kombu, pandas, prom, communityid, fingerprint).
pub fn venv_python(name: &str) -> PathBuf {
    root().join(format!("target/{name}-venv/bin/python"))
}

/// A finished process's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A finished process's stdout then stderr, as text.
pub fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `read` of the fixture into `url`, which must fail to start: returns the exit code,
/// the first stderr line and all output (nothing may go to stdout).
pub fn start_failure(url: &str) -> (Option<i32>, String, String) {
    let out = bin().args(["read", FIXTURE, "-o", url]).output().unwrap();
    let all = combined(&out);
    assert!(out.stdout.is_empty(), "{url}: wrote to stdout");
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (out.status.code(), line, all)
}

/// `received` is `want` with at most `resent` messages repeated (the at-least-once window):
/// every wanted message in order; an extra one may only repeat one already received.
pub fn assert_in_order_at_least_once(received: &[Vec<u8>], want: &[Vec<u8>], resent: u64) {
    assert!(
        received.len() >= want.len(),
        "lost messages: {} received, {} sent",
        received.len(),
        want.len()
    );
    let dup = (received.len() - want.len()) as u64;
    assert!(dup <= resent, "{dup} duplicates but only {resent} resent");
    let mut w = 0;
    for (i, m) in received.iter().enumerate() {
        if w < want.len() && *m == want[w] {
            w += 1;
        } else {
            assert!(
                received[..i].contains(m),
                "message {i} received is neither the next one sent nor a repeat"
            );
        }
    }
    assert_eq!(w, want.len(), "not every message arrived in order");
}

/// The binary, run from the repository root, with none of the environment variables that
/// would change where or how it publishes.
pub fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(root());
    for v in [
        "FORWARD_BROKER_URL",
        "FORWARD_BROKER_PASSWORD_FILE",
        "RECORD_INPUT_URL",
        "RECORD_INPUT_PASSWORD_FILE",
        "FORWARD_QUEUE",
        "FORWARD_EXCHANGE",
        "FORWARD_ROUTING_KEY",
        "SOURCE_HOST",
    ] {
        c.env_remove(v);
    }
    c
}

/// A name no other test (or run) uses.
pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("netpipe_test_{what}_{}_{nanos}", std::process::id())
}

/// Non-empty lines of `bytes`.
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The messages `read` writes to stdout, one per line, in order.
pub fn expected(args: &[&str]) -> Vec<Vec<u8>> {
    let out = bin().arg("read").arg("-q").args(args).output().unwrap();
    assert!(out.status.success(), "read to stdout failed: {out:?}");
    lines(&out.stdout)
}

/// Messages in the spool's segment files in `dir` (every whole record after the 8-byte
/// magic, delivered or not: nothing is acknowledged while the broker is down).
pub fn spooled_records(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if e.path().extension().and_then(|x| x.to_str()) != Some("seg") {
            continue;
        }
        let bytes = std::fs::read(e.path()).unwrap_or_default();
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if at + 8 + len > bytes.len() {
                break;
            }
            at += 8 + len;
            n += 1;
        }
    }
    n
}

/// A test that skips itself says so with `line` ("skipping WHAT: WHY") on stderr, and, when
/// `NETPIPE_SKIP_LOG` names a file (scripts/test.sh sets it), appends the line there, so the
/// run can count the tests that did not really run.
pub fn note_skip(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("NETPIPE_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// The partition of a message by the documented rule, computed here from the message with
/// serde_json and the base64 crate: the first four bytes of the `community_id` digest,
/// big-endian, modulo N; 0 without a community_id.
pub fn documented_partition(m: &[u8], n: usize) -> usize {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(m).unwrap();
    let Some(id) = v["community_id"].as_str() else {
        return 0;
    };
    let digest = base64::engine::general_purpose::STANDARD
        .decode(id.strip_prefix("1:").unwrap())
        .unwrap();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as usize % n
}
