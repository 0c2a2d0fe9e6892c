//! `--metrics ADDR` (Prometheus/OpenMetrics text on /metrics), `--metrics-linger`, the
//! `--stats-interval` line and `read`'s progress bar, end to end through the binary.
//!
//! Every scrape is parsed by the Prometheus project's own Python parser
//! (`prometheus_client.openmetrics.parser.text_string_to_metric_families`, from
//! target/prom-venv, which scripts/test.sh makes), never by a regex here: a text it rejects
//! fails the test. The live test runs the capture in network namespace B of a pair it
//! creates, with a private redis-server inside B, and scrapes from inside B.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::brokers::NsRedis;
use crate::common::harness::{self, NetnsPair, Process, TempDir};
use crate::common::outage::{fixture_bytes, PCAP_HEADER_BYTES};
use crate::common::BIN;
use crate::common::{bin, root, FIXTURE};

/// Every wait in this file is bounded by this.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// Fetches a URL and prints every sample the parser found as JSON: [name, labels, value,
/// family type].
const SCRAPER: &str = r#"
import json, sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    ctype = r.headers.get("Content-Type", "")
    text = r.read().decode("utf-8")
out = []
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value, fam.type])
print(json.dumps({"content_type": ctype, "samples": out}))
"#;

fn prom_python() -> PathBuf {
    common::venv_python("prom")
}

/// Whether the parser is installed; without it the test fails (scripts/test.sh installs
/// it), naming what to run.
fn require_parser() {
    let ok = Command::new(prom_python())
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "target/prom-venv with prometheus_client is missing: run scripts/test.sh (it makes it)"
    );
}

/// One parsed scrape.
#[derive(Debug)]
struct Scrape {
    content_type: String,
    /// (sample name, labels) -> value.
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// Each `(metric, word)`: the sample `metric` with `labels` equals the number before
    /// `word` in `text` (a summary or report line).
    fn assert_counts(&self, labels: &[(&str, &str)], text: &str, pairs: &[(&str, &str)]) {
        for (metric, word) in pairs {
            assert_eq!(
                self.n(metric, labels),
                count(text, word),
                "{metric} against \"{word}\" in {text:?}"
            );
        }
    }

    /// The value of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {key:?} in {:#?}", self.samples.keys()))
    }

    /// `get` as a whole number.
    fn n(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self.get(name, labels);
        assert!(v >= 0.0 && v.fract() == 0.0, "{name} {labels:?} = {v}");
        v as u64
    }

    /// Sum over the per-worker series of `name` (those whose worker is not "all"), with
    /// `also` labels matching.
    fn sum_workers(&self, name: &str, also: &[(&str, &str)]) -> u64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && l.get("worker").is_some_and(|w| w != "all")
                    && also
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| *v as u64)
            .sum()
    }
}

/// Scrapes `url` (from inside namespace `ns` when given) and parses it with
/// prometheus_client.
fn scrape(ns: Option<&str>, url: &str) -> Scrape {
    let py = prom_python();
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&py);
            c
        }
        None => Command::new(&py),
    };
    let out = cmd
        .args(["-c", SCRAPER, url])
        .output()
        .expect("run the scraper");
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the scrape of {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scraper JSON");
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for s in v["samples"].as_array().expect("samples") {
        let name = s[0].as_str().expect("name").to_string();
        let labels: BTreeMap<String, String> = s[1]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let value = s[2].as_f64().expect("value");
        types.insert(name.clone(), s[3].as_str().unwrap_or_default().to_string());
        samples.insert((name, labels), value);
    }
    Scrape {
        content_type: v["content_type"].as_str().unwrap_or_default().to_string(),
        samples,
        types,
    }
}

/// The metrics URL from the "metrics on http://ADDR/metrics" line.
fn metrics_url(p: &mut Process) -> String {
    let line = p.wait_for_stderr("metrics on http://");
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .to_string()
}

