//! `amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST]`: messages to RabbitMQ the way the original's
//! kombu publisher sent them (REFERENCE section 3): exchange FORWARD_EXCHANGE (`topic` when a
//! routing key is set, else `direct`; durable), queue FORWARD_QUEUE (durable) bound to it with
//! FORWARD_ROUTING_KEY, and each message persistent (delivery_mode 2) with content type
//! `application/json` and content encoding `utf-8`, its body the packet JSON. kombu consumers
//! decode such a body into the packet dictionary.
//!
//! Publisher confirms (RabbitMQ's extension to AMQP 0-9-1) are on: a batch counts as
//! delivered only once the broker has acknowledged every message in it. To keep the link busy
//! the sink does not wait for a batch's confirms before sending the next: up to
//! [`AmqpConfig::window_batches`] batches (1,024 messages each at most) are in flight, and
//! `write_batch` waits for the oldest only when the window is full; `flush` waits for all.
//!
//! The sink keeps its own copy of every unconfirmed message. A nack, a lost connection, a
//! closed channel or a confirm that does not come within [`AmqpConfig::confirm_timeout`] makes
//! it reconnect with capped exponential backoff (forever, holding the output), declare the
//! exchange, queue and binding again and send every unconfirmed message again, in order.
//!
//! At-least-once window: a message the broker had stored but whose confirm was lost with the
//! connection is stored twice. At most the in-flight window (`window_batches` × 1,024
//! messages) can be sent again per reconnect; every message sent again is counted as
//! `resent`, so duplicates ≤ resent.
//!
//! `amqps://` (or any FORWARD_SSL_OPTIONS): TLS through rustls with the options' CA, client
//! certificate and `cert_reqs` ([`crate::broker::tls`]), on a socket our own connector opens
//! for lapin.
//!
//! Start-up failures end the run: unreachable (exit 9), credentials or virtual host refused
//! (10), TLS failure (11: certificate not trusted, wrong host name, not a TLS port,
//! unreadable certificate files), malformed URL or an exchange or queue that exists with
//! other settings (2).
//!
//! The connection, the channel, the declarations and the runtime (a Tokio runtime with one
//! worker thread for lapin's heartbeat and RPC tasks, on which the publisher thread blocks to
//! publish and to wait for confirms) are [`crate::broker::amqp`]'s, the same ones `record`'s
//! AMQP input uses.

use super::{
    bad_url, log, reconnect_forever, Outage, OutputOptions, SharedCounters, Sink, SinkCounters,
    WriteError,
};
use crate::broker::amqp::{self as broker_amqp, AmqpEndpoint, Declarations, Failure, Link};
use crate::broker::{Backoff, StartError};
use crate::encode::batch::JsonBatch;
use async_rs::traits::Executor;
use async_rs::TokioRuntime;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::tcp::RustlsConnector;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, ExchangeKind, PublisherConfirm};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// How often a wait for confirms looks at whether the connection is still there.
const CONFIRM_POLL: Duration = Duration::from_millis(100);

/// Where to connect and what to declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpConfig {
    /// Host, port, virtual host, credentials, TLS, connect timeout and connection name.
    pub endpoint: AmqpEndpoint,
    /// The queue bound to the exchange (FORWARD_QUEUE; durable).
    pub queue: String,
    /// The exchange messages are published to (FORWARD_EXCHANGE; durable).
    pub exchange: String,
    /// Empty: a `direct` exchange bound with the empty key; else a `topic` exchange.
    pub routing_key: String,
    /// Publisher confirms (on by default). Off: a batch counts as written once it is on the
    /// socket, and a lost connection can lose what the broker had not stored yet.
    pub confirms: bool,
    /// Batches sent but not yet confirmed before `write_batch` waits for the oldest.
    pub window_batches: usize,
    /// How long to wait for a batch's confirms before treating the connection as lost.
    pub confirm_timeout: Duration,
    /// Waits between reconnect attempts.
    pub backoff: Backoff,
}

