//! The per-packet work: decode a frame and append its JSON message to a batch.

use super::stats::DecodeStats;
use crate::decode::{decode_with_options_then, DecodeOptions, LinkType};
use crate::encode::batch::{community_id_hash, JsonBatch};
use crate::encode::{FrameMeta, JsonEncoder};
use crate::source::reassembly::ReassemblyConfig;

/// Per-packet choices of a run (`--community-id-seed`, `--mpls-payload`, `--partitions`,
/// `--reassemble`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketOptions {
    /// Seed of the Community ID hash (0 is the specification's default).
    pub community_id_seed: u16,
    /// Decoder choices (`--mpls-payload`).
    pub decode: DecodeOptions,
    /// `--partitions N`: above 1, each message's flow hash is stored in the batch
    /// ([`JsonBatch::flows`]) for the sink to route by; at 1 nothing is computed. Set it to
    /// the output's (`sink::Output::partitions`); left at 1 with a partitioned
    /// output, the sink finds each hash from the message instead (the same partition, with
    /// the work in the publisher thread rather than the workers).
    pub partitions: u16,
    /// `--reassemble`: reassemble IP fragments with these limits (one extra message per
    /// datagram); `None`, the default, leaves every packet on its own.
    pub reassembly: Option<ReassemblyConfig>,
}

impl Default for PacketOptions {
    fn default() -> Self {
        PacketOptions {
            community_id_seed: 0,
            decode: DecodeOptions::default(),
            partitions: 1,
            reassembly: None,
        }
    }
}

/// Decodes and encodes frames; one per worker thread.
pub struct Worker {
    encoder: JsonEncoder,
    decode: DecodeOptions,
    /// Store flow hashes ([`PacketOptions::partitions`] above 1).
    hash_flows: bool,
    /// Frames processed and malformed ones, since the worker was made.
    pub stats: DecodeStats,
}

impl Worker {
    /// A worker with the default [`PacketOptions`]; `source_host` is every message's
    /// `source`.
    pub fn new(source_host: &str) -> Worker {
        Worker::with_options(source_host, &PacketOptions::default())
    }

    /// A worker with the run's per-packet choices.
    pub fn with_options(source_host: &str, opts: &PacketOptions) -> Worker {
        Worker {
            encoder: JsonEncoder::new(source_host).with_community_id_seed(opts.community_id_seed),
            decode: opts.decode,
            hash_flows: opts.partitions > 1,
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
        self.commit(batch, end);
    }

    /// Appends the message for a datagram reassembled from `fragments` fragments (a
    /// synthetic frame, see `source::reassembly`), marked as such in the envelope. Not
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
        self.commit(batch, end);
    }

