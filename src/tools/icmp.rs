//! `send icmp`: echo requests (RFC 792) as the original's `icmp_send_msg.py` sent them:
//! identifier = process id, sequence from 0, payload bytes 0x42, 0x43, ... filling the message
//! to `size` bytes, one request per interval, each waiting up to `timeout` for its reply.
//!
//! A raw socket (root or CAP_NET_RAW) sends exactly that; without the privilege an
//! unprivileged ping socket (`SOCK_DGRAM`, when `net.ipv4.ping_group_range` allows the group)
//! sends the same message except that the kernel sets the identifier. Both through socket2's
//! safe API.

use super::{is_timeout, send_exit, ToolError};
use serde_json::json;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::{Duration, Instant};

/// ICMP type of an echo request.
pub const ECHO_REQUEST: u8 = 8;
/// ICMP type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// First payload byte; the next ones count up from it (mod 256), as the original's did.
pub const PAYLOAD_START: u8 = 0x42;

/// One `send icmp`: where, how many requests, how big, how long to wait.
#[derive(Clone, Debug)]
pub struct IcmpSend {
    /// Host name or IPv4 address; the first IPv4 address it resolves to is pinged.
    pub dst: String,
    /// Echo requests to send.
    pub count: u32,
    /// ICMP message bytes, 8-byte header included.
    pub size: u16,
    /// How long each request waits for its reply.
    pub timeout: Duration,
    /// From one request's send to the next one's.
    pub interval: Duration,
}

/// Which socket sent the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpSocketKind {
    /// A raw socket (root or CAP_NET_RAW): the identifier is the process id.
    Raw,
    /// An unprivileged ping socket: the kernel chose the identifier.
    Ping,
}

/// One request's fate.
#[derive(Clone, Debug, PartialEq)]
pub struct EchoResult {
    /// The request's sequence number.
    pub seq: u16,
    /// Round-trip time in milliseconds (microsecond resolution); `None`: no reply in time.
    pub rtt_ms: Option<f64>,
}

/// What a `send icmp` run did.
#[derive(Clone, Debug)]
pub struct IcmpOutcome {
    /// The address pinged.
    pub to: Ipv4Addr,
    /// The socket the requests went out on.
    pub socket: IcmpSocketKind,
    /// One entry per request sent, in order.
    pub results: Vec<EchoResult>,
}

impl IcmpOutcome {
    /// How many requests were answered in time.
    pub fn received(&self) -> usize {
        self.results.iter().filter(|r| r.rtt_ms.is_some()).count()
    }

    /// The closing JSON line: address, socket kind, transmitted and received counts.
    pub fn summary_line(&self) -> String {
        json!({
            "sent": "icmp",
            "to": self.to.to_string(),
            "socket": match self.socket { IcmpSocketKind::Raw => "raw", IcmpSocketKind::Ping => "ping" },
            "transmitted": self.results.len(),
            "received": self.received(),
        })
        .to_string()
    }
}

/// The echo request message: header with checksum, then the counting payload.
pub fn echo_request(id: u16, seq: u16, size: u16) -> Vec<u8> {
    let size = usize::from(size.max(8));
    let mut m = Vec::with_capacity(size);
    m.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..size - 8).map(|i| PAYLOAD_START.wrapping_add(i as u8)));
    let sum = super::internet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// The ICMP part of what the socket returned: raw sockets include the IPv4 header, ping
/// sockets do not. `None` when too short to hold an echo header.
fn icmp_part(kind: IcmpSocketKind, datagram: &[u8]) -> Option<&[u8]> {
    let icmp = match kind {
        IcmpSocketKind::Raw => {
            let ihl = usize::from(datagram.first()? & 0x0f) * 4;
            datagram.get(ihl..)?
        }
        IcmpSocketKind::Ping => datagram,
    };
    (icmp.len() >= 8).then_some(icmp)
}

fn resolve_v4(host: &str) -> Result<Ipv4Addr, ToolError> {
    let addrs = (host, 0)
        .to_socket_addrs()
        .map_err(|e| ToolError::new(send_exit::CONNECT, format!("cannot resolve {host}: {e}")))?;
    for a in addrs {
        if let IpAddr::V4(v4) = a.ip() {
            return Ok(v4);
        }
    }
    Err(ToolError::new(
        send_exit::CONNECT,
        format!("{host} has no IPv4 address"),
    ))
}

fn open_socket() -> Result<(Socket, IcmpSocketKind), ToolError> {
    match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
        Ok(s) => return Ok((s, IcmpSocketKind::Raw)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(e) => {
            return Err(ToolError::new(
                send_exit::IO,
                format!("cannot open a raw ICMP socket: {e}"),
            ))
        }
    }
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))
        .map(|s| (s, IcmpSocketKind::Ping))
        .map_err(|e| {
            ToolError::new(
                send_exit::PERMISSION,
                format!(
                    "no permission to send ICMP: a raw socket needs root (CAP_NET_RAW) and the \
                     ping socket was refused too ({e}; see sysctl net.ipv4.ping_group_range)"
                ),
            )
        })
}

