//! The parts of the broker-outage tests (sink_outage, redis_streams): `read` fed from named
//! pipes the test writes, so the test decides when each part of the stream arrives (`read`
//! sends a file's last messages when the file ends); copies of the fixture that differ from
//! each other, so a spool replayed in the wrong place shows; the run's summary read back; and
//! the spool's segment files read independently of src/sink/spool.rs.

use super::brokers::{wait_for, PrivateRabbit, PrivateRedis};
use super::harness::{mkfifo, Run, TempDir};
use super::{bin, expected, root, spooled_records, FIXTURE, FIXTURE_MESSAGES};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Bytes of the pcap global header (records follow it).
pub const PCAP_HEADER_BYTES: usize = 24;

/// Seconds each copy of the fixture is moved later than the one before (a day, so even the
/// `created` text of every message differs between copies).
pub const COPY_SHIFT_SECS: u32 = 86_400;

/// A scratch directory (under target/: the spool refuses a path through a world-writable
/// directory such as /tmp) that shows the runs' stderr files when the test failed.
pub struct Scratch(pub TempDir);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        Scratch(TempDir::scratch(what))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the runs said, to see why.
            for name in ["stderr", "stderr1"] {
                if let Ok(text) = std::fs::read_to_string(self.path(name)) {
                    eprintln!("--- {name} of the run:\n{text}");
                }
            }
        }
    }
}

/// The named pipes `part1.pcap` .. `part<n>.pcap` in `scratch` (not made yet).
pub fn parts(scratch: &Scratch, n: usize) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| scratch.path(&format!("part{i}.pcap")))
        .collect()
}

/// `netpipe-fast read <fifos> <args>`, stderr to a file. The pipes are made here; the
/// reader opens them one after the other (the first once the output has connected).
pub fn start_reader<S: AsRef<OsStr>>(fifos: &[PathBuf], stderr: &Path, args: &[S]) -> Run {
    for f in fifos {
        mkfifo(f);
    }
    Run(bin()
        .arg("read")
        .args(fifos)
        .args(args)
        .stdout(Stdio::null())
        .stderr(File::create(stderr).unwrap())
        .spawn()
        .unwrap())
}

/// Writes a whole pcap into a pipe (waiting for the reader to open it) and closes it.
pub fn feed(fifo: &Path, pcap: &[u8]) {
    let mut pipe = File::options().write(true).open(fifo).unwrap();
    pipe.write_all(pcap).unwrap();
}

/// Feeds the fixture into named pipes (made here) one after the other, on a thread of its
/// own, and stops half-way through pipe `held` until [`HeldFeed::release`]: a run reading the
/// pipes cannot end before the test has acted (and is mid-stream, in pipe `held`, when it
/// does), whatever the timing. Every pipe before `held` is complete by then.
pub struct HeldFeed {
    go: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HeldFeed {
    pub fn start(fifos: &[PathBuf], held: usize) -> HeldFeed {
        assert!(held < fifos.len());
        for f in fifos {
            mkfifo(f);
        }
        let (go, wait) = std::sync::mpsc::channel();
        let fifos = fifos.to_vec();
        let thread = std::thread::spawn(move || {
            let pcap = fixture_bytes();
            for (i, fifo) in fifos.iter().enumerate() {
                if i != held {
                    feed(fifo, &pcap);
                    continue;
                }
                let mut pipe = File::options().write(true).open(fifo).unwrap();
                let (first, rest) = pcap.split_at(pcap.len() / 2);
                pipe.write_all(first).unwrap();
                pipe.flush().unwrap();
                // A dropped sender (the test failed) releases the feed as well.
                let _ = wait.recv();
                pipe.write_all(rest).unwrap();
            }
        });
        HeldFeed { go, thread }
    }

    /// Lets the rest of the held pipe and the pipes after it be written.
    pub fn release(&self) {
        let _ = self.go.send(());
    }

    /// Waits for the feeding thread, for a run that has ended well (the reader took every
    /// byte, so this cannot block).
    pub fn finish(self) {
        self.thread.join().expect("the feeding thread failed");
    }
}

/// The fixture's bytes.
pub fn fixture_bytes() -> Vec<u8> {
    std::fs::read(root().join(FIXTURE)).unwrap()
}

/// Copy `copy` (0, 1, 2, ...) of the fixture: every packet's time moved `copy` days later,
/// so each copy's messages (`created`, `time_ns`) differ from every other copy's, and a
/// spool replayed in the wrong place, or a copy delivered twice instead of another, shows.
pub fn fixture_copy(copy: u32) -> Vec<u8> {
    let mut pcap = fixture_bytes();
    let big_endian = super::frames::pcap_big_endian(&pcap)
        .unwrap_or_else(|| panic!("{FIXTURE} is not a classic pcap"));
    // Walking the records also checks that they end exactly at the end of the file.
    let records = super::frames::packet_records(&pcap);
    assert_eq!(records.len(), FIXTURE_MESSAGES);
    for (at, _) in records {
        let field: [u8; 4] = pcap[at..at + 4].try_into().unwrap();
        let secs = if big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        } + copy * COPY_SHIFT_SECS;
        let bytes = if big_endian {
            secs.to_be_bytes()
        } else {
            secs.to_le_bytes()
        };
        pcap[at..at + 4].copy_from_slice(&bytes);
    }
    pcap
}

