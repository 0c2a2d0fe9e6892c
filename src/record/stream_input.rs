//! `record --input rabbitmq-stream://...`: reads a RabbitMQ stream (`--queue`) with offset
//! tracking in the broker. The offset of the last message of each committed snapshot is
//! stored (StoreOffset) under the reader's name (`--reader-name`); at start the stored offset
//! is asked for (QueryOffset) and reading resumes right after it (from the start of the
//! stream when none is stored). A crash between the CSV commit and the StoreOffset reads the
//! snapshot's messages again: at-least-once, as the other broker inputs.
//!
//! With `--partitions N` the input is the streams `<queue>-0 .. <queue>-(N-1)` (those chosen
//! with `--partition`): one subscription per stream, each with its own offset stored under the
//! same reader name (RabbitMQ keeps offsets per stream and name). Messages are handed out as
//! they arrive, so rows of several partitions interleave; each partition's stay in order.
//!
//! A lost connection (the broker restarted, a node went away) is not the end: the recorder
//! logs it, subscribes again with the client's backoff (at most `RECONNECT_FOR`), each
//! partition right after the last message it read, so nothing is read twice or skipped, and
//! goes on; offsets not yet stored are stored once it is back. Given up, the run ends with an
//! input error (exit 17), and started again it resumes from the stored offsets. Several
//! readers with different names each read everything.

use super::csv::InputState;
use super::input_common::{Fetch, Input, InputError, IDLE_WAIT};
use crate::broker::StartError;
use crate::sink::rabbit_stream::{start_error, Failure};
use crate::sink::RabbitStreamConfig;
use futures_core::Stream;
use rabbitmq_stream_client::error::{ClientError, ConsumerCreateError};
use rabbitmq_stream_client::types::{Delivery, OffsetSpecification, ResponseCode};
use rabbitmq_stream_client::{Consumer, Environment};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// How long a recorder whose connection was lost keeps trying to subscribe again.
const RECONNECT_FOR: Duration = Duration::from_secs(300);

/// One stream read: its subscription and offsets.
struct Part {
    stream: String,
    consumer: Consumer,
    /// Offsets below this were committed by an earlier run (the broker delivers whole
    /// chunks, so a subscription may start before the offset asked for) or handed out.
    from_offset: u64,
    /// Offset of the last message handed out, and of the one before it.
    last: Option<u64>,
    before_last: Option<u64>,
    /// The last offset stored with the broker.
    stored: Option<u64>,
}

/// RabbitMQ streams read with offsets stored in the broker: the [`Input`] of
/// `record --input rabbitmq-stream://...` (see the module documentation).
pub struct StreamInput {
    cfg: RabbitStreamConfig,
    name: String,
    runtime: tokio::runtime::Runtime,
    env: Environment,
    parts: Vec<Part>,
    /// The connection was lost at this time, for this reason: reconnecting.
    lost: Option<(Instant, String)>,
    /// Reconnection attempts since it was lost.
    attempts: u32,
    /// The part of the last message handed out.
    last_part: Option<usize>,
    /// Delivered by the client and not yet handed out, oldest first (with their part): taken
    /// from its channels in bulk, so the recorder waits (and wakes) once per burst, not once
    /// per message.
    ready: VecDeque<(usize, Delivery)>,
}

/// Deliveries taken from the client per wait at most.
const DRAIN_MAX: usize = 4096;

/// Subscribes to `stream` as reader `reader` from `offset` (after a reconnection: right after
/// the last message read).
async fn resubscribe(
    env: &Environment,
    reader: &str,
    stream: &str,
    offset: u64,
) -> Result<Consumer, ConsumerCreateError> {
    let start = if offset == 0 {
        OffsetSpecification::First
    } else {
        OffsetSpecification::Offset(offset)
    };
    env.consumer()
        .name(reader)
        .offset(start)
        .build(stream)
        .await
}

/// Subscribes to `stream` as reader `reader`, right after its stored offset (from the
/// stream's start when none is stored). Returns the consumer and the stored offset.
async fn subscribe(
    env: &Environment,
    reader: &str,
    stream: &str,
) -> Result<(Consumer, Option<u64>), ConsumerCreateError> {
    // A consumer only to ask for the stored offset: the client asks through one.
    let probe = env
        .consumer()
        .name(reader)
        .offset(OffsetSpecification::Next)
        .build(stream)
        .await?;
    let stored = match probe.query_offset().await {
        Ok(o) => Some(o),
        Err(rabbitmq_stream_client::error::ConsumerStoreOffsetError::Client(
            ClientError::RequestError(ResponseCode::OffsetNotFound),
        )) => None,
        Err(e) => {
            return Err(ConsumerCreateError::Client(ClientError::GenericError(
                Box::new(e),
            )))
        }
    };
    let _ = probe.handle().close().await;
    let start = match stored {
        Some(o) => OffsetSpecification::Offset(o + 1),
        None => OffsetSpecification::First,
    };
    let consumer = env
        .consumer()
        .name(reader)
        .offset(start)
        .build(stream)
        .await?;
    Ok((consumer, stored))
}

