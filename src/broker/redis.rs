//! Opening a Redis connection the way both sides need it: TCP or TLS (rustls, from the SSL
//! options), `AUTH`, `SELECT`, `PING`, and the start error a failure means (exit codes and
//! wording shared by the Redis sink and `record`'s Redis inputs). What each side does on the
//! connection afterwards (the sink's kombu binding and pushes, the recorder's reads) is its
//! own.

use super::error::StartError;
use super::resp::{Reply, RespConnection, RespError};
use super::tls::SslOptions;
use super::Secret;
use crate::exit::{BROKER_AUTH, BROKER_UNREACHABLE, TLS, USAGE};
use rustls::ClientConfig;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where a Redis connection goes and how it logs in (no key names: those are the caller's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisEndpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The database `SELECT`ed after login (0: none selected).
    pub db: i64,
    /// The ACL user name for `AUTH user password` (Redis 6+); `None`: `AUTH password`.
    pub username: Option<String>,
    /// The password; `None`: no `AUTH`.
    pub password: Option<Secret>,
    /// TLS (`rediss://`, or SSL options given).
    pub tls: bool,
    /// FORWARD_SSL_OPTIONS (CA, client certificate, cert_reqs).
    pub ssl: SslOptions,
    /// How long connecting (and the TLS handshake) may take.
    pub connect_timeout: Duration,
    /// How long to wait for a reply before treating the connection as lost.
    pub response_timeout: Duration,
}

impl RedisEndpoint {
    /// The URL with the password replaced by `***` (`redis[s]://[USER][:***@]HOST:PORT/DB`).
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let cred = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(u), None) => format!("{u}@"),
            (u, Some(_)) => format!("{}:***@", u.as_deref().unwrap_or("")),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{cred}{host}:{}/{}", self.port, self.db)
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The connection itself failed (I/O, TLS, protocol).
    Resp(RespError),
    /// An error reply to AUTH/SELECT/PING (or a caller's set-up command such as SADD): the
    /// command and the server's text.
    Refused(&'static str, String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Resp(e) => write!(f, "{e}"),
            // Never the AUTH arguments: only the server's answer, which holds no password.
            OpenError::Refused(cmd, text) => write!(f, "{cmd} refused: {text}"),
        }
    }
}

impl From<RespError> for OpenError {
    fn from(e: RespError) -> Self {
        OpenError::Resp(e)
    }
}

/// Sends one command; an error reply becomes [`OpenError::Refused`].
pub fn expect_ok(
    con: &mut RespConnection,
    name: &'static str,
    args: &[&[u8]],
) -> Result<Reply, OpenError> {
    match con.command(args)? {
        Reply::Error(text) => Err(OpenError::Refused(name, text)),
        r => Ok(r),
    }
}

/// The TLS client configuration for `endpoint`, built once (the certificate files are read
/// now, so a missing one is a start error); `None` without TLS.
pub fn tls_config(endpoint: &RedisEndpoint) -> Result<Option<Arc<ClientConfig>>, StartError> {
    if !endpoint.tls {
        return Ok(None);
    }
    endpoint
        .ssl
        .client_config()
        .map(Some)
        .map_err(|e| StartError::new(TLS, format!("TLS set-up failed: {e}")))
}

/// Connects (through TLS when `tls` is given), authenticates, selects the database and checks
/// that the server answers commands (PING).
pub fn open(
    endpoint: &RedisEndpoint,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<RespConnection, OpenError> {
    let mut con = RespConnection::connect(
        &endpoint.host,
        endpoint.port,
        tls,
        endpoint.connect_timeout,
        endpoint.response_timeout,
    )?;
    if let Some(p) = &endpoint.password {
        match &endpoint.username {
            Some(u) => expect_ok(&mut con, "AUTH", &[b"AUTH", u.as_bytes(), p.0.as_bytes()])?,
            None => expect_ok(&mut con, "AUTH", &[b"AUTH", p.0.as_bytes()])?,
        };
    }
    if endpoint.db != 0 {
        let db = endpoint.db.to_string();
        expect_ok(&mut con, "SELECT", &[b"SELECT", db.as_bytes()])?;
    }
    // PING first: a server that wants a password answers NOAUTH here.
    expect_ok(&mut con, "PING", &[b"PING"])?;
    Ok(con)
}

/// True when the server refused the credentials (or wants some).
pub fn is_auth_error(e: &OpenError) -> bool {
    match e {
        OpenError::Refused("AUTH", _) => true,
        OpenError::Refused(_, text) => {
            matches!(text.split_whitespace().next(), Some("NOAUTH" | "WRONGPASS"))
        }
        OpenError::Resp(_) => false,
    }
}

/// One line for a failure at start-up, with its exit code; never the password. The caller
/// names the destination (`cannot write to redis://...: <this>`).
pub fn start_error(endpoint: &RedisEndpoint, e: &OpenError) -> StartError {
    if is_auth_error(e) {
        let how = if endpoint.password.is_some() {
            "check the password in the URL"
        } else {
            "the server wants a password: redis://:PASSWORD@HOST:PORT/DB"
        };
        return StartError::new(BROKER_AUTH, format!("authentication refused ({how})"));
    }
    match e {
        OpenError::Resp(RespError::Tls(why)) => StartError::new(
            TLS,
            format!("TLS handshake failed ({}): {why}", endpoint.ssl.describe()),
        ),
        OpenError::Resp(e) => StartError::new(BROKER_UNREACHABLE, format!("cannot connect: {e}")),
        OpenError::Refused("SELECT", text) => StartError::new(
            USAGE,
            format!(
                "database {} does not exist on the server ({text})",
                endpoint.db
            ),
        ),
        OpenError::Refused(..) => StartError::new(
            BROKER_UNREACHABLE,
            format!("the server refused to start: {e}"),
        ),
    }
}

/// A connection at start-up (TLS, AUTH, SELECT, PING), its failure as a [`StartError`]: what
/// `record`'s Redis inputs open, with the sink's checks, exit codes and wording.
pub fn connect(endpoint: &RedisEndpoint) -> Result<RespConnection, StartError> {
    let tls = tls_config(endpoint)?;
    open(endpoint, tls.as_ref()).map_err(|e| start_error(endpoint, &e))
}
