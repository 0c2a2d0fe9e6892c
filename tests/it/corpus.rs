//! Robustness: every capture of tcpdump's own test suite (`../shared/corpus/tcpdump-tests`,
//! 830 files, many deliberately malformed) through `netpipe-fast read FILE -q`.
//!
//! Each file must finish within 5 seconds, without a panic or a signal, with an exit code in
//! {0, 3, 4, 5, 6}, and with every stdout line a JSON message. The tally is pinned: how many
//! files end with each exit code and how many JSON lines the whole corpus gives
//! ([`EXPECTED_EXITS`], [`EXPECTED_JSON_LINES`]), so a file that silently stops decoding (or
//! starts failing in an allowed way) fails the test. A change that really decodes more (a new
//! link type) updates the pins in the same commit. Run with `--nocapture` to see the tally.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::common::harness::TempDir;
use crate::common::BIN;
use std::time::{Duration, Instant};

const CORPUS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/tcpdump-tests"
);
const TIME_LIMIT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(5);
const THREADS: usize = 2;
const ALLOWED_EXIT_CODES: [i32; 5] = [0, 3, 4, 5, 6];
/// Files per outcome over the 830 files (tcpdump's corpus as shipped in ../shared).
const EXPECTED_EXITS: [(&str, usize); 2] = [("exit 0", 552), ("exit 6", 278)];
/// JSON lines (one per packet) over the whole corpus.
const EXPECTED_JSON_LINES: usize = 9373;
const ENVELOPE_KEYS: [&str; 6] = [
    "data", "created", "source", "time_ns", "wire_len", "cap_len",
];

/// How one file ended.
enum Outcome {
    Exited(i32),
    Signalled(ExitStatus),
    TimedOut,
}

/// Runs one file with stdout and stderr going to files (a pipe nobody drains would stall a
/// large output and look like a hang), killing it when it runs past the limit.
fn run_one(file: &Path, stdout_path: &Path, stderr_path: &Path) -> (Outcome, Duration) {
    let stdout = File::create(stdout_path).expect("create stdout file");
    let stderr = File::create(stderr_path).expect("create stderr file");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("read")
        .arg(file)
        .arg("-q")
        .env_remove("SOURCE_HOST")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn netpipe-fast");
    loop {
        if let Some(status) = child.try_wait().expect("wait for netpipe-fast") {
            let outcome = match status.code() {
                Some(code) => Outcome::Exited(code),
                None => Outcome::Signalled(status),
            };
            return (outcome, started.elapsed());
        }
        if started.elapsed() >= TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return (Outcome::TimedOut, started.elapsed());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Every problem with one file's run (empty when it passed).
fn check(file: &Path, outcome: &Outcome, stdout: &[u8], stderr: &[u8]) -> Vec<String> {
    let name = file.file_name().unwrap().to_string_lossy();
    let mut problems = Vec::new();
    let stderr_text = String::from_utf8_lossy(stderr);
    let stderr_first = stderr_text.lines().next().unwrap_or("").to_string();

    match outcome {
        Outcome::TimedOut => problems.push(format!(
            "still running after {} s (hang?), killed",
            TIME_LIMIT.as_secs()
        )),
        Outcome::Signalled(status) => {
            problems.push(format!("killed by a signal ({status}): {stderr_first}"))
        }
        Outcome::Exited(101) => problems.push(format!("exit 101 (panic): {stderr_first}")),
        Outcome::Exited(code) if !ALLOWED_EXIT_CODES.contains(code) => problems.push(format!(
            "exit {code}, allowed {ALLOWED_EXIT_CODES:?}: {stderr_first}"
        )),
        Outcome::Exited(_) => {}
    }
    if stderr_text.contains("panicked") && !matches!(outcome, Outcome::Exited(101)) {
        let line = stderr_text
            .lines()
            .find(|l| l.contains("panicked"))
            .unwrap_or("");
        problems.push(format!("panicked: {line}"));
    }
    if let Outcome::Exited(code @ 3..=6) = outcome {
        match stderr_text
            .lines()
            .find(|l| l.starts_with("netpipe-fast: "))
        {
            None => problems.push(format!(
                "exit {code} without a 'netpipe-fast: ' line on stderr: {stderr_first}"
            )),
            Some(line) => {
                if !line.contains(&*name) {
                    problems.push(format!("error line does not name the file: {line}"));
                }
                if *code == 6 && !line.to_lowercase().contains("link type") {
                    problems.push(format!("exit 6 but no 'link type' in: {line}"));
                }
            }
        }
    }

    match std::str::from_utf8(stdout) {
        Err(e) => problems.push(format!("stdout is not UTF-8: {e}")),
        Ok(text) => {
            if !text.is_empty() && !text.ends_with('\n') {
                problems.push("stdout ends in an unterminated line".to_string());
            }
            for (i, line) in text.lines().enumerate() {
                if let Err(why) = check_line(line) {
                    problems.push(format!("stdout line {}: {why}: {}", i + 1, clip(line)));
                    break; // one bad line says enough about this file
                }
            }
        }
    }
    problems
}

/// One stdout line: a JSON object carrying the envelope of docs/FORMAT.md.
fn check_line(line: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e})"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    for key in ENVELOPE_KEYS {
        if !obj.contains_key(key) {
            return Err(format!("no {key:?} key"));
        }
    }
    if !obj["data"].is_object() {
        return Err("data is not an object".to_string());
    }
    Ok(())
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

