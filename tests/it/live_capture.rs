//! `netpipe-fast capture` end to end: the binary runs inside network namespace B on `vb` and
//! writes to a file; frames built here are sent from namespace A through `va`, the other end
//! of a veth pair. Nothing is sent anywhere else.
//!
//! Needs root, `ip netns` and python3 (the sender: a few lines that write each frame given as
//! hex on an AF_PACKET socket, so this file needs no unsafe code). Without them the tests say
//! why and pass, unless `NETPIPE_REQUIRE_LIVE=1`, which makes them fail instead (CI sets it).
//!
//! The replay tests send with `netpipe-fast replay` (the TX ring) instead of python.
//!
//! The frames go to a MAC address that is not B's, so B's stack drops them and answers
//! nothing; the capture's kernel filter matches only them (the veth pair's own IPv6 neighbour
//! and multicast chatter is left out).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::frames::{capinfos, checksum, ipv4_frame, write_pcap, DST_MAC, SRC_MAC};
use crate::common::harness::{self, ip, NetnsPair, Process, TempDir};
use crate::common::BIN;

/// Capture time of the first frame in the pcap files written here (2023-11-14).
const PCAP_TIME_NS: i64 = 1_700_000_000_000_000_000;

/// Every wait in this file is bounded by this.
const DEADLINE: Duration = Duration::from_secs(10);
/// The bound of [`Capture::wait_for_records`].
const RECORDS_DEADLINE: Duration = Duration::from_secs(60);
/// Interval of the bounded polls of the output file.
const POLL: Duration = Duration::from_millis(10);
/// Matches the test frames only.
const FILTER: &str =
    "ether src 02:00:00:00:00:01 and ip src 192.0.2.1 and (udp dst port 9999 or icmp)";

const SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
while True:
    line = sys.stdin.readline()
    if not line:
        break
    line = line.strip()
    if line == ".":
        print("ok", flush=True)
    elif line:
        s.send(bytes.fromhex(line))
"#;

fn live_available() -> bool {
    harness::live_available(
        "live capture test",
        &[(
            "/usr/bin/python3",
            &["-c", "import socket; socket.AF_PACKET"],
            "python3 (with AF_PACKET sockets) is not available to send frames",
        )],
    )
}

/// For test `tag`: namespaces `np-cap-<pid>-<tag>-a/b` with `va` in A and `vb` in B, a veth
/// pair, both up, no addresses (so A's stack sends no ARP), and a scratch directory; none
/// (the test passes without running) when the live tests cannot run here.
fn live_setup(tag: &str) -> Option<(NetnsPair, TempDir)> {
    if !live_available() {
        return None;
    }
    Some((NetnsPair::new("np-cap", tag, None), scratch_dir(tag)))
}

fn scratch_dir(tag: &str) -> TempDir {
    TempDir::new("np-live-capture", tag)
}

/// `netpipe-fast` in namespace `ns`; its arguments follow.
fn bin_in(ns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN]);
    c
}

/// Capture arguments: kernel filter `filter`, a ring of `ring_mb` MiB in 64 KiB blocks, then
/// `more`.
fn ring_args<'a>(filter: &'a str, ring_mb: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--filter", filter, "--ring-mb", ring_mb, "--block-kb", "64"];
    args.extend_from_slice(more);
    args
}