/// The messages `read` makes of copies `0..copies` of the fixture, in order (`args` before
/// the file), checked to share no message between copies.
pub fn expected_copies(scratch: &Scratch, copies: u32, args: &[&str]) -> Vec<Vec<Vec<u8>>> {
    let all: Vec<Vec<Vec<u8>>> = (0..copies)
        .map(|k| {
            let path = scratch.path(&format!("expected-copy{k}.pcap"));
            std::fs::write(&path, fixture_copy(k)).unwrap();
            let mut a = args.to_vec();
            a.push(path.to_str().unwrap());
            let msgs = expected(&a);
            assert_eq!(msgs.len(), FIXTURE_MESSAGES);
            msgs
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (k, msgs) in all.iter().enumerate() {
        let mine: std::collections::HashSet<&Vec<u8>> = msgs.iter().collect();
        assert!(
            mine.iter().all(|m| !seen.contains(*m)),
            "copy {k} repeats a message of an earlier copy"
        );
        seen.extend(mine);
    }
    all
}

/// A private broker a test stops and starts again on the same port and data.
pub trait Restartable {
    /// SIGKILL: the broker vanishes without closing anything.
    fn kill(&mut self);
    /// Starts it again and waits until it answers.
    fn spawn(&mut self);
}

impl Restartable for PrivateRedis {
    fn kill(&mut self) {
        PrivateRedis::kill(self)
    }
    fn spawn(&mut self) {
        PrivateRedis::spawn(self)
    }
}

impl Restartable for PrivateRabbit {
    fn kill(&mut self) {
        PrivateRabbit::kill(self)
    }
    fn spawn(&mut self) {
        PrivateRabbit::spawn(self)
    }
}

/// The first two acts of an outage, for a reader started on `fifos` with `spool`: copy 0 of
/// the fixture fed while the broker is up, until `delivered` says the broker holds it; the
/// broker killed; copy 1 fed, until the spool's record count satisfies `spooled`.
pub fn first_copy_then_outage<B: Restartable>(
    broker: &mut B,
    fifos: &[PathBuf],
    spool: &Path,
    delivered: impl Fn(&B) -> bool,
    spooled: impl Fn(usize) -> bool,
) {
    feed(&fifos[0], &fixture_copy(0));
    wait_for(
        "the first copy in the broker",
        Duration::from_secs(60),
        || delivered(broker),
    );
    broker.kill();
    feed(&fifos[1], &fixture_copy(1));
    wait_for(
        "the second copy in the spool",
        Duration::from_secs(60),
        || spooled(spooled_records(spool)),
    );
}

/// Waits (at most `limit`) for the run to end; its exit code and stderr.
pub fn wait_exit_code(run: &mut Run, limit: Duration, stderr: &Path) -> (Option<i32>, String) {
    let status = super::harness::wait_exit(&mut run.0, "the run to end", limit);
    let text = std::fs::read_to_string(stderr).unwrap();
    (status.code(), text)
}

/// As [`wait_exit_code`], for a run that must succeed; its stderr.
pub fn wait_exit(run: &mut Run, limit: Duration, stderr: &Path) -> String {
    let (code, text) = wait_exit_code(run, limit, stderr);
    assert_eq!(code, Some(0), "the run failed: {text}");
    text
}

/// The delivery layer's line of the summary.
pub fn delivery_line(summary: &str) -> &str {
    summary
        .lines()
        .find(|l| l.starts_with("delivery ("))
        .unwrap_or_else(|| panic!("no delivery line in the summary:\n{summary}"))
}

/// The number written just before `word` in the summary (`"... 123 spooled, ..."`).
pub fn count(summary: &str, word: &str) -> u64 {
    let at = summary
        .find(word)
        .unwrap_or_else(|| panic!("no \"{word}\" in the summary:\n{summary}"));
    summary[..at]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number before \"{word}\" in:\n{summary}"))
}

/// How many messages the delivery line says were sent again after an outage.
pub fn resent(summary: &str) -> u64 {
    count(delivery_line(summary), "resent after")
}

/// The spool's segment files in `dir` (0 if it does not exist).
pub fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("seg"))
                .count()
        })
        .unwrap_or(0)
}

/// A segment file, its id, and each record's offset and payload.
pub type SegmentRecords = (PathBuf, u64, Vec<(usize, Vec<u8>)>);

/// The records of each segment file in `dir`, oldest segment first (read independently of
/// src/sink/spool.rs: magic, then u32 LE length, u32 LE CRC-32C, payload).
pub fn segment_records(dir: &Path) -> Vec<SegmentRecords> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        let Some(id) = name
            .strip_suffix(".seg")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let bytes = std::fs::read(e.path()).unwrap();
        out.push((e.path(), id, super::segment_payloads(&bytes)));
    }
    out.sort_by_key(|s| s.1);
    out
}
