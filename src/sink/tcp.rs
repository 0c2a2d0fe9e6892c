//! `tcp://HOST:PORT`: JSON lines (one message per line, as on stdout) to a TCP listener.
//!
//! The connection is made when the sink opens; a refused or unknown address ends the run with
//! exit code 9. Once running, a lost connection is made again forever with capped exponential
//! backoff (the original's connect_forwarder retried forever too), while the publisher holds
//! the batch, so the bounded pipeline applies back-pressure and nothing is dropped.
//!
//! At-least-once window: plain TCP has no acknowledgements, so a successful `write` only
//! means the bytes reached our send buffer; whatever sat in our send buffer, in flight or in
//! the peer's unread receive buffer when the connection died is lost with it. The sink
//! therefore keeps the most recent whole batches, up to [`TcpConfig::replay_bytes`] (by
//! default the largest send buffer plus the largest receive buffer the kernel may give a
//! socket, the third fields of `/proc/sys/net/ipv4/tcp_wmem` and `tcp_rmem`, 36 MiB on this
//! project's machines; at least 16 MiB), and after a reconnect resends all of them, starting
//! at a batch (and so line) boundary. A receiver may therefore see up to that many bytes of messages twice;
//! they are counted as `resent`. A receiver should drop an unterminated last line when a
//! connection ends (the sink never resumes mid-line). At the end of a run the sink shuts its
//! side down and waits (up to [`TcpConfig::close_wait`]) for the peer to close, which
//! confirms the peer read everything; a reset instead means data was lost, so it reconnects
//! and resends the window.

use super::{
    bad_url, log, reconnect_forever, SharedCounters, Sink, SinkCounters, EXIT_BAD_URL,
    EXIT_UNREACHABLE,
};
use crate::broker::url::split_host_port;
use crate::broker::{Backoff, StartError};
use crate::encode::batch::JsonBatch;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Recent bytes (whole batches) resent after a reconnect.
    pub replay_bytes: usize,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// At the end, how long to wait for the peer to close after we shut our side down.
    pub close_wait: Duration,
    /// Waits between reconnect attempts.
    pub backoff: Backoff,
}

impl TcpConfig {
    /// The smallest default replay window.
    pub const MIN_REPLAY_BYTES: usize = 16 << 20;

    /// Bytes that can sit unread between our `write` and the peer's `read`: our largest send
    /// buffer plus its largest receive buffer (taken from this host's limits).
    pub fn default_replay_bytes() -> usize {
        let max_of = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
                .unwrap_or(0)
        };
        let sum = max_of("/proc/sys/net/ipv4/tcp_wmem") + max_of("/proc/sys/net/ipv4/tcp_rmem");
        sum.max(Self::MIN_REPLAY_BYTES)
    }

    /// `host`:`port` with the defaults: [`TcpConfig::default_replay_bytes`], 5 s to connect
    /// and 5 s to wait for the peer to close.
    pub fn new(host: impl Into<String>, port: u16) -> TcpConfig {
        TcpConfig {
            host: host.into(),
            port,
            replay_bytes: Self::default_replay_bytes(),
            connect_timeout: Duration::from_secs(5),
            close_wait: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }

    /// `tcp://HOST:PORT` (an IPv6 host in brackets).
    pub fn parse(url: &str) -> Result<TcpConfig, String> {
        let bad = |why: String| bad_url(url, &why, "tcp://HOST:PORT");
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .ok_or_else(|| bad("no scheme".into()))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only a host and a port are allowed".into()));
        }
        let (host, port) = split_host_port(authority, None).map_err(bad)?;
        Ok(TcpConfig::new(host, port))
    }

    /// `tcp://HOST:PORT`, an IPv6 host in brackets.
    pub fn describe(&self) -> String {
        if self.host.contains(':') {
            format!("tcp://[{}]:{}", self.host, self.port)
        } else {
            format!("tcp://{}:{}", self.host, self.port)
        }
    }
}

/// A batch's bytes kept for resending.
struct Kept {
    bytes: Vec<u8>,
    messages: u64,
}