impl StreamInput {
    /// Reads `streams` (in partition order) as reader `name`.
    pub fn open(
        cfg: RabbitStreamConfig,
        name: String,
        streams: Vec<String>,
    ) -> Result<StreamInput, StartError> {
        // A current-thread runtime: the client's tasks (socket reads, decoding, heartbeats)
        // run inside this thread's `block_on` while it waits for deliveries, so a burst of
        // messages costs no hand-over between threads (a worker thread made two context
        // switches per wake-up, ~17 % of the recorder's CPU in a profile). Between waits the
        // connection is not served; the recorder waits again within a snapshot's time, far
        // inside the 60 s heartbeat.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StartError::new(
                    crate::exit::BROKER_UNREACHABLE,
                    format!("cannot start the runtime: {e}"),
                )
            })?;
        let env = cfg
            .environment(&runtime)
            .map_err(|e| start_error(&cfg, &e))?;
        let mut parts = Vec::with_capacity(streams.len());
        for stream in streams {
            let timeout = cfg.endpoint.connect_timeout;
            let (consumer, stored) = runtime
                .block_on(async {
                    tokio::time::timeout(timeout, subscribe(&env, &name, &stream)).await
                })
                .map_err(|_| start_error(&cfg, &Failure::Timeout("subscribing")))?
                .map_err(|e| match e {
                    ConsumerCreateError::Client(c) => start_error(&cfg, &Failure::Client(c)),
                    other => StartError::new(
                        crate::exit::USAGE,
                        format!(
                            "{}: cannot read stream \"{stream}\": {other}",
                            cfg.describe()
                        ),
                    ),
                })?;
            parts.push(Part {
                stream,
                consumer,
                from_offset: stored.map_or(0, |o| o + 1),
                last: None,
                before_last: None,
                stored,
            });
        }
        Ok(StreamInput {
            cfg,
            name,
            runtime,
            env,
            parts,
            lost: None,
            attempts: 0,
            last_part: None,
            ready: VecDeque::new(),
        })
    }

    /// Waits up to IDLE_WAIT for deliveries, then takes every one already there (up to
    /// DRAIN_MAX, from every part in turn) without waiting again.
    fn fill(&mut self) {
        let parts = &mut self.parts;
        let ready = &mut self.ready;
        let got = self.runtime.block_on(async {
            tokio::time::timeout(
                IDLE_WAIT,
                std::future::poll_fn(|cx| {
                    for (i, part) in parts.iter_mut().enumerate() {
                        loop {
                            match Pin::new(&mut part.consumer).poll_next(cx) {
                                Poll::Ready(Some(Ok(d))) => {
                                    ready.push_back((i, d));
                                    if ready.len() >= DRAIN_MAX {
                                        return Poll::Ready(None);
                                    }
                                }
                                Poll::Ready(Some(Err(e))) => {
                                    return Poll::Ready(Some(format!("{}: {e}", part.stream)))
                                }
                                Poll::Ready(None) => {
                                    return Poll::Ready(Some(format!(
                                        "the subscription to {} ended",
                                        part.stream
                                    )))
                                }
                                Poll::Pending => break,
                            }
                        }
                    }
                    if ready.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(None)
                    }
                }),
            )
            .await
        });
        if let Ok(Some(e)) = got {
            self.mark_lost(e);
        }
    }

    fn mark_lost(&mut self, why: String) {
        if self.lost.is_none() {
            super::log(format_args!(
                "{}: connection lost ({why}); subscribing again, each stream right after its \
                 last message read",
                self.cfg.describe()
            ));
            self.lost = Some((Instant::now(), why));
            self.attempts = 0;
        }
    }

    /// One attempt to subscribe again to every stream (after the backoff's wait); an error
    /// once it has tried for RECONNECT_FOR.
    fn reconnect(&mut self) -> Result<(), InputError> {
        let Some((since, why)) = &self.lost else {
            return Ok(());
        };
        if since.elapsed() >= RECONNECT_FOR {
            return Err(InputError(format!(
                "{}: connection lost ({why}) and not back after {} s of retries (a restart \
                 resumes after the offsets stored)",
                self.cfg.describe(),
                RECONNECT_FOR.as_secs()
            )));
        }
        std::thread::sleep(self.cfg.backoff.delay(self.attempts));
        self.attempts = self.attempts.saturating_add(1);
        let timeout = self.cfg.endpoint.connect_timeout;
        let mut fresh = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let work = resubscribe(&self.env, &self.name, &part.stream, part.from_offset);
            match self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, work).await })
            {
                Ok(Ok(c)) => fresh.push(c),
                // Still down: the next call tries again.
                _ => return Ok(()),
            }
        }
        for (part, consumer) in self.parts.iter_mut().zip(fresh) {
            part.consumer = consumer;
        }
        super::log(format_args!(
            "{}: subscribed again after {} attempt(s)",
            self.cfg.describe(),
            self.attempts
        ));
        self.lost = None;
        Ok(())
    }

    fn streams(&self) -> String {
        let names: Vec<&str> = self.parts.iter().map(|p| p.stream.as_str()).collect();
        names.join(",")
    }
}