impl AmqpConfig {
    /// Parses `amqp://` / `amqps://` URLs as kombu reads them: user and password default to
    /// guest/guest, the port to 5672 (5671 for amqps), the virtual host is the %-decoded path
    /// (`/`, `//` and `/%2f` all mean `/`).
    pub fn parse(url: &str, options: &OutputOptions) -> Result<AmqpConfig, String> {
        let endpoint = AmqpEndpoint::from_url(
            url,
            "amqps",
            (5672, 5671),
            options.password.as_ref(),
            &options.ssl,
        )
        .map_err(|e| bad_url(url, &e, "amqp://USER:PASSWORD@HOST[:PORT][/VHOST]"))?;
        for (what, name) in [("queue", &options.queue), ("exchange", &options.exchange)] {
            if name.is_empty() {
                return Err(format!("the {what} name must not be empty"));
            }
        }
        for (what, name) in [
            ("queue", &options.queue),
            ("exchange", &options.exchange),
            ("routing key", &options.routing_key),
        ] {
            // AMQP 0-9-1 short strings: at most 255 bytes.
            if name.len() > 255 {
                return Err(format!("the {what} name is longer than 255 bytes"));
            }
        }
        Ok(AmqpConfig {
            endpoint,
            queue: options.queue.clone(),
            exchange: options.exchange.clone(),
            routing_key: options.routing_key.clone(),
            confirms: options.amqp_confirms,
            window_batches: 4,
            confirm_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
        })
    }

    /// The URL with the password replaced by `***` and the virtual host %-encoded.
    pub fn describe(&self) -> String {
        self.endpoint.describe()
    }

    /// `topic` when a routing key is set (so consumers may bind with patterns), else `direct`:
    /// what the original's publisher declared.
    pub fn exchange_kind(&self) -> ExchangeKind {
        self.declarations().exchange_kind()
    }

    /// The exchange type's name, as kombu spells it.
    pub fn exchange_type(&self) -> &'static str {
        self.declarations().exchange_type()
    }

    /// The exchange, queue and binding to declare.
    pub fn declarations(&self) -> Declarations {
        Declarations {
            exchange: self.exchange.clone(),
            queue: self.queue.clone(),
            routing_key: self.routing_key.clone(),
        }
    }
}

/// One batch's messages, copied, until the broker has confirmed all of them.
#[derive(Default)]
struct InFlight {
    bytes: Vec<u8>,
    /// End offset of each message body in `bytes`.
    ends: Vec<usize>,
    /// Messages at the front already confirmed.
    acked: usize,
    /// Confirms of messages `acked..` on the current connection, in order (empty when not
    /// sent on it yet).
    confirms: VecDeque<PublisherConfirm>,
}

