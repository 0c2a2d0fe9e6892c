//! The per-packet work: decode a frame and append its JSON message to a batch.

use super::batch::JsonBatch;
use super::reassembly::ReassemblyConfig;
use super::stats::DecodeStats;
use crate::decode::{decode_with_options_then, DecodeOptions, LinkType};
use crate::encode::{FrameMeta, JsonEncoder};

/// Per-packet choices of a run (`--community-id-seed`, `--mpls-payload`, `--reassemble`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketOptions {
    /// Seed of the Community ID hash (0 is the specification's default).
    pub community_id_seed: u16,
    pub decode: DecodeOptions,
    /// `--reassemble`: reassemble IP fragments with these limits (one extra message per
    /// datagram); `None`, the default, leaves every packet on its own.
    pub reassembly: Option<ReassemblyConfig>,
}

/// Decodes and encodes frames; one per worker thread.
pub struct Worker {
    encoder: JsonEncoder,
    decode: DecodeOptions,
    pub stats: DecodeStats,
}

impl Worker {
    pub fn new(source_host: &str) -> Worker {
        Worker::with_options(source_host, &PacketOptions::default())
    }

    pub fn with_options(source_host: &str, opts: &PacketOptions) -> Worker {
        Worker {
            encoder: JsonEncoder::new(source_host).with_community_id_seed(opts.community_id_seed),
            decode: opts.decode,
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
        let end = decode_with_options_then(link, frame, &self.decode, |pkt| {
            self.stats.decoded += 1;
            if let Some(e) = pkt.error {
                self.stats.malformed[e.kind.index()] += 1;
            }
            self.encoder
                .encode_at(&mut batch.buf, batch.used, meta, pkt)
        });
        batch.commit(end);
    }

    /// Appends the message for a datagram reassembled from `fragments` fragments (a
    /// synthetic frame, see `pipeline::reassembly`), marked as such in the envelope. Not
    /// counted in [`DecodeStats`] (those count captured frames; the reassembler counts its
    /// datagrams).
    pub fn process_reassembled(
        &mut self,
        link: LinkType,
        frame: &[u8],
        meta: &FrameMeta,
        fragments: u16,
        batch: &mut JsonBatch,
    ) {
        let end = decode_with_options_then(link, frame, &self.decode, |pkt| {
            self.encoder
                .encode_reassembled_at(&mut batch.buf, batch.used, meta, pkt, fragments)
        });
        batch.commit(end);
    }
}
