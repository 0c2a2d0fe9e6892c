//! `record --input amqp://...`: a RabbitMQ consumer with manual acknowledgements (see
//! `input.rs` for the at-least-once protocol and the redelivery check).
//!
//! The connection (plain or TLS for `amqps://`), the runtime (a one-worker Tokio runtime that
//! runs lapin's heartbeat and RPC tasks; the recording thread blocks on it) and the
//! declarations are the AMQP sink's own, from `broker::amqp`: the exchange, queue and binding
//! are declared as the publisher declares them, so starting the recorder first works.
//! A lost connection is made again with capped exponential backoff (the sinks' `Backoff`),
//! one attempt per call so the recorder keeps checking its stop file and signals meanwhile.
//! Every unacknowledged message goes back to the queue at the broker; the hashes of those
//! already taken as rows since the last commit join the redelivery check, so their second
//! delivery (flagged `redelivered`) is acknowledged at the next commit without a second row.

use super::csv::InputState;
use super::input_common::{body_hash, Fetch, HashBag, Input, InputError, IDLE_WAIT};
use crate::broker::amqp::{self, AmqpEndpoint, Declarations, Failure};
use crate::broker::{Backoff, StartError};
use crate::sink::AmqpConfig;
use async_rs::traits::Executor;
use async_rs::TokioRuntime;
use futures_core::Stream;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::tcp::RustlsConnector;
use lapin::{Channel, Connection, Consumer};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The broker's connection, its channel and the consumer on it.
struct Link {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

/// Closes politely (the broker requeues what is unacknowledged at once), waiting 2 s at most.
fn close_quickly(runtime: &TokioRuntime, connection: &Connection) {
    amqp::close(
        runtime,
        connection,
        "recorder stopping",
        Duration::from_secs(2),
    );
}

/// Why a connection attempt failed, in the words of the recorder's log.
fn failure_text(e: &Failure) -> String {
    match e {
        Failure::Timeout(_) => "no answer in time".to_string(),
        e => e.to_string(),
    }
}

/// `record --input amqp://...` (or `amqps://`): a RabbitMQ queue, consumed with manual
/// acknowledgements.
pub struct AmqpInput {
    cfg: AmqpConfig,
    endpoint: AmqpEndpoint,
    declarations: Declarations,
    prefetch: u16,
    runtime: TokioRuntime,
    /// Built once from the SSL options; `None` without TLS.
    tls: Option<RustlsConnector>,
    /// None while the connection is lost (reconnecting).
    link: Option<Link>,
    backoff: Backoff,
    /// Failed reconnect attempts since the connection was lost.
    attempts: u32,
    next_attempt: Instant,
    reconnects: u64,
    /// Delivery tag of the last message handed out (rows or skipped), 0 when none is unacked.
    last_tag: u64,
    last_hash: String,
    taken: u64,
    /// Hashes of the messages handed out since the last commit.
    batch_hashes: Vec<String>,
    /// Hashes of the last committed snapshot of an earlier run, still to be matched.
    earlier: HashBag,
    skipped: u64,
    unacked_skips: u64,
    /// Hashes of the skipped messages not yet acknowledged (they may come once more).
    skip_hashes: Vec<String>,
}

impl AmqpInput {
    /// Connects, declares the exchange, queue and binding as the publisher does, and starts
    /// consuming with a prefetch window of `prefetch` messages. `resumed`: the state of the
    /// last run, whose redelivery hashes apply when it read the same source.
    pub fn open(
        cfg: AmqpConfig,
        prefetch: u16,
        resumed: &InputState,
    ) -> Result<AmqpInput, StartError> {
        let endpoint = AmqpEndpoint {
            // The process id in the name lets an operator (or a test) find this connection.
            connection_name: format!("netpipe-fast record {}", std::process::id()),
            ..cfg.endpoint.clone()
        };
        let declarations = cfg.declarations();
        let tls = amqp::tls_connector(&endpoint)?;
        let runtime = amqp::runtime("netpipe-amqp-in")?;
        let (link, consumer) =
            amqp::open_consumer(&endpoint, &declarations, &runtime, tls.as_ref(), prefetch)
                .map_err(|e| match e {
                    Failure::Timeout(_) => StartError::new(
                        crate::exit::BROKER_UNREACHABLE,
                        format!("{}: no answer in time", cfg.describe()),
                    ),
                    e => amqp::start_error(&endpoint, &declarations, &e),
                })?;
        let earlier = if resumed.source == cfg.describe() {
            HashBag::from_list(&resumed.redelivery_hashes)
        } else {
            HashBag::default()
        };
        Ok(AmqpInput {
            cfg,
            endpoint,
            declarations,
            prefetch,
            runtime,
            tls,
            link: Some(Link {
                connection: link.connection,
                channel: link.channel,
                consumer,
            }),
            backoff: Backoff::default(),
            attempts: 0,
            next_attempt: Instant::now(),
            reconnects: 0,
            last_tag: 0,
            last_hash: String::new(),
            taken: 0,
            batch_hashes: Vec::new(),
            earlier,
            skipped: 0,
            unacked_skips: 0,
            skip_hashes: Vec::new(),
        })
    }

    /// The connection is gone: every message not acknowledged goes back to the queue at the
    /// broker and will come again flagged `redelivered`. Those handed out since the last
    /// commit are rows already (pending, or committed if the ack was what failed), so their
    /// hashes join the redelivery check: their second delivery is acknowledged, not recorded.
    fn drop_link(&mut self, e: impl std::fmt::Display) {
        super::log(format_args!(
            "{}: connection lost: {e}; reconnecting (unacknowledged messages come back from \
             the queue; the {} taken since the last snapshot are recognised and not recorded \
             twice)",
            self.cfg.describe(),
            self.batch_hashes.len()
        ));
        if let Some(link) = self.link.take() {
            close_quickly(&self.runtime, &link.connection);
        }
        for h in self
            .batch_hashes
            .drain(..)
            .chain(self.skip_hashes.drain(..))
        {
            self.earlier.add(h);
        }
        // Delivery tags belong to the channel that is gone.
        self.last_tag = 0;
        self.unacked_skips = 0;
        self.attempts = 0;
        self.next_attempt = Instant::now() + self.backoff.delay(0);
    }

