//! The one AMQP 0-9-1 path (lapin): the runtime, the connection (plain, or TLS on a socket our
//! own connector opens), the channel, the declarations and the start errors, used by both the
//! RabbitMQ sink (`sink::amqp`, publishing with confirms) and `record`'s AMQP input
//! (consuming with manual acks).
//!
//! Declarations are the original's publisher's: exchange `FORWARD_EXCHANGE` (`topic` when a
//! routing key is set, else `direct`; durable), queue `FORWARD_QUEUE` (durable), bound with
//! `FORWARD_ROUTING_KEY`. Both sides declare the same, so either may start first.
//!
//! The runtime: lapin does its socket I/O on a thread of its own and runs its heartbeat and
//! RPC tasks on the async runtime it is given. Each user owns a Tokio runtime with one worker
//! thread for those ([`runtime`]), and blocks on it (`block_on`) to publish, consume and wait.
//! A current-thread runtime would run lapin's tasks only while the caller is inside
//! `block_on`: heartbeats would stop while a quiet capture sends nothing or a recorder
//! writes its CSV, and lapin's I/O thread cannot drive a current-thread runtime's reactor
//! from outside.

use super::error::StartError;
use super::tls::{is_tls_error, SslOptions};
use super::url::{percent_decode, percent_encode, split_host_port, split_url, UrlParts};
use super::Secret;
use crate::exit::{BROKER_AUTH, BROKER_UNREACHABLE, TLS, USAGE};
use async_rs::traits::Executor;
use async_rs::TokioRuntime;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::types::{FieldTable, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where an AMQP connection goes and how it logs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpEndpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The virtual host, decoded (`/` for RabbitMQ's default one).
    pub vhost: String,
    /// The user name (PLAIN login).
    pub username: String,
    /// The password (PLAIN login).
    pub password: Secret,
    /// TLS (`amqps://`, or SSL options given).
    pub tls: bool,
    /// FORWARD_SSL_OPTIONS (CA, client certificate, cert_reqs).
    pub ssl: SslOptions,
    /// How long connecting, the handshakes, the channel and the declarations may take.
    pub connect_timeout: Duration,
    /// The name the broker shows for the connection (`rabbitmqctl list_connections`).
    pub connection_name: String,
}

impl AmqpEndpoint {
    /// Reads `SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/VHOST]` as kombu does: user and
    /// password default to guest/guest, `password` (from a password file) replaces the URL's,
    /// TLS is on for `tls_scheme` or when `ssl` was given, the port defaults to
    /// `default_ports.0` (`.1` with TLS), and the virtual host is the %-decoded path (`/`,
    /// `//` and `/%2f` all mean `/`). Connecting may take 10 s; the connection is named
    /// `netpipe-fast`. An error is the reason only (the caller names the URL, redacted).
    pub fn from_url(
        url: &str,
        tls_scheme: &str,
        default_ports: (u16, u16),
        password: Option<&Secret>,
        ssl: &SslOptions,
    ) -> Result<AmqpEndpoint, String> {
        let UrlParts {
            tls,
            credentials,
            host_port,
            path,
        } = split_url(url, tls_scheme)?;
        let (username, url_password) = match credentials {
            None => ("guest".to_string(), "guest".to_string()),
            Some((u, p)) => (
                if u.is_empty() { "guest".into() } else { u },
                p.unwrap_or_else(|| "guest".into()),
            ),
        };
        // A password file wins over a password in the URL.
        let password = password.map_or(url_password, |p| p.0.clone());
        // kombu (py-amqp) turns TLS on when ssl options are given, whatever the scheme, and
        // then defaults to the TLS port.
        let tls = tls || ssl.given;
        let default_port = if tls {
            default_ports.1
        } else {
            default_ports.0
        };
        let (host, port) = split_host_port(host_port, Some(default_port))?;
        let vhost = percent_decode(path).ok_or("bad %-escape in the virtual host")?;
        Ok(AmqpEndpoint {
            host,
            port,
            vhost: if vhost.is_empty() { "/".into() } else { vhost },
            username,
            password: Secret(password),
            tls,
            ssl: ssl.clone(),
            connect_timeout: Duration::from_secs(10),
            connection_name: "netpipe-fast".into(),
        })
    }

    /// The URI lapin gets: always `amqp`, since the TLS layer (when on) is our connector's.
    pub fn uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.username.clone(),
                    password: self.password.0.clone(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString::default(),
        }
    }

    /// The URL with the password replaced by `***` and the virtual host %-encoded.
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{}:***@{host}:{}/{}",
            percent_encode(&self.username),
            self.port,
            percent_encode(&self.vhost)
        )
    }
}