    /// Records the message just written (ending at `end`) and, with partitions, its flow hash.
    #[inline]
    fn commit(&self, batch: &mut JsonBatch, end: usize) {
        let start = batch.used;
        batch.commit(end);
        if self.hash_flows {
            // From the `community_id` just written (the encoder says where, so nothing is
            // searched), as `flow_hash` finds it again in a batch read back from the spool:
            // the same partition either way.
            let hash = match self.encoder.community_id_at() {
                Some(at) => community_id_hash(batch.buf.get(start + at..end).unwrap_or(&[])),
                None => 0,
            };
            batch.flows.push(hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::batch::flow_hash;
    use crate::source::pcap_file::CaptureReader;
    use base64::Engine;
    use std::collections::{HashMap, HashSet};

    /// Every message of `file` (in `pcaps/`) through a worker with `partitions` (up to a
    /// damaged record, for the fixtures that have one).
    fn encode_file(file: &str, partitions: u16) -> JsonBatch {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pcaps")
            .join(file);
        let mut reader = CaptureReader::open(&path).expect("fixture opens");
        let opts = PacketOptions {
            partitions,
            ..PacketOptions::default()
        };
        let mut worker = Worker::with_options("t", &opts);
        let mut batch = JsonBatch::with_capacity();
        while let Ok(Some(f)) = reader.next_frame() {
            let Some(link) = LinkType::from_number(f.link_type) else {
                continue;
            };
            let meta = FrameMeta {
                time_ns: f.time_ns,
                wire_len: f.wire_len,
                cap_len: f.data.len() as u32,
            };
            worker.process(link, f.data, &meta, &mut batch);
        }
        batch
    }

    fn json(m: &[u8]) -> serde_json::Value {
        serde_json::from_slice(m).expect("message is JSON")
    }

    /// Both directions of every TCP and UDP flow of mixed.pcap (told apart by the addresses
    /// and ports in the message, not by the hash) land in one partition of 4, every
    /// partition gets some, and the hash is the one anyone can compute from
    /// `community_id` (first four digest bytes, big-endian).
    #[test]
    fn flow_hashes_are_symmetric_spread_and_computable_from_the_message() {
        let batch = encode_file("mixed.pcap", 4);
        assert_eq!(batch.flows.len(), batch.len());
        let mut partition_of: HashMap<(String, String, u64, u64, &str), HashSet<u16>> =
            HashMap::new();
        let mut directions: HashMap<(String, String, u64, u64, &str), HashSet<bool>> =
            HashMap::new();
        let mut per_partition = [0usize; 4];
        for i in 0..batch.len() {
            let m = batch.message(i);
            let v = json(m);
            let p = batch.partition(i, 4);
            per_partition[usize::from(p)] += 1;
            // The same partition from the message alone (a batch read back from the spool).
            assert_eq!(flow_hash(m), batch.flows[i], "message {i}");
            let hash = match v["community_id"].as_str() {
                Some(id) => {
                    let digest = base64::engine::general_purpose::STANDARD
                        .decode(&id[2..])
                        .expect("base64");
                    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
                }
                None => 0,
            };
            assert_eq!(batch.flows[i], hash, "message {i}");
            let data = &v["data"];
            let l4 = ["tcp", "udp"].into_iter().find(|l| data.get(*l).is_some());
            let (Some(ip), Some(l4)) = (data.get("ip").or(data.get("ipv6")), l4) else {
                continue;
            };
            let a = (
                ip["src"].as_str().unwrap_or_default().to_string(),
                data[l4]["sport"].as_u64().unwrap_or_default(),
            );
            let b = (
                ip["dst"].as_str().unwrap_or_default().to_string(),
                data[l4]["dport"].as_u64().unwrap_or_default(),
            );
            let forward = a <= b;
            let (lo, hi) = if forward { (a, b) } else { (b, a) };
            let key = (lo.0, hi.0, lo.1, hi.1, l4);
            partition_of.entry(key.clone()).or_default().insert(p);
            directions.entry(key).or_default().insert(forward);
        }
        let two_way = directions.values().filter(|d| d.len() == 2).count();
        assert!(two_way >= 10, "only {two_way} flows seen both ways");
        for (flow, parts) in &partition_of {
            assert_eq!(parts.len(), 1, "{flow:?} split over {parts:?}");
        }
        assert!(partition_of.len() >= 20, "{} flows", partition_of.len());
        assert!(
            per_partition.iter().all(|&n| n > 0),
            "an empty partition: {per_partition:?}"
        );
    }

    /// Tunnelled packets go by their inner flow: the first two VXLAN packets of tunnels.pcap
    /// carry one inner TCP flow (both ways) over different outer UDP flows.
    #[test]
    fn tunnelled_packets_hash_by_their_inner_flow() {
        let batch = encode_file("tunnels.pcap", 8);
        let (a, b) = (json(batch.message(0)), json(batch.message(1)));
        assert_ne!(a["community_id_outer"], b["community_id_outer"]);
        assert_eq!(a["community_id"], b["community_id"]);
        assert_eq!(batch.flows[0], batch.flows[1]);
        assert_ne!(batch.flows[0], 0);
    }

    /// No IP flow (ARP): hash 0, partition 0. One partition: no hashes at all.
    #[test]
    fn packets_without_a_flow_go_to_partition_0_and_one_partition_hashes_nothing() {
        let batch = encode_file("ethernet-arp.pcap", 4);
        assert!(!batch.is_empty());
        assert!(batch.flows.iter().all(|&h| h == 0));
        assert!((0..batch.len()).all(|i| batch.partition(i, 4) == 0));
        let batch = encode_file("mixed.pcap", 1);
        assert!(batch.flows.is_empty());
        assert!((0..batch.len()).all(|i| batch.partition(i, 1) == 0));
    }

    /// The hash the worker stores (told by the encoder where `community_id` is) equals the
    /// one found by searching the message (a batch read back from the spool), for every
    /// message of every fixture: a replayed message goes to the partition it went to before.
    #[test]
    fn stored_hashes_equal_the_ones_found_in_the_messages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("pcaps/") {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
                continue;
            }
            let batch = encode_file(&name, 16);
            for i in 0..batch.len() {
                assert_eq!(batch.flows[i], flow_hash(batch.message(i)), "{name} #{i}");
            }
            checked += batch.len();
        }
        assert!(checked > 14_000, "{checked} messages");
    }
}
