//! tcpdump habits (issue 11, items 1 and 7): `-w` pcap/pcapng output read back by tcpdump,
//! tshark and capinfos, rotation by size, count and time, `--post-rotate`, `-r`, `read -`,
//! compressed files, a trailing filter expression, `-D`, closed pipes, and the flags that
//! changed (`-j`, `-q`, `-i` only for interfaces).

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::frames::capinfos;
use crate::common::harness::{self, TempDir};
use crate::common::stderr;
use crate::common::{bin, FIXTURE, FIXTURE_MESSAGES};
use netpipe_fast::test_util::PcapFeed;

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

fn fixture(name: &str) -> PathBuf {
    common::root().join("pcaps").join(name)
}

fn run(args: &[&OsStr]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netpipe-fast")
}

fn ok(args: &[&OsStr]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &OsStr {
    p.as_os_str()
}

fn o(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// The stdout of `tool ARGS PATH` (a capture reader given the file last), which must succeed.
fn tool_output(tool: &str, args: &[&str], path: &Path) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} -r {}: {out:?}",
        path.display()
    );
    out.stdout
}

/// Frames tcpdump reads from `path` (one line each with -q), checking it reads to the end.
fn tcpdump_count(path: &Path) -> u64 {
    let out = tool_output("tcpdump", &["-nn", "-q", "-r"], path);
    out.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Frames and total frame bytes (frame.len) tshark reads from `path`.
fn tshark_frames(path: &Path) -> (u64, u64) {
    let out = tool_output(
        "tshark",
        &["-n", "-T", "fields", "-e", "frame.cap_len", "-r"],
        path,
    );
    let text = String::from_utf8_lossy(&out);
    let lens: Vec<u64> = text
        .lines()
        .map(|l| l.trim().parse().expect("a frame length"))
        .collect();
    (lens.len() as u64, lens.iter().sum())
}

/// JSON of `read FILE` (timestamps to the nanosecond, every decoded field).
fn read_json(path: &Path) -> Vec<u8> {
    ok(&[o("read"), o("-q"), s(path)]).stdout
}

#[test]
fn w_writes_pcap_and_pcapng_that_tcpdump_tshark_and_capinfos_read_back() {
    let dir = TempDir::new("np-habits", "w");
    let input = fixture("mixed.pcap");
    let (frames, bytes) = capinfos(&input);
    assert_eq!(frames, FIXTURE_MESSAGES as u64);
    let json = read_json(&input);
    for (name, extra) in [("out.pcap", None), ("out.pcapng", Some("--pcapng"))] {
        let path = dir.path(name);
        let mut args = vec![o("read"), s(&input), o("-w"), s(&path)];
        args.extend(extra.map(o));
        let out = ok(&args);
        assert!(out.stdout.is_empty(), "-w alone writes no JSON");
        assert!(
            stderr(&out).contains(&format!("{frames} frames written to")),
            "{}",
            stderr(&out)
        );
        assert_eq!(capinfos(&path), (frames, bytes), "{name}: capinfos");
        assert_eq!(tcpdump_count(&path), frames, "{name}: tcpdump");
        assert_eq!(tshark_frames(&path), (frames, bytes), "{name}: tshark");
        // Every byte and nanosecond survived: the JSON of the copy is the JSON of the input.
        assert!(read_json(&path) == json, "{name}: read back differs");
        let info = Command::new("capinfos")
            .arg("-t")
            .arg("-a")
            .arg(&path)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.contains("nanosecond") || extra.is_some(),
            "{name}: not nanosecond pcap: {info}"
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600, "{name}");
    }
    // pcapng with several link types in one file (pcap refuses: one link type per file).
    let mixed_links = [fixture("ethernet-arp.pcap"), fixture("bsd-loopback.pcap")];
    let ng = dir.path("links.pcapng");
    ok(&[
        o("read"),
        s(&mixed_links[0]),
        s(&mixed_links[1]),
        o("--pcapng"),
        o("-w"),
        s(&ng),
    ]);
    let want: u64 = mixed_links.iter().map(|p| capinfos(p).0).sum();
    assert_eq!(tshark_frames(&ng).0, want);
    let refused = run(&[
        o("read"),
        s(&mixed_links[0]),
        s(&mixed_links[1]),
        o("-w"),
        s(&dir.path("l.pcap")),
    ]);
    assert_eq!(refused.status.code(), Some(8), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--pcapng"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn w_and_json_together_and_w_dash_to_stdout() {
    let dir = TempDir::new("np-habits", "wjson");
    let input = fixture("mixed.pcap");
    let json = read_json(&input);
    let pcap = dir.path("both.pcap");
    let jsonl = dir.path("both.jsonl");
    ok(&[
        o("read"),
        o("-q"),
        s(&input),
        o("-w"),
        s(&pcap),
        o("-o"),
        s(&jsonl),
    ]);
    assert!(fs::read(&jsonl).unwrap() == json, "JSON beside -w differs");
    assert_eq!(capinfos(&pcap), capinfos(&input));

    // -w - : the pcap on stdout, tcpdump reads it from a pipe.
    let out = ok(&[o("read"), o("-q"), s(&input), o("-w"), o("-")]);
    let piped = dir.path("piped.pcap");
    fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(capinfos(&piped), capinfos(&input));
    // ... and the JSON cannot go there too.
    let both = run(&[o("read"), s(&input), o("-w"), o("-"), o("-o"), o("-")]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(both.stdout.is_empty());
    // Rotation needs a file.
    let rot = run(&[o("read"), s(&input), o("-w"), o("-"), o("-C"), o("1")]);
    assert_eq!(rot.status.code(), Some(2), "{}", stderr(&rot));
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    n.sort();
    n
}

#[test]
fn size_rotation_and_a_ring_of_files_with_post_rotate() {
    let input = fixture("mixed.pcap");
    let (frames, bytes) = capinfos(&input);
    let size = fs::metadata(&input).unwrap().len();
    assert!(
        size > 4_000_000,
        "the fixture should span several 1 MB files"
    );

    // -C 1: cap, cap1, cap2, ...; each but the last over 1,000,000 bytes by less than one
    // record, all together every frame once.
    let dir = TempDir::new("np-habits", "size");
    let out_dir = dir.path("out");
    fs::create_dir(&out_dir).unwrap();
    let log = dir.path("post.log");
    let script = dir.path("post.sh");
    // Copies each file when handed over: the copy shows the file was complete by then.
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncp \"$1\" \"{copies}/$(basename \"$1\").copy\"\necho \"$1\" >> {log}\n",
            copies = dir.0.display(),
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let base = out_dir.join("cap");
    ok(&[
        o("read"),
        o("-q"),
        s(&input),
        o("-w"),
        s(&base),
        o("-C"),
        o("1"),
        o("--post-rotate"),
        s(&script),
    ]);
    let files = names(&out_dir);
    let expected_files = size.div_ceil(1_000_000) as usize;
    assert!(
        files.len() >= expected_files - 1 && files.len() <= expected_files + 1,
        "{files:?}"
    );
    let mut want = vec!["cap".to_owned()];
    want.extend((1..files.len()).map(|i| format!("cap{i}")));
    want.sort();
    assert_eq!(files, want);
    let (mut f_sum, mut b_sum) = (0, 0);
    for name in &files {
        let p = out_dir.join(name);
        let (f, b) = capinfos(&p);
        f_sum += f;
        b_sum += b;
        let len = fs::metadata(&p).unwrap().len();
        assert!(len <= 1_000_000 + 262_144 + 16, "{name}: {len} bytes");
        // --post-rotate saw the complete file.
        let copy = dir.path(&format!("{name}.copy"));
        assert!(
            fs::read(&copy).unwrap() == fs::read(&p).unwrap(),
            "{name}: --post-rotate ran before the file was complete"
        );
    }
    assert_eq!((f_sum, b_sum), (frames, bytes));
    let logged = fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), files.len(), "{logged}");

    // pcapng rotates the same way; every file has its section and interface blocks.
    let ng = dir.path("ng");
    fs::create_dir(&ng).unwrap();
    ok(&[
        o("read"),
        o("-q"),
        s(&input),
        o("--pcapng"),
        o("-w"),
        s(&ng.join("cap")),
        o("-C"),
        o("1"),
    ]);
    let ng_files = names(&ng);
    assert!(ng_files.len() >= 4, "{ng_files:?}");
    let (mut f_sum, mut b_sum) = (0, 0);
    for name in &ng_files {
        let (f, b) = capinfos(&ng.join(name));
        assert_eq!(tshark_frames(&ng.join(name)), (f, b), "{name}");
        f_sum += f;
        b_sum += b;
    }
    assert_eq!((f_sum, b_sum), (frames, bytes));

    // -W 2: a ring of cap0 and cap1 (the newest frames), each complete.
    let ring = dir.path("ring");
    fs::create_dir(&ring).unwrap();
    ok(&[
        o("read"),
        o("-q"),
        s(&input),
        o("-w"),
        s(&ring.join("cap")),
        o("-C"),
        o("1"),
        o("-W"),
        o("2"),
    ]);
    assert_eq!(names(&ring), ["cap0", "cap1"]);
    for n in ["cap0", "cap1"] {
        let (f, _) = capinfos(&ring.join(n));
        assert!(f > 0 && f < frames, "{n}: {f}");
    }
}

