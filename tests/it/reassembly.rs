//! `read --reassemble` end to end on `pcaps/fragments.pcap` (scripts/gen-pcaps.py,
//! pcaps/README.md): the reassembled datagrams equal scapy's (`tests/oracle/defrag.py`), the
//! give-ups are counted in the summary, several workers give the same output as one, and the
//! limits change the outcome as documented. The golden file of the run is checked in
//! tests/golden.rs.

use crate::common;
use crate::common::harness::TempDir;

use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
        "--reassembly-global-timeout",
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

/// A raw-IPv4 fragment (link type 228) of a 32-byte UDP payload, identification 7: the first
/// half (offset 0, MF) or the second.
fn half_of_datagram_7(first: bool) -> Vec<u8> {
    let data: Vec<u8> = (0u8..32).collect();
    let (bytes, frag) = if first {
        (&data[..16], 0x2000u16)
    } else {
        (&data[16..], 2u16)
    };
    let total = (20 + bytes.len()) as u16;
    let mut f = vec![0x45, 0];
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 7]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    let sum = crate::common::frames::checksum(&f);
    f[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

/// Opens the FIFO `path` for writing, blocking writes, once a reader has it open (bounded: a
/// reader that never comes fails the test instead of hanging it; one that goes away makes
/// the writes fail with EPIPE).
fn open_fifo(path: &std::path::Path) -> std::fs::File {
    let probe = open_fifo_nonblocking(path);
    // A reader has it open now, so a blocking open returns at once.
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    drop(probe);
    f
}

fn open_fifo_nonblocking(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        // O_NONBLOCK: ENXIO instead of waiting while nobody reads it.
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(Instant::now() < end, "nobody opened {}", path.display());
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}

/// Copies the file `from` into the FIFO `to` (see [`open_fifo`]) and closes it.
fn write_fifo(to: &std::path::Path, from: &std::path::Path) {
    let mut f = open_fifo(to);
    std::io::Write::write_all(&mut f, &std::fs::read(from).unwrap()).unwrap();
}

/// `read` of three inputs in a row, all with the same capture time: the first half of a
/// datagram, then an input with no frame, then its second half. From regular files (read at
/// once) the datagram is reassembled, with or without a global timeout. From pipes whose
/// second one stays open without data for more than the one-second global timeout, capture
/// time does not move, yet the datagram is given up (`global_timeout`, checked when the
/// second input ends) and its second half starts a new one that the end finds incomplete.
#[test]
fn the_global_timeout_gives_up_what_a_quiet_pipe_holds() {
    let dir = TempDir::unique("reasm_global");
    let t = 1_700_000_000_000_000_000;
    let files = [
        dir.path("first.pcap"),
        dir.path("none.pcap"),
        dir.path("second.pcap"),
    ];
    common::frames::write_pcap(&files[0], 228, t, &[half_of_datagram_7(true)]);
    common::frames::write_pcap::<Vec<u8>>(&files[1], 228, t, &[]);
    common::frames::write_pcap(&files[2], 228, t, &[half_of_datagram_7(false)]);
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    for global in ["0", "1", "60"] {
        let mut args = vec!["--reassemble", "--reassembly-global-timeout", global];
        args.extend(&names);
        let out = read(&args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(reassembled(&messages(&out)).len(), 1, "global {global}");
    }

    // One reading thread (1 worker) and a reading thread feeding two workers.
    for workers in ["1", "2"] {
        let pipes = [0, 1, 2].map(|i| dir.path(&format!("p{workers}-{i}")));
        for p in &pipes {
            crate::common::harness::mkfifo(p);
        }
        let child = read_pipes(workers, &pipes);
        // Each open for writing waits until `read` opens that pipe, i.e. has finished the
        // one before.
        write_fifo(&pipes[0], &files[0]);
        let quiet_from = Instant::now();
        let mut second = open_fifo(&pipes[1]);
        // The time that has to pass for the limit under test: read is blocked on the open
        // pipe.
        while quiet_from.elapsed() < Duration::from_millis(1200) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::io::Write::write_all(&mut second, &std::fs::read(&files[1]).unwrap()).unwrap();
        drop(second);
        write_fifo(&pipes[2], &files[2]);
        let out = child.wait_with_output().expect("wait for read");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(messages(&out).len(), 2, "both fragments as themselves");
        assert_first_half_given_up(&out, workers);
    }
}

/// Starts `read --reassemble --reassembly-global-timeout 1 --workers W` of `pipes`, in
/// order, with its output and errors piped.
fn read_pipes(workers: &str, pipes: &[std::path::PathBuf]) -> std::process::Child {
    common::bin()
        .args(["read", "--reassemble", "--reassembly-global-timeout", "1"])
        .args(["--workers", workers])
        .args(pipes)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start read")
}

/// Datagram 7 was not reassembled: its first half was given up by the global timeout and its
/// second half, starting a datagram of its own, was incomplete at the end.
fn assert_first_half_given_up(out: &Output, workers: &str) {
    assert!(
        reassembled(&messages(out)).is_empty(),
        "--workers {workers}"
    );
    assert!(
        reassembly_line(out).starts_with(
            "reassembly: 2 fragments, 0 datagrams reassembled, 2 given up (global_timeout 1, \
             incomplete 1)"
        ),
        "--workers {workers}: {}",
        reassembly_line(out)
    );
}

/// Pcap bytes (little-endian, microseconds, link type 228 raw IPv4): the file header when
/// `frames` is None, else the records of `frames`, each stamped at the same second.
fn pcap_bytes(frames: Option<&[Vec<u8>]>) -> Vec<u8> {
    let mut b = Vec::new();
    let Some(frames) = frames else {
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 228] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        return b;
    };
    for f in frames {
        for v in [1_700_000_000u32, 0, f.len() as u32, f.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(f);
    }
    b
}

/// A UDP datagram (not a fragment) of raw IPv4, to fill batches.
fn filler() -> Vec<u8> {
    let mut f = vec![
        0x45, 0, 0, 28, 0, 9, 0, 0, 64, 17, 0, 0, 192, 0, 2, 9, 192, 0, 2, 2,
    ];
    let sum = crate::common::frames::checksum(&f);
    f[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
    f
}

/// `read --reassemble --reassembly-global-timeout 1 --workers W` of one pipe, written in
/// `chunks`: each waits its delay after the one before (the time the limit under test is
/// about), then its bytes go in.
fn read_one_pipe(dir: &TempDir, workers: &str, chunks: &[(Duration, Vec<u8>)]) -> Output {
    let pipe = dir.path(&format!("pipe-{workers}-{}", common::unique("p")));
    crate::common::harness::mkfifo(&pipe);
    let child = read_pipes(workers, std::slice::from_ref(&pipe));
    let mut w = open_fifo(&pipe);
    let mut last = Instant::now();
    for (delay, bytes) in chunks {
        while last.elapsed() < *delay {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::io::Write::write_all(&mut w, bytes).unwrap();
        std::io::Write::flush(&mut w).unwrap();
        last = Instant::now();
    }
    drop(w);
    let out = child.wait_with_output().expect("wait for read");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    out
}

/// One pipe that goes quiet between a datagram's two fragments for longer than the
/// one-second global timeout, in the middle of its input: the second fragment's own clock
/// reading finds the first one's datagram too old, so it is given up and the second starts
/// one of its own (incomplete at the end). The same bytes without the pause reassemble.
#[test]
fn a_pipe_quiet_in_the_middle_gives_the_datagram_up() {
    let dir = TempDir::unique("reasm_midpipe");
    let (first, second) = (half_of_datagram_7(true), half_of_datagram_7(false));
    let head = pcap_bytes(None);
    for workers in ["1", "2"] {
        let out = read_one_pipe(
            &dir,
            workers,
            &[
                (
                    Duration::ZERO,
                    [head.clone(), pcap_bytes(Some(std::slice::from_ref(&first)))].concat(),
                ),
                (
                    Duration::from_millis(1200),
                    pcap_bytes(Some(std::slice::from_ref(&second))),
                ),
            ],
        );
        assert_first_half_given_up(&out, workers);
        let out = read_one_pipe(
            &dir,
            workers,
            &[(
                Duration::ZERO,
                [
                    head.clone(),
                    pcap_bytes(Some(&[first.clone(), second.clone()])),
                ]
                .concat(),
            )],
        );
        assert_eq!(reassembled(&messages(&out)).len(), 1, "--workers {workers}");
    }
}

/// The global timeout counts from a datagram's first fragment, not from an earlier moment:
/// a pipe that stays empty for longer than the timeout before anything arrives, then brings
/// both fragments with two batches' worth of other packets between them (so the clock is
/// also read at a batch hand-off between them), reassembles the datagram.
#[test]
fn the_global_timeout_counts_from_the_first_fragment() {
    let dir = TempDir::unique("reasm_late");
    let mut frames = vec![half_of_datagram_7(true)];
    frames.extend(std::iter::repeat_with(filler).take(2_100));
    frames.push(half_of_datagram_7(false));
    for workers in ["1", "2"] {
        let out = read_one_pipe(
            &dir,
            workers,
            &[(
                Duration::from_millis(1200),
                [pcap_bytes(None), pcap_bytes(Some(&frames))].concat(),
            )],
        );
        assert_eq!(messages(&out).len(), 2_103, "--workers {workers}");
        assert_eq!(reassembled(&messages(&out)).len(), 1, "--workers {workers}");
        assert!(
            reassembly_line(&out)
                .starts_with("reassembly: 2 fragments, 1 datagrams reassembled, 0 given up"),
            "--workers {workers}: {}",
            reassembly_line(&out)
        );
    }
}
