//! `--direct-io` (issue 13, live CPU per packet): JSON written to a file with O_DIRECT is the
//! same file, byte for byte, as through the page cache; a reader sees every record handed to
//! the output while the run goes on; where direct I/O is refused (tmpfs, /dev/null) the run
//! goes on through the page cache and says so in one line; other outputs refuse the flag.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::harness::{self, TempDir};
use crate::common::{bin, stderr, FIXTURE};
use netpipe_fast::test_util::PcapFeed;

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(5);
/// The buffer of `src/sink/direct_file.rs`: outputs longer than it are written in several
/// full-buffer direct writes.
const BUFFER_BYTES: u64 = 1 << 20;
/// Frames `read` gathers before handing them on (`BATCH_PACKETS`).
const BATCH: u32 = 1024;
const REFUSED: &str = "does not support direct I/O; writing through the page cache";

fn run(args: &[&OsStr]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(args: &[&OsStr]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The lines of `out`'s stderr that say direct I/O was refused.
fn refusals(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.contains("--direct-io"))
        .map(str::to_owned)
        .collect()
}

/// The file system type of `dir` as `stat -f` names it ("tmpfs", "ext2/ext3", "xfs").
fn fs_type(dir: &Path) -> String {
    let out = Command::new("stat")
        .args([o("-f"), o("-c"), o("%T"), dir.as_os_str()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `read -q FILE -j WORKERS -o OUT [--direct-io]` must succeed; returns the run.
fn read_to(input: &Path, workers: &str, out: &Path, direct: bool) -> Output {
    let mut args = vec![
        o("read"),
        o("-q"),
        input.as_os_str(),
        o("-j"),
        o(workers),
        o("-o"),
        out.as_os_str(),
    ];
    if direct {
        args.push(o("--direct-io"));
    }
    ok(&args)
}

/// Every bundled pcap (and the fixture, far larger than the buffer), with one and two
/// workers: the same bytes with and without --direct-io. On a disk file system (target/ here)
/// nothing is refused, so the direct path is what ran.
#[test]
fn direct_io_output_is_byte_identical_to_the_buffered_output() {
    let dir = TempDir::scratch("direct_io_same");
    let direct_expected = fs_type(&dir.0) != "tmpfs";
    let mut inputs: Vec<PathBuf> = fs::read_dir(crate::common::root().join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "{inputs:?}");
    let (mut unaligned, mut larger) = (0, 0);
    for input in &inputs {
        for workers in ["1", "2"] {
            let (plain, direct) = (dir.path("plain.jsonl"), dir.path("direct.jsonl"));
            read_to(input, workers, &plain, false);
            let run = read_to(input, workers, &direct, true);
            if direct_expected {
                assert_eq!(refusals(&run), Vec::<String>::new(), "{}", input.display());
            }
            let (want, got) = (fs::read(&plain).unwrap(), fs::read(&direct).unwrap());
            assert!(
                want == got,
                "{} -j {workers}: {} bytes with --direct-io, {} without",
                input.display(),
                got.len(),
                want.len()
            );
            let len = want.len() as u64;
            unaligned += u32::from(len % 4096 != 0);
            larger += u32::from(len > BUFFER_BYTES);
        }
    }
    assert!(
        unaligned >= 10 && larger >= 2,
        "{unaligned} {larger}: the inputs must cover tails and several buffers"
    );
}

/// One 60-byte Ethernet/IPv4 frame numbered `n`.
fn frame(n: u32) -> Vec<u8> {
    let mut frame = vec![0u8; 60];
    frame[12] = 0x08;
    frame[14] = 0x45;
    frame[20..24].copy_from_slice(&n.to_be_bytes());
    frame
}

/// Waits until `path` holds exactly `count` complete lines (a deadline, no sleep deciding
/// anything); returns its bytes.
fn wait_for_lines(path: &Path, count: usize) -> Vec<u8> {
    let end = Instant::now() + DEADLINE;
    loop {
        let bytes = fs::read(path).unwrap_or_default();
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        assert!(lines <= count, "{lines} lines, more than the {count} sent");
        if lines == count && bytes.last() == Some(&b'\n') {
            return bytes;
        }
        assert!(
            Instant::now() < end,
            "{} holds {lines} lines, not {count}, after {DEADLINE:?}",
            path.display()
        );
        std::thread::sleep(POLL);
    }
}

/// `read` from a named pipe the test holds open: the records handed to the output so far are
/// in the file while the run goes on (the tail of the last block is not held back for more
/// traffic), and the finished file equals the buffered output of the same frames. `read`
/// hands frames on in batches of 1,024 (or at the end of the input), so the test sends
/// whole batches and waits for exactly their records.
#[test]
fn a_reader_sees_each_record_while_the_run_goes_on() {
    let dir = TempDir::scratch("direct_io_tail");
    let (fifo, out) = (dir.path("in.pcap"), dir.path("out.jsonl"));
    harness::mkfifo(&fifo);
    let child = bin()
        .args([
            o("read"),
            o("-q"),
            fifo.as_os_str(),
            o("--direct-io"),
            o("-o"),
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = harness::Run(child);
    let mut feed = PcapFeed::create(&fifo, 1, 65_535).unwrap();
    let copy = dir.path("copy.pcap");
    let mut same = PcapFeed::create(&copy, 1, 65_535).unwrap();
    let mut sent = 0u32;
    for step in [BATCH, BATCH, 7] {
        for _ in 0..step {
            let time_ns = i64::from(sent) * 1_000_000_000;
            feed.write(time_ns, &frame(sent)).unwrap();
            same.write(time_ns, &frame(sent)).unwrap();
            sent += 1;
        }
        feed.flush().unwrap();
        if sent % BATCH == 0 {
            let bytes = wait_for_lines(&out, sent as usize);
            // The last block of the file is not full: its tail went through the page cache.
            assert_ne!(
                bytes.len() % 4096,
                0,
                "{sent} records, {} bytes",
                bytes.len()
            );
        }
    }
    drop(feed);
    same.finish().unwrap();
    let status = harness::wait_exit(&mut child.0, "read from the pipe", DEADLINE);
    let err = harness::read_stderr(&mut child.0);
    assert!(status.success(), "{status:?} {err}");
    assert!(!err.contains("--direct-io"), "{err}");
    let plain = dir.path("plain.jsonl");
    read_to(&copy, "1", &plain, false);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&plain).unwrap());
}

/// A private directory under /dev/shm (tmpfs) with a random name, removed on drop.
fn shm_dir(what: &str) -> TempDir {
    let out = Command::new("mktemp")
        .args(["-d", &format!("/dev/shm/netpipe-{what}.XXXXXXXX")])
        .output()
        .unwrap();
    assert!(out.status.success(), "mktemp: {}", stderr(&out));
    TempDir(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

/// tmpfs (which accepts O_DIRECT since Linux 6.6 but only copies into the page cache) and
/// /dev/null: the run succeeds through the page cache and says so in exactly one line.
#[test]
fn refused_direct_io_falls_back_with_one_line() {
    let shm = shm_dir("direct-io");
    assert_eq!(fs_type(&shm.0), "tmpfs");
    let dir = TempDir::scratch("direct_io_fallback");
    let (plain, direct) = (dir.path("plain.jsonl"), shm.path("direct.jsonl"));
    read_to(Path::new(FIXTURE), "2", &plain, false);
    let run = read_to(Path::new(FIXTURE), "2", &direct, true);
    assert_eq!(
        refusals(&run),
        [format!(
            "netpipe-fast: --direct-io: {} {REFUSED}",
            direct.display()
        )]
    );
    assert!(fs::read(&direct).unwrap() == fs::read(&plain).unwrap());

    let run = read_to(Path::new(FIXTURE), "1", Path::new("/dev/null"), true);
    assert_eq!(
        refusals(&run),
        [format!("netpipe-fast: --direct-io: /dev/null {REFUSED}")]
    );
}

/// --direct-io with JSON anywhere but a file is a usage error (exit 2) saying why, before
/// anything is read.
#[test]
fn direct_io_needs_a_file_output() {
    let dir = TempDir::scratch("direct_io_usage");
    let pcap = dir.path("w.pcap");
    for (args, says) in [
        (vec![o("-o"), o("-")], "not to stdout"),
        (
            vec![o("-o"), o("tcp://127.0.0.1:9")],
            "not to tcp://127.0.0.1:9",
        ),
        (vec![o("-w"), pcap.as_os_str()], "-w alone writes no JSON"),
    ] {
        let mut all = vec![o("read"), o(FIXTURE), o("--direct-io")];
        all.extend(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--direct-io is for JSON written to a file") && err.contains(says),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!pcap.exists());
    }
}

/// `--help` of `read` and `capture` and their man pages (made from the same clap
/// definitions by `generate man`) document the flag.
#[test]
fn help_and_man_pages_name_the_flag() {
    for sub in ["read", "capture"] {
        let out = ok(&[o(sub), o("--help")]);
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            help.contains("--direct-io") && help.contains("O_DIRECT"),
            "{sub} --help: {help}"
        );
    }
    let dir = TempDir::scratch("direct_io_man");
    let man1 = dir.path("man1");
    ok(&[o("generate"), o("man"), man1.as_os_str()]);
    for sub in ["read", "capture"] {
        let page = fs::read_to_string(man1.join(format!("netpipe-fast-{sub}.1"))).unwrap();
        // roff escapes the dashes: \-\-direct\-io
        assert!(
            page.replace("\\-", "-").contains("--direct-io"),
            "netpipe-fast-{sub}(1)"
        );
    }
}

/// A full disk (an 8 MiB ext4 file system on a loop device, mounted in a mount namespace of
/// the test's own): the direct run ends as the buffered one does (exit 8, the same error
/// line), and what it wrote is a prefix of the whole output (nothing padded or out of place).
#[test]
fn a_full_disk_ends_the_run_as_without_direct_io() {
    if !harness::live_available(
        "direct I/O full-disk test",
        &[
            ("mkfs.ext4", &["-V"], "mkfs.ext4 (e2fsprogs) is missing"),
            ("unshare", &["--version"], "unshare (util-linux) is missing"),
        ],
    ) {
        return;
    }
    let dir = TempDir::scratch("direct_io_full");
    let whole = dir.path("whole.jsonl");
    read_to(Path::new(FIXTURE), "1", &whole, false);
    let whole = fs::read(&whole).unwrap();
    let img = dir.path("img");
    fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
    assert!(harness::command_succeeds(
        "mkfs.ext4",
        &["-q", "-F", img.to_str().unwrap()]
    ));
    fs::create_dir(dir.path("mnt")).unwrap();
    // Both runs write mnt/out.jsonl (so their error lines can be compared as they are); what
    // they wrote and said is copied out before the namespace, and with it the mount, ends.
    let script = r#"
        set -u
        mount -o loop "$1/img" "$1/mnt" || exit 1
        for mode in direct plain; do
            flag=; [ "$mode" = direct ] && flag=--direct-io
            "$2" read -q "$3" -o "$1/mnt/out.jsonl" $flag 2>"$1/$mode.err"
            echo $? >"$1/$mode.rc"
            cp "$1/mnt/out.jsonl" "$1/$mode.jsonl" && rm "$1/mnt/out.jsonl" || exit 1
        done
    "#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&dir.0)
        .arg(crate::common::BIN)
        .arg(crate::common::root().join(FIXTURE))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = |name: &str| fs::read_to_string(dir.path(name)).unwrap();
    let (direct_err, plain_err) = (text("direct.err"), text("plain.err"));
    assert_eq!(text("direct.rc").trim(), "8", "{direct_err}");
    assert_eq!(text("plain.rc").trim(), "8", "{plain_err}");
    assert!(
        direct_err.contains("No space left on device"),
        "{direct_err}"
    );
    // The same lines, so no "--direct-io: ... does not support" either: O_DIRECT was used.
    assert_eq!(direct_err, plain_err);
    let direct = fs::read(dir.path("direct.jsonl")).unwrap();
    assert!(direct.len() > 1 << 20, "{} bytes", direct.len());
    assert!(
        whole.starts_with(&direct),
        "the {} bytes written are not the start of the output",
        direct.len()
    );
}
