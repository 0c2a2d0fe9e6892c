//! `listen tcp` and `listen udp`: the original's `listen_tcp_port.py` / `listen_udp_port.py`.
//!
//! Kept: the environment variables and defaults, refusing to start while the shutdown file
//! exists, the TCP listener echoing the first read back (what `NEED_RESPONSE` senders wait
//! for). Fixed: the original checked its shutdown file only after a connection or datagram
//! arrived, so an idle listener never stopped; here every blocking call wakes up at least
//! every `sleep` to look. The original also read a single `LISTEN_SIZE` chunk per connection
//! and hung up on the rest (a `tcp-large` message was cut at 1024 bytes); here a connection is
//! read to its end and reported as one message.
//!
//! Connections are served one at a time (as the original did), so a peer that connects and
//! then sends nothing would hold every later client in the backlog: each connection is closed
//! once it has been silent for the idle timeout (`--idle-timeout`, LISTEN_IDLE_TIMEOUT, default
//! 5 s), what it sent reported, and the next one accepted.
//!
//! The shutdown file's default lives in this user's state directory (see [`state_dir`]), not in
//! /tmp where anyone could create it, and a shutdown file owned by another user (not root) is
//! ignored.

use super::{is_timeout, ToolError};
use serde_json::json;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Exit codes of `listen` (the table is in [`crate::exit::listen`]).
pub use crate::exit::listen as exit;

/// Bytes of one TCP message kept for the report; past this only the count grows (and the
/// line says `truncated`), so a peer streaming forever cannot exhaust memory.
pub const MAX_KEPT_BYTES: usize = 16 << 20;
/// Shortest wait between checks of the shutdown file (a zero `sleep` would block forever).
const MIN_POLL: Duration = Duration::from_millis(10);

/// Which listener to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Accept connections one at a time; each connection is one message.
    Tcp,
    /// Each datagram is one message.
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A listener's settings (`netpipe-fast listen` builds them from its flags).
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// TCP or UDP.
    pub proto: Proto,
    /// Address (or host name) to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one (reported through `on_ready`).
    pub port: u16,
    /// TCP accept backlog (at least 1 is used); ignored for UDP.
    pub backlog: i32,
    /// Bytes per TCP read; the first read of a connection is echoed back.
    pub read_bytes: usize,
    /// Longest wait between checks of the shutdown file and `stop` (at least 10 ms is used).
    pub sleep: Duration,
    /// The listener stops once this file exists (owned by this user or root).
    pub shutdown_hook: PathBuf,
    /// Stop after this many messages; `None`: no limit.
    pub count: Option<u64>,
    /// TCP: a connection silent for this long is closed (and what it sent reported).
    pub idle_timeout: Duration,
}

/// Default of `--idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// This user's state directory (see [`crate::paths::state_root`]).
pub fn state_dir() -> PathBuf {
    crate::paths::state_root()
}

/// The default shutdown file for this listener: the original's name, in [`state_dir`].
pub fn default_shutdown_hook(proto: Proto, host: &str, port: u16) -> PathBuf {
    let name = match proto {
        Proto::Tcp => format!("shutdown-listen-server-{host}-{port}"),
        Proto::Udp => format!("udp-shutdown-listen-server-{host}-{port}"),
    };
    state_dir().join(name)
}

/// Whether the shutdown file is there and owned by this user or root (another user's file in
/// a shared folder does not stop the listener).
fn hook_present(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        let euid = nix::unistd::geteuid().as_raw();
        m.uid() == euid || m.uid() == 0
    })
}

/// Why a listener stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The shutdown file appeared.
    ShutdownFile,
    /// `count` messages arrived.
    Count,
    /// The `stop` flag was set (SIGINT/SIGTERM in the program).
    Signal,
}

