//! Golden tests: every capture in `pcaps/` decoded with `netpipe-fast read FILE` must equal
//! the committed `tests/golden/<file name>.jsonl` byte for byte.
//!
//! A capture the decoder is expected to stop on has `tests/golden/<file name>.exit` holding
//! the expected exit code; without one the run must exit 0. After an intended change of the
//! output, regenerate with `scripts/update-golden.sh` and review the diff.

use crate::common::BIN;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PCAPS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps");
const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
const REGENERATE: &str = "scripts/update-golden.sh";

/// Capture files recognised by their magic number (pcap in either byte order and either time
/// resolution, or pcapng), so READMEs and scripts beside them are left alone.
fn is_capture(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    if std::io::Read::read_exact(&mut file, &mut magic).is_err() {
        return false;
    }
    matches!(
        magic,
        [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0x0a, 0x0d, 0x0d, 0x0a]
    )
}

fn sorted_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("read directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Shortens a long line to the part around byte `at`, on character boundaries.
fn excerpt(line: &str, at: usize) -> String {
    const SIDE: usize = 300;
    if line.len() <= 2 * SIDE {
        return line.to_string();
    }
    let mut start = at.saturating_sub(SIDE);
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + SIDE).min(line.len());
    while !line.is_char_boundary(end) {
        end += 1;
    }
    format!(
        "{}{}{}",
        if start > 0 { "..." } else { "" },
        &line[start..end],
        if end < line.len() { "..." } else { "" }
    )
}

/// Where `actual` first departs from `expected`, for a human: line number, column and both
/// lines.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let expected = String::from_utf8_lossy(expected);
    let actual = String::from_utf8_lossy(actual);
    let mut want = expected.split_inclusive('\n');
    let mut got = actual.split_inclusive('\n');
    let mut number = 0;
    loop {
        number += 1;
        match (want.next(), got.next()) {
            (Some(w), Some(g)) if w == g => continue,
            (Some(w), Some(g)) => {
                let column = w
                    .bytes()
                    .zip(g.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| w.len().min(g.len()));
                return format!(
                    "first difference at line {number}, byte {}:\n    expected: {}\n    actual:   {}",
                    column + 1,
                    excerpt(w.trim_end_matches('\n'), column),
                    excerpt(g.trim_end_matches('\n'), column)
                );
            }
            (Some(w), None) => {
                return format!(
                    "output ends after {} lines; expected line {number}:\n    expected: {}",
                    number - 1,
                    excerpt(w.trim_end_matches('\n'), 0)
                )
            }
            (None, Some(g)) => {
                return format!(
                    "output has more lines than the {} expected; line {number}:\n    actual:   {}",
                    number - 1,
                    excerpt(g.trim_end_matches('\n'), 0)
                )
            }
            (None, None) => return "outputs are equal".to_string(),
        }
    }
}

#[test]
fn every_pcap_matches_its_golden_output() {
    let captures: Vec<PathBuf> = sorted_files(PCAPS_DIR)
        .into_iter()
        .filter(|p| is_capture(p))
        .collect();
    assert!(
        !captures.is_empty(),
        "{PCAPS_DIR} holds no pcap or pcapng file: nothing to compare"
    );

    let mut problems = Vec::new();
    for capture in &captures {
        let name = file_name(capture);
        let golden = Path::new(GOLDEN_DIR).join(format!("{name}.jsonl"));
        let exit_file = Path::new(GOLDEN_DIR).join(format!("{name}.exit"));
        let Ok(expected) = fs::read(&golden) else {
            problems.push(format!(
                "pcaps/{name}: no golden file tests/golden/{name}.jsonl (run {REGENERATE} and \
                 review the output)"
            ));
            continue;
        };
        let expected_code: i32 = match fs::read_to_string(&exit_file) {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("tests/golden/{name}.exit must hold an exit code: {e}")),
            Err(_) => 0,
        };

        let out = Command::new(BIN)
            .arg("read")
            .arg(capture)
            .env_remove("SOURCE_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("spawn netpipe-fast");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(expected_code) || stderr.contains("panicked") {
            problems.push(format!(
                "pcaps/{name}: exit {:?}, expected {expected_code}; stderr: {}",
                out.status.code(),
                stderr.trim_end()
            ));
        }
        if out.stdout != expected {
            problems.push(format!(
                "pcaps/{name}: output differs from tests/golden/{name}.jsonl; {}",
                first_difference(&expected, &out.stdout)
            ));
        }
    }

    // A golden file whose capture is gone is stale: the two sets must match.
    for golden in sorted_files(GOLDEN_DIR) {
        let name = file_name(&golden);
        let Some(capture) = name
            .strip_suffix(".jsonl")
            .or_else(|| name.strip_suffix(".exit"))
        else {
            continue;
        };
        if !captures.iter().any(|c| file_name(c) == capture) {
            problems.push(format!(
                "tests/golden/{name}: no capture pcaps/{capture} (run {REGENERATE})"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} golden problems over {} captures:\n\n{}\n",
        problems.len(),
        captures.len(),
        problems.join("\n\n")
    );
}

/// `read --reassemble` on the captures with a golden file in `tests/golden/reassemble/`
/// (`<capture>.jsonl`, made by the same script): the per-packet messages and one message
/// per reassembled datagram (docs/FORMAT.md, "Fragment reassembly").
#[test]
fn reassembled_output_matches_its_golden_output() {
    let dir = Path::new(GOLDEN_DIR).join("reassemble");
    let goldens: Vec<PathBuf> = sorted_files(dir.to_str().unwrap())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert!(
        goldens
            .iter()
            .any(|g| file_name(g) == "fragments.pcap.jsonl"),
        "tests/golden/reassemble/fragments.pcap.jsonl is missing (run {REGENERATE})"
    );
    for golden in goldens {
        let name = file_name(&golden);
        let capture = Path::new(PCAPS_DIR).join(name.strip_suffix(".jsonl").unwrap());
        let expected = fs::read(&golden).expect("read golden file");
        let out = Command::new(BIN)
            .arg("read")
            .arg("--reassemble")
            .arg(&capture)
            .env_remove("SOURCE_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("spawn netpipe-fast");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == expected,
            "read --reassemble {}: output differs from tests/golden/reassemble/{name}; {}",
            capture.display(),
            first_difference(&expected, &out.stdout)
        );
    }
}

#[test]
fn first_difference_reports_line_and_both_lines() {
    let report = first_difference(b"a\nb\nc\n", b"a\nB\nc\n");
    assert!(report.contains("line 2, byte 1"), "{report}");
    assert!(
        report.contains("expected: b") && report.contains("actual:   B"),
        "{report}"
    );
    let report = first_difference(b"a\nb\n", b"a\n");
    assert!(report.contains("ends after 1 lines"), "{report}");
    let report = first_difference(b"a\n", b"a\nz\n");
    assert!(
        report.contains("line 2") && report.contains("z"),
        "{report}"
    );
    let long = "x".repeat(5000);
    let other = format!("{}y{}", "x".repeat(2500), "x".repeat(2499));
    let report = first_difference(long.as_bytes(), other.as_bytes());
    assert!(
        report.contains("byte 2501") && report.len() < 2000,
        "{report}"
    );
}