#[test]
fn tcpdump_corpus_never_hangs_panics_or_writes_bad_json() {
    let dir = Path::new(CORPUS_DIR);
    assert!(
        dir.is_dir(),
        "the robustness corpus is missing: {} does not exist. It ships in the shared directory \
         beside the repository (../shared/corpus/tcpdump-tests, tcpdump's test captures); \
         clone the repository next to ../shared to run this test.",
        dir.display()
    );
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("read corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no files", dir.display());

    // A scratch directory under target/test-scratch (no predictable name in a world-writable
    // directory), removed on drop.
    let tmp = TempDir::at(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-scratch")
            .join(format!("corpus-{}", std::process::id())),
    );
    let next = AtomicUsize::new(0);
    let by_code: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let slowest: Mutex<(Duration, String)> = Mutex::new((Duration::ZERO, String::new()));
    let packets = AtomicUsize::new(0);
    let started = Instant::now();

    std::thread::scope(|scope| {
        for worker in 0..THREADS {
            let (files, tmp, next, by_code, failures, slowest, packets) =
                (&files, &tmp, &next, &by_code, &failures, &slowest, &packets);
            scope.spawn(move || {
                let stdout_path = tmp.0.join(format!("stdout-{worker}"));
                let stderr_path = tmp.0.join(format!("stderr-{worker}"));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let (outcome, took) = run_one(file, &stdout_path, &stderr_path);
                    let stdout = fs::read(&stdout_path).unwrap_or_default();
                    let stderr = fs::read(&stderr_path).unwrap_or_default();
                    packets.fetch_add(
                        stdout.iter().filter(|&&b| b == b'\n').count(),
                        Ordering::Relaxed,
                    );

                    let label = match &outcome {
                        Outcome::Exited(code) => format!("exit {code}"),
                        Outcome::Signalled(_) => "signal".to_string(),
                        Outcome::TimedOut => "timeout".to_string(),
                    };
                    *by_code.lock().unwrap().entry(label).or_default() += 1;
                    let name = file.file_name().unwrap().to_string_lossy().into_owned();
                    {
                        let mut slowest = slowest.lock().unwrap();
                        if took > slowest.0 {
                            *slowest = (took, name.clone());
                        }
                    }
                    let problems = check(file, &outcome, &stdout, &stderr);
                    if !problems.is_empty() {
                        let mut failures = failures.lock().unwrap();
                        for p in problems {
                            failures.push(format!("{name}: {p}"));
                        }
                    }
                }
            });
        }
    });

    let by_code = by_code.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    let (slow_time, slow_name) = slowest.into_inner().unwrap();
    eprintln!(
        "corpus: {} files, {} JSON lines, {:.1} s on {THREADS} threads; slowest {slow_name} \
         ({} ms)",
        files.len(),
        packets.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        slow_time.as_millis()
    );
    for (label, count) in &by_code {
        eprintln!("corpus:   {label}: {count} files");
    }
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(60).map(String::as_str).collect();
        panic!(
            "{} problems in the tcpdump corpus{}:\n  {}",
            failures.len(),
            if failures.len() > shown.len() {
                format!(" (first {} shown)", shown.len())
            } else {
                String::new()
            },
            shown.join("\n  ")
        );
    }
    let want: BTreeMap<String, usize> = EXPECTED_EXITS
        .iter()
        .map(|(label, n)| (label.to_string(), *n))
        .collect();
    assert_eq!(
        by_code, want,
        "files per exit code changed (update EXPECTED_EXITS only if the change is meant)"
    );
    assert_eq!(
        packets.load(Ordering::Relaxed),
        EXPECTED_JSON_LINES,
        "JSON lines over the corpus changed (update EXPECTED_JSON_LINES only if meant)"
    );
}