impl InFlight {
    fn fill(&mut self, batch: &JsonBatch) {
        self.bytes.clear();
        self.ends.clear();
        self.acked = 0;
        self.confirms.clear();
        for m in batch.messages() {
            self.bytes.extend_from_slice(m);
            self.ends.push(self.bytes.len());
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Messages `from..`, in order.
    fn messages(&self, from: usize) -> impl Iterator<Item = &[u8]> {
        let start = if from == 0 { 0 } else { self.ends[from - 1] };
        let mut at = start;
        self.ends[from..].iter().map(move |&end| {
            let m = &self.bytes[at..end];
            at = end;
            m
        })
    }
}

/// Messages to a RabbitMQ exchange, confirmed, reconnecting forever.
pub struct AmqpSink {
    cfg: AmqpConfig,
    runtime: TokioRuntime,
    /// Built once from the SSL options; `None` without TLS.
    tls: Option<RustlsConnector>,
    link: Option<Link>,
    in_flight: VecDeque<InFlight>,
    /// Emptied [`InFlight`] buffers for reuse.
    spare: Vec<InFlight>,
    properties: BasicProperties,
    exchange: ShortString,
    routing_key: ShortString,
    /// Messages sent for the first time.
    sent: u64,
    /// `published`: messages the broker confirmed (or, with confirms off, put on the socket).
    counters: SharedCounters,
}

impl AmqpSink {
    /// Connects, declares the exchange, queue and binding, and turns confirms on.
    pub fn connect(cfg: AmqpConfig) -> Result<AmqpSink, StartError> {
        let tls = broker_amqp::tls_connector(&cfg.endpoint)?;
        let runtime = broker_amqp::runtime("netpipe-amqp")?;
        let link = open_link(&cfg, &runtime, tls.as_ref()).map_err(|e| start_error(&cfg, &e))?;
        Ok(AmqpSink {
            tls,
            properties: BasicProperties::default()
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(2),
            exchange: cfg.exchange.as_str().into(),
            routing_key: cfg.routing_key.as_str().into(),
            cfg,
            runtime,
            link: Some(link),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            sent: 0,
            counters: Arc::new(SinkCounters::default()),
        })
    }

    /// The counters, readable while the sink runs elsewhere.
    pub fn counters(&self) -> SharedCounters {
        Arc::clone(&self.counters)
    }

    /// Sends the unacknowledged messages of in-flight batch `index` on the current link.
    fn send(&mut self, index: usize) -> Result<(), Failure> {
        let Some(link) = self.link.as_ref() else {
            return Err(Failure::Timeout("a connection"));
        };
        let batch = &self.in_flight[index];
        let publishes: Vec<_> = batch
            .messages(batch.acked)
            .map(|body| {
                Box::pin(link.channel.basic_publish(
                    self.exchange.clone(),
                    self.routing_key.clone(),
                    BasicPublishOptions::default(),
                    body,
                    self.properties.clone(),
                ))
            })
            .collect();
        let timeout = self.cfg.confirm_timeout;
        let confirms = self
            .runtime
            .block_on(async move { tokio::time::timeout(timeout, join_in_order(publishes)).await })
            .map_err(|_| Failure::Timeout("publishing"))??;
        self.in_flight[index].confirms = confirms.into();
        Ok(())
    }

    /// Waits until every message of the oldest in-flight batch is confirmed, then retires it.
    fn confirm_oldest(&mut self) -> Result<(), Failure> {
        let Some(batch) = self.in_flight.front_mut() else {
            return Ok(());
        };
        if !self.cfg.confirms {
            SinkCounters::add(&self.counters.published, (batch.len() - batch.acked) as u64);
        } else {
            let counters = &self.counters;
            let link = self.link.as_ref();
            let deadline = tokio::time::Instant::now() + self.cfg.confirm_timeout;
            let result = self.runtime.block_on(async {
                while let Some(confirm) = batch.confirms.front_mut() {
                    // A confirm whose connection died may never resolve: look at the
                    // connection between short waits, so an outage is seen at once rather
                    // than after the whole confirm timeout.
                    let answer = loop {
                        let step = (tokio::time::Instant::now() + CONFIRM_POLL).min(deadline);
                        match tokio::time::timeout_at(step, &mut *confirm).await {
                            Ok(answer) => break answer?,
                            Err(_) if tokio::time::Instant::now() >= deadline => {
                                return Err(Failure::Timeout("the publisher confirms"));
                            }
                            Err(_) => {
                                if !link.is_some_and(|l| {
                                    l.connection.status().connected()
                                        && l.channel.status().connected()
                                }) {
                                    return Err(Failure::Timeout(
                                        "the publisher confirms (connection lost)",
                                    ));
                                }
                            }
                        }
                    };
                    match answer {
                        Confirmation::Nack(_) => return Err(Failure::Nack),
                        Confirmation::Ack(_) | Confirmation::NotRequested => {
                            batch.confirms.pop_front();
                            batch.acked += 1;
                            SinkCounters::add(&counters.published, 1);
                        }
                    }
                }
                Ok(())
            });
            result?;
            debug_assert_eq!(batch.acked, batch.len());
        }
        if let Some(done) = self.in_flight.pop_front() {
            self.spare.push(done);
        }
        Ok(())
    }

    /// Waits until the broker has processed everything sent on the channel so far: a passive
    /// declare of the exchange, whose answer follows the frames before it.
    fn barrier(&mut self) -> Result<(), Failure> {
        let Some(link) = self.link.as_ref() else {
            return Err(Failure::Timeout("a connection"));
        };
        let work = link.channel.exchange_declare(
            self.exchange.clone(),
            self.cfg.exchange_kind(),
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        );
        let timeout = self.cfg.confirm_timeout;
        self.runtime
            .block_on(async move { tokio::time::timeout(timeout, work).await })
            .map_err(|_| Failure::Timeout("the end-of-output check"))?
            .map_err(Failure::Lapin)
    }

    /// Connects again, forever, with capped exponential backoff, and sends every unconfirmed
    /// message again, oldest first.
    fn recover(&mut self, why: &Failure) {
        let dest = self.cfg.describe();
        log(format_args!(
            "{dest}: {why}; reconnecting, holding the output"
        ));
        if let Some(old) = self.link.take() {
            close_link(&self.runtime, old);
        }
        loop {
            let (cfg, runtime, tls) = (&self.cfg, &self.runtime, self.tls.as_ref());
            let (link, attempt) = reconnect_forever(&dest, cfg.backoff, &self.counters, || {
                open_link(cfg, runtime, tls)
            });
            self.link = Some(link);
            let mut resent = 0u64;
            let mut failed = None;
            for i in 0..self.in_flight.len() {
                let b = &self.in_flight[i];
                resent += (b.len() - b.acked) as u64;
                if let Err(e) = self.send(i) {
                    failed = Some(e);
                    break;
                }
            }
            SinkCounters::add(&self.counters.resent, resent);
            match failed {
                None => {
                    log(format_args!(
                        "{dest}: reconnected after {attempt} attempt(s), {resent} unconfirmed \
                         message(s) sent again"
                    ));
                    return;
                }
                Some(e) => {
                    log(format_args!("{dest}: lost again while resending ({e})"));
                    if let Some(old) = self.link.take() {
                        close_link(&self.runtime, old);
                    }
                }
            }
        }
    }
}

impl AmqpSink {
    /// Gives up the connection and hands every unconfirmed message back, oldest first.
    fn hand_back(&mut self, reason: String) -> WriteError {
        if let Some(old) = self.link.take() {
            close_link(&self.runtime, old);
        }
        let mut outage = Outage {
            reason,
            ..Outage::default()
        };
        while let Some(mut b) = self.in_flight.pop_front() {
            if !b.confirms.is_empty() {
                outage.maybe_delivered += b.confirms.len() as u64;
            }
            outage
                .unconfirmed
                .extend(b.messages(b.acked).map(<[u8]>::to_vec));
            b.confirms.clear();
            self.spare.push(b);
        }
        WriteError::Outage(outage)
    }
}

use super::OnLoss;

impl AmqpSink {
    /// After a failure: reconnect and send every in-flight batch again here (holding the
    /// output), or hand every unconfirmed message back, as `on_loss` says.
    fn lost(&mut self, why: Failure, on_loss: OnLoss) -> Result<(), WriteError> {
        super::lost(self, why, on_loss, Self::recover, Self::hand_back)
    }

    /// Publishes a batch, with at most `window_batches` batches unconfirmed; a loss is
    /// handled as `on_loss` says.
    fn send_batch(&mut self, batch: &JsonBatch, on_loss: OnLoss) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut slot = self.spare.pop().unwrap_or_default();
        slot.fill(batch);
        self.sent += slot.len() as u64;
        self.in_flight.push_back(slot);
        if self.link.is_none() && on_loss == OnLoss::HandBack {
            return Err(self.hand_back("not connected".into()));
        }
        let last = self.in_flight.len() - 1;
        if let Err(e) = self.send(last) {
            // Holding, sends every in-flight batch again, this one included.
            self.lost(e, on_loss)?;
        }
        while self.in_flight.len() > self.cfg.window_batches.max(1) {
            if let Err(e) = self.confirm_oldest() {
                self.lost(e, on_loss)?;
            }
        }
        Ok(())
    }

    /// Waits for the broker to have everything in flight; a loss is handled as `on_loss`
    /// says.
    fn settle_all(&mut self, on_loss: OnLoss) -> Result<(), WriteError> {
        if !self.cfg.confirms {
            // Without confirms a publish is done once lapin has written it to the socket, not
            // once the broker has it: a synchronous call on the same channel answers only
            // after the broker has processed every frame sent before it, so the batches still
            // held are released only after that answer (and sent again if it does not come).
            // Without it the last messages can still be unread in the socket buffers when the
            // process exits, and go with the connection (seen: up to a few hundred of
            // 108,960).
            while !self.in_flight.is_empty() {
                match self.barrier() {
                    Ok(()) => break,
                    Err(e) => self.lost(e, on_loss)?,
                }
            }
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.confirm_oldest() {
                self.lost(e, on_loss)?;
            }
        }
        Ok(())
    }
}

/// Handing back (with a delivery thread in front), a failure gives up the connection and
/// hands every unconfirmed message back, oldest first.
impl Sink for AmqpSink {
    super::one_send_path!();