/// What a listener received, for the last line on stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSummary {
    /// Messages reported (TCP connections that sent anything, or datagrams).
    pub messages: u64,
    /// Bytes received in those messages, including any past [`MAX_KEPT_BYTES`].
    pub bytes: u64,
    /// TCP connections the peer reset before ending them properly (still reported).
    pub resets: u64,
    /// TCP connections closed by us after `idle_timeout` of silence (reported if they sent
    /// anything).
    pub idle_closed: u64,
    /// Why the listener stopped.
    pub stopped_by: StopReason,
}

impl ListenSummary {
    /// The summary as one line of text (the settings it names come from `cfg`).
    pub fn line(&self, cfg: &ListenConfig) -> String {
        let why = match self.stopped_by {
            StopReason::ShutdownFile => format!("shutdown file {}", cfg.shutdown_hook.display()),
            StopReason::Count => "--count".to_owned(),
            StopReason::Signal => "signal".to_owned(),
        };
        format!(
            "listen {}: {} messages, {} bytes received, {} connections reset by the peer, {} \
             closed after {} ms idle; stopped by {why}",
            cfg.proto.name(),
            self.messages,
            self.bytes,
            self.resets,
            self.idle_closed,
            cfg.idle_timeout.as_millis()
        )
    }
}

fn should_stop(cfg: &ListenConfig, stop: &AtomicBool, messages: u64) -> Option<StopReason> {
    if stop.load(Ordering::Relaxed) {
        Some(StopReason::Signal)
    } else if cfg.count.is_some_and(|c| messages >= c) {
        Some(StopReason::Count)
    } else if hook_present(&cfg.shutdown_hook) {
        Some(StopReason::ShutdownFile)
    } else {
        None
    }
}

fn bind_addr(cfg: &ListenConfig) -> Result<SocketAddr, ToolError> {
    super::resolve(&cfg.host, cfg.port).map_err(|e| ToolError::new(exit::USAGE, e.message))
}

fn bind_error(addr: SocketAddr, e: io::Error) -> ToolError {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        " (ports below 1024 need root)"
    } else {
        ""
    };
    ToolError::new(exit::BIND, format!("cannot listen on {addr}: {e}{hint}"))
}

/// Runs the listener until the shutdown file exists, `count` messages arrived or `stop` is
/// set. `on_ready` gets the bound address (the real port when 0 was asked for); `on_message`
/// one JSON line per message.
pub fn listen(
    cfg: &ListenConfig,
    stop: &AtomicBool,
    on_ready: &mut dyn FnMut(SocketAddr),
    on_message: &mut dyn FnMut(&str),
) -> Result<ListenSummary, ToolError> {
    if hook_present(&cfg.shutdown_hook) {
        return Err(ToolError::new(
            exit::HOOK_EXISTS,
            format!(
                "the shutdown file exists; remove it first: rm -f {}",
                cfg.shutdown_hook.display()
            ),
        ));
    }
    if cfg.read_bytes == 0 {
        return Err(ToolError::new(exit::USAGE, "the read size must be above 0"));
    }
    let addr = bind_addr(cfg)?;
    let poll = cfg.sleep.max(MIN_POLL);
    match cfg.proto {
        Proto::Tcp => listen_tcp(cfg, addr, poll, stop, on_ready, on_message),
        Proto::Udp => listen_udp(cfg, addr, poll, stop, on_ready, on_message),
    }
}

fn message_line(
    proto: Proto,
    msg: u64,
    peer: &str,
    bytes: u64,
    data: &[u8],
    truncated: bool,
) -> String {
    json!({
        "msg": msg,
        "proto": proto.name(),
        "peer": peer,
        "bytes": bytes,
        "data": String::from_utf8_lossy(data),
        "truncated": truncated,
    })
    .to_string()
}

