//! The `netpipe-fast read` command line, checked as a user sees it: exit codes, error lines,
//! the summary, and the JSON lines on stdout (docs/FORMAT.md).
//!
//! Exit codes under test: 0 ok, 2 usage, 3 cannot open, 4 not a capture, 5 truncated or
//! corrupt, 6 unsupported link type, 7 bad filter, 8 output cannot be written.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::frames::{packet_records, write_pcap};
use crate::common::harness::TempDir;
use crate::common::BIN;

const PCAPS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps");
const ENVELOPE_KEYS: [&str; 6] = [
    "data", "created", "source", "time_ns", "wire_len", "cap_len",
];
const ERROR_PREFIX: &str = "netpipe-fast: ";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the binary with `args`, stdin closed and `SOURCE_HOST` unset (so the default applies).
fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command(args).output().expect("spawn netpipe-fast")
}

fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SOURCE_HOST")
        .env_remove("FORWARD_BROKER_URL")
        .stdin(Stdio::null());
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stderr ---\n{}\n--- stdout (first 500 bytes) ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(500)])
    )
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\n{}",
        describe(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{what}: the binary panicked\n{}",
        describe(out)
    );
}

/// Output of a successful run (exit 0), with a useful message otherwise.
fn run_ok<I, S>(args: I, what: &str) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(args);
    assert_exit(&out, 0, what);
    out.stdout
}

/// The one error line ("netpipe-fast: ...") on stderr.
fn error_line(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(ERROR_PREFIX))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one stderr line starting {ERROR_PREFIX:?}\n{}",
        describe(out)
    );
    lines[0].to_string()
}

/// Splits stdout into lines, checking it is UTF-8 and every line is complete.
fn lines(stdout: &[u8], what: &str) -> Vec<String> {
    let text =
        std::str::from_utf8(stdout).unwrap_or_else(|e| panic!("{what}: stdout is not UTF-8: {e}"));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{what}: the last line of stdout is not terminated by a newline"
    );
    text.lines().map(str::to_owned).collect()
}

/// The first `n` lines of `stdout`, newlines included, as bytes.
fn first_lines(stdout: &[u8], n: usize) -> &[u8] {
    let mut end = 0;
    for _ in 0..n {
        match stdout[end..].iter().position(|&b| b == b'\n') {
            Some(i) => end += i + 1,
            None => panic!("output has fewer than {n} lines"),
        }
    }
    &stdout[..end]
}

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(PCAPS_DIR).join(name);
    assert!(
        path.is_file(),
        "fixture {} is missing (pcaps/ is made by the fixture generator; see pcaps/README)",
        path.display()
    );
    path
}

/// Every capture file in pcaps/ (recognised by its magic number), sorted by name.
fn capture_fixtures() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(PCAPS_DIR)
        .unwrap_or_else(|e| panic!("cannot list {PCAPS_DIR}: {e}"))
        .map(|entry| entry.expect("read pcaps/ entry").path())
        .filter(|p| p.is_file() && capture_kind(p).is_some())
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "{PCAPS_DIR} holds no pcap or pcapng file"
    );
    found
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Pcap,
    Pcapng,
}

fn capture_kind(path: &Path) -> Option<Kind> {
    let mut magic = [0u8; 4];
    let mut file = fs::File::open(path).ok()?;
    std::io::Read::read_exact(&mut file, &mut magic).ok()?;
    match magic {
        // micro- and nanosecond pcap, either byte order
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1] => Some(Kind::Pcap),
        // pcapng Section Header Block type
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(Kind::Pcapng),
        _ => None,
    }
}

/// A directory under the system temp dir, unique per test, removed on drop.
fn temp_dir(label: &str) -> TempDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TempDir::new("netpipe-fast-cli", &format!("{n}-{label}"))
}

