//! The integration tests: one test binary (one link, one process) with a module per area, as
//! ripgrep lays its tests out. Every module runs the built `netpipe-fast` binary or the library
//! through the helpers in `common`; a test's full name is its module path, e.g.
//! `cli::help_lists_exit_codes` (`cargo test --test it cli::`).

mod common;

mod big_records;
mod bpf_libpcap;
mod cli;
mod community_id;
mod corpus;
mod dataset_prepare;
mod differential_scapy;
mod direct_io;
mod golden;
mod habits;
mod layers;
mod live_capture;
mod live_ring;
mod mapped_read;
mod metrics;
mod operations;
mod properties;
mod rabbit_streams;
mod reassembly;
mod record;
mod record_properties;
mod redis_streams;
mod secrets;
mod sink_amqp;
mod sink_outage;
mod sink_redis;
mod sink_tcp;
mod sink_tls;
mod spool_hardening;
mod tls_fingerprints;
mod traffic_tools;