/// Sends `count` echo requests and waits for each reply; `report` gets one JSON line per
/// request.
pub fn send_icmp(cfg: &IcmpSend, report: &mut dyn FnMut(&str)) -> Result<IcmpOutcome, ToolError> {
    let to = resolve_v4(&cfg.dst)?;
    let (socket, kind) = open_socket()?;
    let dest = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(to, 0)));
    let id = (std::process::id() & 0xffff) as u16;
    let mut results = Vec::new();
    let mut buf = [0u8; 65_536];
    for n in 0..cfg.count {
        let seq = (n & 0xffff) as u16;
        let started = Instant::now();
        let message = echo_request(id, seq, cfg.size);
        socket.send_to(&message, &dest).map_err(|e| {
            ToolError::new(send_exit::IO, format!("sending echo request to {to}: {e}"))
        })?;
        let deadline = started + cfg.timeout;
        let mut rtt_ms = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|e| ToolError::new(send_exit::IO, format!("read timeout: {e}")))?;
            let got = match (&socket).read(&mut buf) {
                Ok(got) => got,
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ToolError::new(
                        send_exit::IO,
                        format!("reading echo replies: {e}"),
                    ))
                }
            };
            let Some(icmp) = icmp_part(kind, &buf[..got]) else {
                continue;
            };
            let their_seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            let their_id = u16::from_be_bytes([icmp[4], icmp[5]]);
            // A raw socket sees every ICMP message of the host (our own requests on
            // loopback too); a ping socket only its own replies, with the kernel's identifier.
            let ours = icmp[0] == ECHO_REPLY
                && their_seq == seq
                && (kind == IcmpSocketKind::Ping || their_id == id);
            if ours {
                // Microsecond resolution is all a round trip time needs.
                rtt_ms = Some((started.elapsed().as_secs_f64() * 1e6).round() / 1e3);
                break;
            }
        }
        let line = json!({
            "sent": "icmp",
            "to": to.to_string(),
            "seq": seq,
            "bytes": message.len(),
            "reply": rtt_ms.is_some(),
            "rtt_ms": rtt_ms,
        })
        .to_string();
        report(&line);
        results.push(EchoResult { seq, rtt_ms });
        if n + 1 < cfg.count {
            let next = started + cfg.interval;
            let wait = next.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                // Pacing requested by the user (the original sent one per second), not
                // synchronisation.
                std::thread::sleep(wait);
            }
        }
    }
    Ok(IcmpOutcome {
        to,
        socket: kind,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_and_checksum() {
        let m = echo_request(0x1234, 2, 64);
        assert_eq!(m.len(), 64);
        assert_eq!(&m[..2], &[8, 0]);
        assert_eq!(&m[4..8], &[0x12, 0x34, 0, 2]);
        assert_eq!(m[8], 0x42);
        assert_eq!(m[63], 0x42 + 55);
        assert_eq!(super::super::internet_checksum(&m), 0);
    }

    #[test]
    fn payload_wraps_past_255() {
        let m = echo_request(1, 1, 8 + 200);
        assert_eq!(m[8 + 189], 0xff);
        assert_eq!(m[8 + 190], 0x00);
    }

    #[test]
    fn raw_datagram_skips_the_ip_header() {
        let mut d = vec![0x46u8; 24]; // IHL 6: 24-byte header
        d.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 2]);
        assert_eq!(icmp_part(IcmpSocketKind::Raw, &d), Some(&d[24..]));
        assert_eq!(icmp_part(IcmpSocketKind::Raw, &d[..30]), None);
        assert_eq!(icmp_part(IcmpSocketKind::Raw, &[]), None);
        assert_eq!(icmp_part(IcmpSocketKind::Ping, &d[24..]), Some(&d[24..]));
    }

    /// The effective user id, from /proc/self/status (`Uid:` real, effective, saved, fs).
    fn effective_uid() -> Option<u32> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    }

    #[test]
    fn ping_of_loopback_is_answered() {
        // Root gives a raw socket, so as root the ping must succeed; otherwise a ping socket
        // if the sysctl allows it; if neither, the error must say so (exit 4), never panic.
        let root = effective_uid().expect("/proc/self/status has a Uid line") == 0;
        let cfg = IcmpSend {
            dst: "127.0.0.1".into(),
            count: 2,
            size: 64,
            timeout: Duration::from_secs(2),
            interval: Duration::ZERO,
        };
        let mut lines = Vec::new();
        match send_icmp(&cfg, &mut |l| lines.push(l.to_owned())) {
            Ok(o) => {
                assert_eq!(o.received(), 2, "{lines:?}");
                assert_eq!(lines.len(), 2);
            }
            Err(e) => {
                assert!(!root, "as root the raw socket must work: {e}");
                assert_eq!(e.code, send_exit::PERMISSION, "{e}");
            }
        }
    }
}
