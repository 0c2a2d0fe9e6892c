//! The data path: a source feeds workers that decode and encode into batches
//! ([`JsonBatch`](crate::encode::batch::JsonBatch)); a publisher thread writes them to the
//! output in order and hands the buffers back.
pub mod capture;
pub mod deliver;
pub mod metrics;
pub mod pcap_writer;
pub(crate) mod progress;
mod publish;
pub mod read;
pub mod stats;
pub mod worker;