    fn reconnect_once(&mut self) -> Result<(), String> {
        let link =
            open_link(&self.cfg, &self.runtime, self.tls.as_ref()).map_err(|e| e.to_string())?;
        self.link = Some(link);
        SinkCounters::add(&self.counters.reconnects, 1);
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        let confirmed = if self.cfg.confirms {
            format!("{} confirmed", c.published())
        } else {
            "confirms off".to_string()
        };
        Some(format!(
            "published {} to {} exchange {} queue {}, {confirmed}, {} resent after {} reconnects",
            self.sent,
            self.cfg.describe(),
            self.cfg.exchange,
            self.cfg.queue,
            c.resent(),
            c.reconnects()
        ))
    }
}

impl Drop for AmqpSink {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            close_link(&self.runtime, link);
        }
    }
}

/// Polls the futures in order until all are ready; the first error ends it. The publishes of
/// a batch are all started in the first poll, so their frames go out back to back and in
/// order, and each one's confirm (delivery tag) follows the order of the batch.
async fn join_in_order<T, F>(mut futures: Vec<Pin<Box<F>>>) -> lapin::Result<Vec<T>>
where
    F: Future<Output = lapin::Result<T>>,
{
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut first_open = 0usize;
    std::future::poll_fn(|cx| {
        for (i, f) in futures.iter_mut().enumerate().skip(first_open) {
            if done[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => done[i] = Some(v),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        while first_open < done.len() && done[first_open].is_some() {
            first_open += 1;
        }
        if first_open == done.len() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(done.into_iter().flatten().collect())
}

/// Connects (through TLS when `tls` is given), opens a channel, declares the exchange
/// (durable), the queue (durable) and the binding, and turns publisher confirms on
/// ([`broker_amqp::open_publisher`]).
fn open_link(
    cfg: &AmqpConfig,
    runtime: &TokioRuntime,
    tls: Option<&RustlsConnector>,
) -> Result<Link, Failure> {
    broker_amqp::open_publisher(
        &cfg.endpoint,
        &cfg.declarations(),
        runtime,
        tls,
        cfg.confirms,
    )
}

/// Closes a connection politely, waiting a little; a dead one is simply dropped.
fn close_link(runtime: &TokioRuntime, link: Link) {
    broker_amqp::close(runtime, &link.connection, "bye", Duration::from_secs(1));
}

/// One line for a failure at start-up, with its exit code; never the password.
fn start_error(cfg: &AmqpConfig, e: &Failure) -> StartError {
    broker_amqp::start_error(&cfg.endpoint, &cfg.declarations(), e)
}

use super::{SinkConfig, SinkKind};

/// `amqp://` and `amqps://` in the sink registry ([`super::SINK_KINDS`]).
pub const KIND: SinkKind = SinkKind {
    schemes: &["amqp", "amqps"],
    takes_password: true,
    partitioned: false,
    parse: |url, options| Ok(Box::new(AmqpConfig::parse(url, options)?)),
};

impl SinkConfig for AmqpConfig {
    fn build(&self) -> Result<(Box<dyn Sink>, SharedCounters), StartError> {
        let sink = AmqpSink::connect(self.clone())?;
        let counters = sink.counters();
        Ok((Box::new(sink), counters))
    }

    fn describe(&self) -> String {
        AmqpConfig::describe(self)
    }

    fn identity(&self) -> String {
        let e = &self.endpoint;
        format!(
            "amqp-{}-{}-{}-{}-{}",
            e.host, e.port, e.vhost, self.exchange, self.queue
        )
    }

    fn endpoint(&self) -> (&str, u16) {
        (self.endpoint.host.as_str(), self.endpoint.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Secret;

    #[test]
    fn parse_urls() {
        let o = OutputOptions::default();
        let c = AmqpConfig::parse("amqp://guest:guest@127.0.0.1:5672/%2f", &o).unwrap();
        assert_eq!(
            (
                c.endpoint.host.as_str(),
                c.endpoint.port,
                c.endpoint.vhost.as_str()
            ),
            ("127.0.0.1", 5672, "/")
        );
        assert_eq!(c.describe(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(c.exchange_kind(), ExchangeKind::Topic);
        // kombu's spellings of the default virtual host, and its defaults.
        for url in ["amqp://h", "amqp://h/", "amqp://h//"] {
            let c = AmqpConfig::parse(url, &o).unwrap();
            assert_eq!(
                (c.endpoint.port, c.endpoint.vhost.as_str()),
                (5672, "/"),
                "{url}"
            );
            assert_eq!(
                (c.endpoint.username.as_str(), c.endpoint.password.0.as_str()),
                ("guest", "guest")
            );
        }
        let c = AmqpConfig::parse("amqp://u:p%40ss@[::1]:7/prod", &o).unwrap();
        assert_eq!(c.endpoint.password, Secret("p@ss".into()));
        assert_eq!(c.describe(), "amqp://u:***@[::1]:7/prod");
        assert!(!format!("{c:?}").contains("p@ss"));
        let c = AmqpConfig::parse("amqps://u:p@h", &o).unwrap();
        assert!(c.endpoint.tls);
        assert_eq!(c.endpoint.port, 5671);
        for bad in [
            "amqp://u:s3cret@h:port/",
            "amqp://u:s3cret@:1/",
            "amqp://u:s3cret@h:1/v?heartbeat=10",
            "amqp://u:s3cret%zz@h:1/",
        ] {
            let e = AmqpConfig::parse(bad, &o).unwrap_err();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn password_file_replaces_the_url_password() {
        let o = OutputOptions {
            password: Some(Secret("from-file".into())),
            ..OutputOptions::default()
        };
        for url in ["amqp://u:in-url@h/", "amqp://u@h/", "amqp://h/"] {
            let c = AmqpConfig::parse(url, &o).unwrap();
            assert_eq!(c.endpoint.password.0, "from-file", "{url}");
        }
        let c = AmqpConfig::parse("amqp://u:p/w@h:1/vh", &OutputOptions::default()).unwrap();
        assert_eq!(
            (c.endpoint.password.0.as_str(), c.endpoint.host.as_str()),
            ("p/w", "h")
        );
        assert_eq!((c.endpoint.port, c.endpoint.vhost.as_str()), (1, "vh"));
    }

    #[test]
    fn direct_exchange_without_routing_key() {
        let o = OutputOptions {
            routing_key: String::new(),
            ..OutputOptions::default()
        };
        let c = AmqpConfig::parse("amqp://h", &o).unwrap();
        assert_eq!(c.exchange_kind(), ExchangeKind::Direct);
    }

    #[test]
    fn in_flight_copies_messages_without_newlines() {
        let b = crate::sink::test_batch::of(["{\"a\":1}", "{}", "[2]"]);
        let mut f = InFlight::default();
        f.fill(&b);
        let all: Vec<&[u8]> = f.messages(0).collect();
        assert_eq!(all, [&b"{\"a\":1}"[..], b"{}", b"[2]"]);
        let rest: Vec<&[u8]> = f.messages(2).collect();
        assert_eq!(rest, [&b"[2]"[..]]);
    }
}
