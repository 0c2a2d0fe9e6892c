//! netpipe-fast: network traffic (live or pcap/pcapng) into AntiNex-compatible JSON packet
//! messages. See `docs/FORMAT.md` for the message and `../shared/DESIGN.md` for the data path.
//!
//! Embedding: build a [`pipeline::read::ReadJob`] and call `run` (or `run_with_sink` with a
//! sink of your own); or call [`decode::decode`] and [`encode::JsonEncoder::encode`] directly
//! for one frame at a time.
//!
//! Brokers are spoken to through [`broker`] (the one Redis client, secrets), which both the
//! publishing side ([`sink`]) and the consuming side ([`record`]) use.
#![deny(unsafe_code)]

pub mod broker;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod decode;
pub mod encode;
pub mod exit;
pub mod paths;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod source;
pub mod tools;
