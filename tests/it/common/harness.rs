//! Helpers for the tests that run processes and live traffic (each test crate uses a subset):
//! a scratch directory, a child process whose stderr lines are read on a thread, the root and
//! `ip netns` checks that decide whether a live test runs, and a veth pair between two network
//! namespaces of our own.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A directory of our own under the system temp dir, `<kind>-<pid>-<tag>`, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(kind: &str, tag: &str) -> TempDir {
        TempDir::at(std::env::temp_dir().join(format!("{kind}-{}-{tag}", std::process::id())))
    }

    /// A directory named by [`super::unique`] (`what`, this process and the time) under the
    /// system temp dir.
    pub fn unique(what: &str) -> TempDir {
        TempDir::at(std::env::temp_dir().join(super::unique(what)))
    }

    /// A directory named by [`super::unique`] under target/test-scratch: not the system temp
    /// dir, because the spool refuses a path through a world-writable directory such as /tmp.
    pub fn scratch(what: &str) -> TempDir {
        TempDir::at(
            super::root()
                .join("target/test-scratch")
                .join(super::unique(what)),
        )
    }

    /// The directory `path`, emptied if it was there (for a place other than the system temp
    /// dir).
    pub fn at(path: PathBuf) -> TempDir {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its process id) if the test ends before it does.
pub struct Run(pub Child);

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `child` until it has ended (panics naming `what` after `limit`); its exit status.
pub fn wait_exit(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let mut status = None;
    super::brokers::wait_for(what, limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.expect("wait_for returns once the child has ended")
}

/// Everything the child writes to its piped stderr, to the end (the child closes it when
/// it ends).
pub fn read_stderr(child: &mut Child) -> String {
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr piped"), &mut err)
        .expect("read stderr");
    err
}

/// Makes the named pipe `path`.
pub fn mkfifo(path: &std::path::Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {} failed", path.display());
}

/// The lines of `r`, read on a thread of their own, as they arrive.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running process whose stderr lines arrive on a channel; every wait is bounded by
/// `deadline`. Killed on drop if it is still running (a test failed half-way).
pub struct Process {
    pub child: Child,
    stderr: Receiver<String>,
    seen_stderr: Vec<String>,
    deadline: Duration,
}

impl Process {
    /// Spawns `cmd` with its stderr piped (stdin and stdout are left as the caller set them).
    pub fn start(cmd: &mut Command, deadline: Duration) -> Process {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the process");
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Process {
            child,
            stderr,
            seen_stderr: Vec::new(),
            deadline,
        }
    }

    /// The stderr lines seen so far.
    pub fn seen_stderr(&self) -> &[String] {
        &self.seen_stderr
    }

    /// Waits for a stderr line containing `what`; returns it.
    pub fn wait_for_stderr(&mut self, what: &str) -> String {
        let end = Instant::now() + self.deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no {what:?} on stderr ({e:?}); so far: {:?}",
                    self.seen_stderr
                ),
            }
        }
    }

    /// Sends `sig` (as `kill` spells it, e.g. "-INT") to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the process to end (its stderr closes first); returns its exit status and
    /// every stderr line.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let end = Instant::now() + self.deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen_stderr.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("did not end in time; stderr: {:?}", self.seen_stderr);
                }
            }
        }
        let status = self.child.wait().expect("wait");
        (status, std::mem::take(&mut self.seen_stderr))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only does anything with the process still running, when a test failed half-way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `cmd ARGS` runs and succeeds (its output is thrown away).
pub fn command_succeeds(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a live test (`what`, e.g. "live ring test") can run: root, `ip netns`, and each of
/// `also` (a command that must succeed, and what is missing if it does not). Without them it
/// says why and returns false, unless `NETPIPE_REQUIRE_LIVE=1`, which makes it panic instead.
pub fn live_available(what: &str, also: &[(&str, &[&str], &str)]) -> bool {
    let why = if !effective_uid_is_root() {
        "not running as root"
    } else if !command_succeeds("ip", &["netns", "list"]) {
        "`ip netns` is not available"
    } else if let Some((_, _, missing)) = also
        .iter()
        .find(|(cmd, args, _)| !command_succeeds(cmd, args))
    {
        missing
    } else {
        return true;
    };
    skip_or_fail(what, why)
}

/// Whether a test that needs root only (e.g. to plant files owned by another user) can run;
/// as [`live_available`] without the namespace requirement.
pub fn root_available(what: &str) -> bool {
    effective_uid_is_root() || skip_or_fail(what, "not running as root")
}

/// Says why `what` is skipped and returns false, or panics under `NETPIPE_REQUIRE_LIVE=1`.
fn skip_or_fail(what: &str, why: &str) -> bool {
    if std::env::var("NETPIPE_REQUIRE_LIVE").as_deref() == Ok("1") {
        panic!("{what} cannot run: {why} (NETPIPE_REQUIRE_LIVE=1 requires it)");
    }
    super::note_skip(&format!(
        "skipping {what}: {why} (set NETPIPE_REQUIRE_LIVE=1 to fail instead)"
    ));
    false
}

pub fn effective_uid_is_root() -> bool {
    // "Uid:\treal\teffective\tsaved\tfs" in /proc/self/status.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs `ip ARGS`, which must succeed; returns its stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces `<kind>-<pid>-<tag>-a/b`, `va` in A and `vb` in B joined by a veth pair,
/// both up, with the given addresses (none: A's stack sends no ARP). Deleted on drop, which
/// also deletes the veth pair.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
}

impl NetnsPair {
    /// `addresses`: (A's, B's) in CIDR form, or none.
    pub fn new(kind: &str, tag: &str, addresses: Option<(&str, &str)>) -> NetnsPair {
        let base = format!("{kind}-{}-{tag}", std::process::id());
        let pair = NetnsPair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
        };
        // `pair` exists before anything is created, so a failure below still cleans up.
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &pair.b,
        ]);
        if let Some((a_addr, b_addr)) = addresses {
            ip(&["-n", &pair.a, "addr", "add", a_addr, "dev", "va"]);
            ip(&["-n", &pair.b, "addr", "add", b_addr, "dev", "vb"]);
        }
        ip(&["-n", &pair.a, "link", "set", "va", "up"]);
        ip(&["-n", &pair.b, "link", "set", "vb", "up"]);
        pair
    }

    /// The MAC address of `dev` in namespace `ns`, as `ip` prints it.
    pub fn mac(&self, ns: &str, dev: &str) -> String {
        let out = ip(&["-n", ns, "-o", "link", "show", dev]);
        let at = out.find("link/ether ").expect("link/ether in ip output") + 11;
        out[at..at + 17].to_owned()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