/// JSON lines over TCP, reconnecting forever.
pub struct TcpSink {
    cfg: TcpConfig,
    stream: Option<TcpStream>,
    /// Recent batches, oldest first; the last one is the batch being written.
    kept: VecDeque<Kept>,
    kept_bytes: usize,
    /// Buffers of batches that left the window, for reuse.
    spare: Vec<Vec<u8>>,
    counters: SharedCounters,
    /// The end of stream was not confirmed by the peer (it did not close in time).
    unconfirmed_end: bool,
}

impl TcpSink {
    /// Connects once; a failure is a [`StartError`] with exit code 9.
    pub fn connect(cfg: TcpConfig) -> Result<TcpSink, StartError> {
        let stream = open_stream(&cfg)
            .map_err(|e| StartError::new(EXIT_UNREACHABLE, format!("cannot connect: {e}")))?;
        if cfg.replay_bytes == 0 {
            return Err(StartError::new(EXIT_BAD_URL, "replay window must not be 0"));
        }
        Ok(TcpSink {
            cfg,
            stream: Some(stream),
            kept: VecDeque::new(),
            kept_bytes: 0,
            spare: Vec::new(),
            counters: Arc::new(SinkCounters::default()),
            unconfirmed_end: false,
        })
    }

    /// The counters, readable while the sink runs elsewhere.
    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Keeps a copy of the batch, dropping the oldest batches beyond the window.
    fn keep(&mut self, batch: &JsonBatch) {
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(batch.bytes());
        self.kept_bytes += bytes.len();
        self.kept.push_back(Kept {
            bytes,
            messages: batch.len() as u64,
        });
        while self.kept.len() > 1 {
            let oldest = self.kept.front().map_or(0, |k| k.bytes.len());
            if self.kept_bytes - oldest < self.cfg.replay_bytes {
                break;
            }
            if let Some(k) = self.kept.pop_front() {
                self.kept_bytes -= k.bytes.len();
                if self.spare.len() < 4 {
                    self.spare.push(k.bytes);
                }
            }
        }
    }

    /// Connects again, forever, with capped exponential backoff.
    fn reconnect(&mut self, why: &io::Error) {
        let dest = self.cfg.describe();
        log(format_args!(
            "{dest}: connection lost ({why}); reconnecting, holding the output"
        ));
        let cfg = &self.cfg;
        let (stream, attempts) =
            reconnect_forever(&dest, cfg.backoff, &self.counters, || open_stream(cfg));
        self.stream = Some(stream);
        log(format_args!(
            "{dest}: reconnected after {attempts} attempt(s)"
        ));
    }

    /// Writes every kept batch again on a fresh connection. `current_sent`: whether the last
    /// kept batch (the current one) was already written, at least in part, before.
    fn resend_kept(&mut self, current_sent: bool) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or_else(not_connected)?;
        let n = self.kept.len();
        for (i, k) in self.kept.iter().enumerate() {
            stream.write_all(&k.bytes)?;
            if i + 1 < n || current_sent {
                SinkCounters::add(&self.counters.resent, k.messages);
            }
        }
        Ok(())
    }
}

impl Sink for TcpSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.keep(batch);
        let mut resend = false;
        let mut current_sent = false;
        loop {
            if self.stream.is_none() {
                resend = true;
            }
            let result = if let Some(stream) = self.stream.as_mut().filter(|_| !resend) {
                // A peer that closed is noticed here, before the batch goes into the void.
                match peer_closed(stream) {
                    Some(e) => Err(e),
                    None => {
                        current_sent = true;
                        stream.write_all(batch.bytes())
                    }
                }
            } else {
                self.resend_kept(current_sent)
                    .inspect(|()| current_sent = true)
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    self.stream = None;
                    self.reconnect(&e);
                    resend = true;
                }
            }
        }
        SinkCounters::add(&self.counters.published, batch.len() as u64);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.reconnect(&not_connected());
                if let Err(e) = self.resend_kept(true) {
                    self.stream = None;
                    log(format_args!("{}: {e}", self.cfg.describe()));
                }
                continue;
            };
            match confirm_end(stream, self.cfg.close_wait) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.unconfirmed_end = true;
                    return Ok(());
                }
                Err(e) => {
                    // The peer reset the connection: what it had not read is lost; send the
                    // window again.
                    self.stream = None;
                    self.reconnect(&e);
                    if let Err(e) = self.resend_kept(true) {
                        self.stream = None;
                        log(format_args!("{}: {e}", self.cfg.describe()));
                    }
                }
            }
        }
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        Some(format!(
            "sent {} to {}, {} resent after {} reconnects{}",
            c.published(),
            self.cfg.describe(),
            c.resent(),
            c.reconnects(),
            if self.unconfirmed_end {
                " (the peer did not close the connection: end of stream not confirmed)"
            } else {
                ""
            }
        ))
    }
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "not connected")
}