impl Input for StreamInput {
    fn next(&mut self, buf: &mut Vec<u8>, _room: usize) -> Result<Fetch, InputError> {
        loop {
            if self.ready.is_empty() {
                if self.lost.is_some() {
                    self.reconnect()?;
                    if self.lost.is_some() {
                        return Ok(Fetch::Idle);
                    }
                }
                self.fill();
                if self.ready.is_empty() {
                    return Ok(Fetch::Idle);
                }
            }
            let Some((i, delivery)) = self.ready.pop_front() else {
                continue;
            };
            let part = &mut self.parts[i];
            let offset = delivery.offset();
            if offset < part.from_offset {
                continue;
            }
            part.from_offset = offset + 1;
            buf.clear();
            // A message without a data section (not written by us) is an empty message,
            // rejected and counted by the recorder like any other bad message.
            buf.extend_from_slice(delivery.message().data().unwrap_or_default());
            part.before_last = part.last;
            part.last = Some(offset);
            self.last_part = Some(i);
            return Ok(Fetch::Message);
        }
    }

    fn position(&self) -> String {
        let (stream, offset) = match self.last_part {
            Some(i) => (self.parts[i].stream.as_str(), self.parts[i].last),
            None => (self.parts[0].stream.as_str(), None),
        };
        format!(
            "{} stream {stream} offset {}",
            self.cfg.describe(),
            offset.map_or_else(|| "-".into(), |o| o.to_string())
        )
    }

    fn give_back_last(&mut self) -> Result<(), InputError> {
        // Not stored: read again by the next run (it resumes after the stored offset).
        if let Some(i) = self.last_part.take() {
            let part = &mut self.parts[i];
            part.last = part.before_last.take();
        }
        Ok(())
    }

    fn state(&self) -> InputState {
        InputState {
            source: if self.parts.len() == 1 {
                format!("{} stream {}", self.cfg.describe(), self.streams())
            } else {
                format!("{} streams {}", self.cfg.describe(), self.streams())
            },
            consumer: self.name.clone(),
            ..InputState::default()
        }
    }

    fn committed(&mut self) -> Result<(), InputError> {
        let timeout = self.cfg.confirm_timeout;
        for i in 0..self.parts.len() {
            let mut mismatches = 0u32;
            loop {
                while self.lost.is_some() {
                    self.reconnect()?;
                }
                let part = &self.parts[i];
                let Some(offset) = part.last else {
                    break;
                };
                if part.stored == Some(offset) {
                    break;
                }
                let consumer = &part.consumer;
                // StoreOffset has no answer in the stream protocol: it is only written to the
                // socket. Asking for the offset back (the broker handles a connection's
                // frames in order) makes sure it was taken before the commit counts; without
                // it, a recorder stopping right after its last commit closed the connection
                // with deliveries unread, the kernel reset it, and the broker lost the last
                // StoreOffset (the next run read some messages again; seen in a test).
                let stored = self.runtime.block_on(async move {
                    tokio::time::timeout(timeout, async {
                        consumer.store_offset(offset).await?;
                        consumer.query_offset().await.map(|o| o == offset)
                    })
                    .await
                });
                match stored {
                    Ok(Ok(true)) => {
                        self.parts[i].stored = Some(offset);
                        break;
                    }
                    // Not there yet: store again; moved again and again, another reader
                    // of the same name is storing its own offsets.
                    Ok(Ok(false)) => {
                        mismatches += 1;
                        if mismatches >= 10 {
                            return Err(InputError(format!(
                                "{}: the offset stored for {} under reader name {:?} keeps \
                                 changing: is another recorder using the same name?",
                                self.cfg.describe(),
                                self.parts[i].stream,
                                self.name
                            )));
                        }
                        continue;
                    }
                    // The offsets are kept: stored again once subscribed again.
                    Ok(Err(e)) => self.mark_lost(format!(
                        "StoreOffset for {} failed: {e}",
                        self.parts[i].stream
                    )),
                    Err(_) => self.mark_lost(format!(
                        "no answer to StoreOffset for {} in time",
                        self.parts[i].stream
                    )),
                }
            }
        }
        Ok(())
    }
}

/// `record --input rabbitmq-stream://...`: the reader's name is `--reader-name` (default
/// `netpipe-fast-record-<stream>`).
pub fn open(
    url: &str,
    options: &crate::sink::OutputOptions,
    partitions: &super::Partitions,
) -> Result<Box<dyn Input>, StartError> {
    let cfg = RabbitStreamConfig::parse(url, options, &options.stream)
        .map_err(|e| StartError::new(crate::exit::USAGE, e))?;
    let name = options
        .stream
        .reader_name
        .clone()
        .unwrap_or_else(|| format!("netpipe-fast-record-{}", cfg.stream));
    let streams = partitions.names(&cfg.stream);
    Ok(Box::new(StreamInput::open(cfg, name, streams)?))
}