fn listen_tcp(
    cfg: &ListenConfig,
    addr: SocketAddr,
    poll: Duration,
    stop: &AtomicBool,
    on_ready: &mut dyn FnMut(SocketAddr),
    on_message: &mut dyn FnMut(&str),
) -> Result<ListenSummary, ToolError> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| bind_error(addr, e))?;
    // A restarted listener must not wait out TIME_WAIT of its previous run.
    socket
        .set_reuse_address(true)
        .map_err(|e| bind_error(addr, e))?;
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|e| bind_error(addr, e))?;
    socket
        .listen(cfg.backlog.max(1))
        .map_err(|e| bind_error(addr, e))?;
    // On Linux accept(2) honours SO_RCVTIMEO: it returns EAGAIN after `poll`, which is when
    // the shutdown file is looked at.
    socket
        .set_read_timeout(Some(poll))
        .map_err(|e| bind_error(addr, e))?;
    let bound = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    on_ready(bound);
    let mut summary = ListenSummary {
        messages: 0,
        bytes: 0,
        resets: 0,
        idle_closed: 0,
        stopped_by: StopReason::Signal,
    };
    let mut buf = vec![0u8; cfg.read_bytes];
    // The read timeout is also the idle check's resolution.
    let read_poll = poll.min(cfg.idle_timeout.max(MIN_POLL));
    loop {
        if let Some(why) = should_stop(cfg, stop, summary.messages) {
            summary.stopped_by = why;
            return Ok(summary);
        }
        let (conn, peer) = match socket.accept() {
            Ok(c) => c,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            // The peer gave up between SYN and accept: nothing was received from it.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => {
                return Err(ToolError::new(
                    exit::RECEIVE,
                    format!("accept on {bound}: {e}"),
                ))
            }
        };
        let peer = peer.as_socket().map(|a| a.to_string()).unwrap_or_default();
        let mut stream = TcpStream::from(conn);
        stream
            .set_read_timeout(Some(read_poll))
            .map_err(|e| ToolError::new(exit::RECEIVE, format!("read timeout: {e}")))?;
        // The echo is best effort: a peer that never reads must not block the listener.
        stream
            .set_write_timeout(Some(poll))
            .map_err(|e| ToolError::new(exit::RECEIVE, format!("write timeout: {e}")))?;
        let mut data = Vec::new();
        let mut total: u64 = 0;
        let mut echoed = false;
        let mut reset = false;
        let mut idle = false;
        let mut heard = Instant::now();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    heard = Instant::now();
                    total += n as u64;
                    let room = MAX_KEPT_BYTES.saturating_sub(data.len());
                    data.extend_from_slice(&buf[..n.min(room)]);
                    if !echoed {
                        echoed = true;
                        // The reply a NEED_RESPONSE sender waits for. A peer that does not
                        // read it only costs the echo, not the message.
                        let _ = stream.write_all(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    // Idle peer: stop waiting for it when asked to stop, or once it has been
                    // silent for the idle timeout (the next client is waiting).
                    if stop.load(Ordering::Relaxed) || hook_present(&cfg.shutdown_hook) {
                        break;
                    }
                    if heard.elapsed() >= cfg.idle_timeout {
                        idle = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    reset = true;
                    break;
                }
                Err(e) => {
                    return Err(ToolError::new(
                        exit::RECEIVE,
                        format!("reading from {peer}: {e}"),
                    ))
                }
            }
        }
        if reset {
            summary.resets += 1;
        }
        if idle {
            summary.idle_closed += 1;
        }
        if total > 0 || !(reset || idle) {
            let truncated = total > data.len() as u64;
            on_message(&message_line(
                Proto::Tcp,
                summary.messages,
                &peer,
                total,
                &data,
                truncated,
            ));
            summary.messages += 1;
            summary.bytes += total;
        }
    }
}

