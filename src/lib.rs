//! netpipe-fast turns network traffic (a live interface, or pcap/pcapng files) into
//! AntiNex-compatible JSON packet messages, one JSON object per packet, and publishes them to
//! stdout, files, TCP, Redis or RabbitMQ. This crate is both the `netpipe-fast` program and a
//! library that the program is built on.
//!
//! # The message
//!
//! Each packet becomes one JSON object: `data` holds the decoded layers outermost first, keyed
//! by layer name as scapy names them (`ether`, `ip`, `tcp`, `dns`, ... with bytes the decoders
//! did not understand under `raw`), followed by the envelope: `created` (UTC capture second,
//! `YYYY-MM-DD HH:MM:SS`), `source` (a host label you choose), `time_ns`, `wire_len`,
//! `cap_len`, `community_id` (the flow's Community ID v1) and, for malformed frames,
//! `decode_error`. A short or malformed frame is never a panic: the layers that decoded are
//! kept and the first malformation is reported.
//!
//! # Data path
//!
//! ```text
//! source ──frames──▶ worker ──JSON batches──▶ publisher thread ──▶ sink
//! (ring, files)      decode → encode  (bounded)   (batching, retry,     (stdout, file, tcp,
//!                                                   confirms, spool)      Redis, RabbitMQ)
//! ```
//!
//! Frames are borrowed, decoded in place (no allocation) and written as JSON straight into a
//! reusable batch buffer; batches travel over bounded queues and come back empty for reuse.
//!
//! # Modules
//!
//! - [`decode`]: zero-copy decoders, one module per protocol, from link layers to DNS, HTTP,
//!   TLS hellos and tunnels; [`decode::decode`] turns one frame into a [`decode::Packet`].
//! - [`encode`]: [`encode::JsonEncoder`] writes a packet's message into a `Vec<u8>`; also the
//!   Community ID and the hex and output primitives.
//! - [`source`]: the pcap/pcapng reader ([`source::pcap_file::CaptureReader`], any
//!   [`std::io::Read`]), classic BPF filters ([`source::filter::BpfFilter`]: checked like the
//!   kernel checks them, run by our own interpreter) and, with the `capture` feature, the
//!   TPACKET_V3 ring and interface helpers.
//! - [`exit`]: the program's exit codes, one meaning per number.
//! - [`time`]: the `created` time format, shared by every layer.
//! - With the `brokers` feature: `broker` (URLs, secrets, TLS, start errors, the one Redis
//!   client and the one AMQP path, used by both the publishing and the consuming side),
//!   `pipeline` (workers, the publisher, `pipeline::read::ReadJob` for files and
//!   `pipeline::capture::CaptureJob` for interfaces, and in `pipeline::deliver` what they need
//!   of an output), `sink` (the `Sink` trait, every output built from its config, the spool),
//!   `create` (output files opened safely), `paths`.
//! - With the `cli` feature: `cli`, `config`, `record`, `dataset`, `tools`: the program's
//!   commands.
//!
//! # Cargo features
//!
//! - no features: [`decode`], [`encode`], [`exit`], the pcap/pcapng reader, and the cBPF
//!   checker and interpreter for programs compiled elsewhere
//!   ([`source::filter::BpfFilter::from_ddd`]). 20 small crates (zerocopy, itoa, memchr,
//!   base64, RustCrypto hashes): no async runtime, no TLS, no C library.
//! - `bpf`: `BpfFilter::compile` for tcpdump filter expressions, through libpcap, opened at
//!   run time when the first expression is compiled (nothing to build against); implies
//!   `capture`, whose system-call module holds the loader's unsafe code.
//! - `capture`: the live ring, interface listing, dropping root (`libc`, `nix`, `rustix`).
//! - `brokers`: the engine (`pipeline`) and every sink; implies `capture` and `bpf`. Tokio,
//!   lapin, rustls, the Redis and RabbitMQ Streams clients, ...
//! - `cli`: the program and its commands; implies `brokers` (clap, csv, ureq, toml, ...).
//!
//! The default is everything. To decode only:
//!
//! ```toml
//! netpipe-fast = { version = "0.1", default-features = false }
//! ```
//!
//! # Examples
//!
//! Decoding one frame from a buffer of your own and writing its message:
//!
//! ```
//! use netpipe_fast::decode::{decode, LinkType};
//! use netpipe_fast::encode::{FrameMeta, JsonEncoder};
//!
//! // An Ethernet frame with an ARP request (who has 192.0.2.2? tell 192.0.2.1).
//! let mut frame = vec![0xff; 6];
//! frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
//! frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
//! frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 1]);
//! frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 2]);
//!
//! let packet = decode(LinkType::Ethernet, &frame);
//! assert!(packet.error.is_none());
//! let meta = FrameMeta { time_ns: 0, wire_len: frame.len() as u32, cap_len: frame.len() as u32 };
//! let mut out = Vec::new();
//! JsonEncoder::new("sensor-1").encode(&mut out, &meta, &packet);
//! let line = String::from_utf8(out).unwrap();
//! assert!(line.starts_with(r#"{"data":{"ether":"#) && line.ends_with("}\n"));
//! assert!(line.contains(r#""pdst":"192.0.2.2""#));
//! ```
//!
//! Two complete programs come with the crate, and CI builds and runs both:
//!
//! - `examples/decode_buffer.rs` (no features needed): builds a DNS query frame in memory,
//!   decodes it, prints its JSON message, runs a `tcpdump -ddd` program over it with
//!   [`source::filter::BpfFilter::from_ddd`] and reads it back from an in-memory pcap file.
//!   `cargo run --no-default-features --example decode_buffer`
//! - `examples/appliance_sink.rs` (`brokers`): an appliance that embeds the engine: a
//!   `ReadJob` over a capture file runs the reader, the decoding workers and the publisher,
//!   and hands every batch to a `Sink` implemented in the example, which counts messages and
//!   bytes; the example checks them against a frame-by-frame decode of the same file.
//!   `cargo run --example appliance_sink`
//!
//! Live capture (`pipeline::capture::CaptureJob`) runs the same workers and publisher over
//! the kernel's packet ring; it needs `CAP_NET_RAW`.
#![deny(unsafe_code)]
// Every public item is documented; the only `allow`s are on `cli`'s clap value enums, whose
// doc comments would become `--help` text (each says so where it stands).
#![warn(missing_docs)]

#[cfg(feature = "brokers")]
pub mod broker;
#[cfg(feature = "cli")]
// cli's doc comments are clap's help text (plain text with `<VALUE>` and `[OPTIONAL]`), not
// rustdoc Markdown.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
pub mod cli;
#[cfg(feature = "cli")]
pub mod config;
#[cfg(feature = "brokers")]
pub mod create;
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
pub mod signals;
#[cfg(feature = "brokers")]
pub mod sink;
pub mod source;
#[cfg(all(feature = "test-util", feature = "brokers"))]
pub mod test_util;
pub mod time;
#[cfg(feature = "cli")]
pub mod tools;