/// The python sender in namespace A.
struct Sender {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Sender {
    fn open(ns: &str) -> Sender {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-c", SENDER, "va"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sender");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("sender stdout"));
        Sender {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends `frames` and returns once the sender has sent them all.
    fn send(&mut self, frames: &[Vec<u8>]) {
        let stdin = self.stdin.as_mut().expect("sender open");
        let mut text = String::new();
        for f in frames {
            for b in f {
                text.push_str(&format!("{b:02x}"));
            }
            text.push('\n');
        }
        text.push_str(".\n");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the sender");
        stdin.flush().expect("flush the sender");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("sender answer");
        assert_eq!(line.trim(), "ok", "the sender failed (see its stderr)");
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Frame `n` of a test: UDP to port 9999 from a port that varies (so a hash fanout spreads
/// them), or every third one an ICMP echo request; all different.
fn test_frame(n: u32) -> Vec<u8> {
    let tag = format!("netpipe-fast capture test frame {n:06}");
    if n % 3 == 2 {
        let mut icmp = vec![8, 0, 0, 0, 0x4e, 0x50];
        icmp.extend_from_slice(&(n as u16).to_be_bytes());
        icmp.extend_from_slice(tag.as_bytes());
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        ipv4_frame(None, 1, n as u16, &icmp)
    } else {
        let port = 20_000 + (n % 64) as u16;
        let mut udp = port.to_be_bytes().to_vec();
        udp.extend_from_slice(&9999u16.to_be_bytes());
        udp.extend_from_slice(&((8 + tag.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(tag.as_bytes());
        ipv4_frame(None, 17, n as u16, &udp)
    }
}

fn test_frames(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(test_frame).collect()
}

/// The `data` objects `netpipe-fast read` gives for `frames`, as JSON text, counted.
fn data_from_read(dir: &TempDir, frames: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let pcap = dir.path("sent.pcap");
    write_pcap(&pcap, 1, PCAP_TIME_NS, frames);
    let out = Command::new(BIN)
        .arg("read")
        .arg(&pcap)
        .args(["-o", "-", "-q"])
        .output()
        .expect("run read");
    assert!(out.status.success(), "read: {out:?}");
    data_counts(&String::from_utf8(out.stdout).expect("utf-8"))
}

fn data_counts(jsonl: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in jsonl.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        *counts.entry(v["data"].to_string()).or_insert(0) += 1;
    }
    counts
}

/// A running `netpipe-fast capture` in namespace B, writing to the file `out`.
struct Capture {
    process: Process,
    out: PathBuf,
}

impl Capture {
    fn start(ns: &str, out: &Path, args: &[&str]) -> Capture {
        Capture::start_as(ns, out, &["capture"], args)
    }

    /// [`Capture::start`], then waits until it is listening.
    fn listening(ns: &str, out: &Path, args: &[&str]) -> Capture {
        let mut cap = Capture::start(ns, out, args);
        cap.wait_listening();
        cap
    }

    /// `prefix` is the command word(s): `["capture"]`, or none for the top-level form.
    fn start_as(ns: &str, out: &Path, prefix: &[&str], args: &[&str]) -> Capture {
        let mut cmd = bin_in(ns);
        cmd.args(prefix)
            .args(["--iface", "vb"])
            .args(args)
            .arg("-o")
            .arg(format!("file:{}", out.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Capture {
            process: Process::start(&mut cmd, DEADLINE),
            out: out.to_owned(),
        }
    }

    /// Waits for a stderr line containing `what`.
    fn wait_for_line(&mut self, what: &str) {
        self.process.wait_for_stderr(what);
    }

    /// Waits until the capture is listening (the rings are open and in their group).
    fn wait_listening(&mut self) {
        self.wait_for_line("listening on vb");
    }

    /// The URL of `--metrics 127.0.0.1:0`, from the line the capture prints.
    fn metrics_url(&mut self) -> String {
        self.process
            .wait_for_stderr("metrics on http://")
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a metrics URL")
            .to_owned()
    }

    /// Whole lines in the output file now.
    fn lines_written(&self) -> usize {
        fs::read(&self.out)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    }

    /// Bounded poll until the output file has at least `n` lines (a longer bound than the
    /// other waits: on a loaded machine a capture of thousands of frames writes them
    /// seconds after they were sent; a passing test waits only as long as it takes).
    fn wait_for_records(&self, n: usize) {
        let end = Instant::now() + RECORDS_DEADLINE;
        while self.lines_written() < n {
            assert!(
                Instant::now() < end,
                "only {} of {n} records written in time",
                self.lines_written()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the process to end; returns its exit status and every stderr line.
    fn finish(self) -> (ExitStatus, Vec<String>) {
        self.process.finish()
    }

    /// Waits for `n` records, stops the capture with SIGINT and checks that it exits 0;
    /// returns its stderr lines.
    fn stop_after(self, n: usize) -> Vec<String> {
        self.wait_for_records(n);
        self.process.signal("-INT");
        let (status, stderr) = self.finish();
        assert!(status.success(), "exit {status:?}; stderr: {stderr:?}");
        stderr
    }
}

/// The numbers of the summary line "N packets captured, N received by filter, ...".
#[derive(Debug)]
struct Summary {
    captured: u64,
    received: u64,
    kernel_drops: u64,
    inside_drops: u64,
    written: u64,
}

fn summary(stderr: &[String]) -> Summary {
    let line = stderr
        .iter()
        .find(|l| l.contains("packets captured"))
        .unwrap_or_else(|| panic!("no summary on stderr: {stderr:?}"));
    let num = |label: &str| -> u64 {
        let at = line
            .find(label)
            .unwrap_or_else(|| panic!("{label:?} not in summary {line:?}"));
        line[..at]
            .trim_end()
            .rsplit([',', ' '])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {label:?} in {line:?}"))
    };
    Summary {
        captured: num(" packets captured"),
        received: num(" received by filter"),
        kernel_drops: num(" dropped by kernel"),
        inside_drops: num(" dropped inside netpipe-fast"),
        written: num(" written"),
    }
}

/// The exit status and closing line agree with the summary's kernel drops: exit 16 with
/// "not everything was captured: N packet(s) dropped by the kernel on vb" when N > 0, else
/// exit 0 and no such line.
fn assert_exit_reports_kernel_drops(status: &ExitStatus, stderr: &[String], s: &Summary) {
    let closing = stderr.iter().find(|l| l.contains("dropped by the kernel"));
    if s.kernel_drops == 0 {
        assert!(status.success(), "exit {status:?}; stderr: {stderr:?}");
        assert_eq!(closing, None, "{stderr:?}");
        return;
    }
    assert_eq!(
        status.code(),
        Some(16),
        "exit {status:?}; stderr: {stderr:?}"
    );
    let want = format!(
        "netpipe-fast: not everything was captured: {} packet(s) dropped by the kernel on vb \
         (capture ring full;",
        s.kernel_drops
    );
    assert!(
        closing.is_some_and(|l| l.starts_with(&want)),
        "no closing line {want:?}: {stderr:?}"
    );
}

/// Sends frames 0..k, stops the capture with SIGINT once all are written, and checks that
/// each appears exactly once with the `data` that `read` gives.
fn every_frame_once(workers: &str, tag: &str) {
    let Some((pair, dir)) = live_setup(tag) else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let cap = Capture::listening(
        &pair.b,
        &out,
        &ring_args(FILTER, "4", &["--workers", workers]),
    );
    let frames = test_frames(0..200);
    let mut sender = Sender::open(&pair.a);
    sender.send(&frames);
    let stderr = cap.stop_after(frames.len());

    let text = fs::read_to_string(&out).expect("read the output");
    assert_eq!(
        data_counts(&text),
        data_from_read(&dir, &frames),
        "every frame exactly once, as read decodes it"
    );
    let s = summary(&stderr);
    assert_eq!(s.written, frames.len() as u64, "{s:?}");
    assert_eq!(s.captured, s.written, "{s:?}");
    assert_eq!((s.kernel_drops, s.inside_drops), (0, 0), "{s:?}");
    assert!(s.received >= s.captured, "{s:?}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["wire_len"], v["cap_len"], "{line}");
        assert!(v["time_ns"].as_i64().is_some_and(|t| t > 0), "{line}");
    }
}

#[test]
fn one_worker_writes_every_frame_once() {
    every_frame_once("1", "w1");
}

#[test]
fn two_workers_write_every_frame_once() {
    every_frame_once("2", "w2");
}

#[test]
fn count_stops_after_exactly_that_many() {
    let Some((pair, dir)) = live_setup("cnt") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    // Two workers on round robin, so both hand out packet numbers.
    let cap = Capture::listening(
        &pair.b,
        &out,
        &ring_args(
            FILTER,
            "4",
            &["--workers", "2", "--fanout", "lb", "--count", "50"],
        ),
    );
    let mut sender = Sender::open(&pair.a);
    sender.send(&test_frames(0..200));
    let (status, stderr) = cap.finish();
    assert!(status.success(), "exit {status:?}; stderr: {stderr:?}");
    let text = fs::read_to_string(&out).expect("read the output");
    assert_eq!(text.lines().count(), 50, "exactly 50 records");
    assert!(text.ends_with('\n'));
    let s = summary(&stderr);
    assert_eq!((s.captured, s.written), (50, 50), "{s:?}");
}

#[test]
fn sigint_mid_stream_prints_a_summary_that_adds_up() {
    let Some((pair, dir)) = live_setup("int") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let mut cap = Capture::listening(
        &pair.b,
        &out,
        &ring_args(FILTER, "8", &["--workers", "2", "--stats-interval", "0.2"]),
    );

    // A sender thread keeps frames coming until told to stop.
    let streaming = Arc::new(AtomicBool::new(true));
    let a = pair.a.clone();
    let flag = Arc::clone(&streaming);
    let stream = std::thread::spawn(move || {
        let mut sender = Sender::open(&a);
        let mut n = 0u32;
        while flag.load(Ordering::Relaxed) && n < 1_000_000 {
            sender.send(&test_frames(n..n + 50));
            n += 50;
        }
        n
    });
    cap.wait_for_records(500);
    // The running summary shows up while capturing.
    cap.wait_for_line("capture: ");
    cap.process.signal("-INT");
    let (status, stderr) = cap.finish();
    streaming.store(false, Ordering::Relaxed);
    let sent = stream.join().expect("sender thread");

    let bytes = fs::read(&out).expect("read the output");
    assert_eq!(bytes.last(), Some(&b'\n'), "the file ends on a whole line");
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines = text.lines().count() as u64;
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
    let s = summary(&stderr);
    // The unpaced stream may overrun the rings on a busy machine: then exit 16, else 0.
    assert_exit_reports_kernel_drops(&status, &stderr, &s);
    assert_eq!(s.written, lines, "written == lines in the file: {s:?}");
    assert_eq!(s.captured, s.written + s.inside_drops, "{s:?}");
    assert!(
        s.received >= s.captured + s.kernel_drops,
        "received by filter covers captured and dropped: {s:?}"
    );
    assert!(
        lines >= 500 && lines <= u64::from(sent),
        "{lines} of {sent} sent"
    );
    // No duplicates: every record is a different frame.
    assert!(
        data_counts(&text).values().all(|&n| n == 1),
        "a frame was written twice"
    );
}

#[test]
fn missing_interface_exits_13() {
    let Some((pair, _dir)) = live_setup("miss") else {
        return;
    };
    let out = bin_in(&pair.b)
        .args(["capture", "--iface", "nope0", "-o", "-"])
        .output()
        .expect("run capture");
    assert_eq!(out.status.code(), Some(13), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("\"nope0\"") && stderr.contains("no such interface"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

// ---- replay (TX ring) into capture ----

/// Runs `netpipe-fast replay --iface va FILE ARGS...` in namespace `ns`; returns its exit
/// status and stderr.
fn replay(ns: &str, pcap: &Path, args: &[&str]) -> (ExitStatus, String) {
    let out = bin_in(ns)
        .args(["replay", "--iface", "va"])
        .arg(pcap)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run replay");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replays `pcap` from namespace `ns`, which must succeed; returns replay's stderr.
fn replay_ok(ns: &str, pcap: &Path) -> String {
    let (status, replay_err) = replay(ns, pcap, &[]);
    assert!(status.success(), "replay: {status:?} {replay_err}");
    replay_err
}

/// Writes `frames` to the pcap file `pcap` and replays it from namespace `ns`, which must
/// succeed and send every frame; returns replay's stderr.
fn replay_frames(ns: &str, pcap: &Path, frames: &[Vec<u8>]) -> String {
    write_pcap(pcap, 1, PCAP_TIME_NS, frames);
    let replay_err = replay_ok(ns, pcap);
    assert_eq!(
        replay_count(&replay_err, " frames sent"),
        frames.len() as u64,
        "{replay_err}"
    );
    replay_err
}

/// The file `name` of pcaps/.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(name)
}

/// A capture filter that keeps a replayed file's own frames only: none from the veth pair's
/// MACs (what the namespaces' stacks send themselves).
fn not_from_the_pair(pair: &NetnsPair) -> String {
    format!(
        "not ether src {} and not ether src {}",
        pair.mac(&pair.a, "va"),
        pair.mac(&pair.b, "vb")
    )
}

/// The number before `label` in replay's summary line ("replay: N frames sent, ...").
fn replay_count(stderr: &str, label: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or_else(|| panic!("no replay summary: {stderr}"));
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not in {line:?}"));
    line[..at]
        .trim_end()
        .rsplit([',', ' ', '('])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {line:?}"))
}

/// Replays a generated pcap of unique frames with `netpipe-fast replay` from A, captures on
/// B with `workers` workers: every frame once, with the `data` that `read` gives.
fn replay_every_frame_once(workers: &str, tag: &str, top_level: bool) {
    let Some((pair, dir)) = live_setup(tag) else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let args = ring_args(FILTER, "8", &["--workers", workers]);
    let mut cap = if top_level {
        // The form without a command word.
        Capture::start_as(&pair.b, &out, &[], &args)
    } else {
        Capture::start(&pair.b, &out, &args)
    };
    cap.wait_listening();
    let frames = test_frames(0..2000);
    let pcap = dir.path("replay.pcap");
    let replay_err = replay_frames(&pair.a, &pcap, &frames);
    assert_eq!(replay_count(&replay_err, " rejected by the kernel"), 0);
    let stderr = cap.stop_after(frames.len());

    let text = fs::read_to_string(&out).expect("read the output");
    assert_eq!(
        data_counts(&text),
        data_from_read(&dir, &frames),
        "every replayed frame exactly once, as read decodes it"
    );
    let s = summary(&stderr);
    assert_eq!((s.written, s.captured), (2000, 2000), "{s:?}");
    assert_eq!((s.kernel_drops, s.inside_drops), (0, 0), "{s:?}");
}

#[test]
fn replay_into_one_worker_every_frame_once() {
    replay_every_frame_once("1", "rp1", false);
}

#[test]
fn replay_into_four_workers_every_frame_once_top_level_form() {
    replay_every_frame_once("4", "rp4", true);
}

/// The fixture pcaps/mixed.pcap through replay and capture: what was sent (everything the
/// MTU allows) comes out once each, as `read` decodes the same frames.
#[test]
fn replay_of_the_mixed_fixture_matches_read() {
    let Some((pair, dir)) = live_setup("mix") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let fixture = fixture("mixed.pcap");
    // The fixture's own frames only.
    let filter = not_from_the_pair(&pair);
    let cap = Capture::listening(
        &pair.b,
        &out,
        &["--workers", "2", "--filter", &filter, "--ring-mb", "16"],
    );
    let replay_err = replay_ok(&pair.a, &fixture);
    let sent = replay_count(&replay_err, " frames sent");
    let too_long = replay_count(&replay_err, " not sent");
    assert!(sent > 10_000, "{replay_err}");
    cap.stop_after(sent as usize);

    // What `read` gives for the frames the veth MTU (1500) lets through.
    let mtu_ok = Command::new(BIN)
        .arg("read")
        .arg(&fixture)
        .args([
            "-q",
            "-o",
            "-",
            "--filter",
            "len <= 1514 or (vlan and len <= 1518)",
        ])
        .output()
        .expect("run read");
    assert!(mtu_ok.status.success());
    let expected = data_counts(&String::from_utf8(mtu_ok.stdout).expect("utf-8"));
    let got = data_counts(&fs::read_to_string(&out).expect("read the output"));
    assert_eq!(
        expected.values().sum::<usize>() as u64,
        sent,
        "{replay_err}"
    );
    assert_eq!(too_long + sent, 13_620, "{replay_err}");
    assert_eq!(
        got, expected,
        "every sent frame once, decoded as read decodes it"
    );
}

/// `count` test frames with `tags` inserted after the MAC addresses, replayed through a
/// fresh veth pair into a capture with a 4-worker ring: the capture's JSON lines, the test's
/// folder and the frames sent; `None` where `live_setup` skips.
fn capture_tagged(name: &str, tags: &[u8], count: u32) -> Option<(String, TempDir, Vec<Vec<u8>>)> {
    let (pair, dir) = live_setup(name)?;
    let out = dir.path("capture.jsonl");
    let cap = Capture::listening(
        &pair.b,
        &out,
        &ring_args("ether src 02:00:00:00:00:01", "4", &[]),
    );
    let frames: Vec<Vec<u8>> = (0..count)
        .map(|n| {
            let mut f = test_frame(n);
            f.splice(12..12, tags.iter().copied());
            f
        })
        .collect();
    replay_frames(&pair.a, &dir.path("tagged.pcap"), &frames);
    cap.stop_after(frames.len());
    let text = fs::read_to_string(&out).expect("read the output");
    Some((text, dir, frames))
}

/// 802.1Q frames through the capture path: veth hands the tag to the kernel's metadata, the
/// ring reports it in tp_vlan_tci and the capture puts it back: `dot1q` is in the JSON and
/// the record equals what `read` gives for the tagged frame.
#[test]
fn vlan_tagged_frames_keep_their_dot1q_layer() {
    let Some((text, dir, frames)) = capture_tagged("vl", &[0x81, 0x00, 0xa0, 0x2a], 20) else {
        return;
    };
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let tag = &v["data"]["dot1q"];
        assert_eq!(
            (tag["vlan"].as_u64(), tag["prio"].as_u64()),
            (Some(42), Some(5)),
            "{line}"
        );
        assert!(v["data"]["ip"].is_object(), "{line}");
        assert_eq!(v["wire_len"], v["cap_len"], "{line}");
        // The tag is counted in the length again: 4 bytes more than the untagged frame.
        let untagged = test_frame(0).len() as u64;
        assert!(
            v["wire_len"].as_u64().is_some_and(|l| l >= untagged + 4),
            "{line}"
        );
    }
    assert_eq!(data_counts(&text), data_from_read(&dir, &frames));
}

/// 802.1ad (QinQ) frames through the capture path: an outer S-tag (TPID 0x88a8, VLAN 100,
/// priority 3) around an inner 802.1Q C-tag (VLAN 42, priority 5). On receive the kernel
/// moves the outer tag into the packet's metadata whatever the offload settings (the receive
/// path untags 0x8100 and 0x88a8 frames before packet sockets see them), so the ring reports
/// it in tp_vlan_tci with tp_vlan_tpid 0x88a8 and the capture must put it back with that
/// TPID: each record equals what `read` gives for the same frames (a tag put back as 0x8100
/// would decode as `dot1q`, not `dot1ad`, and differ).
#[test]
fn qinq_tagged_frames_are_captured_as_read_decodes_them() {
    let tags = [0x88, 0xa8, 0x60, 0x64, 0x81, 0x00, 0xa0, 0x2a];
    let Some((text, dir, frames)) = capture_tagged("qq", &tags, 30) else {
        return;
    };
    assert_eq!(
        data_counts(&text),
        data_from_read(&dir, &frames),
        "every QinQ frame once, decoded as read decodes it"
    );
    // Both tags are counted in the length again: 8 bytes more than the untagged frame.
    let untagged = test_frame(0).len() as u64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let data = &v["data"];
        let outer = &data["dot1ad"];
        assert_eq!(
            (outer["vlan"].as_u64(), outer["prio"].as_u64()),
            (Some(100), Some(3)),
            "{line}"
        );
        let inner = &data["dot1q"];
        assert_eq!(
            (inner["vlan"].as_u64(), inner["prio"].as_u64()),
            (Some(42), Some(5)),
            "{line}"
        );
        assert!(data["ip"].is_object(), "{line}");
        assert_eq!(v["wire_len"], v["cap_len"], "{line}");
        assert!(
            v["wire_len"].as_u64().is_some_and(|l| l >= untagged + 8),
            "{line}"
        );
    }
}

/// Ethernet + IPv4 TCP (SYN) from `sport` to `dport`, tagged with `n` in the payload.
fn tcp_frame(n: u32, sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = sport.to_be_bytes().to_vec();
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&n.to_be_bytes()); // seq
    tcp.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(format!("preset test {n}").as_bytes());
    ipv4_frame(None, 6, n as u16, &tcp)
}

fn udp_frame(n: u32, dport: u16) -> Vec<u8> {
    let tag = format!("preset test {n}");
    let mut udp = 40_000u16.to_be_bytes().to_vec();
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + tag.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(tag.as_bytes());
    ipv4_frame(None, 17, n as u16, &udp)
}

/// An ARP request from SRC_MAC / 192.0.2.1 for 192.0.2.(n % 250).
fn arp_frame(n: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, (n % 250) as u8]);
    f
}

/// A filter and each preset, all capturing at once on B while one replay sends a mix with a
/// known answer for each: exactly the matching frames come out of each.
#[test]
fn filter_and_each_preset_capture_exactly_the_matching_frames() {
    if !live_available() {
        return;
    }
    // (label, frame). Labels say which presets match.
    let mut mix: Vec<(&str, Vec<u8>)> = Vec::new();
    for round in 0..3u32 {
        let n = |k: u32| round * 100 + k;
        mix.push(("arp", arp_frame(n(0))));
        mix.push(("icmp", test_frame(n(2) * 3 + 2)));
        mix.push(("tcp", tcp_frame(n(3), 40_000, 80)));
        mix.push(("tcp", tcp_frame(n(4), 443, 40_001)));
        mix.push(("tcp", tcp_frame(n(5), 40_002, 8010)));
        mix.push(("tcp", tcp_frame(n(6), 40_003, 8443)));
        mix.push(("ssh", tcp_frame(n(7), 40_004, 22)));
        mix.push(("telnet", tcp_frame(n(8), 23, 40_005)));
        mix.push(("other-tcp", tcp_frame(n(9), 40_006, 25)));
        mix.push(("udp", udp_frame(n(10), 53)));
        mix.push(("udp", udp_frame(n(11), 9999)));
    }
    // The custom filter: SMTP or DNS.
    let custom = "tcp dst port 25 or udp dst port 53";
    let custom_match = |label: &str, f: &[u8]| {
        label == "other-tcp" || (label == "udp" && f.get(36..38) == Some(&[0, 53][..]))
    };

    let (pair, dir) = (NetnsPair::new("np-cap", "pre", None), scratch_dir("pre"));
    // Only our frames (the veth pair's own IPv6 chatter would match udp otherwise).
    let ours = "ether src 02:00:00:00:00:01";
    let mut runs: Vec<(String, Capture)> = Vec::new();
    for preset in ["arp", "icmp", "tcp", "ssh", "telnet", "udp"] {
        let out = dir.path(&format!("{preset}.jsonl"));
        let cap = Capture::start(&pair.b, &out, &ring_args(ours, "2", &["--preset", preset]));
        runs.push((preset.to_owned(), cap));
    }
    let custom_filter = format!("( {custom} ) and {ours}");
    let out = dir.path("custom.jsonl");
    runs.push((
        "custom".to_owned(),
        Capture::start(&pair.b, &out, &ring_args(&custom_filter, "2", &[])),
    ));
    for (_, cap) in &mut runs {
        cap.wait_listening();
    }
    let frames: Vec<Vec<u8>> = mix.iter().map(|(_, f)| f.clone()).collect();
    let pcap = dir.path("mix.pcap");
    replay_frames(&pair.a, &pcap, &frames);

    for (name, cap) in runs {
        let expected: Vec<Vec<u8>> = mix
            .iter()
            .filter(|(label, f)| {
                if name == "custom" {
                    custom_match(label, f)
                } else {
                    *label == name
                }
            })
            .map(|(_, f)| f.clone())
            .collect();
        assert!(!expected.is_empty());
        cap.wait_for_records(expected.len());
        cap.process.signal("-INT");
        let out = cap.out.clone();
        let (status, stderr) = cap.finish();
        assert!(
            status.success(),
            "{name}: exit {status:?}; stderr: {stderr:?}"
        );
        let text = fs::read_to_string(&out).expect("read the output");
        let sub = scratch_dir(&format!("pre-{name}"));
        assert_eq!(
            data_counts(&text),
            data_from_read(&sub, &expected),
            "{name}: exactly the matching frames"
        );
        assert_eq!(summary(&stderr).written, expected.len() as u64, "{name}");
    }
}

/// A tiny ring and an output nobody reads: the kernel drops, the summary and a closing line
/// say how many, the run ends with exit 16, and captured + dropped accounts for every frame
/// sent.
#[test]
fn kernel_drops_are_counted_with_a_tiny_ring_and_a_stalled_output() {
    let Some((pair, dir)) = live_setup("drop") else {
        return;
    };
    let mut cmd = bin_in(&pair.b);
    cmd.args(["capture", "--iface", "vb"])
        .args([
            "--filter",
            FILTER,
            "--ring-mb",
            "1",
            "--block-kb",
            "4",
            "-o",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut cap = Process::start(&mut cmd, DEADLINE);
    let mut stdout = cap.child.stdout.take().expect("stdout");
    cap.wait_for_stderr("listening on vb");
    // Nobody reads stdout while 20,000 frames arrive: the pipe fills, the publisher waits,
    // the workers wait, the 2 x 4 KiB blocks fill, and the kernel drops.
    let frames = test_frames(0..20_000);
    let pcap = dir.path("flood.pcap");
    replay_frames(&pair.a, &pcap, &frames);
    // Now read everything, so the capture can drain and stop.
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut all).expect("read stdout");
        all
    });
    cap.signal("-INT");
    let (status, lines) = cap.finish();
    let out = reader.join().expect("reader");
    let s = summary(&lines);
    assert!(s.kernel_drops > 0, "no kernel drops: {s:?}");
    // Packets lost in the kernel are a loss like any other: exit 16, and a closing line
    // with the same count, naming the interface.
    assert_exit_reports_kernel_drops(&status, &lines, &s);
    let written_lines = out.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(s.written, written_lines, "{s:?}");
    assert_eq!(s.captured, s.written + s.inside_drops, "{s:?}");
    assert_eq!(s.received, 20_000, "every frame passed the filter: {s:?}");
    assert_eq!(
        s.captured + s.kernel_drops,
        s.received,
        "captured + dropped by kernel == sent: {s:?}"
    );
}

/// `--user`: after the rings are open the process runs as that user (all four uids, the
/// group, the supplementary groups), and it still captures.
#[test]
fn user_switch_after_the_rings_are_open_still_captures() {
    if !live_available() {
        return;
    }
    let id = |flag: &str| -> String {
        let o = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("run id");
        assert!(o.status.success(), "no user nobody: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let (uid, gid, groups) = (id("-u"), id("-g"), id("-G"));
    let (pair, dir) = (NetnsPair::new("np-cap", "usr", None), scratch_dir("usr"));
    // The output is opened after the switch: the directory must be writable by nobody.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = dir.path("capture.jsonl");
    let mut cap = Capture::start(
        &pair.b,
        &out,
        &ring_args(FILTER, "4", &["--user", "nobody"]),
    );
    cap.wait_for_line("switched to user \"nobody\"");
    cap.wait_listening();
    let status = fs::read_to_string(format!("/proc/{}/status", cap.process.child.id()))
        .expect("read /proc/PID/status");
    let field = |name: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(field("Uid:"), vec![uid.clone(); 4], "{status}");
    assert_eq!(field("Gid:"), vec![gid.clone(); 4], "{status}");
    let mut want_groups: Vec<String> = groups.split_whitespace().map(str::to_owned).collect();
    let mut got_groups = field("Groups:");
    want_groups.sort();
    got_groups.sort();
    assert_eq!(got_groups, want_groups, "{status}");
    assert_eq!(
        field("CapEff:"),
        vec!["0000000000000000".to_owned()],
        "{status}"
    );

    let frames = test_frames(0..100);
    let pcap = dir.path("replay.pcap");
    replay_frames(&pair.a, &pcap, &frames);
    cap.stop_after(frames.len());
    let owner = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&out).expect("output").uid()
    };
    assert_eq!(
        owner.to_string(),
        uid,
        "the output file is created as the user"
    );
    let text = fs::read_to_string(&out).expect("read the output");
    assert_eq!(data_counts(&text), data_from_read(&dir, &frames));
}

/// `--user` started as a NON-root user that holds ambient capabilities (as systemd's
/// `AmbientCapabilities=` or a capability-aware launcher gives them): the uid does not move
/// away from 0, so the kernel clears nothing by itself. After the switch the running capture
/// must hold no capability in any set (and the bounding set is empty when CAP_SETPCAP allowed
/// dropping it), no_new_privs is set, and it still captures. The second run is the issue's
/// case (CapEff 0x3042: net_raw, net_admin, setgid, dac_override, no setpcap); the third holds
/// only the capture capabilities (no CAP_SETGID to set groups with).
#[test]
fn user_switch_from_ambient_capabilities_leaves_none() {
    if !live_available() {
        return;
    }
    let (pair, dir) = (NetnsPair::new("np-cap", "amb", None), scratch_dir("amb"));
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).expect("chmod");
    // A copy nobody can run wherever the checkout is (it may sit under a 0700 home).
    let bin = dir.path("netpipe-fast");
    fs::copy(BIN, &bin).expect("copy the binary");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    let frames = test_frames(0..20);
    let pcap = dir.path("replay.pcap");
    for (run, caps, bounding_emptied) in [
        (0, "+net_raw,+net_admin,+setuid,+setgid,+setpcap", true),
        (1, "+net_raw,+net_admin,+setgid,+dac_override", false),
        // Only what capture needs: no id can change, none has to.
        (2, "+net_raw,+net_admin", false),
    ] {
        let out = dir.path(&format!("capture-{run}.jsonl"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &pair.b, "setpriv"])
            .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
            .args(["--inh-caps", caps, "--ambient-caps", caps])
            .arg(&bin)
            .args(["capture", "--iface", "vb"])
            .args(ring_args(FILTER, "4", &["--user", "nobody"]))
            .arg("-o")
            .arg(format!("file:{}", out.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut cap = Capture {
            process: Process::start(&mut cmd, DEADLINE),
            out: out.clone(),
        };
        let switched = cap.process.wait_for_stderr("switched to user \"nobody\"");
        assert!(switched.contains("no capabilities left"), "{switched}");
        assert_eq!(
            switched.contains("bounding set kept"),
            !bounding_emptied,
            "{switched}"
        );
        cap.wait_listening();
        // Every thread of the running capture (workers and publisher included), once they
        // have started (bounded poll).
        let pid = cap.process.child.id();
        let task_dir = format!("/proc/{pid}/task");
        let threads = || fs::read_dir(&task_dir).map(Iterator::count).unwrap_or(0);
        let end = Instant::now() + DEADLINE;
        while threads() < 3 {
            assert!(Instant::now() < end, "the capture threads did not start");
            std::thread::sleep(POLL);
        }
        let tasks = fs::read_dir(&task_dir).expect("list the threads");
        let mut seen = 0;
        for task in tasks {
            let status =
                fs::read_to_string(task.expect("task").path().join("status")).expect("status");
            let field = |name: &str| -> String {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {status}"))
                    .trim()
                    .to_owned()
            };
            for name in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
                assert_eq!(field(name), "0000000000000000", "{caps}: {status}");
            }
            if bounding_emptied {
                assert_eq!(field("CapBnd:"), "0000000000000000", "{caps}: {status}");
            }
            assert_eq!(field("NoNewPrivs:"), "1", "{caps}: {status}");
            seen += 1;
        }
        assert!(seen >= 3, "main, worker and publisher threads checked");
        replay_frames(&pair.a, &pcap, &frames);
        cap.stop_after(frames.len());
    }
}

#[test]
fn unknown_user_exits_18_before_opening_anything() {
    // Needs no root: the name is looked up before any socket is opened.
    let out = Command::new(BIN)
        .args(["--iface", "nope0", "--user", "no-such-user-np", "-o", "-"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(18), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "netpipe-fast: --user \"no-such-user-np\": no such user"
    );
}

#[test]
fn top_level_form_and_replay_report_missing_interfaces_as_13() {
    let Some((pair, dir)) = live_setup("miss2") else {
        return;
    };
    let pcap = dir.path("one.pcap");
    write_pcap(&pcap, 1, PCAP_TIME_NS, &test_frames(0..1));
    for args in [
        vec!["--iface", "nope0", "-o", "-"],
        vec![
            "replay",
            "--iface",
            "nope0",
            pcap.to_str().expect("utf-8 path"),
        ],
    ] {
        let out = bin_in(&pair.b).args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(13), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("\"nope0\": no such interface"), "{stderr}");
    }
}

/// A frame the kernel refuses does not stall the TX ring: with replay running, A's MTU drops
/// to 1000, so its 1400-byte frames are refused (TP_STATUS_WRONG_FORMAT; replay checked them
/// against the MTU it read at start). They are counted as rejected, the small frames go on,
/// and every frame replay counts as sent arrives, exactly once.
#[test]
fn frames_the_kernel_refuses_are_counted_and_replay_goes_on() {
    let Some((pair, dir)) = live_setup("rej") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let cap = Capture::listening(
        &pair.b,
        &out,
        &ring_args("ether src 02:00:00:00:00:01", "8", &[]),
    );
    // Alternately 100 and 1400 bytes, every frame different within a pass.
    let frames: Vec<Vec<u8>> = (0..100u32)
        .map(|i| {
            let len = if i % 2 == 1 { 1400 } else { 100 };
            let mut f = DST_MAC.to_vec();
            f.extend_from_slice(&SRC_MAC);
            f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            f.extend_from_slice(&i.to_be_bytes());
            f.resize(len, i as u8);
            f
        })
        .collect();
    let pcap = dir.path("sizes.pcap");
    write_pcap(&pcap, 1, PCAP_TIME_NS, &frames);
    let mut replay = bin_in(&pair.a)
        .args(["replay", "--iface", "va"])
        .arg(&pcap)
        .args(["--pps", "4000", "--loop", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start replay");
    cap.wait_for_records(200);
    ip(&["-n", &pair.a, "link", "set", "va", "mtu", "1000"]);
    let refused_from = cap.lines_written();
    // Small frames keep arriving while the big ones are refused. 400 records: the output
    // lags what was received, by over 200 lines when other tests share the cores.
    cap.wait_for_records(refused_from + 400);
    let ok = Command::new("kill")
        .args(["-INT", &replay.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut replay.stderr.take().expect("stderr"), &mut err)
        .expect("replay stderr");
    let status = replay.wait().expect("wait for replay");
    assert!(status.success(), "replay: {status:?} {err}");
    let sent = replay_count(&err, " frames sent");
    let rejected = replay_count(&err, " rejected by the kernel");
    assert!(rejected >= 50, "{err}");
    let stderr = cap.stop_after(sent as usize);
    let s = summary(&stderr);
    assert_eq!(
        s.written, sent,
        "every frame sent arrived once: {s:?} / {err}"
    );
    // Once the MTU is down, no big frame gets through: the big frames stop for good and at
    // least 150 small ones follow the last of them (the run went on for 400 records after
    // the change). Where exactly they stop is left open: frames the kernel took before the
    // change still arrive after it, and the output lags what was received, by more on a
    // loaded machine than a fixed number of lines could allow for.
    let text = fs::read_to_string(&out).expect("read the output");
    let lens: Vec<u64> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
            v["wire_len"].as_u64().expect("wire_len")
        })
        .collect();
    let last_big = lens.iter().rposition(|&l| l > 1018).unwrap_or(0);
    let small_after = lens.len() - 1 - last_big;
    assert!(
        small_after >= 150,
        "only {small_after} frames after the last one longer than MTU 1000 allows \
         ({} lines, the MTU went down after {refused_from})",
        lens.len()
    );
}

/// `--loop 3 --pps 3000` of 200 frames: 600 frames, each frame three times, and no faster
/// than asked (the pacing can only make it later, never earlier, so the lower bound holds
/// on a busy machine too).
#[test]
fn replay_loops_and_paces() {
    let Some((pair, dir)) = live_setup("pace") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let cap = Capture::listening(&pair.b, &out, &ring_args(FILTER, "4", &[]));
    let frames = test_frames(0..200);
    let pcap = dir.path("pace.pcap");
    write_pcap(&pcap, 1, PCAP_TIME_NS, &frames);
    let started = Instant::now();
    let (status, err) = replay(&pair.a, &pcap, &["--pps", "3000", "--loop", "3"]);
    let took = started.elapsed();
    assert!(status.success(), "replay: {status:?} {err}");
    assert_eq!(replay_count(&err, " frames sent"), 600, "{err}");
    // 600 frames at 3000/s: the last batch may not start before 199 ms... and the 600th
    // frame is due at 599/3000 s.
    assert!(took >= Duration::from_millis(195), "{took:?}: {err}");
    assert!(replay_count(&err, " frames/s") <= 3150, "{err}");
    cap.stop_after(600);
    let got = data_counts(&fs::read_to_string(&out).expect("read the output"));
    let once = data_from_read(&dir, &frames);
    assert_eq!(got.len(), once.len());
    for (data, n) in &once {
        assert_eq!(got.get(data), Some(&(n * 3)), "each frame three times");
    }
}

/// Without CAP_NET_RAW (run as nobody): exit 12 and a line saying what is needed, for the
/// top-level capture form and for replay alike.
#[test]
fn without_cap_net_raw_capture_and_replay_exit_12() {
    if !live_available() {
        return;
    }
    let dir = scratch_dir("perm");
    let pcap = dir.path("one.pcap");
    write_pcap(&pcap, 1, PCAP_TIME_NS, &test_frames(0..1));
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(&pcap, fs::Permissions::from_mode(0o644)).expect("chmod");
    // A copy nobody can run wherever the checkout is (it may sit under a 0700 home).
    let bin = dir.path("netpipe-fast");
    fs::copy(BIN, &bin).expect("copy the binary");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    for args in [
        vec!["--iface", "lo", "-o", "-"],
        vec![
            "replay",
            "--iface",
            "lo",
            pcap.to_str().expect("utf-8 path"),
        ],
    ] {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(&args)
            .output()
            .expect("run runuser");
        assert_eq!(out.status.code(), Some(12), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// `-w` during a live capture with two workers, beside the JSON: every frame replayed is in
/// the pcap/pcapng file exactly once (capinfos counts and bytes, tcpdump reads it, and `read`
/// of the file decodes the same data as the frames sent), and in the JSON too.
#[test]
fn w_writes_every_captured_frame_beside_the_json() {
    let Some((pair, dir)) = live_setup("wpcap") else {
        return;
    };
    for (name, extra) in [("cap.pcap", None), ("cap.pcapng", Some("--pcapng"))] {
        let out = dir.path(&format!("{name}.jsonl"));
        let pcap = dir.path(name);
        let pcap_arg = pcap.to_str().expect("utf-8 path").to_owned();
        let mut more = vec!["-j", "2", "-w", pcap_arg.as_str()];
        more.extend(extra);
        let cap = Capture::listening(&pair.b, &out, &ring_args(FILTER, "8", &more));
        let frames = test_frames(0..1000);
        replay_frames(&pair.a, &dir.path("replay.pcap"), &frames);
        let stderr = cap.stop_after(frames.len());
        assert!(
            stderr
                .iter()
                .any(|l| l == &format!("1000 frames written to {pcap_arg}")),
            "{stderr:?}"
        );
        let bytes: usize = frames.iter().map(Vec::len).sum();
        assert_eq!(capinfos(&pcap), (1000, bytes as u64), "{name}");
        let tcpdump = Command::new("tcpdump")
            .args(["-nn", "-q", "-r"])
            .arg(&pcap)
            .output()
            .expect("run tcpdump");
        assert!(tcpdump.status.success(), "{tcpdump:?}");
        assert_eq!(tcpdump.stdout.iter().filter(|&&b| b == b'\n').count(), 1000);
        let back = Command::new(BIN)
            .arg("read")
            .arg(&pcap)
            .args(["-q"])
            .output()
            .expect("run read");
        assert!(back.status.success(), "{back:?}");
        let want = data_from_read(&dir, &frames);
        assert_eq!(
            data_counts(&String::from_utf8(back.stdout).expect("utf-8")),
            want,
            "{name}: every frame once, byte for byte as sent"
        );
        let json = fs::read_to_string(&out).expect("read the JSON");
        assert_eq!(data_counts(&json), want, "{name}: the JSON beside it");
    }
}

/// `-i any` in a namespace with two interfaces (vb from the veth pair, and lo): frames from
/// both arrive as Linux cooked v2 with their interface's index, loopback traffic once (not
/// once sent and once received), the filter applies, `-c` stops it exactly, and the `-w`
/// file says LINUX_SLL2 to tcpdump and capinfos.
#[test]
fn any_captures_every_interface_as_linux_cooked_v2() {
    let Some((pair, dir)) = live_setup("any") else {
        return;
    };
    ip(&["-n", &pair.b, "link", "set", "lo", "up"]);
    let vb_index: u64 = ip(&["-n", &pair.b, "-o", "link", "show", "vb"])
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("vb's index");
    // -D in this namespace: lo, vb (with their indexes), then any.
    let listed = bin_in(&pair.b).arg("-D").output().expect("run -D");
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[0].starts_with("1.lo [Up, Running, Loopback] link-type EN10MB"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with(&format!("{vb_index}.vb [Up")) && lines[1].contains("EN10MB"),
        "{listed}"
    );
    assert!(lines[2].starts_with("0.any "), "{listed}");

    let json = dir.path("any.jsonl");
    let pcap = dir.path("any.pcap");
    let frames = test_frames(0..100);
    let udp_frames = frames.iter().filter(|f| f[23] == 17).count();
    let from_lo = 20;
    let total = udp_frames + from_lo;
    let mut cmd = bin_in(&pair.b);
    cmd.args(["-i", "any", "-c", &total.to_string(), "-w"])
        .arg(&pcap)
        .arg("-o")
        .arg(&json)
        .args(["udp", "dst", "port", "9999"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut cap = Process::start(&mut cmd, DEADLINE);
    cap.wait_for_stderr("listening on any, link-type LINUX_SLL2");
    replay_frames(&pair.a, &dir.path("replay.pcap"), &frames);
    let sent = Command::new("ip")
        .args(["netns", "exec", &pair.b, "/usr/bin/python3", "-c"])
        .arg(format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({from_lo}): s.sendto(b'lo %d' % i, ('127.0.0.1', 9999))"
        ))
        .status()
        .expect("send on lo");
    assert!(sent.success());
    let (status, stderr) = cap.finish();
    assert!(status.success(), "{status:?} {stderr:?}");
    let text = fs::read_to_string(&json).expect("the JSON");
    let mut by_index = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let cooked = &v["data"]["cookedlinuxv2"];
        assert!(cooked.is_object(), "not cooked: {line}");
        assert_eq!(v["data"]["udp"]["dport"], 9999, "{line}");
        *by_index
            .entry(cooked["ifindex"].as_u64().expect("ifindex"))
            .or_insert(0usize) += 1;
    }
    assert_eq!(
        by_index,
        BTreeMap::from([(1, from_lo), (vb_index, udp_frames)]),
        "frames per interface index (lo is 1, vb is {vb_index})"
    );
    assert_eq!(capinfos(&pcap).0, total as u64);
    let tcpdump = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .output()
        .expect("run tcpdump");
    assert!(
        String::from_utf8_lossy(&tcpdump.stderr).contains("LINUX_SLL2"),
        "{tcpdump:?}"
    );
    assert_eq!(
        tcpdump.stdout.iter().filter(|&&b| b == b'\n').count(),
        total
    );
}

/// A reader that goes away (`netpipe-fast -i vb | head -c 10`) ends a live capture quietly,
/// exit 0 with its summary, whether stdout carries the JSON or the `-w -` pcap.
#[test]
fn a_closed_stdout_ends_a_live_capture_quietly() {
    let Some((pair, dir)) = live_setup("pipe") else {
        return;
    };
    for extra in [&[][..], &["-w", "-"][..]] {
        let mut cmd = bin_in(&pair.b);
        cmd.args(["-i", "vb", "-f", FILTER])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut cap = Process::start(&mut cmd, DEADLINE);
        // The reading end closes before anything is written.
        drop(cap.child.stdout.take());
        cap.wait_for_stderr("listening on vb");
        // Frames until the first write has failed and the capture ended by itself.
        let pcap = dir.path("pipe.pcap");
        let mut frames = 0u32;
        while cap.child.try_wait().expect("try_wait").is_none() {
            assert!(
                frames < 50_000,
                "{extra:?}: still running after {frames} frames"
            );
            replay_frames(&pair.a, &pcap, &test_frames(frames..frames + 100));
            frames += 100;
        }
        let (status, stderr) = cap.finish();
        assert_eq!(status.code(), Some(0), "{extra:?}: {stderr:?}");
        assert!(
            !stderr.iter().any(|l| l.contains("panicked")),
            "{extra:?}: {stderr:?}"
        );
        assert!(
            stderr.iter().any(|l| l.contains("packets captured")),
            "{extra:?}: no summary: {stderr:?}"
        );
    }
}

/// `capture --reassemble` with one worker: pcaps/fragments.pcap replayed from A. Every
/// fragment is captured as itself, and the datagrams come out reassembled as `read` does it,
/// except that live capture time is all within a second: the datagram whose second half the
/// file delays 31 s completes here (9, not 8), and what `read` counts as timed out is left
/// incomplete at the end.
#[test]
fn capture_reassembles_replayed_fragments_like_read() {
    let Some((pair, dir)) = live_setup("frag") else {
        return;
    };
    let out = dir.path("capture.jsonl");
    let fixture = fixture("fragments.pcap");
    let filter = not_from_the_pair(&pair);
    let cap = Capture::listening(
        &pair.b,
        &out,
        &["--workers", "1", "--filter", &filter, "--reassemble"],
    );
    let replay_err = replay_ok(&pair.a, &fixture);
    assert_eq!(
        replay_count(&replay_err, " frames sent"),
        32,
        "{replay_err}"
    );
    let stderr = cap.stop_after(32 + 9);
    let line = stderr
        .iter()
        .find(|l| l.starts_with("reassembly:"))
        .unwrap_or_else(|| panic!("no reassembly line: {stderr:?}"));
    assert!(
        line.starts_with(
            "reassembly: 31 fragments, 9 datagrams reassembled, 3 given up (overlap 1, \
             incomplete 2), 1 duplicates, 1 overlapping (first wins)"
        ),
        "{line}"
    );
    let s = summary(&stderr);
    assert_eq!((s.captured, s.written), (32, 41), "{s:?}");

    // The reassembled messages equal read's (same data), plus the one that timed out there.
    let text = fs::read_to_string(&out).expect("read the output");
    let live: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .filter(|v: &serde_json::Value| v.get("reassembled").is_some())
        .collect();
    let read = Command::new(BIN)
        .args(["read", "-q", "--reassemble", "--reassembly-timeout", "60"])
        .arg(&fixture)
        .output()
        .expect("run read");
    let from_read: Vec<serde_json::Value> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .filter(|v: &serde_json::Value| v.get("reassembled").is_some())
        .collect();
    assert_eq!(live.len(), 9);
    assert_eq!(from_read.len(), 9);
    for (a, b) in live.iter().zip(&from_read) {
        assert_eq!(a["data"], b["data"]);
        assert_eq!(a["reassembled"], b["reassembled"]);
    }
}

/// The messages `netpipe-fast read -q ARGS PCAP` writes.
fn read_jsonl(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["read", "-q"])
        .args(args)
        .arg(pcap)
        .output()
        .expect("run read");
    assert!(out.status.success(), "read: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The lines of `jsonl`: (without a `reassembled` mark, with one).
fn split_reassembled(jsonl: &str) -> (String, String) {
    let (mut plain, mut whole) = (String::new(), String::new());
    for line in jsonl.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let to = if v.get("reassembled").is_some() {
            &mut whole
        } else {
            &mut plain
        };
        to.push_str(line);
        to.push('\n');
    }
    (plain, whole)
}

/// `capture` with two workers and `--fanout hash` (the default): pcaps/fragments.pcap replayed
/// from A. Every frame is captured once with the `data` that `read` gives, every IPv4
/// fragment included: those of the datagram whose middle fragment never comes (ident 16646)
/// and of the one with overlapping fragments (16645) too, as with one worker or tcpdump.
/// (With PACKET_FANOUT_FLAG_DEFRAG, which netpipe-fast no longer sets, the kernel put IPv4
/// fragments together before the fanout and kept those two datagrams to itself, counted
/// nowhere.) With `--reassemble` the outcome is one worker's, give-ups counted: see
/// capture_reassembles_replayed_fragments_like_read.
#[test]
fn capture_with_hash_fanout_captures_every_fragment_as_one_worker_does() {
    let Some((pair, dir)) = live_setup("frag2") else {
        return;
    };
    let fixture = fixture("fragments.pcap");
    let filter = not_from_the_pair(&pair);
    let want = data_counts(&read_jsonl(&fixture, &[]));
    assert_eq!(want.values().sum::<usize>(), 32);
    // The datagrams as `read` reassembles them when nothing times out (live, the file's 31 s
    // gap is gone).
    let (_, read_whole) = split_reassembled(&read_jsonl(
        &fixture,
        &["--reassemble", "--reassembly-timeout", "60"],
    ));
    let want_whole = data_counts(&read_whole);
    assert_eq!(want_whole.values().sum::<usize>(), 9);
    for reassemble in [false, true] {
        let out = dir.path(&format!("capture-{reassemble}.jsonl"));
        let mut args = vec!["--workers", "2", "--fanout", "hash", "--filter", &filter];
        if reassemble {
            args.push("--reassemble");
        }
        let cap = Capture::listening(&pair.b, &out, &args);
        let replay_err = replay_ok(&pair.a, &fixture);
        assert_eq!(
            replay_count(&replay_err, " frames sent"),
            32,
            "{replay_err}"
        );
        let reassembled = if reassemble { 9 } else { 0 };
        let stderr = cap.stop_after(32 + reassembled);
        let s = summary(&stderr);
        assert_eq!(
            (s.captured, s.written, s.kernel_drops, s.inside_drops),
            (32, 32 + reassembled as u64, 0, 0),
            "{s:?}"
        );

        let text = fs::read_to_string(&out).expect("read the output");
        let (plain, whole) = split_reassembled(&text);
        assert_eq!(
            data_counts(&plain),
            want,
            "--reassemble {reassemble}: every frame exactly once, as read decodes it"
        );
        // The IPv4 fragments by identification, 16645 (overlapping) and 16646 (incomplete)
        // included.
        let mut v4: BTreeMap<u64, usize> = BTreeMap::new();
        for l in plain.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            let ip = &v["data"]["ip"];
            let flags = ip["flags"].as_u64().unwrap_or(0);
            let frag = ip["frag"].as_u64().unwrap_or(0);
            if ip.is_object() && (flags & 1 == 1 || frag > 0) {
                *v4.entry(ip["id"].as_u64().expect("ip id")).or_insert(0) += 1;
            }
        }
        assert_eq!(
            v4,
            BTreeMap::from([
                (16641, 3),
                (16643, 3),
                (16644, 4),
                (16645, 3),
                (16646, 2),
                (16647, 2),
                (16651, 2),
            ]),
            "--reassemble {reassemble}: the IPv4 fragments"
        );

        let line = stderr.iter().find(|l| l.starts_with("reassembly:"));
        if reassemble {
            let line = line.unwrap_or_else(|| panic!("no reassembly line: {stderr:?}"));
            assert!(
                line.starts_with(
                    "reassembly: 31 fragments, 9 datagrams reassembled, 3 given up (overlap 1, \
                     incomplete 2), 1 duplicates, 1 overlapping (first wins), 0 bad fragments, \
                     1 late fragments"
                ),
                "{line}"
            );
            assert_eq!(data_counts(&whole), want_whole, "the reassembled datagrams");
        } else {
            assert_eq!(line, None, "{stderr:?}");
            assert!(whole.is_empty(), "{whole}");
        }
    }
}

/// Hosts of `fragments_spread_over_workers_...`, each one source address.
const FRAG_HOSTS: u8 = 48;

/// Ethernet + an IPv4 fragment of UDP from 198.51.100.`host` to 203.0.113.9: identification
/// `ident`, `bytes` at byte `offset` (a multiple of 8) of the datagram, MF when `more`. With
/// offset 0 and no MF, a whole datagram.
fn ipv4_fragment(host: u8, ident: u16, offset: usize, more: bool, bytes: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + bytes.len()) as u16;
    let frag = (u16::from(more) << 13) | (offset / 8) as u16;
    let mut hdr = vec![0x45, 0];
    hdr.extend_from_slice(&total.to_be_bytes());
    hdr.extend_from_slice(&ident.to_be_bytes());
    hdr.extend_from_slice(&frag.to_be_bytes());
    hdr.extend_from_slice(&[64, 17, 0, 0, 198, 51, 100, host, 203, 0, 113, 9]);
    let sum = checksum(&hdr);
    hdr[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&hdr);
    f.extend_from_slice(bytes);
    f
}

/// The 48-byte UDP datagram (port 40000 + `host` to 9999, no checksum) that host `host`
/// sends as identification `ident`.
fn fragment_test_udp(host: u8, ident: u16) -> Vec<u8> {
    let mut text = format!("netpipe-fast fragment test {host:03} {ident:05}").into_bytes();
    text.resize(40, b'.');
    let mut udp = (40_000 + u16::from(host)).to_be_bytes().to_vec();
    udp.extend_from_slice(&9999u16.to_be_bytes());
    udp.extend_from_slice(&48u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&text);
    udp
}

/// The OpenMetrics text at `url`, fetched from inside namespace `ns`.
fn scrape_in(ns: &str, url: &str) -> String {
    let scraped = Command::new("ip")
        .args(["netns", "exec", ns, "/usr/bin/python3", "-c"])
        .arg("import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        .arg(url)
        .output()
        .expect("scrape the metrics");
    assert!(scraped.status.success(), "scrape: {scraped:?}");
    String::from_utf8_lossy(&scraped.stdout).into_owned()
}

/// `netpipe_packets_captured_total` per worker (not "all") in the OpenMetrics text `text`.
fn captured_per_worker(text: &str) -> BTreeMap<String, u64> {
    let mut per = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("netpipe_packets_captured_total{worker=\"") else {
            continue;
        };
        let (worker, value) = rest.split_once("\"} ").expect("a sample line");
        if worker != "all" {
            per.insert(worker.to_owned(), value.trim().parse().expect("a count"));
        }
    }
    per
}

/// `capture --reassemble` with two workers and the hash fanout, 48 hosts (one source address
/// each) sending three UDP datagrams each as IPv4 fragments, interleaved across hosts and out
/// of order: one complete, one whose middle fragment never comes, one whose middle fragment
/// overlaps its first (other bytes: "first wins" keeps the first's). The kernel hashes every
/// fragment by addresses and protocol, so the fragments of one datagram share a worker while
/// the hosts spread over both (--metrics shows frames on each): every fragment is captured
/// once, both complete and overlapping datagrams of every host are reassembled as they were
/// sent, and the incomplete ones are counted as given up.
#[test]
fn fragments_spread_over_workers_are_all_captured_and_reassembled_per_datagram() {
    let Some((pair, dir)) = live_setup("fragspread") else {
        return;
    };
    // The metrics listener is on B's loopback.
    ip(&["-n", &pair.b, "link", "set", "lo", "up"]);
    let mut frames = Vec::new();
    let mut wholes = Vec::new();
    let ident = |host: u8, kind: u16| u16::from(host) * 4 + kind;
    // Round 1: the first fragments (0-16, 0-16, 0-24) of every host.
    for h in 1..=FRAG_HOSTS {
        let (a, b, c) = (ident(h, 0), ident(h, 1), ident(h, 2));
        frames.push(ipv4_fragment(h, a, 0, true, &fragment_test_udp(h, a)[..16]));
        frames.push(ipv4_fragment(h, b, 0, true, &fragment_test_udp(h, b)[..16]));
        frames.push(ipv4_fragment(h, c, 0, true, &fragment_test_udp(h, c)[..24]));
        wholes.push(ipv4_fragment(h, a, 0, false, &fragment_test_udp(h, a)));
        wholes.push(ipv4_fragment(h, c, 0, false, &fragment_test_udp(h, c)));
    }
    // Round 2: the last fragments (32-48).
    for h in 1..=FRAG_HOSTS {
        for kind in 0..3 {
            let id = ident(h, kind);
            frames.push(ipv4_fragment(
                h,
                id,
                32,
                false,
                &fragment_test_udp(h, id)[32..],
            ));
        }
    }
    // Round 3: the middle fragments (16-32) of the complete and the overlapping datagram;
    // the overlapping one's first 8 bytes differ from those its first fragment holds.
    for h in 1..=FRAG_HOSTS {
        let a = ident(h, 0);
        frames.push(ipv4_fragment(
            h,
            a,
            16,
            true,
            &fragment_test_udp(h, a)[16..32],
        ));
        let c = ident(h, 2);
        let mut mid = fragment_test_udp(h, c)[16..32].to_vec();
        mid[..8].copy_from_slice(b"OVERLAP!");
        frames.push(ipv4_fragment(h, c, 16, true, &mid));
    }
    let n = usize::from(FRAG_HOSTS);
    assert_eq!((frames.len(), wholes.len()), (8 * n, 2 * n));

    let out = dir.path("capture.jsonl");
    let mut cap = Capture::start(
        &pair.b,
        &out,
        &ring_args(
            "ether src 02:00:00:00:00:01",
            "8",
            &[
                "--workers",
                "2",
                "--fanout",
                "hash",
                "--reassemble",
                "--metrics",
                "127.0.0.1:0",
            ],
        ),
    );
    let url = cap.metrics_url();
    cap.wait_listening();
    let mut sender = Sender::open(&pair.a);
    sender.send(&frames);
    cap.wait_for_records(frames.len() + wholes.len());

    // Both workers captured some of the frames (the counts are stored every 200 ms).
    let end = Instant::now() + DEADLINE;
    let per_worker = loop {
        let per = captured_per_worker(&scrape_in(&pair.b, &url));
        if per.values().sum::<u64>() == frames.len() as u64 {
            break per;
        }
        assert!(Instant::now() < end, "captured per worker: {per:?}");
        std::thread::sleep(POLL);
    };
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert!(
        per_worker.values().all(|&c| c > 0),
        "the hash put every host on one worker: {per_worker:?}"
    );

    let stderr = cap.stop_after(frames.len() + wholes.len());
    let s = summary(&stderr);
    assert_eq!(
        (s.captured, s.written, s.kernel_drops, s.inside_drops),
        ((8 * n) as u64, (10 * n) as u64, 0, 0),
        "{s:?}"
    );
    let line = stderr
        .iter()
        .find(|l| l.starts_with("reassembly:"))
        .unwrap_or_else(|| panic!("no reassembly line: {stderr:?}"));
    assert!(
        line.starts_with(&format!(
            "reassembly: {} fragments, {} datagrams reassembled, {n} given up (incomplete {n}), \
             0 duplicates, {n} overlapping (first wins), 0 bad fragments, 0 late fragments",
            8 * n,
            2 * n
        )),
        "{line}"
    );
    let text = fs::read_to_string(&out).expect("read the output");
    let (plain, whole) = split_reassembled(&text);
    assert_eq!(
        data_counts(&plain),
        data_from_read(&dir, &frames),
        "every fragment exactly once, as read decodes it"
    );
    assert_eq!(
        data_counts(&whole),
        data_from_read(&dir, &wholes),
        "each reassembled datagram as it was sent"
    );
}

/// The value of the sample `netpipe_reassembly_given_up_total{...reason="REASON"}` in the
/// OpenMetrics text `text` (0 when absent).
fn given_up(text: &str, reason: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("netpipe_reassembly_given_up_total{"))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<u64>().ok())
        .sum()
}

/// `capture --reassemble --reassembly-global-timeout 1`: the link goes quiet after the first
/// fragment of a datagram, so capture time stops; the global (real-time) timeout gives the
/// datagram up anyway, no sooner than a second after it was sent, and `--metrics` shows it
/// while the capture runs. Its last fragment, sent after that, starts a new datagram (so
/// nothing is reassembled from the two), and a datagram whose fragments come together is
/// still reassembled. The 30 s per-datagram timeout never acts here.
#[test]
fn a_quiet_link_gives_datagrams_up_after_the_global_timeout() {
    let Some((pair, dir)) = live_setup("fragglobal") else {
        return;
    };
    ip(&["-n", &pair.b, "link", "set", "lo", "up"]);
    let out = dir.path("capture.jsonl");
    let mut cap = Capture::start(
        &pair.b,
        &out,
        &ring_args(
            "ether src 02:00:00:00:00:01",
            "8",
            &[
                "--workers",
                "1",
                "--reassemble",
                "--reassembly-global-timeout",
                "1",
                "--metrics",
                "127.0.0.1:0",
            ],
        ),
    );
    let url = cap.metrics_url();
    cap.wait_listening();
    let mut sender = Sender::open(&pair.a);
    // A datagram whose two fragments come together: reassembled.
    let whole = fragment_test_udp(1, 100);
    sender.send(&[
        ipv4_fragment(1, 100, 0, true, &whole[..24]),
        ipv4_fragment(1, 100, 24, false, &whole[24..]),
    ]);
    // The first half of another, then nothing.
    let late = fragment_test_udp(1, 101);
    let sent = Instant::now();
    sender.send(&[ipv4_fragment(1, 101, 0, true, &late[..24])]);
    let end = Instant::now() + DEADLINE;
    loop {
        let text = scrape_in(&pair.b, &url);
        if given_up(&text, "global_timeout") == 1 {
            assert_eq!(given_up(&text, "timeout"), 0, "{text}");
            break;
        }
        assert!(Instant::now() < end, "never given up: {text}");
        std::thread::sleep(POLL);
    }
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "given up {:?} after its fragment, before the global timeout",
        sent.elapsed()
    );
    // Its second half now starts a datagram of its own, incomplete at the end.
    sender.send(&[ipv4_fragment(1, 101, 24, false, &late[24..])]);
    let stderr = cap.stop_after(4 + 1);
    let line = stderr
        .iter()
        .find(|l| l.starts_with("reassembly:"))
        .unwrap_or_else(|| panic!("no reassembly line: {stderr:?}"));
    assert!(
        line.starts_with(
            "reassembly: 4 fragments, 1 datagrams reassembled, 2 given up (global_timeout 1, \
             incomplete 1), 0 duplicates"
        ),
        "{line}"
    );
    let text = fs::read_to_string(&out).expect("read the output");
    let (plain, reassembled) = split_reassembled(&text);
    assert_eq!(plain.lines().count(), 4, "every fragment as itself");
    assert_eq!(
        data_counts(&reassembled),
        data_from_read(&dir, &[ipv4_fragment(1, 100, 0, false, &whole)]),
        "only the datagram whose fragments came together"
    );
}

// ---- live capture into RabbitMQ ----

/// Relays TCP connections to 127.0.0.1:PORT inside a namespace to a Unix socket (argv 1):
/// prints "ready" once it listens.
const NETNS_RELAY: &str = r#"
import socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
print("ready", flush=True)
def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    conn, _ = listener.accept()
    up = socket.socket(socket.AF_UNIX)
    up.connect(path)
    threading.Thread(target=pump, args=(conn, up), daemon=True).start()
    threading.Thread(target=pump, args=(up, conn), daemon=True).start()
"#;

/// The shared RabbitMQ (127.0.0.1:5672 of the test's own namespace) made reachable as
/// 127.0.0.1:5672 inside namespace `ns`: a python relay there listens on that port and
/// passes each connection over a Unix socket (which crosses namespaces) to this process,
/// whose threads connect it to the broker. Only loopback traffic on either side.
struct BrokerRelay {
    child: Child,
}

impl BrokerRelay {
    fn start(ns: &str, dir: &TempDir) -> BrokerRelay {
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        let path = dir.path("amqp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind the relay");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(inside) = conn else { return };
                let Ok(broker) = std::net::TcpStream::connect(("127.0.0.1", 5672)) else {
                    return;
                };
                let (mut in_r, mut in_w) = (inside.try_clone().unwrap(), inside);
                let (mut br_r, mut br_w) = (broker.try_clone().unwrap(), broker);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut in_r, &mut br_w);
                    let _ = br_w.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut br_r, &mut in_w);
                    let _ = in_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-c", NETNS_RELAY])
            .arg(&path)
            .arg("5672")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("relay stdout"))
            .read_line(&mut line)
            .expect("relay answer");
        assert_eq!(
            line.trim(),
            "ready",
            "the relay did not start (see its stderr)"
        );
        BrokerRelay { child }
    }
}

impl Drop for BrokerRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `capture` in namespace B straight into RabbitMQ (the shared broker, through
/// [`BrokerRelay`]): frames replayed from A arrive once each, read back with kombu, each
/// body the record `read` makes of the same frame; the run ends on SIGINT with exit 0, a
/// summary of exactly the frames sent, every message confirmed and nothing more in the queue.
#[test]
fn capture_into_rabbitmq_delivers_every_replayed_frame_once() {
    let Some((pair, dir)) = live_setup("amqp") else {
        return;
    };
    let names = crate::common::kombu::AmqpNames::shared("live_amqp");
    let _relay = BrokerRelay::start(&pair.b, &dir);
    let spool = crate::common::root()
        .join("target/test-scratch")
        .join(crate::common::unique("live-amqp-spool"));
    let mut cmd = bin_in(&pair.b);
    cmd.args(["capture", "--iface", "vb"])
        .args(ring_args(FILTER, "8", &["--workers", "2"]))
        .args(["-o", crate::common::kombu::SHARED_AMQP])
        .args(names.args())
        .arg("--spool-dir")
        .arg(&spool)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut cap = Process::start(&mut cmd, Duration::from_secs(60));
    cap.wait_for_stderr("listening on vb");
    const N: u32 = 600;
    let frames = test_frames(0..N);
    let pcap = dir.path("replay.pcap");
    let replay_err = replay_frames(&pair.a, &pcap, &frames);
    assert_eq!(replay_count(&replay_err, " rejected by the kernel"), 0);

    // kombu waits for all N while the capture runs.
    let (got, _) = crate::common::kombu::bodies(&names.consume(N as usize, &[]));
    cap.signal("-INT");
    let (status, stderr) = cap.finish();
    assert!(status.success(), "exit {status:?}; stderr: {stderr:?}");
    let s = summary(&stderr);
    assert_eq!((s.captured, s.written), (N as u64, N as u64), "{s:?}");
    assert_eq!((s.kernel_drops, s.inside_drops), (0, 0), "{s:?}");
    let report = format!(
        "published {N} to amqp://guest:***@127.0.0.1:5672/%2f exchange {} queue {}, {N} \
         confirmed",
        names.exchange, names.queue
    );
    assert!(
        stderr.iter().any(|l| l.contains(&report)),
        "no {report:?}: {stderr:?}"
    );
    // Nothing was published after the N consumed: no message twice.
    let (more, left) = crate::common::kombu::bodies(&names.consume(0, &[]));
    assert_eq!((more.len(), left), (0, 0), "messages beyond the {N} frames");
    let text: String = got
        .iter()
        .map(|b| format!("{}\n", String::from_utf8_lossy(b)))
        .collect();
    assert_eq!(
        data_counts(&text),
        data_from_read(&dir, &frames),
        "every replayed frame exactly once in RabbitMQ, as read decodes it"
    );
    for body in &got {
        let v: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
        assert_eq!(v["wire_len"], v["cap_len"]);
        assert!(v["time_ns"].as_i64().is_some_and(|t| t > 0));
    }
    let _ = fs::remove_dir_all(&spool);
}
