//! The traffic tools end to end.
//!
//! On loopback (no privilege needed): what `send tcp|tcp-large|udp` sends is what
//! `listen tcp|udp` receives, byte for byte, and the shutdown file stops the listener.
//!
//! In network namespaces this file makes (root and `ip netns`): `send icmp` and `send arp`
//! from namespace A through a veth pair, seen by `netpipe-fast capture` on the other end in
//! namespace B. Without root or `ip netns` those tests say why and pass, unless
//! `NETPIPE_REQUIRE_LIVE=1`, which makes them fail instead (CI sets it).

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::common::harness::{self, ip, lines_of, NetnsPair, Process, TempDir};
use crate::common::BIN;

/// Every wait in this file is bounded by this.
const DEADLINE: Duration = Duration::from_secs(10);
/// Interval of the bounded polls of an output file.
const POLL: Duration = Duration::from_millis(10);

/// Variables of the original's tools, removed so the caller's environment cannot steer a test.
const TOOL_VARS: &[&str] = &[
    "LISTEN_ON_HOST",
    "LISTEN_ON_PORT",
    "LISTEN_BACKLOG",
    "LISTEN_SIZE",
    "LISTEN_SLEEP",
    "LISTEN_SHUTDOWN_HOOK",
    "LISTEN_IDLE_TIMEOUT",
    "UDP_LISTEN_ON_HOST",
    "UDP_LISTEN_ON_PORT",
    "UDP_LISTEN_SIZE",
    "UDP_LISTEN_SLEEP",
    "UDP_LISTEN_SHUTDOWN_HOOK",
    "UDP_SEND_TO_HOST",
    "UDP_SEND_TO_PORT",
    "TCP_SEND_TO_HOST",
    "TCP_SEND_TO_PORT",
    "MSG",
    "NEED_RESPONSE",
    "ICMP_DST",
    "ICMP_COUNT",
    "ICMP_PACKET_SIZE",
    "ARP_INTERFACE",
    "ARP_DST_IP",
    "ARP_DST_MAC",
    "ICMP_TIMEOUT",
    "ICMP_SILENT",
];

fn tool(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for v in TOOL_VARS.iter().copied() {
        c.env_remove(v);
    }
    c
}

fn temp_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("np-tools-{}-{tag}", std::process::id()));
    let _ = fs::remove_file(&p);
    p
}

/// One JSON line of stdout.
fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn stdout_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(parse)
        .collect()
}

/// Runs a `send`, which must exit 0; returns the JSON line it prints first.
fn sent_ok(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_lines(&out).swap_remove(0)
}

/// A running process whose stderr and stdout lines arrive on channels.
struct Running {
    process: Process,
    stdout: Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut process = Process::start(cmd.stdin(Stdio::null()).stdout(Stdio::piped()), DEADLINE);
        let stdout = lines_of(process.child.stdout.take().unwrap());
        Running { process, stdout }
    }

    /// Waits for a stderr line containing `what`; returns it.
    fn wait_for_stderr(&mut self, what: &str) -> String {
        self.process.wait_for_stderr(what)
    }

    /// The listener's port, from "listening on tcp 127.0.0.1:PORT".
    fn wait_listening_port(&mut self) -> u16 {
        let line = self.wait_for_stderr("listening on");
        line.split_whitespace()
            .nth(4)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    fn next_stdout(&mut self) -> Value {
        match self.stdout.recv_timeout(DEADLINE) {
            Ok(line) => parse(&line),
            Err(e) => panic!(
                "no stdout line ({e:?}); stderr: {:?}",
                self.process.seen_stderr()
            ),
        }
    }

    /// Waits for the process to end; returns its status and the rest of its stderr.
    fn finish(self) -> (ExitStatus, Vec<String>) {
        self.process.finish()
    }
}

