//! The crate's one Redis client, for the Redis sink and for `record`'s Redis inputs: one TCP
//! (or TLS) connection, commands written as pre-built RESP2 bytes, replies read back in order.
//! Pipelining is the caller's: it may write several commands before reading their replies.
//!
//! The sink's hot path is one large LPUSH (or many XADDs) per batch, so owning the socket lets
//! it write a batch's command straight from the buffer it built it in and keep several in
//! flight, with TLS or without, through the same code. The recorder's hot path is the other
//! way round: large XREADGROUP replies, read with [`RespConnection::read_frame`] as one
//! complete reply in the connection's buffer and walked in place with a [`Cursor`] (no reply
//! tree, no copy of a message until the caller takes it). Replies are parsed defensively: a
//! malformed or oversized reply is an error value, never a panic.

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
    /// `+OK`: a simple string.
    Status(String),
    /// `-CODE message`: the server refused the command.
    Error(String),
    /// `:N`: an integer.
    Int(i64),
    /// `$N`: a bulk string; `None` for the null bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*N`: an array; `None` for the null array (`*-1`).
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

/// One connection to a Redis server (TCP, or TLS through rustls), with its read buffer:
/// commands are written as they are given (pipelined), replies are read in order.
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
            if let Some(i) = find_crlf(&self.buf[self.start..self.end]) {
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

    /// Reads one complete reply into the buffer and returns its bytes, to be walked with a
    /// [`Cursor`]. The reply's structure (array lengths, bulk lengths and CRLFs, nesting depth)
    /// is checked while it is read, so the cursor never runs past it.
    pub fn read_frame(&mut self) -> Result<&[u8], RespError> {
        // Elements still to come in each open array; the bottom one is the reply itself.
        let mut open: Vec<i64> = vec![1];
        // Scanned so far, from `start`.
        let mut pos = 0;
        while !open.is_empty() {
            let avail = &self.buf[self.start + pos..self.end];
            let Some(i) = find_crlf(avail) else {
                if avail.len() > 64 * 1024 {
                    return Err(RespError::Protocol("reply line longer than 64 KiB".into()));
                }
                self.fill()?;
                continue;
            };
            let (kind, rest) = avail[..i]
                .split_first()
                .ok_or_else(|| RespError::Protocol("empty line".into()))?;
            let mut next = pos + i + 2;
            match kind {
                b'+' | b'-' => {}
                b':' => {
                    parse_int(rest)?;
                }
                b'$' => match parse_int(rest)? {
                    -1 => {}
                    n if n < 0 || n as u64 > MAX_BULK_BYTES as u64 => {
                        return Err(RespError::Protocol(format!("bulk length {n}")))
                    }
                    n => {
                        let body_end = next + n as usize;
                        while self.end - self.start < body_end + 2 {
                            self.fill()?;
                        }
                        if &self.buf[self.start + body_end..self.start + body_end + 2] != b"\r\n" {
                            return Err(RespError::Protocol("bulk reply without CRLF".into()));
                        }
                        next = body_end + 2;
                    }
                },
                b'*' => match parse_int(rest)? {
                    -1 | 0 => {}
                    n if n < 0 || open.len() > MAX_DEPTH || n > 1 << 20 => {
                        return Err(RespError::Protocol(format!(
                            "array of {n} at depth {}",
                            open.len() - 1
                        )))
                    }
                    n => {
                        open.push(n);
                        pos = next;
                        continue;
                    }
                },
                other => {
                    return Err(RespError::Protocol(format!(
                        "unknown reply type {:?}",
                        char::from(*other)
                    )))
                }
            }
            pos = next;
            // One element is complete; so is every array whose last element it was.
            while let Some(left) = open.last_mut() {
                *left -= 1;
                if *left > 0 {
                    break;
                }
                open.pop();
            }
        }
        let frame = &self.buf[self.start..self.start + pos];
        self.start += pos;
        Ok(frame)
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
        // A signal (SIGINT to `record`) interrupts a read on a socket with a timeout even
        // under SA_RESTART; read again, the caller checks its stop flag between commands.
        let n = loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
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

/// Where the first CRLF of `b` starts.
fn find_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\r', &b[from..]) {
        let at = from + i;
        match b.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// One element of a reply walked in place: arrays give their length, and their elements
/// follow one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// `+OK`: a simple string.
    Status(&'a [u8]),
    /// `-CODE message`: an error reply.
    Error(&'a [u8]),
    /// `:N`: an integer.
    Int(i64),
    /// None: the null bulk string.
    Bulk(Option<&'a [u8]>),
    /// None: the null array; else the number of elements that follow.
    Array(Option<usize>),
}

impl<'a> Item<'a> {
    /// The bytes of a bulk or status reply.
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Item::Bulk(b) => b,
            Item::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// Walks a reply read by [`RespConnection::read_frame`] (or any RESP2 bytes) element by
/// element, borrowing bulk strings from it.
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { rest: bytes }
    }

    fn cut(&mut self) -> Result<&'a [u8], RespError> {
        let i =
            find_crlf(self.rest).ok_or_else(|| RespError::Protocol("reply cut short".into()))?;
        let line = &self.rest[..i];
        self.rest = &self.rest[i + 2..];
        Ok(line)
    }

    /// The next element.
    pub fn next_item(&mut self) -> Result<Item<'a>, RespError> {
        let line = self.cut()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| RespError::Protocol("empty line".into()))?;
        Ok(match kind {
            b'+' => Item::Status(rest),
            b'-' => Item::Error(rest),
            b':' => Item::Int(parse_int(rest)?),
            b'$' => match parse_int(rest)? {
                -1 => Item::Bulk(None),
                n if n < 0 || n as u64 + 2 > self.rest.len() as u64 => {
                    return Err(RespError::Protocol(format!("bulk length {n}")))
                }
                n => {
                    let (body, after) = self.rest.split_at(n as usize);
                    if !after.starts_with(b"\r\n") {
                        return Err(RespError::Protocol("bulk reply without CRLF".into()));
                    }
                    self.rest = &after[2..];
                    Item::Bulk(Some(body))
                }
            },
            b'*' => match parse_int(rest)? {
                -1 => Item::Array(None),
                n if n < 0 => return Err(RespError::Protocol(format!("array of {n}"))),
                n => Item::Array(Some(n as usize)),
            },
            other => {
                return Err(RespError::Protocol(format!(
                    "unknown reply type {:?}",
                    char::from(*other)
                )))
            }
        })
    }

    /// The next element, which must be an array: its length (None: the null array).
    pub fn array(&mut self) -> Result<Option<usize>, RespError> {
        match self.next_item()? {
            Item::Array(n) => Ok(n),
            Item::Error(e) => Err(server_error(e)),
            other => Err(RespError::Protocol(format!(
                "expected an array, got {other:?}"
            ))),
        }
    }

    /// The next element, which must be a bulk or status string (None: null).
    pub fn bulk(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        match self.next_item()? {
            Item::Bulk(b) => Ok(b),
            Item::Status(s) => Ok(Some(s)),
            Item::Error(e) => Err(server_error(e)),
            other => Err(RespError::Protocol(format!(
                "expected a string, got {other:?}"
            ))),
        }
    }

    /// Skips the next element, arrays with all they hold.
    pub fn skip(&mut self) -> Result<(), RespError> {
        let mut left: u64 = 1;
        while left > 0 {
            left -= 1;
            if let Item::Array(Some(n)) = self.next_item()? {
                left += n as u64;
            }
        }
        Ok(())
    }
}

