//! `read` of a mapped file (with 1 and 2 workers) against `read -` of the same bytes on
//! standard input (which is always streamed): the same JSON, byte for byte, and the same exit
//! code, for every fixture in pcaps/ and every file of tcpdump's corpus
//! (`../shared/corpus/tcpdump-tests`, when it is there). And `--workers` 1 to 4 (4 is the appliance's documented command, on a machine
//! that may have 2 cores) all give the output of one worker, in file order, with the batch
//! pools recycled (no batch buffer made after the start) and stdout written whole to a slow
//! reader.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netpipe_fast::encode::batch::JsonBatch;
use netpipe_fast::pipeline::deliver::Deliver;
use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::Output;

use crate::common::harness::TempDir;
use crate::common::{BIN, FIXTURE, FIXTURE_MESSAGES};

/// stdout and exit code of `netpipe-fast read ARGS -q`, with `stdin` as standard input.
fn read(args: &[&str], file: Option<&Path>, stdin: Option<&Path>) -> (Vec<u8>, Option<i32>) {
    let mut command = Command::new(BIN);
    command.arg("read").args(args).arg("-q");
    if let Some(file) = file {
        command.arg(file);
    }
    command.stdin(match stdin {
        Some(path) => Stdio::from(File::open(path).expect("open input")),
        None => Stdio::null(),
    });
    let out = command
        .stderr(Stdio::null())
        .output()
        .expect("run netpipe-fast");
    (out.stdout, out.status.code())
}

fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

#[test]
fn mapped_files_give_the_json_of_streamed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = captures_in(&root.join("pcaps"));
    let fixtures = paths.len();
    assert!(fixtures >= 20, "{fixtures} fixtures");
    let corpus = root.join("../shared/corpus/tcpdump-tests");
    paths.extend(captures_in(&corpus));
    if paths.len() == fixtures {
        eprintln!(
            "skipping the corpus part: {} is not there",
            corpus.display()
        );
    }
    // Two threads, each taking every other file (the files are many and small).
    let tallies: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|part| {
                let paths = &paths;
                scope.spawn(move || {
                    let (mut lines, mut failing) = (0, 0);
                    for path in paths.iter().skip(part).step_by(2) {
                        let mapped = read(&[], Some(path), None);
                        let streamed = read(&["-"], None, Some(path));
                        assert!(
                            mapped == streamed,
                            "{}: mapped exit {:?}, {} bytes; streamed exit {:?}, {} bytes",
                            path.display(),
                            mapped.1,
                            mapped.0.len(),
                            streamed.1,
                            streamed.0.len()
                        );
                        // Two workers take the mapped frames by position: the same again,
                        // damaged records and exit codes included.
                        let parallel = read(&["--workers", "2"], Some(path), None);
                        assert!(
                            parallel == streamed,
                            "{}: 2 workers exit {:?}, {} bytes; streamed exit {:?}, {} bytes",
                            path.display(),
                            parallel.1,
                            parallel.0.len(),
                            streamed.1,
                            streamed.0.len()
                        );
                        lines += mapped.0.iter().filter(|&&b| b == b'\n').count();
                        failing += usize::from(mapped.1 != Some(0));
                    }
                    (lines, failing)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let lines: usize = tallies.iter().map(|t| t.0).sum();
    let failing: usize = tallies.iter().map(|t| t.1).sum();
    eprintln!(
        "{} files ({fixtures} fixtures), {lines} JSON lines, {failing} ending with an error",
        paths.len()
    );
}

#[test]
fn one_to_four_workers_write_the_same_json_in_file_order() {
    let mixed = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/mixed.pcap");
    let (one, code) = read(&["--workers", "1"], Some(&mixed), None);
    assert_eq!(code, Some(0));
    assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 13_620);
    for workers in ["2", "3", "4"] {
        let (out, code) = read(&["--workers", workers], Some(&mixed), None);
        assert_eq!(code, Some(0), "--workers {workers}");
        assert!(out == one, "--workers {workers} differs from --workers 1");
        // Streamed from standard input: the same again.
        let (out, code) = read(&["--workers", workers, "-"], None, Some(&mixed));
        assert_eq!(code, Some(0), "--workers {workers} -");
        assert!(
            out == one,
            "--workers {workers} on stdin differs from --workers 1"
        );
    }
}

/// `copies` times the records of pcaps/mixed.pcap behind its file header, as a file in `dir`
/// (every copy gives the same messages, so the output is the fixture's, `copies` times).
fn repeated_fixture(dir: &TempDir, copies: usize) -> PathBuf {
    let bytes = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).expect("fixture");
    let (header, records) = bytes.split_at(24);
    let mut out = header.to_vec();
    for _ in 0..copies {
        out.extend_from_slice(records);
    }
    let path = dir.path("repeated.pcap");
    fs::write(&path, out).expect("write the repeated capture");
    path
}