fn listen_tcp(hook: &Path) -> Running {
    Running::start(tool(&[
        "listen",
        "tcp",
        "--port",
        "0",
        "--sleep",
        "0.05",
        "--shutdown-hook",
        hook.to_str().unwrap(),
    ]))
}

/// Creates the shutdown file and checks that the listener stops by it, having received
/// `messages`.
fn stop_by_hook(listener: Running, hook: &Path, messages: u64) {
    fs::write(hook, b"").unwrap();
    let (status, stderr) = listener.finish();
    let _ = fs::remove_file(hook);
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let last = stderr.last().cloned().unwrap_or_default();
    assert!(
        last.contains(&format!("{messages} messages")) && last.contains("shutdown file"),
        "{stderr:?}"
    );
}

#[test]
fn tcp_message_arrives_whole_and_the_echo_comes_back() {
    let hook = temp_path("tcp-hook");
    let mut listener = listen_tcp(&hook);
    let port = listener.wait_listening_port();
    let message = "hello from send tcp, with \"quotes\" and ünïcode";
    let sent = &sent_ok(&mut tool(&[
        "send",
        "tcp",
        "--port",
        &port.to_string(),
        "--msg",
        message,
        "--need-response",
    ]));
    assert_eq!(sent["sent"], "tcp");
    assert_eq!(sent["to"], format!("127.0.0.1:{port}"));
    assert_eq!(sent["data"], message);
    assert_eq!(sent["bytes"], message.len());
    // The listener echoes its first read (the whole short message) back.
    assert_eq!(sent["response"], message);
    let got = listener.next_stdout();
    assert_eq!(got["proto"], "tcp");
    assert_eq!(got["msg"], 0);
    assert_eq!(got["data"], message);
    assert_eq!(got["bytes"], message.len());
    assert_eq!(got["truncated"], false);
    stop_by_hook(listener, &hook, 1);
}

#[test]
fn tcp_large_message_arrives_whole() {
    let hook = temp_path("tcp-large-hook");
    let mut listener = listen_tcp(&hook);
    let port = listener.wait_listening_port();
    let sent = &sent_ok(
        tool(&["send", "tcp-large"])
            .env("TCP_SEND_TO_PORT", port.to_string())
            .env("MSG", "large one"),
    );
    let data = sent["data"].as_str().unwrap().to_owned();
    // The original's shape: message, marker, 10,000 UUIDs.
    let uuids = data.strip_prefix("large one large_random_data=").unwrap();
    assert_eq!(uuids.len(), 360_000);
    assert_eq!(sent["bytes"], data.len());
    assert_eq!(sent["response"], Value::Null, "no response asked for");
    let got = listener.next_stdout();
    assert_eq!(got["bytes"], data.len());
    assert!(got["data"] == data.as_str(), "received data differs");
    stop_by_hook(listener, &hook, 1);
}

#[test]
fn udp_datagrams_arrive_as_sent_with_the_originals_variables() {
    let hook = temp_path("udp-hook");
    let mut listener = Running::start({
        let mut c = tool(&["listen", "udp"]);
        c.env("UDP_LISTEN_ON_HOST", "127.0.0.1")
            .env("UDP_LISTEN_ON_PORT", "0")
            .env("UDP_LISTEN_SLEEP", "0.05")
            .env("UDP_LISTEN_SHUTDOWN_HOOK", &hook);
        c
    });
    let port = listener.wait_listening_port();
    let mut sent_data = Vec::new();
    for msg in ["first datagram", "second, datagram"] {
        let sent = &sent_ok(
            tool(&["send", "udp"])
                .env("UDP_SEND_TO_HOST", "127.0.0.1")
                .env("UDP_SEND_TO_PORT", port.to_string())
                .env("MSG", msg),
        );
        assert_eq!(
            (sent["sent"].as_str(), sent["data"].as_str()),
            (Some("udp"), Some(msg))
        );
        sent_data.push(msg);
    }
    // The default message, as the original built it.
    let out = tool(&["send", "udp", "--port", &port.to_string()])
        .output()
        .unwrap();
    let default_msg = stdout_lines(&out)[0]["data"].as_str().unwrap().to_owned();
    assert!(
        default_msg.starts_with("testing UDP msg time="),
        "{default_msg}"
    );
    for (i, want) in sent_data
        .iter()
        .copied()
        .chain([default_msg.as_str()])
        .enumerate()
    {
        let got = listener.next_stdout();
        assert_eq!(got["msg"], i);
        assert_eq!(got["proto"], "udp");
        assert_eq!(got["data"], want);
        assert_eq!(got["bytes"], want.len());
    }
    stop_by_hook(listener, &hook, 3);
}

