//! The per-packet work: decode a frame and append its JSON message to a batch.

use super::batch::JsonBatch;
use super::stats::DecodeStats;
use crate::decode::{decode_with, LinkType};
use crate::encode::{FrameMeta, JsonEncoder};

/// Decodes and encodes frames; one per worker thread.
pub struct Worker {
    encoder: JsonEncoder,
    pub stats: DecodeStats,
}

impl Worker {
    pub fn new(source_host: &str) -> Worker {
        Worker {
            encoder: JsonEncoder::new(source_host),
            stats: DecodeStats::default(),
        }
    }

    /// Appends the message for one frame to `batch`.
    #[inline]
    pub fn process(
        &mut self,
        link: LinkType,
        frame: &[u8],
        meta: &FrameMeta,
        batch: &mut JsonBatch,
    ) {
        let end = decode_with(link, frame, |pkt| {
            self.stats.decoded += 1;
            if let Some(e) = pkt.error {
                self.stats.malformed[e.kind.index()] += 1;
            }
            self.encoder
                .encode_at(&mut batch.buf, batch.used, meta, pkt)
        });
        batch.commit(end);
    }
}
