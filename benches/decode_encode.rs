//! Criterion benches of the per-packet work, on every frame of `pcaps/mixed.pcap` held in
//! memory (no file or pipe I/O in the loop):
//!
//! - `decode`: `decode` only;
//! - `decode_encode`: `decode` then `JsonEncoder::encode_at` (the workers' path) with the full
//!   payload as hex, into one reused buffer that is emptied whenever it reaches a batch's
//!   size, as a worker's batch is flushed;
//! - `copy_output`: the anchor of `decode_encode` (issue 13): the same JSON bytes, made once
//!   before the timing, copied message by message into a reused buffer emptied at the same
//!   size. `decode_encode` / `copy_output` (packets per second) is the encoder's share of the
//!   copy limit.
//!
//! Throughput is in packets (criterion prints `elem/s`). The whole `read` path, file to
//! stdout, is timed by `scripts/bench-anchors.sh` instead. Run with
//! `cargo bench --bench decode_encode`; set `NETPIPE_BENCH_PCAP` to bench another capture.
//! Under `cargo test --all-targets` each bench runs once, as a smoke test.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netpipe_fast::decode::{decode, decode_with, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::source::pcap_file::CaptureReader;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// The worker flushes a batch once its JSON reaches 256 KiB (`encode::batch::BATCH_BYTES`);
/// the bench empties its buffer at the same size so the output stays cache-sized as it does
/// there.
const FLUSH_BYTES: usize = 256 * 1024;

/// All frames of one capture, back to back in one buffer (as frames sit in a ring block).
struct Frames {
    bytes: Vec<u8>,
    /// (link type, byte range in `bytes`, metadata) of each frame.
    frames: Vec<(LinkType, usize, usize, FrameMeta)>,
}

fn load() -> Frames {
    let path = std::env::var_os("NETPIPE_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/mixed.pcap"));
    let mut reader = CaptureReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/gen-pcaps.py writes it)", path.display()));
    let mut all = Frames {
        bytes: Vec::new(),
        frames: Vec::new(),
    };
    while let Some(f) = reader
        .next_frame()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        let link = LinkType::from_number(f.link_type)
            .unwrap_or_else(|| panic!("{}: unsupported link type {}", path.display(), f.link_type));
        let start = all.bytes.len();
        all.bytes.extend_from_slice(f.data);
        let meta = FrameMeta {
            time_ns: f.time_ns,
            wire_len: f.wire_len,
            cap_len: f.data.len() as u32,
        };
        all.frames.push((link, start, all.bytes.len(), meta));
    }
    assert!(!all.frames.is_empty(), "{}: no packets", path.display());
    all
}

fn benches(c: &mut Criterion) {
    let all = load();
    let mut group = c.benchmark_group("mixed.pcap");
    group.throughput(Throughput::Elements(all.frames.len() as u64));

    group.bench_function("decode", |b| {
        b.iter(|| {
            for &(link, start, end, _) in &all.frames {
                let pkt = decode(link, &all.bytes[start..end]);
                black_box(&pkt);
            }
        })
    });

    group.bench_function("decode_encode", |b| {
        let mut enc = JsonEncoder::new("localdev");
        let mut out = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
        let mut used = 0usize;
        b.iter(|| {
            for &(link, start, end, meta) in &all.frames {
                used = decode_with(link, &all.bytes[start..end], |pkt| {
                    enc.encode_at(&mut out, used, &meta, pkt)
                });
                if used >= FLUSH_BYTES {
                    black_box(&out[..used]);
                    used = 0;
                }
            }
            black_box(&out[..used]);
        })
    });

    // Every message of one pass, made before the timing, and where each ends.
    let (messages, ends) = {
        let mut enc = JsonEncoder::new("localdev");
        let mut messages = Vec::new();
        let mut ends = Vec::with_capacity(all.frames.len());
        for &(link, start, end, meta) in &all.frames {
            decode_with(link, &all.bytes[start..end], |pkt| {
                enc.encode(&mut messages, &meta, pkt)
            });
            ends.push(messages.len());
        }
        (messages, ends)
    };
    group.bench_function("copy_output", |b| {
        let mut out = vec![0u8; FLUSH_BYTES + 64 * 1024];
        let mut used = 0usize;
        b.iter(|| {
            let mut from = 0usize;
            for &to in &ends {
                let msg = &messages[from..to];
                from = to;
                if out.len() < used + msg.len() {
                    out.resize(used + msg.len(), 0);
                }
                out[used..used + msg.len()].copy_from_slice(msg);
                used += msg.len();
                if used >= FLUSH_BYTES {
                    black_box(&out[..used]);
                    used = 0;
                }
            }
            black_box(&out[..used]);
        })
    });

    group.finish();
}

criterion_group! {
    name = decode_encode;
    // One iteration is a pass over the whole capture (~13,000 packets, a few milliseconds),
    // so 20 samples in 5 s give stable medians without a long run.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(decode_encode);
