//! `send tcp`, `send tcp-large`, `send udp`: one message to a listener.

use super::{is_timeout, resolve, send_exit, ToolError};
use serde_json::json;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::Duration;

/// UUIDs appended by `tcp-large` (the original's 100 x 100 loop): 10,000 x 36 bytes.
pub const LARGE_UUIDS: usize = 10_000;
/// Bytes of the reply printed with `--need-response` (the original read 1024).
pub const RESPONSE_BYTES: usize = 1024;

/// The `tcp-large` message: `base`, `" large_random_data="`, then [`LARGE_UUIDS`] random
/// UUIDs (hyphenated), as the original built it.
pub fn large_message(base: &str) -> String {
    let mut m = String::with_capacity(base.len() + 19 + LARGE_UUIDS * 36);
    m.push_str(base);
    m.push_str(" large_random_data=");
    let mut buf = uuid::Uuid::encode_buffer();
    for _ in 0..LARGE_UUIDS {
        m.push_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf));
    }
    m
}

/// One message to send over TCP or UDP: where to, what, and whether (and how long) to wait
/// for a reply.
#[derive(Clone, Debug)]
pub struct MessageSend {
    /// Host name or address; the first address it resolves to is used.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// The bytes to send, whole.
    pub message: Vec<u8>,
    /// Whether the reply (up to [`RESPONSE_BYTES`]) is reported; UDP waits for a datagram
    /// back only then.
    pub need_response: bool,
    /// Connect timeout, and how long to wait for the reply.
    pub timeout: Duration,
}

/// What a send did; printed as one JSON line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// `"tcp"` or `"udp"`.
    pub proto: &'static str,
    /// The address sent to, `ip:port`.
    pub to: String,
    /// Bytes sent (the whole message).
    pub bytes: usize,
    /// The reply, when one was asked for: TCP's may be empty (nothing came in time); for UDP
    /// no reply in time is an error instead.
    pub response: Option<Vec<u8>>,
}

impl Sent {
    /// The JSON line printed on stdout; `data` is the message sent (printed lossily as UTF-8).
    pub fn json_line(&self, data: &[u8]) -> String {
        json!({
            "sent": self.proto,
            "to": self.to,
            "bytes": self.bytes,
            "data": String::from_utf8_lossy(data),
            "response": self.response.as_deref().map(String::from_utf8_lossy),
        })
        .to_string()
    }
}

fn io_error(what: &str, e: io::Error) -> ToolError {
    ToolError::new(send_exit::IO, format!("{what}: {e}"))
}

/// Connects, writes the whole message, half-closes, then reads what the peer sends back
/// until it closes (a graceful end: closing with unread data would make the kernel send a
/// reset, which can discard what the listener has not read yet).
pub fn send_tcp(cfg: &MessageSend) -> Result<Sent, ToolError> {
    let addr = resolve(&cfg.host, cfg.port)?;
    let timeout = cfg.timeout.max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        ToolError::new(send_exit::CONNECT, format!("cannot connect to {addr}: {e}"))
    })?;
    stream
        .write_all(&cfg.message)
        .map_err(|e| io_error(&format!("sending to {addr}"), e))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| io_error(&format!("closing the send side to {addr}"), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| io_error("setting the read timeout", e))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = RESPONSE_BYTES.saturating_sub(response.len());
                response.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The message is delivered; a peer that keeps the connection open (or resets it)
            // after that only costs us its reply.
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(io_error(&format!("reading the reply from {addr}"), e)),
        }
    }
    Ok(Sent {
        proto: "tcp",
        to: addr.to_string(),
        bytes: cfg.message.len(),
        response: cfg.need_response.then_some(response),
    })
}

/// One datagram; with `need_response`, waits for one datagram back.
pub fn send_udp(cfg: &MessageSend) -> Result<Sent, ToolError> {
    let addr = resolve(&cfg.host, cfg.port)?;
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(|e| io_error("opening a UDP socket", e))?;
    let n = socket
        .send_to(&cfg.message, addr)
        .map_err(|e| io_error(&format!("sending to {addr}"), e))?;
    if n != cfg.message.len() {
        return Err(ToolError::new(
            send_exit::IO,
            format!("only {n} of {} bytes sent to {addr}", cfg.message.len()),
        ));
    }
    let mut response = None;
    if cfg.need_response {
        socket
            .set_read_timeout(Some(cfg.timeout.max(Duration::from_millis(1))))
            .map_err(|e| io_error("setting the read timeout", e))?;
        let mut buf = vec![0u8; 65_536];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => response = Some(buf[..n.min(RESPONSE_BYTES)].to_vec()),
            Err(e) if is_timeout(&e) => {
                return Err(ToolError::new(
                    send_exit::UNANSWERED,
                    format!("sent {n} bytes to {addr}; no reply in time"),
                ))
            }
            Err(e) => return Err(io_error(&format!("reading the reply from {addr}"), e)),
        }
    }
    Ok(Sent {
        proto: "udp",
        to: addr.to_string(),
        bytes: n,
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_message_is_base_marker_and_uuids() {
        let m = large_message("base");
        let rest = m.strip_prefix("base large_random_data=").unwrap();
        assert_eq!(rest.len(), LARGE_UUIDS * 36);
        assert!(rest
            .as_bytes()
            .chunks(36)
            .all(|u| uuid::Uuid::parse_str(std::str::from_utf8(u).unwrap()).is_ok()));
    }

    #[test]
    fn refused_connection_is_exit_3() {
        // Port 1 on loopback: nothing listens there in a test environment.
        let cfg = MessageSend {
            host: "127.0.0.1".into(),
            port: 1,
            message: b"x".to_vec(),
            need_response: false,
            timeout: Duration::from_secs(2),
        };
        let e = send_tcp(&cfg).unwrap_err();
        assert_eq!(e.code, send_exit::CONNECT, "{e}");
    }

    #[test]
    fn udp_reply_is_read_when_asked() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
            buf[..n].to_vec()
        });
        let sent = send_udp(&MessageSend {
            host: "127.0.0.1".into(),
            port,
            message: b"ping".to_vec(),
            need_response: true,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        assert_eq!(t.join().unwrap(), b"ping");
        assert_eq!(sent.response.as_deref(), Some(&b"ping"[..]));
        assert_eq!(sent.bytes, 4);
    }
}
