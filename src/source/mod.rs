//! Packet sources: the pcap/pcapng reader ([`pcap_file`]), classic BPF filters ([`filter`])
//! and, with the `capture` feature, the live TPACKET_V3 ring (`ring`, with the kernel ABI,
//! RX, TX and interface calls in its submodules and the system calls in `ring::sys`, the
//! only module with unsafe code, which also opens libpcap for [`filter`]), the TX ring (`tx_ring`), interface listing (`interfaces`)
//! and dropping root (`privilege`).
pub mod filter;
#[cfg(feature = "capture")]
pub mod interfaces;
pub mod pcap_file;
#[cfg(feature = "capture")]
pub mod privilege;
pub mod reassembly;
#[cfg(feature = "capture")]
pub mod ring;
#[cfg(feature = "capture")]
pub mod tx_ring;