/// Takes every batch and counts its messages and bytes.
struct Counting {
    messages: usize,
    bytes: usize,
}

impl Deliver for Counting {
    fn deliver(&mut self, batch: JsonBatch) -> (JsonBatch, std::io::Result<usize>) {
        self.messages += batch.len();
        self.bytes += batch.bytes().len();
        let n = batch.len();
        (batch, Ok(n))
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn summary(&self) -> Option<String> {
        Some(format!("{} {}", self.messages, self.bytes))
    }
}

/// A mapped file of hundreds of batches, with 1, 2 and 4 workers: every message delivered,
/// and the pools end as they started: every JSON and frame batch made at the start is back,
/// and none had its buffers allocated again (a steady state with no batch allocation). The
/// frames went to the workers by position (not copied): a copy would not change these
/// counts, so the JSON is compared with the streamed run's by
/// `one_to_four_workers_write_the_same_json_in_file_order`.
#[test]
fn the_batch_pools_end_as_they_started_however_long_the_file() {
    let dir = TempDir::unique("pools");
    let copies = 6;
    let file = repeated_fixture(&dir, copies);
    let (_, streamed_bytes) = {
        let (one, code) = read(
            &[],
            Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)),
            None,
        );
        assert_eq!(code, Some(0));
        ((), one.len() * copies)
    };
    for workers in [1usize, 2, 4] {
        let job = ReadJob {
            files: vec![file.clone()],
            filter: None,
            count: None,
            workers,
            source_host: "localdev".into(),
            output: std::sync::Arc::new(Output::Discard),
            packet: Default::default(),
        };
        let outcome = job.run_with_sink(Box::new(Counting {
            messages: 0,
            bytes: 0,
        }));
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let messages = copies * FIXTURE_MESSAGES;
        assert_eq!(
            outcome.sink_report,
            Some(format!("{messages} {streamed_bytes}")),
            "--workers {workers}"
        );
        assert_eq!(outcome.summary.written, messages as u64);
        let pools = outcome.pools;
        let json_pool = 2 * workers as u64 + 1;
        let frame_pool = if workers > 1 { 3 * workers as u64 } else { 0 };
        assert_eq!(pools.made, json_pool + frame_pool, "--workers {workers}");
        assert_eq!(
            (pools.json_batches, pools.frame_batches, pools.reallocations),
            (json_pool, frame_pool, 0),
            "--workers {workers}: {pools:?}"
        );
        // Not one frame copied: the workers read them where the file is mapped.
        let by_position = if workers > 1 { messages as u64 } else { 0 };
        assert_eq!(
            (pools.frames_by_position, pools.frames_copied),
            (by_position, 0)
        );
    }
}

/// Standard output to a pipe read slowly, in small pieces (with the pipe cut to one page
/// where the kernel allows it): every byte arrives once and in order, whatever the write
/// calls the publisher's `writev`s were split into.
#[test]
fn a_slow_reader_of_stdout_gets_every_message_in_order() {
    use std::io::Read;
    let dir = TempDir::unique("slow-pipe");
    let copies = 3;
    let file = repeated_fixture(&dir, copies);
    let (one, code) = read(
        &[],
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)),
        None,
    );
    assert_eq!(code, Some(0));
    let mut child = Command::new(BIN)
        .args(["read", "-q", "--workers", "2"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run netpipe-fast");
    let mut stdout = child.stdout.take().expect("stdout pipe");
    // F_SETPIPE_SZ (1031) to 4096 bytes; Linux only, and only advice for this test (EBUSY
    // when the pipe already holds more than that: its traceback is not shown).
    let _ = Command::new("python3")
        .args(["-c", "import fcntl, sys; fcntl.fcntl(0, 1031, 4096)"])
        .stderr(Stdio::null())
        .stdin(Stdio::from(
            std::os::fd::AsFd::as_fd(&stdout)
                .try_clone_to_owned()
                .expect("dup"),
        ))
        .status();
    let mut got = Vec::new();
    let mut piece = [0u8; 1000];
    let mut reads = 0usize;
    loop {
        let n = stdout.read(&mut piece).expect("read the pipe");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&piece[..n]);
        reads += 1;
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(reads > got.len() / 1000, "{reads} reads");
    let want: Vec<u8> = (0..copies).flat_map(|_| one.iter().copied()).collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the pipe's bytes differ from {copies} x the fixture's JSON"
    );
}