fn listen_udp(
    cfg: &ListenConfig,
    addr: SocketAddr,
    poll: Duration,
    stop: &AtomicBool,
    on_ready: &mut dyn FnMut(SocketAddr),
    on_message: &mut dyn FnMut(&str),
) -> Result<ListenSummary, ToolError> {
    let socket = UdpSocket::bind(addr).map_err(|e| bind_error(addr, e))?;
    socket
        .set_read_timeout(Some(poll))
        .map_err(|e| bind_error(addr, e))?;
    let bound = socket.local_addr().unwrap_or(addr);
    on_ready(bound);
    let mut summary = ListenSummary {
        messages: 0,
        bytes: 0,
        resets: 0,
        idle_closed: 0,
        stopped_by: StopReason::Signal,
    };
    // Any UDP datagram fits, so none is cut short whatever UDP_LISTEN_SIZE says.
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Some(why) = should_stop(cfg, stop, summary.messages) {
            summary.stopped_by = why;
            return Ok(summary);
        }
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                on_message(&message_line(
                    Proto::Udp,
                    summary.messages,
                    &peer.to_string(),
                    n as u64,
                    &buf[..n],
                    false,
                ));
                summary.messages += 1;
                summary.bytes += n as u64;
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            // An ICMP port unreachable for an earlier reply of ours; nothing was lost.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                return Err(ToolError::new(
                    exit::RECEIVE,
                    format!("receiving on {bound}: {e}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cfg(proto: Proto, hook: PathBuf, count: Option<u64>) -> ListenConfig {
        ListenConfig {
            proto,
            host: "127.0.0.1".into(),
            port: 0,
            backlog: 5,
            read_bytes: 1024,
            sleep: Duration::from_millis(20),
            shutdown_hook: hook,
            count,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    fn temp_hook(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("np-listen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn default_hooks_have_the_originals_names_in_the_state_directory() {
        let tcp = default_shutdown_hook(Proto::Tcp, "127.0.0.1", 80);
        let udp = default_shutdown_hook(Proto::Udp, "127.0.0.1", 17000);
        assert_eq!(tcp, state_dir().join("shutdown-listen-server-127.0.0.1-80"));
        assert_eq!(
            udp,
            state_dir().join("udp-shutdown-listen-server-127.0.0.1-17000")
        );
        assert!(!tcp.starts_with("/tmp") && !udp.starts_with("/tmp"));
    }

    #[test]
    fn refuses_to_start_when_the_hook_exists() {
        let hook = temp_hook("exists");
        std::fs::write(&hook, b"").unwrap();
        let stop = AtomicBool::new(false);
        let e = listen(
            &cfg(Proto::Udp, hook.clone(), None),
            &stop,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap_err();
        std::fs::remove_file(&hook).unwrap();
        assert_eq!(e.code, exit::HOOK_EXISTS);
    }

    #[test]
    fn tcp_echoes_first_read_and_reports_the_whole_message() {
        let hook = temp_hook("tcp");
        let c = cfg(Proto::Tcp, hook, Some(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let s = listen(&c, &stop, &mut |a| tx.send(a).unwrap(), &mut |l| {
                lines.push(l.to_owned())
            })
            .unwrap();
            (s, lines)
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let message = vec![b'x'; 5000];
        client.write_all(&message).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut echo = Vec::new();
        client.read_to_end(&mut echo).unwrap();
        let (summary, lines) = t.join().unwrap();
        assert_eq!(summary.messages, 1);
        assert_eq!(summary.bytes, 5000);
        assert_eq!(summary.stopped_by, StopReason::Count);
        assert!(!echo.is_empty() && echo.len() <= 1024 && echo.iter().all(|&b| b == b'x'));
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["bytes"], 5000);
        assert_eq!(v["data"].as_str().unwrap().len(), 5000);
    }

    #[test]
    fn udp_reports_each_datagram_and_stops_when_the_hook_appears() {
        let hook = temp_hook("udp");
        let c = cfg(Proto::Udp, hook.clone(), None);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (mtx, mrx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            listen(&c, &stop, &mut |a| tx.send(a).unwrap(), &mut |l| {
                mtx.send(l.to_owned()).unwrap()
            })
            .unwrap()
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"one", addr).unwrap();
        let line = mrx.recv_timeout(Duration::from_secs(10)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["data"], "one");
        assert_eq!(v["peer"], client.local_addr().unwrap().to_string());
        std::fs::write(&hook, b"").unwrap();
        let summary = t.join().unwrap();
        std::fs::remove_file(&hook).unwrap();
        assert_eq!(summary.stopped_by, StopReason::ShutdownFile);
        assert_eq!((summary.messages, summary.bytes), (1, 3));
    }
}