/// The number before `label` in a summary line ("13620 packets read, 13620 written, ...").
fn count(line: &str, label: &str) -> u64 {
    line.split([',', '(', ')', ';'])
        .map(str::trim)
        .find_map(|part| {
            let before = part.strip_suffix(label)?.trim_end();
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .unwrap_or_else(|| panic!("no \"N {label}\" in {line:?}"))
}

/// The number after a malformed reason in a summary line ("(truncated 34, bad length 6)").
fn reason_count(line: &str, reason: &str) -> u64 {
    line.split([',', '(', ')'])
        .map(str::trim)
        .find_map(|part| part.strip_prefix(reason)?.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// The `sink` label the scrape shows (one sink per run).
fn sink_label(s: &Scrape) -> String {
    s.samples
        .keys()
        .find(|(n, _)| n == "netpipe_messages_published_total")
        .and_then(|(_, l)| l.get("sink").cloned())
        .expect("a netpipe_messages_published_total sample")
}

fn finish_ok(p: Process) -> Vec<String> {
    let (status, stderr): (ExitStatus, Vec<String>) = p.finish();
    assert!(status.success(), "exit {status:?}; stderr: {stderr:?}");
    stderr
}

#[test]
fn read_scrape_after_the_run_equals_the_summary() {
    require_parser();
    let dir = TempDir::new("metrics", "read");
    let out = dir.path("out.jsonl");
    let mut cmd = bin();
    cmd.args(["read", FIXTURE, "pcaps/malformed.pcap", "--workers", "2"])
        .args(["-f", "not tcp", "-o"])
        .arg(format!("file:{}", out.display()))
        .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Process::start(&mut cmd, DEADLINE);
    let url = metrics_url(&mut p);
    let summary = p.wait_for_stderr("packets read");
    // The run has ended (its summary is out); the process lingers for this scrape.
    let s = scrape(None, &url);
    assert!(
        s.content_type.starts_with("application/openmetrics-text"),
        "{}",
        s.content_type
    );
    assert_eq!(s.types["netpipe_packets_captured_total"], "counter");
    assert_eq!(s.n("netpipe_run_finished", &[("command", "read")]), 1);
    let read = count(&summary, "packets read");
    let written = count(&summary, "written");
    let filtered = count(&summary, "filtered out");
    let malformed = count(&summary, "malformed");
    assert!(filtered > 0 && malformed > 0, "{summary}");
    assert_eq!(
        s.n("netpipe_packets_read_total", &[("command", "read")]),
        read
    );
    assert_eq!(
        s.n("netpipe_packets_filtered_out_total", &[("command", "read")]),
        filtered
    );
    let all = [("worker", "all")];
    assert_eq!(s.n("netpipe_packets_captured_total", &all), read - filtered);
    assert_eq!(s.n("netpipe_packets_written_total", &all), written);
    assert_eq!(s.sum_workers("netpipe_packets_written_total", &[]), written);
    assert_eq!(
        s.sum_workers("netpipe_packets_captured_total", &[]),
        read - filtered
    );
    // Both workers did some of it.
    for w in ["0", "1"] {
        assert!(s.n("netpipe_packets_captured_total", &[("worker", w)]) > 0);
    }
    let mut errors = 0;
    for reason in ["truncated", "bad length", "bad name", "bad record"] {
        let label = reason.replace(' ', "_");
        let n = s.n(
            "netpipe_decode_errors_total",
            &[("worker", "all"), ("reason", &label)],
        );
        assert_eq!(
            n,
            s.sum_workers("netpipe_decode_errors_total", &[("reason", &label)])
        );
        assert_eq!(n, reason_count(&summary, reason), "{reason}: {summary}");
        errors += n;
    }
    assert_eq!(errors, malformed);
    let sink = format!("file:{}", out.display());
    assert_eq!(sink_label(&s), sink);
    assert_eq!(
        s.n("netpipe_messages_published_total", &[("sink", &sink)]),
        written
    );
    // Capture-to-acknowledgement latency is for live capture only.
    assert!(
        !s.samples.keys().any(|(n, _)| n.contains("latency")),
        "read has no latency"
    );
    // What the file holds is what the counters say.
    let lines = std::fs::read(&out)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    assert_eq!(lines, written);
    // SIGTERM ends the linger at once; the run's exit code stands.
    p.signal("-TERM");
    finish_ok(p);
}

#[test]
fn read_reassembly_counters_equal_the_summary() {
    require_parser();
    let mut cmd = bin();
    cmd.args([
        "read",
        "--reassemble",
        "pcaps/fragments.pcap",
        "--workers",
        "2",
    ])
    .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "60"])
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    let mut p = Process::start(&mut cmd, DEADLINE);
    let url = metrics_url(&mut p);
    let summary = p.wait_for_stderr("packets read");
    let line = p.wait_for_stderr("reassembly:");
    let s = scrape(None, &url);
    assert_eq!(s.n("netpipe_run_finished", &[("command", "read")]), 1);
    let cmd = [("command", "read")];
    assert_eq!(s.types["netpipe_reassembly_fragments_total"], "counter");
    s.assert_counts(
        &cmd,
        &line,
        &[
            ("netpipe_reassembly_fragments_total", "fragments"),
            (
                "netpipe_reassembly_datagrams_total",
                "datagrams reassembled",
            ),
            ("netpipe_reassembly_duplicate_fragments_total", "duplicates"),
            ("netpipe_reassembly_late_fragments_total", "late fragments"),
        ],
    );
    let datagrams = count(&line, "datagrams reassembled");
    let mut given_up = 0;
    for reason in [
        "timeout",
        "overlap",
        "too_many_fragments",
        "too_big",
        "inconsistent",
        "memory_cap",
        "incomplete",
    ] {
        let n = s.n(
            "netpipe_reassembly_given_up_total",
            &[("command", "read"), ("reason", reason)],
        );
        assert_eq!(n, reason_count(&line, reason), "{reason}: {line}");
        given_up += n;
    }
    assert_eq!(given_up, count(&line, "given up"));
    assert!(given_up > 0 && datagrams > 0, "{line}");
    // Nothing is held once the input ended.
    assert_eq!(s.n("netpipe_reassembly_memory_bytes", &cmd), 0);
    // Captured counts frames; written counts them and the reassembled datagrams.
    let read = count(&summary, "packets read");
    assert_eq!(
        s.n("netpipe_packets_captured_total", &[("worker", "all")]),
        read
    );
    assert_eq!(count(&summary, "written"), read + datagrams);
    p.signal("-TERM");
    finish_ok(p);
}

#[test]
fn metrics_server_answers_only_its_path_and_refuses_a_busy_address() {
    let mut cmd = bin();
    cmd.args(["read", FIXTURE, "-o", "file:/dev/null"])
        .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Process::start(&mut cmd, DEADLINE);
    let url = metrics_url(&mut p);
    p.wait_for_stderr("packets read");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let ask = |request: &[u8]| -> String {
        let mut c = TcpStream::connect(&addr).expect("connect");
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c.write_all(request).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    // Clients that connect and say nothing do not stop the next scrape from being answered.
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let started = Instant::now();
    assert!(ask(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a silent client held the server"
    );
    drop(silent);
    assert!(ask(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(ask(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(ask(b"\r\n\r\n").starts_with("HTTP/1.1 400"));
    // A request head that never ends is cut off, not buffered without bound.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(vec![b'a'; 64 * 1024]);
    assert!(ask(&huge).starts_with("HTTP/1.1 400"));
    let head = ask(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("netpipe_"), "HEAD has no body: {head}");
    let ok = ask(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.trim_end().ends_with("# EOF"), "{ok}");

    // The same address again: nothing is read, usage-error exit code 2, one line.
    let busy = bin()
        .args(["read", FIXTURE, "-o", "file:/dev/null", "--metrics", &addr])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(2), "{busy:?}");
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains("--metrics") && err.contains("cannot listen"),
        "{err}"
    );
    assert!(!err.contains("packets read"), "{err}");
    p.signal("-TERM");
    finish_ok(p);
}

// ---- progress bar ----

/// Runs `read` under `script` (util-linux), which gives it a pseudo-terminal as stdin,
/// stdout and stderr; returns all the terminal showed.
fn read_on_a_terminal(args: &str) -> String {
    let out = Command::new("script")
        .args(["-qefc", &format!("{BIN} read {args}"), "/dev/null"])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn read_shows_a_progress_bar_on_a_terminal_only() {
    if !harness::command_succeeds("script", &["-qefc", "true", "/dev/null"]) {
        panic!("`script` (util-linux/bsdutils) is needed for the pseudo-terminal test");
    }
    let shown = read_on_a_terminal(&format!("{FIXTURE} {FIXTURE} -o file:/dev/null"));
    assert!(
        shown.contains("packets/s"),
        "no bar on the terminal: {shown:?}"
    );
    assert!(shown.contains("ETA"), "{shown:?}");
    assert!(shown.contains("KiB") || shown.contains("MiB"), "{shown:?}");
    assert!(shown.contains("27240 packets read"), "{shown:?}");
    // One line that fits the terminal: redrawn in place, never a cursor-up for a wrapped line.
    assert!(!shown.contains("\u{1b}[1A"), "the bar wrapped: {shown:?}");

    // -q: no bar, no summary.
    let quiet = read_on_a_terminal(&format!("{FIXTURE} -o file:/dev/null -q"));
    assert!(!quiet.contains("packets/s"), "{quiet:?}");

    // stderr a file (stdout still the terminal is irrelevant here): no bar, no escapes.
    let out = bin()
        .args(["read", FIXTURE, FIXTURE, "-o", "file:/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("packets/s"), "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    assert_eq!(
        err.trim(),
        "27240 packets read, 27240 written, 0 filtered out, 0 malformed"
    );
}

// ---- live capture in a namespace, into a private Redis ----

fn live_available() -> bool {
    harness::live_available(
        "live metrics test",
        &[(
            "redis-server",
            &["--version"],
            "redis-server is not installed",
        )],
    )
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn capture_is_scraped_while_running_and_at_the_end_equals_the_summary() {
    if !live_available() {
        return;
    }
    require_parser();
    let pair = NetnsPair::new("np-met", "cap", None);
    let dir = TempDir::new("metrics", "capture");
    let redis = NsRedis::start(&pair.b, &dir.0);
    let queue = "NETPIPE_METRICS_TEST";
    // Under target/, not the system temp dir: the spool refuses a path through a
    // world-writable directory such as /tmp.
    let spool = root()
        .join("target/test-scratch")
        .join(common::unique("metrics-spool"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.b, BIN, "capture", "--iface", "vb"])
        .args(["--workers", "2", "--ring-mb", "8", "--block-kb", "64"])
        .args(["-f", "not ip6", "-o", "redis://127.0.0.1:6379/0"])
        .args(["--queue", queue, "--spool-dir"])
        .arg(&spool)
        .args(["--stats-interval", "0.05"])
        .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut cap = Process::start(&mut cmd, DEADLINE);
    let url = metrics_url(&mut cap);
    cap.wait_for_stderr("listening on vb");

    let replayed = Command::new("ip")
        .args(["netns", "exec", &pair.a, BIN, "replay", "--iface", "va"])
        .arg(root().join(FIXTURE))
        .output()
        .expect("replay");
    assert!(replayed.status.success(), "replay: {replayed:?}");

    // While the capture runs: the counters move and the run is not finished.
    let mut during = None;
    wait_until("captured packets on /metrics", || {
        let s = scrape(Some(&pair.b), &url);
        let sink = sink_label(&s);
        // Both workers' rings set up (each reports its blocks once its ring is mapped; one
        // worker may capture before the other has finished), and packets moving.
        let moving = s.n("netpipe_packets_captured_total", &[("worker", "all")]) > 0
            && s.n("netpipe_messages_published_total", &[("sink", &sink)]) > 0
            && s.n("netpipe_ring_blocks", &[("worker", "0")]) > 0
            && s.n("netpipe_ring_blocks", &[("worker", "1")]) > 0;
        if moving {
            during = Some(s);
        }
        moving
    });
    let during = during.expect("a scrape");
    assert_eq!(
        during.n("netpipe_run_finished", &[("command", "capture")]),
        0
    );
    for w in ["0", "1", "all"] {
        let l = [("worker", w)];
        assert!(
            during.n("netpipe_packets_captured_total", &l)
                <= during.n("netpipe_packets_received_total", &l),
            "worker {w}: more captured than received"
        );
        assert!(during.n("netpipe_ring_blocks_filled", &l) <= during.n("netpipe_ring_blocks", &l));
    }
    // --ring-mb 8 over 2 workers in 64 KiB blocks: 64 blocks each.
    assert_eq!(during.n("netpipe_ring_blocks", &[("worker", "0")]), 64);
    assert_eq!(during.n("netpipe_ring_blocks", &[("worker", "all")]), 128);
    assert_eq!(
        during.n("netpipe_queue_capacity_batches", &[("command", "capture")]),
        7
    );

    cap.signal("-INT");
    let summary = cap.wait_for_stderr("packets captured");
    let end = scrape(Some(&pair.b), &url);
    assert_eq!(end.n("netpipe_run_finished", &[("command", "capture")]), 1);
    let all = [("worker", "all")];
    let captured = count(&summary, "packets captured");
    assert!(captured > 0, "{summary}");
    assert_eq!(end.n("netpipe_packets_captured_total", &all), captured);
    end.assert_counts(
        &all,
        &summary,
        &[
            ("netpipe_packets_received_total", "received by filter"),
            ("netpipe_kernel_drops_total", "dropped by kernel"),
            ("netpipe_ring_queue_freezes_total", "queue freezes"),
        ],
    );
    let written = count(&summary, "written");
    assert_eq!(end.n("netpipe_packets_written_total", &all), written);
    assert_eq!(
        end.sum_workers("netpipe_packets_written_total", &[]),
        written
    );
    assert_eq!(
        end.sum_workers("netpipe_packets_captured_total", &[]),
        captured
    );

    // The sink's counters: what Redis holds is what was published, and every published
    // message has its capture-to-acknowledgement latency recorded.
    let sink_name = sink_label(&end);
    assert!(
        sink_name.starts_with("redis://127.0.0.1:6379/0"),
        "{sink_name}"
    );
    let sink = [("sink", sink_name.as_str())];
    let in_redis: u64 = redis.cli(&["llen", queue]).parse().unwrap();
    assert_eq!(in_redis, written);
    assert_eq!(end.n("netpipe_messages_published_total", &sink), in_redis);
    assert_eq!(
        end.n("netpipe_capture_to_ack_latency_seconds_count", &sink),
        in_redis
    );
    let inf = [sink[0], ("le", "+Inf")];
    assert_eq!(
        end.n("netpipe_capture_to_ack_latency_seconds_bucket", &inf),
        in_redis
    );
    let sum = end.get("netpipe_capture_to_ack_latency_seconds_sum", &sink);
    assert!(
        sum > 0.0 && sum / (in_redis as f64) < 10.0,
        "mean latency {sum}/{in_redis}"
    );
    assert_eq!(end.n("netpipe_spool_bytes", &sink), 0);

    cap.signal("-INT");
    let stderr = finish_ok(cap);
    // Every running line: rates, and never more captured than received.
    let lines: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("capture: ") && l.contains("captured/s"))
        .collect();
    assert!(!lines.is_empty(), "no --stats-interval line: {stderr:?}");
    for l in lines {
        assert!(
            count(l, "captured") <= count(l, "received by filter"),
            "{l}"
        );
        assert!(l.contains("written/s") && l.contains("spool"), "{l}");
    }
}

// ---- a broker that stops answering: drops counted, and equal to the report ----

/// `read --when-full drop` into a private Redis that is paused (SIGSTOP) while the packets
/// arrive through a named pipe: the delivery layer drops what it has no room for. The scrape
/// after the run shows the drops by reason, the published count and the written count
/// exactly as the summary and the delivery report say them, and as Redis holds them.
#[test]
fn drops_and_publishes_of_a_stalled_broker_equal_the_report() {
    require_parser();
    let dir = TempDir::new("metrics", "drop");
    let server = common::brokers::PrivateRedis::start("metrics_drop", &[]);
    let queue = common::unique("metrics_drop_q");
    let fifo = dir.path("in.pcap");
    harness::mkfifo(&fifo);
    let mut cmd = bin();
    cmd.arg("read")
        .arg(&fifo)
        .args([
            "-o",
            &server.url(),
            "--queue",
            &queue,
            "--when-full",
            "drop",
        ])
        .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Process::start(&mut cmd, Duration::from_secs(120));
    let url = metrics_url(&mut p);
    // The reader opens the pipe once the output has connected.
    let mut pipe = std::fs::File::options().write(true).open(&fifo).unwrap();
    server.pause(true);
    write_fixture_three_times(&mut pipe);
    drop(pipe);
    // While the broker is stopped the drops show up before the run ends.
    wait_until("drops on /metrics", || {
        let s = scrape(None, &url);
        let sink = sink_label(&s);
        s.n(
            "netpipe_messages_dropped_total",
            &[("sink", &sink), ("reason", "queue_full")],
        ) > 0
    });
    server.pause(false);
    let summary = p.wait_for_stderr("packets read");
    let report = p.wait_for_stderr("delivery (--when-full drop)");
    let s = scrape(None, &url);
    assert_eq!(s.n("netpipe_run_finished", &[("command", "read")]), 1);
    let sink = sink_label(&s);
    let l = |reason: &'static str| [("sink", sink.as_str()), ("reason", reason)];
    let dropped = count(&report, "dropped");
    assert!(dropped > 0, "{report}");
    assert_eq!(
        s.n("netpipe_messages_dropped_total", &l("queue_full")),
        dropped
    );
    for other in ["spool_full", "spool_error", "refused"] {
        assert_eq!(s.n("netpipe_messages_dropped_total", &l(other)), 0);
    }
    let written = count(&summary, "written");
    assert_eq!(
        s.n("netpipe_packets_written_total", &[("worker", "all")]),
        written
    );
    assert_eq!(written + dropped, 3 * common::FIXTURE_MESSAGES as u64);
    let in_redis: u64 = redis::cmd("LLEN")
        .arg(&queue)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(in_redis, written);
    assert_eq!(
        s.n("netpipe_messages_published_total", &[("sink", &sink)]),
        in_redis
    );
    assert_eq!(count(&report, "acknowledged by the broker"), in_redis);
    p.signal("-TERM");
    let (status, stderr) = p.finish();
    // Another change makes a run that dropped messages end with exit code 16; either way
    // it is not a failure of the metrics.
    assert!(
        matches!(status.code(), Some(0) | Some(16)),
        "{status:?} {stderr:?}"
    );
}

/// Writes the fixture into `pipe` as one pcap stream holding its records three times.
fn write_fixture_three_times(pipe: &mut std::fs::File) {
    let pcap = fixture_bytes();
    pipe.write_all(&pcap).unwrap();
    for _ in 0..2 {
        pipe.write_all(&pcap[PCAP_HEADER_BYTES..]).unwrap();
    }
}

/// `read --stats-interval`: running lines with totals and rates while a pipe feeds the
/// reader; no line ever shows more written than read, and the last totals agree with the
/// summary once the pipe closes.
#[test]
fn read_stats_lines_show_rates_and_never_more_written_than_read() {
    let dir = TempDir::new("metrics", "stats");
    let fifo = dir.path("in.pcap");
    harness::mkfifo(&fifo);
    let mut cmd = bin();
    cmd.arg("read")
        .arg(&fifo)
        .args([
            "-o",
            "file:/dev/null",
            "--workers",
            "2",
            "--stats-interval",
            "0.02",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Process::start(&mut cmd, DEADLINE);
    let mut pipe = std::fs::File::options().write(true).open(&fifo).unwrap();
    write_fixture_three_times(&mut pipe);
    // With the pipe still open, the lines show what has been read so far.
    let end = Instant::now() + DEADLINE;
    while count(&p.wait_for_stderr("netpipe-fast: read: "), "read") == 0 {
        assert!(Instant::now() < end, "no progress on the stats lines");
    }
    drop(pipe);
    let summary = p.wait_for_stderr("packets read");
    let stderr = finish_ok(p);
    let lines: Vec<&String> = stderr
        .iter()
        .filter(|l| l.starts_with("netpipe-fast: read: "))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.contains(" read/s, ") && l.ends_with(" written/s"), "{l}");
        assert!(count(l, "written") <= count(l, "read"), "{l}");
        assert!(
            count(l, "read") <= 3 * common::FIXTURE_MESSAGES as u64,
            "{l}"
        );
    }
    assert_eq!(
        count(&summary, "packets read"),
        3 * common::FIXTURE_MESSAGES as u64
    );
}