/// Writes one 60-byte Ethernet/IPv4 frame numbered `n` (captured at `n` seconds) to `feed`.
fn pcap_record(feed: &mut PcapFeed, n: u32) {
    let mut frame = vec![0u8; 60];
    frame[12] = 0x08; // IPv4
    frame[14] = 0x45;
    frame[20..24].copy_from_slice(&n.to_be_bytes());
    feed.write(i64::from(n) * 1_000_000_000, &frame).unwrap();
}

/// `read -q FIFO ARGS` fed through the named pipe `fifo` (made here) one record at a time,
/// each followed by a short poll, until `done` says so (it is asked before each record and
/// may assert; no third file etc. within DEADLINE fails with `what`); then the pipe closes
/// and the run must end successfully. Returns how many records were sent.
fn feed_until(fifo: &Path, args: &[&OsStr], what: &str, mut done: impl FnMut() -> bool) -> u32 {
    harness::mkfifo(fifo);
    let mut child = bin()
        .args([o("read"), o("-q"), s(fifo)])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut feed = PcapFeed::create(fifo, 1, 65_535).unwrap();
    let end = Instant::now() + DEADLINE;
    let mut sent = 0u32;
    while !done() {
        assert!(Instant::now() < end, "no {what} in time");
        pcap_record(&mut feed, sent);
        feed.flush().unwrap();
        sent += 1;
        std::thread::sleep(POLL);
    }
    drop(feed);
    let status = child.wait().unwrap();
    let err = harness::read_stderr(&mut child);
    assert!(status.success(), "{status:?} {err}");
    sent
}