#[test]
fn listener_refuses_to_start_while_the_shutdown_file_exists() {
    let hook = temp_path("exists-hook");
    fs::write(&hook, b"").unwrap();
    let out = tool(&[
        "listen",
        "tcp",
        "--port",
        "0",
        "--shutdown-hook",
        hook.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let _ = fs::remove_file(&hook);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rm -f"));
}

#[test]
fn send_to_a_closed_port_says_so() {
    // Bound then released: the port is (for this instant) known to be closed.
    let port = crate::common::brokers::free_port();
    let out = tool(&["send", "tcp", "--port", &port.to_string(), "--msg", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

// ---- live: icmp and arp through a veth pair, seen by capture ----

fn live_available() -> bool {
    harness::live_available("live traffic tool test", &[])
}

/// Namespaces `np-tools-<pid>-<tag>-a/b`, veth `va` (A, 10.99.<net>.1/24) and `vb`
/// (B, 10.99.<net>.2/24), both up.
fn netns_pair(tag: &str, net: u8) -> NetnsPair {
    let (a_addr, b_addr) = (format!("10.99.{net}.1/24"), format!("10.99.{net}.2/24"));
    NetnsPair::new("np-tools", tag, Some((&a_addr, &b_addr)))
}

/// `netpipe-fast capture` in `ns` on `vb`, writing `count` packets matching `filter` to `out`.
fn start_capture(ns: &str, filter: &str, count: &str, out: &Path) -> Running {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN, "capture", "--iface", "vb"])
        .args(["--filter", filter, "--count", count])
        .arg("-o")
        .arg(format!("file:{}", out.display()));
    let mut cap = Running::start(c);
    cap.wait_for_stderr("listening on vb");
    cap
}

/// The capture's records once it has stopped by its --count.
fn captured(cap: Running, out: &Path) -> Vec<Value> {
    let (status, stderr) = cap.finish();
    assert_eq!(status.code(), Some(0), "capture: {stderr:?}");
    let text = fs::read_to_string(out).expect("capture output");
    let _ = fs::remove_file(out);
    text.lines().map(parse).collect()
}

/// Bounded poll until `out` has `n` lines (the capture then stops by its count).
fn wait_for_lines(out: &Path, n: usize) {
    let end = Instant::now() + DEADLINE;
    loop {
        let have = fs::read(out)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(Instant::now() < end, "only {have} of {n} packets captured");
        std::thread::sleep(POLL);
    }
}

#[test]
fn icmp_echo_requests_are_answered_and_captured() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("icmp", 1);
    let out = temp_path("icmp-capture.jsonl");
    let cap = start_capture(&pair.b, "icmp", "4", &out);
    let send = Command::new("ip")
        .args(["netns", "exec", &pair.a, BIN, "send", "icmp"])
        .args(["--dst", "10.99.1.2", "--count", "2", "--size", "40"])
        .args(["--interval-ms", "0", "--timeout", "5"])
        .output()
        .unwrap();
    let send_err = String::from_utf8_lossy(&send.stderr).into_owned();
    assert_eq!(send.status.code(), Some(0), "{send_err}");
    let lines = stdout_lines(&send);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (seq, l) in lines[..2].iter().enumerate() {
        assert_eq!(l["seq"], seq);
        assert_eq!(l["reply"], true);
        assert_eq!(l["bytes"], 40);
    }
    assert_eq!(lines[2]["transmitted"], 2);
    assert_eq!(lines[2]["received"], 2);
    assert_eq!(lines[2]["socket"], "raw");
    wait_for_lines(&out, 4);
    let packets = captured(cap, &out);
    // Two requests from A, two replies from B; the payload is the original's 0x42 counter.
    let payload: String = (0..32u8).map(|i| format!("{:02x}", 0x42 + i)).collect();
    let mut kinds = Vec::new();
    for p in &packets {
        let icmp = &p["data"]["icmp"];
        kinds.push((
            icmp["type"].as_u64().unwrap(),
            icmp["seq"].as_u64().unwrap(),
        ));
        assert_eq!(p["data"]["raw"]["load"], payload.as_str(), "{p}");
        let (src, dst) = if icmp["type"] == 8 {
            ("10.99.1.1", "10.99.1.2")
        } else {
            ("10.99.1.2", "10.99.1.1")
        };
        assert_eq!(p["data"]["ip"]["src"], src);
        assert_eq!(p["data"]["ip"]["dst"], dst);
    }
    kinds.sort();
    assert_eq!(kinds, [(0, 0), (0, 1), (8, 0), (8, 1)]);
}

#[test]
fn arp_request_is_answered_and_captured() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("arp", 2);
    let (mac_a, mac_b) = (pair.mac(&pair.a, "va"), pair.mac(&pair.b, "vb"));
    let out = temp_path("arp-capture.jsonl");
    let cap = start_capture(&pair.b, "arp", "2", &out);
    let send = Command::new("ip")
        .args(["netns", "exec", &pair.a, BIN, "send", "arp"])
        .env("ARP_INTERFACE", "va")
        .env("ARP_DST_IP", "10.99.2.2")
        .env("ARP_DST_MAC", "ff:ff:ff:ff:ff:ff")
        .output()
        .unwrap();
    let send_err = String::from_utf8_lossy(&send.stderr).into_owned();
    assert_eq!(send.status.code(), Some(0), "{send_err}");
    let sent = &stdout_lines(&send)[0];
    assert_eq!(sent["hwsrc"], mac_a.as_str());
    assert_eq!(sent["psrc"], "10.99.2.1");
    assert_eq!(sent["pdst"], "10.99.2.2");
    assert_eq!(sent["reply"], true);
    assert_eq!(sent["reply_hwsrc"], mac_b.as_str());
    wait_for_lines(&out, 2);
    let packets = captured(cap, &out);
    let request = packets
        .iter()
        .find(|p| p["data"]["arp"]["op"] == 1)
        .expect("request captured");
    assert_eq!(request["data"]["ether"]["dst"], "ff:ff:ff:ff:ff:ff");
    assert_eq!(request["data"]["ether"]["src"], mac_a.as_str());
    let arp = &request["data"]["arp"];
    assert_eq!(arp["hwsrc"], mac_a.as_str());
    assert_eq!(arp["psrc"], "10.99.2.1");
    assert_eq!(arp["hwdst"], "00:00:00:00:00:00");
    assert_eq!(arp["pdst"], "10.99.2.2");
    let reply = packets
        .iter()
        .find(|p| p["data"]["arp"]["op"] == 2)
        .expect("reply captured");
    assert_eq!(reply["data"]["arp"]["hwsrc"], mac_b.as_str());
    assert_eq!(reply["data"]["arp"]["pdst"], "10.99.2.1");
}

#[test]
fn arp_on_a_missing_interface_exits_6() {
    if !live_available() {
        return;
    }
    let out = tool(&["send", "arp", "--iface", "np-no-such-if0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One namespace with only loopback, up; deleted on drop.
struct LoopbackNetns(String);

impl LoopbackNetns {
    fn new(tag: &str) -> LoopbackNetns {
        let name = format!("np-tools-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        LoopbackNetns(name)
    }

    /// `netpipe-fast ARGS` in the namespace as user and group nobody (65534), no privileges.
    /// The binary is run from a world-readable copy: the build directory may sit under a
    /// home directory nobody cannot enter.
    fn run_unprivileged(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "setpriv"])
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin)
            .args(args)
            .output()
            .expect("run setpriv")
    }
}

impl Drop for LoopbackNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn unprivileged_icmp_uses_a_ping_socket_or_says_why() {
    if !live_available() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let ns = LoopbackNetns::new("ping");
    let dir = TempDir::new("np-tools", "bin");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path("netpipe-fast");
    fs::copy(BIN, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let icmp = ["send", "icmp", "--dst", "127.0.0.1", "--count", "2"];
    let icmp = [&icmp[..], &["--interval-ms", "0"]].concat();
    // A new namespace starts with ping sockets allowed for no group ("1 0").
    let refused = ns.run_unprivileged(&bin, &icmp);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(err.contains("ping_group_range"), "{err}");
    let arp = ns.run_unprivileged(&bin, &["send", "arp"]);
    assert_eq!(arp.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&arp.stderr).contains("needs root"));
    // Allowed for every group (in this namespace only): the ping socket sends and gets replies.
    // /proc/sys/net is the namespace of the process that opens it: the one `ip netns exec` set.
    ip(&[
        "netns",
        "exec",
        &ns.0,
        "sh",
        "-c",
        "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
    ]);
    let ok = ns.run_unprivileged(&bin, &icmp);
    let err = String::from_utf8_lossy(&ok.stderr).into_owned();
    assert_eq!(ok.status.code(), Some(0), "{err}");
    let lines = stdout_lines(&ok);
    let last = lines.last().expect("summary line");
    assert_eq!(last["socket"], "ping");
    assert_eq!(
        (last["transmitted"].as_u64(), last["received"].as_u64()),
        (Some(2), Some(2))
    );
}

#[test]
fn sigterm_stops_a_listener_with_its_summary() {
    let hook = temp_path("sigterm-hook");
    let mut listener = listen_tcp(&hook);
    listener.wait_listening_port();
    listener.process.signal("-TERM");
    let (status, stderr) = listener.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    assert!(
        stderr
            .last()
            .is_some_and(|l| l.contains("0 messages") && l.contains("stopped by signal")),
        "{stderr:?}"
    );
}

/// Issue 9 item 10: a peer that connects and then stays silent does not block the listener:
/// it is closed after --idle-timeout, and a second client's message, sent while the idle one
/// is still open, is received and printed within that bound.
#[test]
fn idle_tcp_peer_does_not_block_the_next_client() {
    use std::io::{Read, Write};
    let hook = temp_path("tcp-idle-hook");
    let mut listener = Running::start(tool(&[
        "listen",
        "tcp",
        "--port",
        "0",
        "--sleep",
        "0.05",
        "--idle-timeout",
        "1",
        "--shutdown-hook",
        hook.to_str().unwrap(),
    ]));
    let port = listener.wait_listening_port();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let mut busy = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    busy.write_all(b"second client").unwrap();
    busy.shutdown(std::net::Shutdown::Write).unwrap();
    let got = listener.next_stdout();
    let waited = started.elapsed();
    assert_eq!(got["data"], "second client");
    // The idle timeout (1 s) plus scheduling slack; without the timeout it never comes.
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    // The idle peer was closed by the listener (end of stream), not left hanging.
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0);
    fs::write(&hook, b"").unwrap();
    let (status, stderr) = listener.finish();
    let _ = fs::remove_file(&hook);
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let last = stderr.last().cloned().unwrap_or_default();
    assert!(
        last.contains("1 messages") && last.contains("1 closed after 1000 ms idle"),
        "{stderr:?}"
    );
}
