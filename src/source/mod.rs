//! Packet sources: capture files (and, later, the live ring), plus the BPF filter.
pub mod filter;
pub mod interfaces;
pub mod pcap_file;
pub mod privilege;
pub mod ring;
pub mod ring_sys;
pub mod tx_ring;