/// The keys of the outermost JSON object, in text order. `line` must be valid JSON.
fn top_level_keys(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let start = i + 1;
                i += 1;
                while b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 && expect_key {
                    keys.push(line[start..i].to_string());
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// `%Y-%m-%d %H:%M:%S` in UTC for a time in nanoseconds since the epoch, by the library's
/// formatter (whose calendar arithmetic its unit tests check against known dates); here the
/// point is that `created` and `time_ns` describe the same instant.
fn utc_text(time_ns: u64) -> String {
    let secs = (time_ns / 1_000_000_000) as i64;
    String::from_utf8_lossy(&netpipe_fast::time::format_created(secs)).into_owned()
}

/// Parses one output line and checks the envelope of docs/FORMAT.md.
fn check_message(line: &str, source: &str, ctx: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{ctx}: not valid JSON ({e}): {line}"));
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: not a JSON object: {line}"));

    let keys = top_level_keys(line);
    let mut expected: Vec<&str> = ENVELOPE_KEYS.to_vec();
    for optional in ["community_id", "community_id_outer"] {
        if obj.contains_key(optional) {
            expected.push(optional);
        }
    }
    // A TLS ClientHello's fingerprints follow the Community IDs (docs/FORMAT.md).
    if obj.contains_key("ja3") {
        expected.extend(["ja3", "ja3_hash", "ja4"]);
    }
    if obj.contains_key("decode_error") {
        expected.push("decode_error");
    }
    assert_eq!(
        keys, expected,
        "{ctx}: envelope keys or their order: {line}"
    );

    assert!(obj["data"].is_object(), "{ctx}: data is not an object");
    assert_eq!(obj["source"], source, "{ctx}: source");
    let time_ns = obj["time_ns"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ctx}: time_ns is not an unsigned integer"));
    let created = obj["created"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: created is not text"));
    assert_eq!(created, utc_text(time_ns), "{ctx}: created vs time_ns");
    let wire_len = obj["wire_len"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ctx}: wire_len is not an unsigned integer"));
    let cap_len = obj["cap_len"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ctx}: cap_len is not an unsigned integer"));
    assert!(
        cap_len <= wire_len,
        "{ctx}: cap_len {cap_len} > wire_len {wire_len}"
    );
    if let Some(err) = obj.get("decode_error") {
        assert!(
            err["layer"].is_string() && err["reason"].is_string(),
            "{ctx}: decode_error needs text layer and reason: {err}"
        );
    }
    value
}

/// Capture time of the frames in the pcap files written here (2026-11-29 18:03:11.123456).
const PCAP_TIME_NS: i64 = 1_795_975_391_123_456_000;

/// IPv4/UDP 10.0.0.1:40000 -> 10.0.0.2:7777 with payload "hi" (checksums left zero; UDP
/// allows that over IPv4, RFC 768).
fn ipv4_udp() -> Vec<u8> {
    let mut p = vec![
        0x45, 0x00, 0x00, 0x1e, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 10, 0,
        0, 2,
    ];
    p.extend_from_slice(&[0x9c, 0x40, 0x1e, 0x61, 0x00, 0x0a, 0x00, 0x00, b'h', b'i']);
    p
}

/// IPv6/UDP fd00::1:40000 -> fd00::2:7777 with payload "hi".
fn ipv6_udp() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0x00, 0x0a, 17, 64];
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0x9c, 0x40, 0x1e, 0x61, 0x00, 0x0a, 0x00, 0x00, b'h', b'i']);
    p
}

fn summary_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find(|l| l.contains("packets read"))
        .unwrap_or_else(|| panic!("no summary on stderr\n{}", describe(out)))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Errors and exit codes
// ---------------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["read"],
        vec!["read", "--no-such-flag", "x.pcap"],
        vec!["read", "--count", "many", "x.pcap"],
        vec!["no-such-subcommand"],
    ] {
        let out = run(&args);
        assert_exit(&out, 2, &format!("{args:?}"));
        assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
    }
}

