//! `record --input rabbitmq-stream://...`: reads a RabbitMQ stream (`--queue`) with offset
//! tracking in the broker. The offset of the last message of each committed snapshot is
//! stored (StoreOffset) under the reader's name (`--reader-name`); at start the stored offset
//! is asked for (QueryOffset) and reading resumes right after it (from the start of the
//! stream when none is stored). A crash between the CSV commit and the StoreOffset reads the
//! snapshot's messages again: at-least-once, as the other broker inputs.
//!
//! A lost connection ends the run with an input error; started again, the recorder resumes
//! from the stored offset. Several readers with different names each read everything.

use super::csv::InputState;
use super::input::{Fetch, Input, InputError, IDLE_WAIT};
use crate::sink::rabbit_stream::{start_error, Failure};
use crate::sink::{RabbitStreamConfig, StartError};
use futures_core::Stream;
use rabbitmq_stream_client::error::{ClientError, ConsumerCreateError};
use rabbitmq_stream_client::types::{Delivery, OffsetSpecification, ResponseCode};
use rabbitmq_stream_client::Consumer;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::Poll;

pub struct StreamInput {
    cfg: RabbitStreamConfig,
    name: String,
    runtime: tokio::runtime::Runtime,
    consumer: Consumer,
    /// Offsets below this were committed by an earlier run (the broker delivers whole
    /// chunks, so a subscription may start before the offset asked for).
    from_offset: u64,
    /// Offset of the last message handed out, and of the one before it.
    last: Option<u64>,
    before_last: Option<u64>,
    /// The last offset stored with the broker.
    stored: Option<u64>,
    taken: u64,
    /// Delivered by the client and not yet handed out, oldest first: taken from its channel
    /// in bulk, so the recorder waits (and wakes) once per burst, not once per message.
    ready: VecDeque<Delivery>,
    /// The subscription failed or ended after the messages in `ready`.
    failed: Option<String>,
}

/// Deliveries taken from the client per wait at most.
const DRAIN_MAX: usize = 4096;

impl StreamInput {
    pub fn open(cfg: RabbitStreamConfig, name: String) -> Result<StreamInput, StartError> {
        // A current-thread runtime: the client's tasks (socket reads, decoding, heartbeats)
        // run inside this thread's `block_on` while it waits for deliveries, so a burst of
        // messages costs no hand-over between threads (a worker thread made two context
        // switches per wake-up, ~17 % of the recorder's CPU in a profile). Between waits the
        // connection is not served; the recorder waits again within a snapshot's time, far
        // inside the 60 s heartbeat.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartError::new(9, format!("cannot start the runtime: {e}")))?;
        let env = cfg
            .environment(&runtime)
            .map_err(|e| start_error(&cfg, &e))?;
        let timeout = cfg.connect_timeout;
        let stream = cfg.stream.clone();
        let reader = name.clone();
        let work = async move {
            // A consumer only to ask for the stored offset: the client asks through one.
            let probe = env
                .consumer()
                .name(&reader)
                .offset(OffsetSpecification::Next)
                .build(&stream)
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
                .name(&reader)
                .offset(start)
                .build(&stream)
                .await?;
            Ok((consumer, stored))
        };
        let (consumer, stored) = runtime
            .block_on(async move { tokio::time::timeout(timeout, work).await })
            .map_err(|_| start_error(&cfg, &Failure::Timeout("subscribing")))?
            .map_err(|e| match e {
                ConsumerCreateError::Client(c) => start_error(&cfg, &Failure::Client(c)),
                other => StartError::new(
                    2,
                    format!(
                        "{}: cannot read stream \"{}\": {other}",
                        cfg.describe(),
                        cfg.stream
                    ),
                ),
            })?;
        Ok(StreamInput {
            cfg,
            name,
            runtime,
            consumer,
            from_offset: stored.map_or(0, |o| o + 1),
            last: None,
            before_last: None,
            stored,
            taken: 0,
            ready: VecDeque::new(),
            failed: None,
        })
    }
}

