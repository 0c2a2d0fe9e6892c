//! `read --reassemble` end to end on `pcaps/fragments.pcap` (scripts/gen-pcaps.py,
//! pcaps/README.md): the reassembled datagrams equal scapy's (`tests/oracle/defrag.py`), the
//! give-ups are counted in the summary, several workers give the same output as one, and the
//! limits change the outcome as documented. The golden file of the run is checked in
//! tests/golden.rs.

use crate::common;
use crate::common::harness::TempDir;

use serde_json::Value;
use std::process::{Command, Output};

const PYTHON: &str = "/usr/bin/python3";
const FRAGMENTS: &str = "pcaps/fragments.pcap";

fn read(args: &[&str]) -> Output {
    let out = common::bin()
        .arg("read")
        .args(args)
        .output()
        .expect("run netpipe-fast read");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn messages(out: &Output) -> Vec<Value> {
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
        .collect()
}

fn reassembled(msgs: &[Value]) -> Vec<&Value> {
    msgs.iter()
        .filter(|m| m.get("reassembled").is_some())
        .collect()
}

fn reassembly_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with("reassembly:"))
        .unwrap_or_else(|| {
            panic!(
                "no reassembly line in stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string()
}

#[test]
fn reassembled_datagrams_equal_scapys() {
    // Under the repository's target/ (not a predictable /tmp path), removed on drop.
    let scratch = TempDir::at(
        common::root()
            .join("target/test-scratch")
            .join(format!("reassembly-{}-oracle", std::process::id())),
    );
    let oracle_pcap = scratch.0.join("defragmented.pcap");
    let oracle = Command::new(PYTHON)
        .arg(common::root().join("tests/oracle/defrag.py"))
        .arg(common::root().join(FRAGMENTS))
        .arg(&oracle_pcap)
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON} (needs python3-scapy): {e}"));
    assert!(
        oracle.status.success(),
        "defrag.py failed: {}",
        String::from_utf8_lossy(&oracle.stderr)
    );

    let ours = read(&["--reassemble", FRAGMENTS]);
    assert_eq!(ours.status.code(), Some(0));
    let ours = messages(&ours);
    let ours = reassembled(&ours);
    let theirs = read(&[oracle_pcap.to_str().unwrap()]);
    assert_eq!(theirs.status.code(), Some(0));
    let theirs = messages(&theirs);
    // Eight datagrams complete: IPv4 in order, reversed, with a duplicate, overlapping (first
    // wins), behind a VLAN tag; IPv6 in order, out of order, after a hop-by-hop header.
    assert_eq!(ours.len(), 8, "reassembled messages");
    assert_eq!(theirs.len(), ours.len(), "scapy reassembled another number");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        // Every layer and field, the IPv4 checksum and lengths and the payload included.
        assert_eq!(a["data"], b["data"], "datagram {i} differs from scapy's");
        assert_eq!(a["wire_len"], b["wire_len"], "datagram {i}");
        assert_eq!(
            a["time_ns"], b["time_ns"],
            "datagram {i}: time of the completing fragment"
        );
    }
    // Each came right after the fragment that completed it, with the upper layers decoded.
    let layers: Vec<Vec<&str>> = ours
        .iter()
        .map(|m| {
            m["data"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect()
        })
        .collect();
    assert!(
        layers.iter().filter(|l| l.contains(&"dns")).count() >= 7,
        "{layers:?}"
    );
}

#[test]
fn every_give_up_is_counted_and_the_run_still_succeeds() {
    let out = read(&["--reassemble", FRAGMENTS]);
    // Incomplete datagrams are no loss: every fragment was delivered on its own.
    assert_eq!(out.status.code(), Some(0));
    let msgs = messages(&out);
    assert_eq!(
        msgs.len(),
        32 + 8,
        "every frame, plus one message per datagram"
    );
    assert_eq!(
        reassembly_line(&out),
        "reassembly: 31 fragments, 8 datagrams reassembled, 5 given up (timeout 2, overlap 1, \
         incomplete 2), 1 duplicates, 1 overlapping (first wins), 0 bad fragments, \
         1 late fragments, peak memory 2648 bytes"
    );
    let marks: Vec<u64> = reassembled(&msgs)
        .iter()
        .map(|m| m["reassembled"]["fragments"].as_u64().unwrap())
        .collect();
    assert_eq!(marks, [3, 3, 3, 3, 2, 3, 3, 2]);
    // Without --reassemble: the same per-packet messages, and no reassembly line.
    let plain = read(&[FRAGMENTS]);
    let plain_msgs = messages(&plain);
    let without: Vec<&Value> = msgs
        .iter()
        .filter(|m| m.get("reassembled").is_none())
        .collect();
    assert_eq!(without.len(), plain_msgs.len());
    assert!(without.iter().zip(&plain_msgs).all(|(a, b)| *a == b));
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("reassembly:"));
}

