//! `read` of a mapped file against `read -` of the same bytes on standard input (which is
//! always streamed): the same JSON, byte for byte, and the same exit code, for every fixture
//! in pcaps/ and every file of tcpdump's corpus (`../shared/corpus/tcpdump-tests`, when it is
//! there). And `--workers` 1 to 4 (4 is the appliance's documented command, on a machine
//! that may have 2 cores) all give the output of one worker, in file order.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::BIN;

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