/// The exchange, queue and binding both sides declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declarations {
    /// The exchange messages are published to (durable).
    pub exchange: String,
    /// The queue bound to it (durable).
    pub queue: String,
    /// The binding's routing key; empty: a `direct` exchange, else a `topic` one.
    pub routing_key: String,
}

impl Declarations {
    /// `topic` when a routing key is set (so consumers may bind with patterns), else
    /// `direct`: what the original's publisher declared.
    pub fn exchange_kind(&self) -> ExchangeKind {
        if self.routing_key.is_empty() {
            ExchangeKind::Direct
        } else {
            ExchangeKind::Topic
        }
    }

    /// The exchange type's name, as kombu spells it.
    pub fn exchange_type(&self) -> &'static str {
        if self.routing_key.is_empty() {
            "direct"
        } else {
            "topic"
        }
    }
}

/// A one-worker Tokio runtime for lapin's tasks, its thread named `thread_name` (see the
/// module's note on why not a current-thread one).
pub fn runtime(thread_name: &str) -> Result<TokioRuntime, StartError> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread_name)
        .enable_all()
        .build()
        .map_err(|e| {
            StartError::new(
                BROKER_UNREACHABLE,
                format!("cannot start the AMQP runtime: {e}"),
            )
        })?;
    Ok(async_rs::Runtime::tokio_with_runtime(tokio))
}

/// The TLS connector for `endpoint`, built once from its SSL options (the certificate files
/// are read now, so a missing one is a start error); `None` without TLS.
pub fn tls_connector(endpoint: &AmqpEndpoint) -> Result<Option<RustlsConnector>, StartError> {
    if !endpoint.tls {
        return Ok(None);
    }
    let config = endpoint
        .ssl
        .client_config()
        .map_err(|e| StartError::new(TLS, format!("TLS set-up failed: {e}")))?;
    Ok(Some(RustlsConnector::from(config)))
}

/// A connection and the channel messages go over.
pub struct Link {
    /// The connection (closed with [`close`]).
    pub connection: Connection,
    /// The one channel on it.
    pub channel: Channel,
}

/// Why a connection is given up.
#[derive(Debug)]
pub enum Failure {
    /// What lapin or the broker said.
    Lapin(lapin::Error),
    /// The TLS handshake failed (what rustls said).
    Tls(String),
    /// The broker refused (nacked) a published message.
    Nack,
    /// No answer to the named step in time.
    Timeout(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Lapin(e) => write!(f, "{e}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Nack => f.write_str("the broker refused (nacked) a message"),
            Failure::Timeout(what) => write!(f, "no answer to {what} in time"),
        }
    }
}

impl From<lapin::Error> for Failure {
    fn from(e: lapin::Error) -> Self {
        Failure::Lapin(e)
    }
}

