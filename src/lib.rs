//! netpipe-fast: network traffic (live or pcap/pcapng) into AntiNex-compatible JSON packet
//! messages. See `docs/FORMAT.md` for the message and `../shared/DESIGN.md` for the data path.
#![deny(unsafe_code)]

pub mod decode;
pub mod encode;
pub mod source;
