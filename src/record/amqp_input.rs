//! `record --input amqp://...`: a RabbitMQ consumer with manual acknowledgements (see
//! `input.rs` for the at-least-once protocol and the redelivery check).
//!
//! The runtime is set up as in the AMQP sink (a one-worker Tokio runtime that runs lapin's
//! heartbeat and RPC tasks; the recording thread blocks on it). The exchange, queue and
//! binding are declared as the publisher declares them, so starting the recorder first works.
//! A lost connection ends the run (exit 17): every unacknowledged message goes back to the
//! queue at the broker, and the CSV holds exactly the acknowledged ones.

use super::csv::InputState;
use super::input::{body_hash, Fetch, HashBag, Input, InputError, IDLE_WAIT};
use crate::sink::{AmqpConfig, StartError};
use async_rs::traits::Executor;
use async_rs::TokioRuntime;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use std::pin::Pin;

pub struct AmqpInput {
    cfg: AmqpConfig,
    runtime: TokioRuntime,
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
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
}

impl AmqpInput {
    pub fn open(
        cfg: AmqpConfig,
        prefetch: u16,
        resumed: &InputState,
    ) -> Result<AmqpInput, StartError> {
        if cfg.tls {
            return Err(StartError::new(
                11,
                "TLS (amqps://) is not supported by this build yet; use amqp://",
            ));
        }
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netpipe-amqp-in")
            .enable_all()
            .build()
            .map_err(|e| StartError::new(9, format!("cannot start the AMQP runtime: {e}")))?;
        let runtime = async_rs::Runtime::tokio_with_runtime(tokio);
        let uri = cfg.uri();
        let props =
            ConnectionProperties::default().with_connection_name("netpipe-fast record".into());
        let work = async {
            let connection =
                Connection::connect_uri_with_runtime(uri, props, runtime.clone()).await?;
            let channel = connection.create_channel().await?;
            channel
                .exchange_declare(
                    cfg.exchange.as_str().into(),
                    cfg.exchange_kind(),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_declare(
                    cfg.queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_bind(
                    cfg.queue.as_str().into(),
                    cfg.exchange.as_str().into(),
                    cfg.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            channel
                .basic_qos(prefetch.max(1), BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    cfg.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((connection, channel, consumer))
        };
        let (connection, channel, consumer) = runtime
            .block_on(async { tokio::time::timeout(cfg.connect_timeout, work).await })
            .map_err(|_| StartError::new(9, format!("{}: no answer in time", cfg.describe())))?
            .map_err(|e| crate::sink::amqp::start_error_for_input(&cfg, e))?;
        let earlier = if resumed.source == cfg.describe() {
            HashBag::from_list(&resumed.redelivery_hashes)
        } else {
            HashBag::default()
        };
        Ok(AmqpInput {
            cfg,
            runtime,
            _connection: connection,
            channel,
            consumer,
            last_tag: 0,
            last_hash: String::new(),
            taken: 0,
            batch_hashes: Vec::new(),
            earlier,
            skipped: 0,
            unacked_skips: 0,
        })
    }

    fn lost(&self, e: impl std::fmt::Display) -> InputError {
        InputError(format!(
            "{}: connection lost: {e} (unacknowledged messages go back to the queue)",
            self.cfg.describe()
        ))
    }
}

impl Input for AmqpInput {
    fn next(&mut self, buf: &mut Vec<u8>, _room: usize) -> Result<Fetch, InputError> {
        loop {
            let consumer = &mut self.consumer;
            let got = self.runtime.block_on(async {
                tokio::time::timeout(
                    IDLE_WAIT,
                    std::future::poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)),
                )
                .await
            });
            let delivery = match got {
                Err(_) => return Ok(Fetch::Idle),
                Ok(None) => return Err(self.lost("the consumer was cancelled")),
                Ok(Some(Err(e))) => return Err(self.lost(e)),
                Ok(Some(Ok(d))) => d,
            };
            self.last_tag = delivery.delivery_tag;
            let hash = body_hash(&delivery.data);
            if delivery.redelivered && self.earlier.take(&hash) {
                // Recorded and committed by an earlier run whose ack did not arrive.
                self.skipped += 1;
                self.unacked_skips += 1;
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
        let channel = self.channel.clone();
        self.runtime
            .block_on(async move {
                channel
                    .basic_nack(
                        tag,
                        BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        },
                    )
                    .await
            })
            .map_err(|e| self.lost(e))?;
        self.batch_hashes.pop();
        self.taken -= 1;
        // The ack of the snapshot must not cover the message given back: ack up to the one
        // before (delivery tags on a channel count up by one).
        self.last_tag = tag - 1;
        Ok(())
    }

    fn state(&self) -> InputState {
        let mut hashes = self.earlier.to_list();
        hashes.extend(self.batch_hashes.iter().cloned());
        InputState {
            source: self.cfg.describe(),
            redelivery_hashes: hashes,
            ..InputState::default()
        }
    }

    fn committed(&mut self) -> Result<(), InputError> {
        if self.last_tag > 0 {
            let tag = self.last_tag;
            let channel = self.channel.clone();
            self.runtime
                .block_on(async move {
                    channel
                        .basic_ack(tag, BasicAckOptions { multiple: true })
                        .await
                })
                .map_err(|e| self.lost(e))?;
        }
        self.batch_hashes.clear();
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
        // Close politely so the broker requeues what is unacknowledged at once.
        let connection = &self._connection;
        let _ = self.runtime.block_on(async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                connection.close(200, "recorder stopping".into()),
            )
            .await
        });
    }
}