#[test]
fn missing_file_exits_3_and_names_it() {
    let tmp = temp_dir("missing");
    let path = tmp.path("no-such-capture.pcap");
    let out = run([OsStr::new("read"), path.as_os_str()]);
    assert_exit(&out, 3, "missing file");
    let line = error_line(&out, "missing file");
    assert!(
        line.contains(&*path.to_string_lossy()),
        "error line does not name {}: {line}",
        path.display()
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn text_file_exits_4() {
    let tmp = temp_dir("text");
    let path = tmp.path("notes.txt");
    fs::write(
        &path,
        "this is a text file, not a packet capture\n".repeat(20),
    )
    .unwrap();
    let out = run([OsStr::new("read"), path.as_os_str()]);
    assert_exit(&out, 4, "text file");
    let line = error_line(&out, "text file");
    assert!(
        line.contains("notes.txt"),
        "error line does not name the file: {line}"
    );
    assert!(out.stdout.is_empty());
}

/// Truncates `source` at several points inside packet record `k` and checks exit 5, an error
/// line naming the file and an offset, and exactly the first `k` packets on stdout. A cut at
/// the record boundary itself is a complete file with `k` packets.
fn check_truncation(source: &Path) {
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = fs::read(source).unwrap();
    let records = packet_records(&bytes);
    assert!(records.len() >= 2, "{name}: need at least 2 packets");
    let full = run_ok([OsStr::new("read"), source.as_os_str()], &name);
    assert_eq!(
        lines(&full, &name).len(),
        records.len(),
        "{name}: one line per packet expected"
    );

    let k = (records.len() / 2).min(10);
    let (start, end) = records[k];
    let tmp = temp_dir("truncated");
    let cut_path = tmp.path(&format!("cut-{name}"));

    // A cut exactly between records: a valid, shorter file.
    fs::write(&cut_path, &bytes[..start]).unwrap();
    let out = run([OsStr::new("read"), cut_path.as_os_str()]);
    assert_exit(
        &out,
        0,
        &format!("{name} cut at a record boundary ({start})"),
    );
    assert_eq!(out.stdout, first_lines(&full, k), "{name}: cut at {start}");

    let mut cuts = vec![start + 8, start + (end - start) / 2, end - 1];
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        let what = format!("{name} cut at byte {cut} inside packet {k} ({start}..{end})");
        fs::write(&cut_path, &bytes[..cut]).unwrap();
        let out = run([OsStr::new("read"), cut_path.as_os_str()]);
        assert_exit(&out, 5, &what);
        let line = error_line(&out, &what);
        assert!(
            line.contains(&*cut_path.to_string_lossy()),
            "{what}: error line does not name the file: {line}"
        );
        let offsets = [
            start.to_string(),
            cut.to_string(),
            format!("{start:#x}"),
            format!("{cut:#x}"),
        ];
        assert!(
            offsets.iter().any(|o| line.contains(o.as_str())),
            "{what}: error line names neither the record offset {start} nor the end {cut}: {line}"
        );
        assert_eq!(
            lines(&out.stdout, &what).len(),
            k,
            "{what}: packets before the cut"
        );
        assert_eq!(out.stdout, first_lines(&full, k), "{what}: stdout");
    }
}

#[test]
fn truncated_pcap_exits_5_after_writing_earlier_packets() {
    check_truncation(&fixture("mixed.pcap"));
}

#[test]
fn truncated_pcapng_exits_5_after_writing_earlier_packets() {
    let pcapng = capture_fixtures()
        .into_iter()
        .filter(|p| capture_kind(p) == Some(Kind::Pcapng))
        .find(|p| packet_records(&fs::read(p).unwrap()).len() >= 2)
        .expect("pcaps/ holds no pcapng file with 2 or more packets");
    check_truncation(&pcapng);
}

#[test]
fn unsupported_link_type_exits_6_and_names_it() {
    let tmp = temp_dir("linktype");
    let path = tmp.path("wlan.pcap");
    // Link type 105 is IEEE 802.11; a minimal data-frame header is enough.
    write_pcap(&path, 105, PCAP_TIME_NS, &[[0x08, 0x00, 0x00, 0x00]]);
    let out = run([OsStr::new("read"), path.as_os_str()]);
    assert_exit(&out, 6, "link type 105");
    let line = error_line(&out, "link type 105");
    assert!(
        line.contains("105"),
        "error line does not name link type 105: {line}"
    );
    assert!(
        line.to_lowercase().contains("link type"),
        "error line does not say 'link type': {line}"
    );
    assert!(
        line.contains("wlan.pcap"),
        "error line does not name the file: {line}"
    );
}

#[test]
fn every_supported_link_type_is_read() {
    let ip4 = ipv4_udp();
    let ip6 = ipv6_udp();
    let mut loopback = 2u32.to_le_bytes().to_vec(); // AF_INET, capturing host's byte order
    loopback.extend_from_slice(&ip4);
    let mut ether = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    ether.extend_from_slice(&ip4);
    // SLL: packet type, ARPHRD_ETHER, address length, 8 address bytes, protocol.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip4);
    // SLL2: protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length,
    // 8 address bytes.
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(&ip4);

    let cases: [(u32, &[u8], &str); 7] = [
        (0, &loopback, "loopback"),
        (1, &ether, "ether"),
        (101, &ip4, "ip"),
        (228, &ip4, "ip"),
        (229, &ip6, "ipv6"),
        (113, &sll, "cookedlinux"),
        (276, &sll2, "cookedlinuxv2"),
    ];
    let tmp = temp_dir("linktypes");
    for (link_type, frame, first_layer) in cases {
        let what = format!("link type {link_type}");
        let path = tmp.path(&format!("lt{link_type}.pcap"));
        write_pcap(&path, link_type, PCAP_TIME_NS, &[frame]);
        let stdout = run_ok([OsStr::new("read"), path.as_os_str()], &what);
        let lines = lines(&stdout, &what);
        assert_eq!(lines.len(), 1, "{what}: one packet");
        let msg = check_message(&lines[0], "localdev", &what);
        assert!(
            msg["data"].get(first_layer).is_some(),
            "{what}: no {first_layer} layer: {}",
            lines[0]
        );
        let udp = &msg["data"]["udp"];
        assert_eq!(udp["sport"], 40000, "{what}: udp.sport in {}", lines[0]);
        assert_eq!(udp["dport"], 7777, "{what}: udp.dport in {}", lines[0]);
    }
}

#[test]
fn bad_filter_exits_7() {
    let mixed = fixture("mixed.pcap");
    for filter in ["udp port", "not a ((filter", "tcp port 99999"] {
        let out = run([
            OsStr::new("read"),
            OsStr::new("--filter"),
            OsStr::new(filter),
            mixed.as_os_str(),
        ]);
        assert_exit(&out, 7, &format!("filter {filter:?}"));
        error_line(&out, &format!("filter {filter:?}"));
        assert!(out.stdout.is_empty(), "filter {filter:?}: wrote packets");
    }
}

#[test]
fn unwritable_output_exits_8() {
    let mixed = fixture("mixed.pcap");
    let tmp = temp_dir("unwritable");
    let dest = format!("file:{}", tmp.path("no/such/dir/out.jsonl").display());
    let out = run([
        OsStr::new("read"),
        OsStr::new("-o"),
        OsStr::new(&dest),
        mixed.as_os_str(),
    ]);
    assert_exit(&out, 8, &dest);
    error_line(&out, &dest);

    // stdout on a full device: every write fails with ENOSPC.
    if let Ok(full) = fs::OpenOptions::new().write(true).open("/dev/full") {
        let out = command([OsStr::new("read"), mixed.as_os_str()])
            .stdout(full)
            .output()
            .unwrap();
        assert_exit(&out, 8, "stdout on /dev/full");
        error_line(&out, "stdout on /dev/full");
    }
}

#[test]
fn fault_in_a_later_file_keeps_earlier_packets() {
    let mixed = fixture("mixed.pcap");
    let tmp = temp_dir("later-fault");
    let missing = tmp.path("missing.pcap");
    let full = run_ok([OsStr::new("read"), mixed.as_os_str()], "mixed.pcap");
    let out = run([OsStr::new("read"), mixed.as_os_str(), missing.as_os_str()]);
    assert_exit(&out, 3, "mixed.pcap then a missing file");
    assert!(
        error_line(&out, "missing second file").contains("missing.pcap"),
        "error line does not name missing.pcap"
    );
    assert!(
        out.stdout == full,
        "packets of the first file were not all written"
    );
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

#[test]
fn count_stops_after_n_packets() {
    let mixed = fixture("mixed.pcap");
    let full = run_ok([OsStr::new("read"), mixed.as_os_str()], "mixed.pcap");
    for flag in ["-c", "--count"] {
        let out = run_ok(
            [
                OsStr::new("read"),
                OsStr::new(flag),
                OsStr::new("5"),
                mixed.as_os_str(),
            ],
            "--count 5",
        );
        assert_eq!(lines(&out, "--count 5").len(), 5);
        assert!(
            out == first_lines(&full, 5),
            "{flag} 5: not the first 5 packets"
        );
    }
}

#[test]
fn filter_udp_port_53_matches_tcpdump() {
    let mixed = fixture("mixed.pcap");
    let filter = "udp port 53";
    let out = run([
        OsStr::new("read"),
        OsStr::new("--filter"),
        OsStr::new(filter),
        mixed.as_os_str(),
    ]);
    assert_exit(&out, 0, filter);
    let got = lines(&out.stdout, filter);
    for (i, line) in got.iter().enumerate() {
        let msg = check_message(line, "localdev", &format!("{filter} line {}", i + 1));
        let udp = msg["data"]
            .get("udp")
            .unwrap_or_else(|| panic!("{filter}: line {} has no udp layer: {line}", i + 1));
        assert!(
            udp["sport"] == 53 || udp["dport"] == 53,
            "{filter}: line {} is not port 53: {line}",
            i + 1
        );
    }

    let tcpdump = Command::new("tcpdump")
        .arg("-nr")
        .arg(&mixed)
        .arg(filter)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump ({e}); scripts/test.sh installs it"));
    assert!(
        tcpdump.status.success(),
        "tcpdump failed: {}",
        String::from_utf8_lossy(&tcpdump.stderr)
    );
    let expected = tcpdump.stdout.iter().filter(|&&b| b == b'\n').count();
    assert!(
        expected > 0,
        "mixed.pcap has no DNS over UDP; the test proves nothing"
    );
    assert_eq!(got.len(), expected, "{filter}: packets vs tcpdump");

    let all = lines(
        &run_ok([OsStr::new("read"), mixed.as_os_str()], "mixed.pcap"),
        "mixed",
    )
    .len();
    let summary = summary_line(&out);
    let want = format!(
        "{all} packets read, {} written, {} filtered out",
        got.len(),
        all - got.len()
    );
    assert!(
        summary.contains(&want),
        "summary {summary:?} lacks {want:?}"
    );
}

#[test]
fn summary_on_stderr_unless_quiet() {
    let mixed = fixture("mixed.pcap");
    let out = run([OsStr::new("read"), mixed.as_os_str()]);
    assert_exit(&out, 0, "mixed.pcap");
    let n = lines(&out.stdout, "mixed.pcap").len();
    let summary = summary_line(&out);
    let want = format!("{n} packets read, {n} written, 0 filtered out, ");
    assert!(
        summary.contains(&want),
        "summary {summary:?} lacks {want:?}"
    );
    assert!(summary.contains("malformed"), "summary {summary:?}");

    for flag in ["-q", "--quiet"] {
        let out = run([OsStr::new("read"), OsStr::new(flag), mixed.as_os_str()]);
        assert_exit(&out, 0, flag);
        assert!(
            out.stderr.is_empty(),
            "{flag}: stderr not empty: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn output_file_matches_stdout() {
    let mixed = fixture("mixed.pcap");
    let stdout = run_ok([OsStr::new("read"), mixed.as_os_str()], "stdout");
    for dest in ["-", "stdout"] {
        let out = run_ok(
            [
                OsStr::new("read"),
                OsStr::new("-o"),
                OsStr::new(dest),
                mixed.as_os_str(),
            ],
            dest,
        );
        assert!(out == stdout, "-o {dest} differs from the default");
    }
    let tmp = temp_dir("output");
    let path = tmp.path("out.jsonl");
    let dest = format!("file:{}", path.display());
    let bare = path.display().to_string();
    for (flag, dest) in [("-o", &dest), ("--output", &dest), ("-o", &bare)] {
        let out = run_ok(
            [
                OsStr::new("read"),
                OsStr::new(flag),
                OsStr::new(dest),
                mixed.as_os_str(),
            ],
            dest,
        );
        assert!(out.is_empty(), "{flag} {dest}: packets also went to stdout");
        let written = fs::read(&path).unwrap();
        assert!(written == stdout, "{flag} {dest}: file differs from stdout");
        fs::remove_file(&path).unwrap();
    }
}

#[test]
fn workers_keep_file_order() {
    let mixed = fixture("mixed.pcap");
    let one = run_ok(
        [
            OsStr::new("read"),
            OsStr::new("--workers"),
            OsStr::new("1"),
            mixed.as_os_str(),
        ],
        "--workers 1",
    );
    let default = run_ok([OsStr::new("read"), mixed.as_os_str()], "default workers");
    assert!(default == one, "default differs from --workers 1");
    for flag in ["-j", "--workers"] {
        let four = run_ok(
            [
                OsStr::new("read"),
                OsStr::new(flag),
                OsStr::new("4"),
                mixed.as_os_str(),
            ],
            "--workers 4",
        );
        assert!(four == one, "{flag} 4 output differs from --workers 1");
    }

    // With a filter and a count too.
    let args = |workers: &'static str| {
        [
            OsStr::new("read"),
            OsStr::new("-j"),
            OsStr::new(workers),
            OsStr::new("-f"),
            OsStr::new("tcp or udp"),
            OsStr::new("-c"),
            OsStr::new("1000"),
            mixed.as_os_str(),
        ]
    };
    let one = run_ok(args("1"), "filtered, 1 worker");
    let four = run_ok(args("4"), "filtered, 4 workers");
    assert!(
        four == one,
        "filtered output differs between 4 workers and 1"
    );
}

#[test]
fn several_files_concatenate_in_order() {
    let mixed = fixture("mixed.pcap");
    let other = capture_fixtures()
        .into_iter()
        .find(|p| *p != mixed)
        .unwrap_or_else(|| mixed.clone());
    let a = run_ok([OsStr::new("read"), mixed.as_os_str()], "mixed.pcap");
    let b = run_ok([OsStr::new("read"), other.as_os_str()], "second fixture");
    let all = run_ok(
        [
            OsStr::new("read"),
            mixed.as_os_str(),
            other.as_os_str(),
            mixed.as_os_str(),
        ],
        "three files",
    );
    let expected = [a.as_slice(), b.as_slice(), a.as_slice()].concat();
    assert!(
        all == expected,
        "mixed + {} + mixed is not the concatenation",
        other.display()
    );

    // --count runs across file boundaries.
    let n_a = lines(&a, "mixed").len();
    let n_b = lines(&b, "second").len();
    if n_b >= 3 {
        let count = (n_a + 3).to_string();
        let out = run_ok(
            [
                OsStr::new("read"),
                OsStr::new("-c"),
                OsStr::new(&count),
                mixed.as_os_str(),
                other.as_os_str(),
            ],
            "count across files",
        );
        let expected = [a.as_slice(), first_lines(&b, 3)].concat();
        assert!(out == expected, "--count {count} across two files");
    }
}

#[test]
fn source_host_flag_and_env() {
    let mixed = fixture("mixed.pcap");
    let check_all = |stdout: &[u8], source: &str| {
        for (i, line) in lines(stdout, source).iter().take(200).enumerate() {
            check_message(line, source, &format!("source {source} line {}", i + 1));
        }
    };
    let out = run_ok(
        [
            OsStr::new("read"),
            OsStr::new("-c"),
            OsStr::new("200"),
            OsStr::new("--source-host"),
            OsStr::new("probe-7"),
            mixed.as_os_str(),
        ],
        "--source-host",
    );
    check_all(&out, "probe-7");

    let out = command([
        OsStr::new("read"),
        OsStr::new("-c"),
        OsStr::new("200"),
        mixed.as_os_str(),
    ])
    .env("SOURCE_HOST", "from-env")
    .output()
    .unwrap();
    assert_exit(&out, 0, "SOURCE_HOST");
    check_all(&out.stdout, "from-env");

    let out = command([
        OsStr::new("read"),
        OsStr::new("-c"),
        OsStr::new("200"),
        OsStr::new("--source-host"),
        OsStr::new("flag-wins"),
        mixed.as_os_str(),
    ])
    .env("SOURCE_HOST", "from-env")
    .output()
    .unwrap();
    assert_exit(&out, 0, "SOURCE_HOST and --source-host");
    check_all(&out.stdout, "flag-wins");
}

#[test]
fn every_fixture_line_is_a_valid_message() {
    for path in capture_fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stdout = run_ok([OsStr::new("read"), path.as_os_str()], &name);
        let lines = lines(&stdout, &name);
        let records = packet_records(&fs::read(&path).unwrap()).len();
        assert_eq!(lines.len(), records, "{name}: one line per packet");
        for (i, line) in lines.iter().enumerate() {
            check_message(line, "localdev", &format!("{name} line {}", i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The helpers themselves
// ---------------------------------------------------------------------------------------------

#[test]
fn helper_utc_text() {
    assert_eq!(utc_text(0), "1970-01-01 00:00:00");
    assert_eq!(utc_text(951_782_400_000_000_000), "2000-02-29 00:00:00");
    assert_eq!(utc_text(1_795_975_391_123_456_789), "2026-11-29 18:03:11");
    assert_eq!(utc_text(4_102_444_799_999_999_999), "2099-12-31 23:59:59");
}

#[test]
fn helper_top_level_keys() {
    let line = r#"{"data":{"a":{"b":"c"},"l":["x",{"y":1}]},"created":"x\"y","source":"s","n":[1,{"k":2}],"z":null}"#;
    assert_eq!(
        top_level_keys(line),
        ["data", "created", "source", "n", "z"]
    );
}

/// `--mpls-payload ether` as a user runs it: on `pcaps/tunnels.pcap` only messages with an
/// MPLS label stack change, and the Ethernet pseudowire that the default (`ip`, by the first
/// nibble) leaves as `raw` is decoded through its inner Ethernet, IPv4 and ICMP.
#[test]
fn mpls_payload_ether_decodes_pseudowires_and_changes_nothing_else() {
    let file = format!("{PCAPS_DIR}/tunnels.pcap");
    let lines = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["read", "-q"];
        args.extend_from_slice(extra);
        args.push(&file);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{extra:?}");
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let default = lines(&[]);
    let ether = lines(&["--mpls-payload", "ether"]);
    assert_eq!(
        default,
        lines(&["--mpls-payload", "ip"]),
        "ip is the default"
    );
    assert_eq!(default.len(), ether.len());
    let data = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        v["data"].as_object().expect("data object").clone()
    };
    let mut pseudowires = 0;
    for (i, (d, e)) in default.iter().zip(&ether).enumerate() {
        let (dd, ed) = (data(d), data(e));
        if !dd.contains_key("mpls") {
            assert_eq!(d, e, "message {i} has no MPLS but changed");
            continue;
        }
        assert_eq!(dd["mpls"], ed["mpls"], "message {i}: the label itself");
        if ed.contains_key("ether_2") && ed.contains_key("icmp") && !dd.contains_key("icmp") {
            assert!(dd.contains_key("raw"), "message {i}: default leaves it raw");
            pseudowires += 1;
        }
    }
    assert!(
        pseudowires >= 1,
        "no Ethernet pseudowire decoded by --mpls-payload ether"
    );
}