impl StreamInput {
    /// Waits up to IDLE_WAIT for deliveries, then takes every one already there (up to
    /// DRAIN_MAX) without waiting again.
    fn fill(&mut self) {
        let consumer = &mut self.consumer;
        let ready = &mut self.ready;
        let got = self.runtime.block_on(async {
            tokio::time::timeout(
                IDLE_WAIT,
                std::future::poll_fn(|cx| loop {
                    match Pin::new(&mut *consumer).poll_next(cx) {
                        Poll::Ready(Some(Ok(d))) => {
                            ready.push_back(d);
                            if ready.len() >= DRAIN_MAX {
                                return Poll::Ready(None);
                            }
                        }
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(e.to_string())),
                        Poll::Ready(None) => {
                            return Poll::Ready(Some("the stream subscription ended".into()))
                        }
                        Poll::Pending if ready.is_empty() => return Poll::Pending,
                        Poll::Pending => return Poll::Ready(None),
                    }
                }),
            )
            .await
        });
        if let Ok(Some(e)) = got {
            self.failed = Some(format!("{}: {e}", self.cfg.describe()));
        }
    }
}

impl Input for StreamInput {
    fn next(&mut self, buf: &mut Vec<u8>, _room: usize) -> Result<Fetch, InputError> {
        loop {
            if self.ready.is_empty() {
                if let Some(e) = self.failed.take() {
                    return Err(InputError(e));
                }
                self.fill();
                if self.ready.is_empty() {
                    if let Some(e) = self.failed.take() {
                        return Err(InputError(e));
                    }
                    return Ok(Fetch::Idle);
                }
            }
            let Some(delivery) = self.ready.pop_front() else {
                continue;
            };
            let offset = delivery.offset();
            if offset < self.from_offset {
                continue;
            }
            self.from_offset = offset + 1;
            buf.clear();
            // A message without a data section (not written by us) is an empty message,
            // rejected and counted by the recorder like any other bad message.
            buf.extend_from_slice(delivery.message().data().unwrap_or_default());
            self.before_last = self.last;
            self.last = Some(offset);
            self.taken += 1;
            return Ok(Fetch::Message);
        }
    }

    fn position(&self) -> String {
        format!(
            "{} stream {} offset {}",
            self.cfg.describe(),
            self.cfg.stream,
            self.last.map_or_else(|| "-".into(), |o| o.to_string())
        )
    }

    fn give_back_last(&mut self) -> Result<(), InputError> {
        // Not stored: read again by the next run (it resumes after the stored offset).
        self.last = self.before_last.take();
        self.taken = self.taken.saturating_sub(1);
        Ok(())
    }

    fn state(&self) -> InputState {
        InputState {
            source: format!("{} stream {}", self.cfg.describe(), self.cfg.stream),
            consumer: self.name.clone(),
            ..InputState::default()
        }
    }

    fn committed(&mut self) -> Result<(), InputError> {
        let Some(offset) = self.last else {
            return Ok(());
        };
        if self.stored == Some(offset) {
            return Ok(());
        }
        let consumer = &self.consumer;
        let timeout = self.cfg.confirm_timeout;
        self.runtime
            .block_on(
                async move { tokio::time::timeout(timeout, consumer.store_offset(offset)).await },
            )
            .map_err(|_| {
                InputError(format!(
                    "{}: no answer to StoreOffset in time",
                    self.cfg.describe()
                ))
            })?
            .map_err(|e| InputError(format!("{}: StoreOffset failed: {e}", self.cfg.describe())))?;
        self.stored = Some(offset);
        Ok(())
    }
}

/// `record --input rabbitmq-stream://...`: the reader's name is `--reader-name` (default
/// `netpipe-fast-record-<stream>`).
pub fn open(url: &str, options: &crate::sink::OutputOptions) -> Result<Box<dyn Input>, StartError> {
    let cfg = RabbitStreamConfig::parse(url, options, &options.stream)
        .map_err(|e| StartError::new(2, e))?;
    let name = options
        .stream
        .reader_name
        .clone()
        .unwrap_or_else(|| format!("netpipe-fast-record-{}", cfg.stream));
    Ok(Box::new(StreamInput::open(cfg, name)?))
}
