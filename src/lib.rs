//! netpipe-fast: network traffic (live or pcap/pcapng) into AntiNex-compatible JSON packet
//! messages. See `docs/FORMAT.md` for the message and `../shared/DESIGN.md` for the data path.
//!
//! Embedding: build a [`pipeline::read::ReadJob`] and call `run` (or `run_with_sink` with a
//! sink of your own); or call [`decode::decode`] and [`encode::JsonEncoder::encode`] directly
//! for one frame at a time.
#![deny(unsafe_code)]

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod config;
#[cfg(feature = "cli")]
pub mod dataset;
pub mod decode;
pub mod encode;
pub mod exit;
#[cfg(feature = "brokers")]
pub mod paths;
#[cfg(feature = "brokers")]
pub mod pipeline;
#[cfg(feature = "cli")]
pub mod record;
#[cfg(feature = "brokers")]
pub mod sink;
pub mod source;
#[cfg(feature = "cli")]
pub mod tools;