    /// One reconnect attempt if its time has come; otherwise waits a little (at most
    /// IDLE_WAIT, so the caller keeps checking its stop conditions).
    fn try_reconnect(&mut self) {
        let now = Instant::now();
        if now < self.next_attempt {
            std::thread::sleep((self.next_attempt - now).min(IDLE_WAIT));
            return;
        }
        let opened = amqp::open_consumer(
            &self.endpoint,
            &self.declarations,
            &self.runtime,
            self.tls.as_ref(),
            self.prefetch,
        );
        match opened {
            Ok((link, consumer)) => {
                self.reconnects += 1;
                super::log(format_args!(
                    "{}: reconnected (attempt {})",
                    self.cfg.describe(),
                    self.attempts + 1
                ));
                self.link = Some(Link {
                    connection: link.connection,
                    channel: link.channel,
                    consumer,
                });
            }
            Err(e) => {
                self.attempts += 1;
                let delay = self.backoff.delay(self.attempts);
                if delay == self.backoff.max && self.backoff.delay(self.attempts - 1) < delay {
                    super::log(format_args!(
                        "{}: still cannot reconnect ({}); trying every {} ms",
                        self.cfg.describe(),
                        failure_text(&e),
                        delay.as_millis()
                    ));
                }
                self.next_attempt = Instant::now() + delay;
            }
        }
    }

    /// Connections lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }
}

impl Input for AmqpInput {
    fn next(&mut self, buf: &mut Vec<u8>, _room: usize) -> Result<Fetch, InputError> {
        loop {
            let Some(link) = self.link.as_mut() else {
                self.try_reconnect();
                if self.link.is_none() {
                    return Ok(Fetch::Idle);
                }
                continue;
            };
            let consumer = &mut link.consumer;
            let got = self.runtime.block_on(async {
                tokio::time::timeout(
                    IDLE_WAIT,
                    std::future::poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)),
                )
                .await
            });
            let delivery = match got {
                Err(_) => return Ok(Fetch::Idle),
                Ok(None) => {
                    self.drop_link("the consumer was cancelled");
                    return Ok(Fetch::Idle);
                }
                Ok(Some(Err(e))) => {
                    self.drop_link(e);
                    return Ok(Fetch::Idle);
                }
                Ok(Some(Ok(d))) => d,
            };
            self.last_tag = delivery.delivery_tag;
            let hash = body_hash(&delivery.data);
            if delivery.redelivered && self.earlier.take(&hash) {
                // Recorded and committed by an earlier run whose ack did not arrive.
                self.skipped += 1;
                self.unacked_skips += 1;
                self.skip_hashes.push(hash);
                continue;
            }
            self.taken += 1;
            buf.clear();
            buf.extend_from_slice(&delivery.data);
            self.last_hash = hash.clone();
            self.batch_hashes.push(hash);
            return Ok(Fetch::Message);
        }
    }

    fn position(&self) -> String {
        format!(
            "{} queue {} message {} (delivery tag {})",
            self.cfg.describe(),
            self.cfg.queue,
            self.taken,
            self.last_tag
        )
    }

    fn give_back_last(&mut self) -> Result<(), InputError> {
        if self.last_tag == 0 || self.batch_hashes.is_empty() {
            return Ok(());
        }
        let tag = self.last_tag;
        let Some(link) = self.link.as_ref() else {
            return Ok(());
        };
        let channel = link.channel.clone();
        let nacked = self.runtime.block_on(async move {
            channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    },
                )
                .await
        });
        self.batch_hashes.pop();
        self.taken -= 1;
        if let Err(e) = nacked {
            // The broker gives it back anyway when the connection is gone.
            self.drop_link(e);
            return Ok(());
        }
        // The ack of the snapshot must not cover the message given back: ack up to the one
        // before (delivery tags on a channel count up by one).
        self.last_tag = tag - 1;
        Ok(())
    }

    fn state(&self) -> InputState {
        let mut hashes = self.earlier.to_list();
        hashes.extend(self.batch_hashes.iter().cloned());
        // Skipped ones are acknowledged by the same ack as the batch: if that ack is lost
        // they come again, and must again be recognised.
        hashes.extend(self.skip_hashes.iter().cloned());
        InputState {
            source: self.cfg.describe(),
            redelivery_hashes: hashes,
            ..InputState::default()
        }
    }

    fn committed(&mut self) -> Result<(), InputError> {
        if let (true, Some(link)) = (self.last_tag > 0, self.link.as_ref()) {
            let tag = self.last_tag;
            let channel = link.channel.clone();
            let acked = self.runtime.block_on(async move {
                channel
                    .basic_ack(tag, BasicAckOptions { multiple: true })
                    .await
            });
            if let Err(e) = acked {
                // Committed but not acknowledged: they come again and are recognised.
                self.drop_link(e);
                return Ok(());
            }
        }
        self.batch_hashes.clear();
        self.skip_hashes.clear();
        self.unacked_skips = 0;
        Ok(())
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }

    fn unacked_skips(&self) -> u64 {
        self.unacked_skips
    }
}

impl Drop for AmqpInput {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            close_quickly(&self.runtime, &link.connection);
        }
    }
}