/// Connects (through TLS when `tls` is given), opens a channel, declares the exchange, the
/// queue and the binding, and turns publisher confirms on when `confirms`.
pub fn open_publisher(
    endpoint: &AmqpEndpoint,
    declarations: &Declarations,
    runtime: &TokioRuntime,
    tls: Option<&RustlsConnector>,
    confirms: bool,
) -> Result<Link, Failure> {
    let tls_failure = TlsFailure::default();
    let work = async {
        let link = connect_and_declare(endpoint, declarations, runtime, tls, &tls_failure).await?;
        if confirms {
            link.channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(link)
    };
    bounded(endpoint, runtime, &tls_failure, work)
}

/// Connects and declares as [`open_publisher`] does, then sets the prefetch window
/// (`basic.qos`, at least 1) and starts consuming the queue with manual acknowledgements.
pub fn open_consumer(
    endpoint: &AmqpEndpoint,
    declarations: &Declarations,
    runtime: &TokioRuntime,
    tls: Option<&RustlsConnector>,
    prefetch: u16,
) -> Result<(Link, Consumer), Failure> {
    let tls_failure = TlsFailure::default();
    let work = async {
        let link = connect_and_declare(endpoint, declarations, runtime, tls, &tls_failure).await?;
        link.channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await?;
        let consumer = link
            .channel
            .basic_consume(
                declarations.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((link, consumer))
    };
    bounded(endpoint, runtime, &tls_failure, work)
}

/// Closes a connection politely (the broker requeues what is unacknowledged at once),
/// waiting `wait` at most; a dead one is simply dropped.
pub fn close(runtime: &TokioRuntime, connection: &Connection, reason: &str, wait: Duration) {
    runtime.block_on(async move {
        let _ = tokio::time::timeout(wait, connection.close(200, reason.into())).await;
    });
}

/// What the TLS layer said, if the handshake failed: lapin reports it as an I/O error of its
/// own, and the start-up error must say TLS (exit 11).
type TlsFailure = Arc<Mutex<Option<String>>>;

/// Runs `work` on `runtime` within the endpoint's connect timeout; a failure after a failed
/// TLS handshake is reported as [`Failure::Tls`].
fn bounded<T>(
    endpoint: &AmqpEndpoint,
    runtime: &TokioRuntime,
    tls_failure: &TlsFailure,
    work: impl Future<Output = lapin::Result<T>>,
) -> Result<T, Failure> {
    let timeout = endpoint.connect_timeout;
    let result = runtime
        .block_on(async { tokio::time::timeout(timeout, work).await })
        .map_err(|_| Failure::Timeout("connecting"))?
        .map_err(Failure::Lapin);
    if result.is_err() {
        if let Some(why) = tls_failure.lock().ok().and_then(|mut s| s.take()) {
            return Err(Failure::Tls(why));
        }
    }
    result
}

/// Connects (through TLS when `tls` is given), opens a channel, declares the exchange
/// (durable), the queue (durable) and the binding.
async fn connect_and_declare(
    endpoint: &AmqpEndpoint,
    declarations: &Declarations,
    runtime: &TokioRuntime,
    tls: Option<&RustlsConnector>,
    tls_failure: &TlsFailure,
) -> lapin::Result<Link> {
    let properties = ConnectionProperties::default()
        .with_connection_name(endpoint.connection_name.as_str().into());
    let exchange: ShortString = declarations.exchange.as_str().into();
    let queue: ShortString = declarations.queue.as_str().into();
    let connection = match tls {
        None => {
            Connection::connect_uri_with_runtime(endpoint.uri(), properties, runtime.clone())
                .await?
        }
        Some(connector) => {
            let connector = connector.clone();
            let failure = Arc::clone(tls_failure);
            Connection::connector(
                endpoint.uri(),
                runtime.clone(),
                async move |uri: AMQPUri, runtime: TokioRuntime| {
                    let host = uri.authority.host.clone();
                    let addrs = runtime.to_socket_addrs((host.clone(), uri.authority.port));
                    let plain = AsyncTcpStream::connect(&runtime, addrs).await?;
                    plain.into_rustls(&connector, &host).await.map_err(|e| {
                        if let Ok(mut slot) = failure.lock() {
                            *slot = Some(tls_failure_text(&e));
                        }
                        lapin::Error::from(e)
                    })
                },
                properties,
            )
            .await?
        }
    };
    let channel = connection.create_channel().await?;
    let link = Link {
        connection,
        channel,
    };
    link.channel
        .exchange_declare(
            exchange.clone(),
            declarations.exchange_kind(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    link.channel
        .queue_declare(
            queue.clone(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    link.channel
        .queue_bind(
            queue,
            exchange,
            declarations.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(link)
}

/// A handshake failure in words; a server that closes on the ClientHello is most likely not
/// speaking TLS on that port.
fn tls_failure_text(e: &io::Error) -> String {
    if is_tls_error(e) {
        e.to_string()
    } else {
        format!("the server closed the connection during the handshake ({e}); is it a TLS port?")
    }
}

/// One line for a failure at start-up, with its exit code; never the password. The caller
/// names the destination (`cannot write to amqp://...: <this>`).
pub fn start_error(
    endpoint: &AmqpEndpoint,
    declarations: &Declarations,
    e: &Failure,
) -> StartError {
    if let Failure::Tls(why) = e {
        return StartError::new(
            TLS,
            format!("TLS handshake failed ({}): {why}", endpoint.ssl.describe()),
        );
    }
    let Failure::Lapin(e) = e else {
        return StartError::new(BROKER_UNREACHABLE, format!("cannot connect: {e}"));
    };
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            let text = amqp.get_message().as_str();
            match amqp.get_id() {
                // ACCESS_REFUSED: the credentials (or the user's rights on the vhost).
                403 if text.contains("login") || text.contains("PLAIN") => StartError::new(
                    BROKER_AUTH,
                    format!(
                        "authentication refused for user \"{}\" (check the user and password \
                         in the URL)",
                        endpoint.username
                    ),
                ),
                403 | 530 => StartError::new(
                    BROKER_AUTH,
                    format!(
                        "access refused for user \"{}\" (virtual host \"{}\"): {text}",
                        endpoint.username, endpoint.vhost
                    ),
                ),
                // PRECONDITION_FAILED: the exchange or queue exists with other settings.
                406 => StartError::new(
                    USAGE,
                    format!(
                        "the broker refused the declarations (exchange \"{}\" of type {}, queue \
                         \"{}\", both durable): {text}",
                        declarations.exchange,
                        declarations.exchange_type(),
                        declarations.queue
                    ),
                ),
                _ => StartError::new(BROKER_UNREACHABLE, format!("the broker refused: {text}")),
            }
        }
        _ => StartError::new(BROKER_UNREACHABLE, format!("cannot connect: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_kind_follows_the_routing_key() {
        let mut d = Declarations {
            exchange: "x".into(),
            queue: "q".into(),
            routing_key: "k".into(),
        };
        assert_eq!(
            (d.exchange_kind(), d.exchange_type()),
            (ExchangeKind::Topic, "topic")
        );
        d.routing_key.clear();
        assert_eq!(
            (d.exchange_kind(), d.exchange_type()),
            (ExchangeKind::Direct, "direct")
        );
    }

    #[test]
    fn timeouts_and_tls_failures_have_their_exit_codes() {
        let endpoint = AmqpEndpoint {
            host: "::1".into(),
            port: 5671,
            vhost: "/".into(),
            username: "u".into(),
            password: Secret("s3cret".into()),
            tls: true,
            ssl: SslOptions::default(),
            connect_timeout: Duration::from_secs(1),
            connection_name: "t".into(),
        };
        assert_eq!(endpoint.describe(), "amqps://u:***@[::1]:5671/%2f");
        let d = Declarations {
            exchange: "x".into(),
            queue: "q".into(),
            routing_key: String::new(),
        };
        let e = start_error(&endpoint, &d, &Failure::Timeout("connecting"));
        assert_eq!(e.exit_code, BROKER_UNREACHABLE);
        assert_eq!(e.message, "cannot connect: no answer to connecting in time");
        let e = start_error(&endpoint, &d, &Failure::Tls("bad certificate".into()));
        assert_eq!(e.exit_code, TLS);
        assert!(
            e.message.starts_with("TLS handshake failed ("),
            "{}",
            e.message
        );
        assert!(!e.message.contains("s3cret"));
    }
}