/// -G: a `read` fed through a FIFO keeps getting frames until a second file appears (polled,
/// no sleep decides the outcome); then the FIFO closes. Every file is complete, named by the
/// strftime pattern, and the frames add up.
#[test]
fn time_rotation_opens_strftime_named_files() {
    let dir = TempDir::new("np-habits", "time");
    let out_dir = dir.path("out");
    fs::create_dir(&out_dir).unwrap();
    let pattern = out_dir.join("cap-%Y%m%d-%H%M%S.pcap");
    let sent = feed_until(
        &dir.path("feed"),
        &[o("-w"), s(&pattern), o("-G"), o("1")],
        "third file",
        || names(&out_dir).len() >= 3,
    );
    let files = names(&out_dir);
    let mut total = 0;
    for n in &files {
        assert!(
            n.starts_with("cap-20")
                && n.ends_with(".pcap")
                && n.len() == "cap-YYYYmmdd-HHMMSS.pcap".len(),
            "{n}"
        );
        total += capinfos(&out_dir.join(n)).0;
    }
    assert_eq!(total, u64::from(sent), "{files:?}");
}

/// -G with -W 2: a ring of the two newest files; --post-rotate sees every file as it closes
/// (complete: the copy it makes equals what capinfos reads), even the ones later removed.
#[test]
fn time_rotation_with_a_file_count_keeps_the_newest() {
    let dir = TempDir::new("np-habits", "timering");
    let out_dir = dir.path("out");
    fs::create_dir(&out_dir).unwrap();
    let copies = dir.path("copies");
    fs::create_dir(&copies).unwrap();
    let script = dir.path("post.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncp \"$1\" \"{}/$(basename \"$1\")\"\n",
            copies.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let pattern = out_dir.join("cap-%H%M%S.pcap");
    // Until three files have been closed (so at least one was removed again).
    let sent = feed_until(
        &dir.path("feed"),
        &[
            o("-w"),
            s(&pattern),
            o("-G"),
            o("1"),
            o("-W"),
            o("2"),
            o("--post-rotate"),
            s(&script),
        ],
        "third rotation",
        || {
            assert!(names(&out_dir).len() <= 2, "{:?}", names(&out_dir));
            names(&copies).len() >= 3
        },
    );
    let kept = names(&out_dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // Every closed file reached --post-rotate complete; together they hold every frame.
    let all = names(&copies);
    let total: u64 = all.iter().map(|n| capinfos(&copies.join(n)).0).sum();
    assert_eq!(total, u64::from(sent), "{all:?}");
    for n in &kept {
        assert!(
            fs::read(out_dir.join(n)).unwrap() == fs::read(copies.join(n)).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn r_flag_stdin_and_network_filter() {
    let input = fixture("mixed.pcap");
    let json = read_json(&input);
    // The top-level -r form and read -r.
    let top = ok(&[o("-r"), s(&input), o("-q")]).stdout;
    assert!(top == json, "netpipe-fast -r FILE differs from read FILE");
    let r = ok(&[o("read"), o("-r"), s(&input), o("-q")]).stdout;
    assert!(r == json);
    // read - : stdin, pcap and pcapng.
    for name in ["mixed.pcap", "big-endian.pcapng"] {
        let path = fixture(name);
        let mut child = bin()
            .args(["read", "-q", "-"])
            .stdin(fs::File::open(&path).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut got = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
        assert!(child.wait().unwrap().success());
        assert!(got == read_json(&path), "{name} on stdin differs");
    }
    // A pipe, not a file: stdin from another process.
    let mut cat = Command::new("cat")
        .arg(&input)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = bin()
        .args(["read", "-q", "-"])
        .stdin(cat.stdout.take().unwrap())
        .output()
        .unwrap();
    cat.wait().unwrap();
    assert!(
        out.status.success() && out.stdout == json,
        "{}",
        stderr(&out)
    );
    // read -f falls back to NETWORK_FILTER, as capture does.
    let arp = ok(&[o("read"), o("-q"), s(&input), o("-f"), o("arp")]).stdout;
    let env = bin()
        .args([o("read"), o("-q"), s(&input)])
        .env("NETWORK_FILTER", "arp")
        .output()
        .unwrap();
    assert!(env.status.success());
    assert!(
        !arp.is_empty() && env.stdout == arp,
        "NETWORK_FILTER not used by read"
    );
}

#[test]
fn compressed_files_get_one_line_naming_the_compressor() {
    let dir = TempDir::new("np-habits", "gz");
    let input = fixture("ethernet-arp.pcap");
    for (tool, ext) in [
        ("gzip", "gz"),
        ("zstd", "zst"),
        ("xz", "xz"),
        ("bzip2", "bz2"),
    ] {
        let path = dir.path(&format!("arp.pcap.{ext}"));
        let out = Command::new(tool).arg("-c").arg(&input).output();
        let Ok(out) = out else {
            panic!("{tool} is not installed (scripts/test.sh installs it)");
        };
        fs::write(&path, &out.stdout).unwrap();
        let json = dir.path(&format!("{ext}.jsonl"));
        let run = run(&[o("read"), s(&path), o("-o"), s(&json)]);
        assert_eq!(run.status.code(), Some(4), "{tool}: {}", stderr(&run));
        let line = stderr(&run)
            .lines()
            .find(|l| l.contains("compressed"))
            .unwrap_or_else(|| panic!("{tool}: no line: {}", stderr(&run)))
            .to_owned();
        assert!(line.contains(&format!("{tool}-compressed")), "{line}");
        assert!(line.contains(&format!("{tool} -dc")), "{line}");
        // The way the line gives works.
        let shell = format!(
            "{tool} -dc {} | {} read -q -",
            path.display(),
            env!("CARGO_BIN_EXE_netpipe-fast")
        );
        let piped = Command::new("sh").arg("-c").arg(&shell).output().unwrap();
        assert!(piped.status.success());
        assert!(
            piped.stdout == read_json(&input),
            "{tool}: decompressed read differs"
        );
    }
}

#[test]
fn trailing_expression_is_the_filter_and_is_checked_before_any_output() {
    let dir = TempDir::new("np-habits", "expr");
    let input = fixture("mixed.pcap");
    let with_f = ok(&[o("read"), o("-q"), s(&input), o("-f"), o("udp port 53")]).stdout;
    assert!(!with_f.is_empty());
    let tcpdump = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&input)
        .arg("udp port 53")
        .output()
        .unwrap();
    let tcpdump_count = tcpdump.stdout.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(common::lines(&with_f).len(), tcpdump_count);
    // One quoted word, or several words (joined, as tcpdump does), after the files.
    let one = ok(&[o("read"), o("-q"), s(&input), o("udp port 53")]).stdout;
    let many = ok(&[o("read"), o("-q"), s(&input), o("udp"), o("port"), o("53")]).stdout;
    assert!(one == with_f && many == with_f);
    // -r then the expression.
    let r = ok(&[o("-r"), s(&input), o("-q"), o("udp"), o("port"), o("53")]).stdout;
    assert!(r == with_f);
    // Two files, then the expression.
    let two = ok(&[o("read"), o("-q"), s(&input), s(&input), o("udp port 53")]).stdout;
    assert_eq!(common::lines(&two).len(), 2 * tcpdump_count);
    // A missing file that looks like one is "cannot open", not a filter.
    let missing = run(&[o("read"), s(&input), s(&dir.path("nope.pcap"))]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    // Both -f and an expression: usage error.
    let both = run(&[o("read"), s(&input), o("-f"), o("arp"), o("udp")]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    // A bad expression: refused (7) before the JSON or pcap output exists.
    let json = dir.path("x.jsonl");
    let pcap = dir.path("x.pcap");
    let bad = run(&[
        o("read"),
        s(&input),
        o("udp prt 53"),
        o("-o"),
        s(&json),
        o("-w"),
        s(&pcap),
    ]);
    assert_eq!(bad.status.code(), Some(7), "{}", stderr(&bad));
    assert!(
        !json.exists() && !pcap.exists(),
        "output created before the filter was checked"
    );
}

#[test]
fn w_never_writes_through_links_or_into_files_of_others() {
    let dir = TempDir::new("np-habits", "sec");
    let input = fixture("ethernet-arp.pcap");
    let victim = dir.path("victim");
    fs::write(&victim, b"keep me").unwrap();
    let link = dir.path("link.pcap");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = run(&[o("read"), s(&input), o("-w"), s(&link)]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    let hard = dir.path("hard.pcap");
    fs::hard_link(&victim, &hard).unwrap();
    let out = run(&[o("read"), s(&input), o("-w"), s(&hard)]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    // -o PATH (JSON) is opened the same way.
    for dest in [
        link.display().to_string(),
        format!("file:{}", hard.display()),
    ] {
        let out = run(&[o("read"), s(&input), o("-o"), o(&dest)]);
        assert_eq!(out.status.code(), Some(8), "{dest}: {}", stderr(&out));
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    }
    let json = dir.path("new.jsonl");
    ok(&[o("read"), o("-q"), s(&input), o("-o"), s(&json)]);
    assert_eq!(fs::metadata(&json).unwrap().mode() & 0o777, 0o600);
    // A rotated name that is a planted link is refused too, and nothing is written through it.
    let base = dir.path("rot");
    std::os::unix::fs::symlink(&victim, dir.path("rot1")).unwrap();
    let out = run(&[
        o("read"),
        o("-q"),
        s(&fixture("mixed.pcap")),
        o("-w"),
        s(&base),
        o("-C"),
        o("1"),
    ]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    // A file of another user is not emptied (as root: plant one owned by nobody).
    if harness::root_available("-w over another user's file") {
        let theirs = dir.path("theirs.pcap");
        fs::write(&theirs, b"theirs").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let out = run(&[o("read"), s(&input), o("-w"), s(&theirs)]);
        assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("owned by uid 65534"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(&theirs).unwrap(), b"theirs");
    }
    // Our own earlier file is replaced, as tcpdump does.
    let mine = dir.path("mine.pcap");
    fs::write(&mine, vec![b'x'; 100_000]).unwrap();
    ok(&[o("read"), o("-q"), s(&input), o("-w"), s(&mine)]);
    assert_eq!(capinfos(&mine), capinfos(&input));
}

#[test]
fn list_interfaces_names_loopback_with_index_link_type_and_address() {
    for flag in ["-D", "--list-interfaces"] {
        let out = ok(&[o(flag)]);
        let text = String::from_utf8_lossy(&out.stdout);
        let lo = text
            .lines()
            .find(|l| {
                l.split_once('.')
                    .is_some_and(|(_, rest)| rest.starts_with("lo ["))
            })
            .unwrap_or_else(|| panic!("{flag}: no lo line: {text}"));
        let index: u32 = lo.split('.').next().unwrap().parse().expect("index first");
        let sys = fs::read_to_string("/sys/class/net/lo/ifindex").unwrap();
        assert_eq!(index.to_string(), sys.trim(), "{lo}");
        assert!(lo.contains("link-type EN10MB (Ethernet)"), "{lo}");
        if lo.contains("[Up") {
            assert!(lo.contains("127.0.0.1/8"), "{lo}");
        }
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("0.any [Up, Running] link-type LINUX_SLL2"),
            "{last}"
        );
    }
}

/// Runs `args` with stdout a pipe whose reading end is already closed, so the first write
/// fails with EPIPE: no panic, no crash, a normal exit code.
fn closed_stdout(args: &[&OsStr], stdin: Stdio) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let err = harness::read_stderr(&mut child);
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        status.code().is_some_and(|c| c != 101),
        "{args:?}: {status:?} {err}"
    );
    Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    }
}

#[test]
fn a_closed_pipe_ends_every_printing_subcommand_quietly() {
    let input = fixture("mixed.pcap");
    for args in [
        vec![o("read"), s(&input)],
        vec![o("read"), s(&input), o("-w"), o("-")],
        vec![o("-r"), s(&input), o("-j"), o("2")],
        vec![o("-D")],
        vec![o("--help")],
        vec![o("read"), o("--help")],
        vec![o("send"), o("udp"), o("--port"), o("9")],
    ] {
        let out = closed_stdout(&args, Stdio::null());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    // send tcp-large to a listener of our own that reads everything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        all.len()
    });
    let out = closed_stdout(
        &[o("send"), o("tcp-large"), o("--port"), o(&port)],
        Stdio::null(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        server.join().unwrap() > 300_000,
        "the large message was sent"
    );
    // listen udp: prints one line per datagram.
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = TempDir::new("np-habits", "pipe");
    let mut child = bin()
        .args(["listen", "udp", "--port", &port.to_string(), "--count", "1"])
        .arg("--shutdown-hook")
        .arg(dir.path("stop"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let lines = harness::lines_of(child.stderr.take().unwrap());
    let end = Instant::now() + DEADLINE;
    let mut err = Vec::new();
    loop {
        let line = lines
            .recv_timeout(end - Instant::now())
            .expect("listening line");
        let listening = line.contains("listening on");
        err.push(line);
        if listening {
            break;
        }
    }
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"hello", ("127.0.0.1", port))
        .unwrap();
    let status = child.wait().unwrap();
    err.extend(lines.iter());
    let err = err.join("\n");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn changed_flags_workers_quiet_and_input() {
    let input = fixture("mixed.pcap");
    // -w is no longer the worker count: "2" is a file name.
    let dir = TempDir::new("np-habits", "flags");
    let two = dir.path("2");
    ok(&[o("read"), o("-q"), s(&input), o("-w"), s(&two)]);
    assert_eq!(capinfos(&two).0, FIXTURE_MESSAGES as u64);
    // dataset prepare: -i is gone (it means interface elsewhere), --input stays.
    let out = run(&[o("dataset"), o("prepare"), o("-i"), o("x/*.csv")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let help = ok(&[o("dataset"), o("prepare"), o("--help")]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("-q, --quiet") && help.contains("--input <GLOB>"),
        "{help}"
    );
    assert!(
        !help.contains("--show-summary"),
        "the old spelling is hidden: {help}"
    );
    // -q silences the summary that is printed otherwise.
    for (quiet, want_summary) in [(true, false), (false, true)] {
        let out_dir = dir.path(&format!("ds-{quiet}"));
        fs::create_dir_all(&out_dir).unwrap();
        let mut args = vec![
            o("dataset"),
            o("prepare"),
            o("--input"),
            o("tests/dataset/*/recorded-*.csv"),
            o("--output-dir"),
            s(&out_dir),
            o("--seed"),
            o("1"),
        ];
        if quiet {
            args.push(o("-q"));
        }
        let out = bin()
            .args(&args)
            .env_remove("SHOW_SUMMARY")
            .env_remove("FULLDATA_FILE")
            .env_remove("CLEANED_FILE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            !out.stderr.is_empty(),
            want_summary,
            "-q {quiet}: {}",
            stderr(&out)
        );
    }
    // capture's tcpdump letters parse (an unknown interface then fails as 13, not 2).
    let help = ok(&[o("capture"), o("--help")]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "-j, --workers",
        "-w, --write",
        "-p, --no-promisc",
        "-Z, --user",
        "-D, --list-interfaces",
        "-G, --rotate-seconds",
        "-C, --rotate-mb",
        "-W, --rotate-files",
        "-s, --snaplen",
        "-c, --count",
    ] {
        assert!(help.contains(flag), "capture --help lacks {flag}");
    }
    // -i means interface wherever an interface is asked for.
    let help = ok(&[o("send"), o("arp"), o("--help")]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("-i, --iface"));
    let help = ok(&[o("replay"), o("--help")]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("-i, --iface"));
    let _ = FIXTURE;
}

/// Without CAP_NET_RAW (run as nobody), `replay` says replay needs it, and `capture` says
/// live capture does; both exit 12.
#[test]
fn replay_without_privilege_speaks_of_replay() {
    if !harness::root_available("running as nobody") {
        return;
    }
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_netpipe-fast"))
            .args(args)
            .current_dir(common::root())
            .output()
            .expect("run setpriv");
        (out.status.code(), stderr(&out))
    };
    let (code, err) = as_nobody(&["replay", "-i", "lo", "pcaps/ethernet-arp.pcap"]);
    assert_eq!(code, Some(12), "{err}");
    assert!(err.contains("replay needs CAP_NET_RAW"), "{err}");
    assert!(!err.contains("live capture"), "{err}");
    let (code, err) = as_nobody(&["capture", "-i", "lo"]);
    assert_eq!(code, Some(12), "{err}");
    assert!(err.contains("live capture needs CAP_NET_RAW"), "{err}");
}
