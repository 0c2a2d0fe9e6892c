//! Packet sources: capture files (and, later, the live ring), plus the BPF filter.
pub mod filter;
#[cfg(feature = "capture")]
pub mod interfaces;
pub mod pcap_file;
#[cfg(feature = "capture")]
pub mod privilege;
#[cfg(feature = "capture")]
pub mod ring;
#[cfg(feature = "capture")]
pub mod ring_sys;
#[cfg(feature = "capture")]
pub mod tx_ring;