/// An error reply where a value was expected.
fn server_error(text: &[u8]) -> RespError {
    RespError::Protocol(format!("server error {}", String::from_utf8_lossy(text)))
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

/// Commands built argument by argument, for the code that is not on a hot path (the
/// recorder's list input: leases, recovery scripts, a pipelined LMOVE per message).
pub fn cmd(name: &str) -> Cmd {
    let mut c = Cmd::default();
    c.args.push(name.as_bytes().to_vec());
    c
}

/// One command's arguments.
#[derive(Clone, Debug, Default)]
pub struct Cmd {
    args: Vec<Vec<u8>>,
}

/// What can be a command argument (or several).
pub trait ToArgs {
    /// Appends this value's arguments (one for strings, bytes and numbers) to `out`.
    fn write_args(&self, out: &mut Vec<Vec<u8>>);
}

impl<T: ToArgs + ?Sized> ToArgs for &T {
    fn write_args(&self, out: &mut Vec<Vec<u8>>) {
        (**self).write_args(out);
    }
}
impl ToArgs for str {
    fn write_args(&self, out: &mut Vec<Vec<u8>>) {
        out.push(self.as_bytes().to_vec());
    }
}
impl ToArgs for String {
    fn write_args(&self, out: &mut Vec<Vec<u8>>) {
        out.push(self.as_bytes().to_vec());
    }
}
impl ToArgs for [u8] {
    fn write_args(&self, out: &mut Vec<Vec<u8>>) {
        out.push(self.to_vec());
    }
}
impl ToArgs for Vec<u8> {
    fn write_args(&self, out: &mut Vec<Vec<u8>>) {
        out.push(self.clone());
    }
}
macro_rules! number_args {
    ($($t:ty),*) => {$(
        impl ToArgs for $t {
            fn write_args(&self, out: &mut Vec<Vec<u8>>) {
                out.push(self.to_string().into_bytes());
            }
        }
    )*};
}
number_args!(i32, u32, u64, i64, usize, f64);

impl Cmd {
    /// Appends an argument.
    pub fn arg(&mut self, a: impl ToArgs) -> &mut Cmd {
        a.write_args(&mut self.args);
        self
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let args: Vec<&[u8]> = self.args.iter().map(Vec::as_slice).collect();
        encode_command(out, &args);
    }

    /// Sends the command, reads its reply and converts it; an error reply is an error.
    pub fn query<T: FromReply>(&self, con: &mut RespConnection) -> Result<T, RedisError> {
        let mut out = Vec::new();
        self.encode(&mut out);
        con.send(&out)?;
        T::from_reply(checked(con.read_reply()?)?)
    }
}

/// Several commands written at once, their replies read after (MULTI/EXEC around them when
/// atomic).
#[derive(Default)]
pub struct Pipeline {
    cmds: Vec<(Cmd, bool)>,
    atomic: bool,
}

/// An empty pipeline.
pub fn pipe() -> Pipeline {
    Pipeline::default()
}

impl Pipeline {
    /// Wraps the commands in MULTI/EXEC (the replies are EXEC's array).
    pub fn atomic(&mut self) -> &mut Pipeline {
        self.atomic = true;
        self
    }
    /// Starts the next command.
    pub fn cmd(&mut self, name: &str) -> &mut Pipeline {
        self.cmds.push((cmd(name), false));
        self
    }
    /// Appends an argument to the last command.
    pub fn arg(&mut self, a: impl ToArgs) -> &mut Pipeline {
        if let Some((c, _)) = self.cmds.last_mut() {
            c.arg(a);
        }
        self
    }
    /// The last command's reply is left out of the result.
    pub fn ignore(&mut self) -> &mut Pipeline {
        if let Some((_, ignored)) = self.cmds.last_mut() {
            *ignored = true;
        }
        self
    }

    /// Sends every command, reads every reply; the result is the array of the replies not
    /// ignored. Any error reply is an error (after all replies were read).
    pub fn query<T: FromReply>(&self, con: &mut RespConnection) -> Result<T, RedisError> {
        let mut out = Vec::new();
        if self.atomic {
            encode_command(&mut out, &[b"MULTI"]);
        }
        for (c, _) in &self.cmds {
            c.encode(&mut out);
        }
        if self.atomic {
            encode_command(&mut out, &[b"EXEC"]);
        }
        con.send(&out)?;
        let mut first_error = None;
        let mut replies = Vec::new();
        if self.atomic {
            // +OK for MULTI, +QUEUED per command, then EXEC's array.
            for _ in 0..=self.cmds.len() {
                if let Err(e) = checked(con.read_reply()?) {
                    first_error.get_or_insert(e);
                }
            }
            match checked(con.read_reply()?) {
                Ok(Reply::Array(Some(items))) if items.len() == self.cmds.len() => replies = items,
                Ok(other) => {
                    first_error.get_or_insert(RedisError::Type(format!("EXEC answered {other:?}")));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        } else {
            for _ in &self.cmds {
                replies.push(con.read_reply()?);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut kept = Vec::new();
        for (r, (_, ignored)) in replies.into_iter().zip(&self.cmds) {
            let r = checked(r)?;
            if !ignored {
                kept.push(r);
            }
        }
        T::from_reply(Reply::Array(Some(kept)))
    }
}

/// A command that failed: the connection, the server's error reply, or a reply of another
/// type than expected.
#[derive(Debug)]
pub enum RedisError {
    /// The connection failed.
    Resp(RespError),
    /// `-CODE message`.
    Server(String),
    /// A reply of another type than expected (what was expected and what came).
    Type(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Resp(e) => write!(f, "{e}"),
            RedisError::Server(t) => f.write_str(t),
            RedisError::Type(t) => write!(f, "unexpected reply: {t}"),
        }
    }
}

impl From<RespError> for RedisError {
    fn from(e: RespError) -> Self {
        RedisError::Resp(e)
    }
}

fn checked(r: Reply) -> Result<Reply, RedisError> {
    match r {
        Reply::Error(t) => Err(RedisError::Server(t)),
        r => Ok(r),
    }
}

/// A reply converted to what the caller expects.
pub trait FromReply: Sized {
    /// Converts `r`, or says what was expected instead.
    fn from_reply(r: Reply) -> Result<Self, RedisError>;
}

fn type_error<T>(r: &Reply, want: &str) -> Result<T, RedisError> {
    Err(RedisError::Type(format!("expected {want}, got {r:?}")))
}

impl FromReply for Reply {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        Ok(r)
    }
}
impl FromReply for () {
    fn from_reply(_: Reply) -> Result<Self, RedisError> {
        Ok(())
    }
}
impl FromReply for i64 {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        match &r {
            Reply::Int(n) => Ok(*n),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|t| t.parse().ok())
                .map_or_else(|| type_error(&r, "a number"), Ok),
            _ => type_error(&r, "a number"),
        }
    }
}
impl FromReply for u64 {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        let n = i64::from_reply(r)?;
        u64::try_from(n).map_err(|_| RedisError::Type(format!("negative number {n}")))
    }
}
impl FromReply for bool {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        Ok(i64::from_reply(r)? != 0)
    }
}
impl FromReply for Vec<u8> {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        match r {
            Reply::Bulk(Some(b)) => Ok(b),
            Reply::Status(s) => Ok(s.into_bytes()),
            r => type_error(&r, "a string"),
        }
    }
}
impl FromReply for String {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        String::from_utf8(Vec::<u8>::from_reply(r)?)
            .map_err(|_| RedisError::Type("text that is not UTF-8".into()))
    }
}
impl<T: FromReply> FromReply for Option<T> {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        match r {
            Reply::Bulk(None) | Reply::Array(None) => Ok(None),
            r => T::from_reply(r).map(Some),
        }
    }
}
impl<T: FromReply> FromReply for Vec<T> {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        match r {
            Reply::Array(Some(items)) => items.into_iter().map(T::from_reply).collect(),
            Reply::Array(None) => Ok(Vec::new()),
            r => type_error(&r, "an array"),
        }
    }
}
impl<A: FromReply, B: FromReply> FromReply for (A, B) {
    fn from_reply(r: Reply) -> Result<Self, RedisError> {
        match r {
            Reply::Array(Some(items)) if items.len() == 2 => {
                let mut it = items.into_iter();
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok((A::from_reply(a)?, B::from_reply(b)?)),
                    _ => Err(RedisError::Type("a pair".into())),
                }
            }
            r => type_error(&r, "a pair"),
        }
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
    fn frames_are_whole_replies_walked_in_place() {
        let mut c = replies(b"*2\r\n*2\r\n$1\r\nq\r\n*-1\r\n$3\r\nabc\r\n:7\r\n");
        let frame = c.read_frame().unwrap().to_vec();
        assert_eq!(frame, b"*2\r\n*2\r\n$1\r\nq\r\n*-1\r\n$3\r\nabc\r\n");
        let mut cur = Cursor::new(&frame);
        assert_eq!(cur.array().unwrap(), Some(2));
        cur.skip().unwrap();
        assert_eq!(cur.bulk().unwrap(), Some(&b"abc"[..]));
        assert!(cur.next_item().is_err(), "nothing past the frame");
        assert_eq!(c.read_frame().unwrap(), b":7\r\n");
        for bad in [
            &b"*1\r\n$3\r\nabcde\r\n"[..],
            b"*2\r\n?x\r\n",
            b"*-2\r\n",
            b"$-3\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            let leaked: &'static [u8] = Box::leak(bad.to_vec().into_boxed_slice());
            assert!(
                matches!(replies(leaked).read_frame(), Err(RespError::Protocol(_))),
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