/// Resolves and connects, trying each address in turn.
fn open_stream(cfg: &TcpConfig) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (cfg.host.as_str(), cfg.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, cfg.connect_timeout) {
            Ok(s) => {
                // Small final batches should not wait for Nagle's timer.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Without blocking: `Some(error)` when the peer has closed or reset the connection.
fn peer_closed(stream: &mut TcpStream) -> Option<io::Error> {
    if let Err(e) = stream.set_nonblocking(true) {
        return Some(e);
    }
    let mut byte = [0u8; 1];
    let state = match stream.peek(&mut byte) {
        Ok(0) => Some(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection",
        )),
        // The peer sent something (it is not expected to); the connection is alive.
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(e),
    };
    match stream.set_nonblocking(false) {
        Ok(()) => state,
        Err(e) => Some(e),
    }
}

/// Shuts our side down and waits for the peer to close: `Ok(true)` when it did (it read
/// everything), `Ok(false)` when it did not within `wait`, `Err` when it reset the connection.
fn confirm_end(stream: &mut TcpStream, wait: Duration) -> io::Result<bool> {
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + wait;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut sink) {
            Ok(0) => return Ok(true),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

use super::{SinkConfig, SinkKind};

/// `tcp://HOST:PORT` in the sink registry ([`super::SINK_KINDS`]).
pub const KIND: SinkKind = SinkKind {
    schemes: &["tcp"],
    takes_password: false,
    partitioned: false,
    parse: |url, _| Ok(Box::new(TcpConfig::parse(url)?)),
};

impl SinkConfig for TcpConfig {
    fn build(&self) -> Result<(Box<dyn Sink>, SharedCounters), StartError> {
        let sink = TcpSink::connect(self.clone())?;
        let counters = sink.counters();
        Ok((Box::new(sink), counters))
    }

    fn describe(&self) -> String {
        TcpConfig::describe(self)
    }

    fn identity(&self) -> String {
        format!("tcp-{}-{}", self.host, self.port)
    }

    fn endpoint(&self) -> (&str, u16) {
        (self.host.as_str(), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_urls() {
        let c = TcpConfig::parse("tcp://127.0.0.1:9000").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 9000));
        let c = TcpConfig::parse("tcp://[::1]:9000/").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9000));
        assert_eq!(c.describe(), "tcp://[::1]:9000");
        for bad in [
            "tcp://h",
            "tcp://h:x",
            "tcp://:9",
            "tcp://h:9/path",
            "tcp://u@h:9",
        ] {
            assert!(TcpConfig::parse(bad).is_err(), "{bad}");
        }
    }

    fn batch_of(lines: &[&str]) -> JsonBatch {
        crate::sink::test_batch::of(lines)
    }

    #[test]
    fn window_keeps_whole_recent_batches() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cfg = TcpConfig::new("127.0.0.1", port);
        cfg.replay_bytes = 10;
        let mut sink = TcpSink::connect(cfg).unwrap();
        sink.keep(&batch_of(&["aaaa"])); // 5 bytes
        sink.keep(&batch_of(&["bbbb"])); // 10: the oldest still needed
        assert_eq!(sink.kept.len(), 2);
        sink.keep(&batch_of(&["cccc"]));
        assert_eq!(sink.kept.len(), 2);
        sink.keep(&batch_of(&["0123456789abcdef"]));
        assert_eq!(
            sink.kept.len(),
            1,
            "the current batch stays even when larger"
        );
    }
}