#[test]
fn several_workers_give_the_same_output_as_one() {
    let one = read(&["--reassemble", FRAGMENTS]);
    for workers in ["2", "3"] {
        let many = read(&["--reassemble", "--workers", workers, FRAGMENTS]);
        assert_eq!(many.status.code(), Some(0));
        assert_eq!(many.stdout, one.stdout, "--workers {workers}");
        assert_eq!(reassembly_line(&many), reassembly_line(&one));
    }
}

#[test]
fn limits_change_the_outcome_as_documented() {
    // A longer timeout: the datagram whose second half came 31 s later completes too.
    let out = read(&["--reassemble", "--reassembly-timeout", "40", FRAGMENTS]);
    assert_eq!(reassembled(&messages(&out)).len(), 9);
    assert!(
        reassembly_line(&out).contains("(overlap 1, incomplete 2)"),
        "{}",
        reassembly_line(&out)
    );
    // At most two fragments per datagram: the three-fragment ones are given up.
    let out = read(&["--reassemble", "--reassembly-max-fragments", "2", FRAGMENTS]);
    assert_eq!(reassembled(&messages(&out)).len(), 2);
    assert!(
        reassembly_line(&out).contains("too_many_fragments 6"),
        "{}",
        reassembly_line(&out)
    );
    // Bad values are refused before anything is read.
    let out = read(&["--reassemble", "--reassembly-mb", "0", FRAGMENTS]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// A reassembly limit without `--reassemble` would change nothing: a usage error (exit 2)
/// naming the missing flag, not a silent no-op; with it, the run succeeds.
#[test]
fn reassembly_limits_without_reassemble_are_a_usage_error() {
    for flag in [
        "--reassembly-mb",
        "--reassembly-timeout",
        "--reassembly-max-fragments",
    ] {
        let out = read(&[flag, "5", FRAGMENTS]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--reassemble"), "{flag}: {err}");
        assert!(out.stdout.is_empty(), "{flag}");
        let out = read(&["--reassemble", flag, "5", FRAGMENTS]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
    }
}

#[test]
fn the_filter_sees_fragments() {
    // Only the first fragments pass `udp port 53` (the others carry no UDP header), so no
    // datagram can complete: counted, never wrong.
    let out = read(&["--reassemble", "-f", "udp port 53", FRAGMENTS]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(reassembled(&messages(&out)).len(), 0);
    // With the fragments let through, the DNS ones complete again, except where the filter
    // still misses the first fragment: behind a VLAN tag (`udp` does not look past it) and
    // after an IPv6 hop-by-hop header (libpcap's `udp` checks the first next header only).
    let out = read(&[
        "--reassemble",
        "-f",
        "udp port 53 or (ip[6:2] & 0x1fff != 0) or ip6[6] = 44",
        FRAGMENTS,
    ]);
    assert_eq!(reassembled(&messages(&out)).len(), 5);
}

#[test]
fn capture_refuses_a_fanout_that_spreads_fragments() {
    // Checked before any socket is opened: no privilege or interface needed to see it.
    let out = common::bin()
        .args(["capture", "-i", "lo", "--reassemble", "--workers", "2"])
        .args(["--fanout", "lb", "-c", "1", "-o", "/dev/null"])
        .output()
        .expect("run capture");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--reassemble with 2 workers needs --fanout hash"),
        "{stderr}"
    );
}
