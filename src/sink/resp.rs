//! A small Redis client for the Redis sink: one TCP (or TLS) connection, commands written as
//! pre-built RESP2 bytes, replies read back in order. Pipelining is the caller's: it may
//! write several commands before reading their replies.
//!
//! The sink needs only AUTH, SELECT, PING, SADD and LPUSH, and the hot path is one large
//! LPUSH per batch, so owning the socket lets the sink write a batch's command straight from
//! the buffer it built it in and keep several in flight, with TLS or without, through the
//! same code. Replies are parsed defensively: a malformed or oversized reply is an error
//! value, never a panic.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The socket, in the clear or inside TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A reply (RESP2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    /// `-CODE message`: the server refused the command.
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Why a connection or a command failed.
#[derive(Debug)]
pub enum RespError {
    /// The socket: refused, reset, timed out, closed.
    Io(io::Error),
    /// The TLS handshake or a TLS record (certificate not trusted, wrong name, not TLS).
    Tls(String),
    /// The server broke the protocol (a reply we cannot parse).
    Protocol(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "{e}"),
            RespError::Tls(e) => write!(f, "TLS: {e}"),
            RespError::Protocol(e) => write!(f, "bad reply from the server: {e}"),
        }
    }
}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        if super::tls::is_tls_error(&e) {
            RespError::Tls(e.to_string())
        } else {
            RespError::Io(e)
        }
    }
}

/// Longest bulk reply accepted (Redis's own proto-max-bulk-len default is 512 MB; the sink
/// only ever gets short replies).
const MAX_BULK_BYTES: usize = 512 << 20;
/// Deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 8;

pub struct RespConnection {
    stream: Stream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl RespConnection {
    /// Connects (each address of `host` in turn) and, with `tls`, completes the handshake.
    pub fn connect(
        host: &str,
        port: u16,
        tls: Option<&Arc<ClientConfig>>,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<RespConnection, RespError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"));
        let mut tcp = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut tcp = tcp.ok_or(RespError::Io(last))?;
        // Commands are whole buffers written at once: no reason to let Nagle hold a tail.
        tcp.set_nodelay(true)?;
        // The handshake gets the connect timeout: a plain server that waits for a command
        // line would otherwise hold the ClientHello for the whole reply timeout.
        tcp.set_read_timeout(Some(connect_timeout))?;
        tcp.set_write_timeout(Some(connect_timeout))?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name: ServerName<'static> =
                    super::tls::server_name(host).map_err(RespError::Tls)?;
                let mut conn = ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| RespError::Tls(e.to_string()))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut tcp).map_err(|e| {
                        if super::tls::is_tls_error(&e) {
                            RespError::Tls(e.to_string())
                        } else if matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                        ) {
                            // A plain server may close on the ClientHello...
                            RespError::Tls(format!(
                                "the server closed the connection during the handshake ({e}); \
                                 is it a TLS port?"
                            ))
                        } else if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) {
                            // ...or wait for the end of a command line that never comes.
                            RespError::Tls(format!(
                                "no handshake answer within {} s; is it a TLS port?",
                                connect_timeout.as_secs_f64()
                            ))
                        } else {
                            RespError::Io(e)
                        }
                    })?;
                }
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        };
        let socket = match &stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        };
        socket.set_read_timeout(Some(io_timeout))?;
        socket.set_write_timeout(Some(io_timeout))?;
        Ok(RespConnection {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        })
    }

    /// Writes pre-built command bytes (one or several commands) and pushes them out.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), RespError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends one command made of `args` and reads its reply.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let mut cmd = Vec::new();
        encode_command(&mut cmd, args);
        self.send(&cmd)?;
        self.read_reply()
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> Result<Reply, RespError> {
        self.reply(0)
    }

    fn reply(&mut self, depth: usize) -> Result<Reply, RespError> {
        let line = self.line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| RespError::Protocol("empty line".into()))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        Ok(match kind {
            b'+' => Reply::Status(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Int(parse_int(rest)?),
            b'$' => match parse_int(rest)? {
                -1 => Reply::Bulk(None),
                n if n < 0 || n as u64 > MAX_BULK_BYTES as u64 => {
                    return Err(RespError::Protocol(format!("bulk length {n}")))
                }
                n => Reply::Bulk(Some(self.exact(n as usize)?)),
            },
            b'*' => match parse_int(rest)? {
                -1 => Reply::Array(None),
                n if n < 0 || depth >= MAX_DEPTH || n > 1 << 20 => {
                    return Err(RespError::Protocol(format!(
                        "array of {n} at depth {depth}"
                    )))
                }
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.reply(depth + 1)?);
                    }
                    Reply::Array(Some(items))
                }
            },
            other => {
                return Err(RespError::Protocol(format!(
                    "unknown reply type {:?}",
                    char::from(*other)
                )))
            }
        })
    }

    /// The next line without its CRLF.
    fn line(&mut self) -> Result<Vec<u8>, RespError> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line = self.buf[self.start..self.start + i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > 64 * 1024 {
                return Err(RespError::Protocol("reply line longer than 64 KiB".into()));
            }
            self.fill()?;
        }
    }

    /// The next `n` bytes and the CRLF after them.
    fn exact(&mut self, n: usize) -> Result<Vec<u8>, RespError> {
        let mut out = Vec::with_capacity(n);
        let mut want = n + 2;
        while want > 0 {
            if self.start == self.end {
                self.fill()?;
            }
            let take = want.min(self.end - self.start);
            out.extend_from_slice(&self.buf[self.start..self.start + take]);
            self.start += take;
            want -= take;
        }
        if !out.ends_with(b"\r\n") {
            return Err(RespError::Protocol("bulk reply without CRLF".into()));
        }
        out.truncate(n);
        Ok(out)
    }

    /// Reads more bytes into the buffer (moving what is left to the front first).
    fn fill(&mut self) -> Result<(), RespError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(RespError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        self.end += n;
        Ok(())
    }
}

fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RespError::Protocol(format!(
                "not a number: {:?}",
                String::from_utf8_lossy(digits)
            ))
        })
}

/// Appends a RESP bulk-string header `$len\r\n`.
pub fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a command as a RESP array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        bulk_header(out, a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connection to a one-shot server that writes `bytes` and keeps the socket open.
    fn replies(bytes: &'static [u8]) -> RespConnection {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(bytes).unwrap();
            s
        });
        let con = RespConnection::connect(
            "127.0.0.1",
            port,
            None,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        // Keep the server's end open while the test reads (a closed one would be EOF).
        let s = server.join().unwrap();
        std::mem::forget(s);
        con
    }

    #[test]
    fn parses_every_reply_type() {
        let mut c = replies(
            b"+OK\r\n-WRONGPASS invalid\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n",
        );
        assert_eq!(c.read_reply().unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            c.read_reply().unwrap(),
            Reply::Error("WRONGPASS invalid".into())
        );
        assert_eq!(c.read_reply().unwrap(), Reply::Int(42));
        assert_eq!(c.read_reply().unwrap(), Reply::Bulk(Some(b"abc".to_vec())));
        assert_eq!(c.read_reply().unwrap(), Reply::Bulk(None));
        assert_eq!(
            c.read_reply().unwrap(),
            Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(vec![]))]))
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$-5\r\n",
            b"$3\r\nabcde\r\n",
            b"*99999999\r\n",
        ] {
            let leaked: &'static [u8] = Box::leak(bad.to_vec().into_boxed_slice());
            let mut c = replies(leaked);
            assert!(
                matches!(c.read_reply(), Err(RespError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SELECT", b"15"]);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$2\r\n15\r\n");
    }
}
