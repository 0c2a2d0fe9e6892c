//! A fixed amount of the per-packet work of `benches/decode_encode.rs`, for instruction
//! counting with `valgrind --tool=callgrind` (stable on a loaded machine, where criterion's
//! wall times are not):
//!
//! ```sh
//! cargo build --profile bench --example bench_passes
//! valgrind --tool=callgrind target/release/examples/bench_passes decode_encode 11
//! ```
//!
//! Arguments: `decode`, `decode_encode` or `copy_output` (the criterion bench of that name:
//! the messages of one pass, made before the loop, copied into the reused buffer), then the
//! number of passes over every frame of
//! `pcaps/mixed.pcap` (or `NETPIPE_BENCH_PCAP`). The loop bodies are the criterion benches'
//! own; the instructions of one pass are the difference between two runs with different pass
//! counts (which cancels loading the file and start-up), see `scripts/bench-callgrind.sh`.

use netpipe_fast::decode::{decode, decode_with, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::source::pcap_file::CaptureReader;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;

/// As in the criterion bench: the worker's batch size.
const FLUSH_BYTES: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, passes) = match args.as_slice() {
        [m, n] if m == "decode" || m == "decode_encode" || m == "copy_output" => {
            match n.parse::<u32>() {
                Ok(n) => (m.as_str(), n),
                Err(_) => return usage(),
            }
        }
        _ => return usage(),
    };
    let path = std::env::var_os("NETPIPE_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/mixed.pcap"));
    let mut reader = match CaptureReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_passes: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    loop {
        let f = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("bench_passes: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let Some(link) = LinkType::from_number(f.link_type) else {
            eprintln!(
                "bench_passes: {}: unsupported link type {}",
                path.display(),
                f.link_type
            );
            return ExitCode::from(2);
        };
        let start = bytes.len();
        bytes.extend_from_slice(f.data);
        let meta = FrameMeta {
            time_ns: f.time_ns,
            wire_len: f.wire_len,
            cap_len: f.data.len() as u32,
        };
        frames.push((link, start, bytes.len(), meta));
    }
    if mode == "decode" {
        for _ in 0..passes {
            for &(link, start, end, _) in &frames {
                let pkt = decode(link, &bytes[start..end]);
                black_box(&pkt);
            }
        }
    } else if mode == "copy_output" {
        let mut enc = JsonEncoder::new("localdev");
        let mut messages = Vec::new();
        let mut ends = Vec::with_capacity(frames.len());
        for &(link, start, end, meta) in &frames {
            decode_with(link, &bytes[start..end], |pkt| {
                enc.encode(&mut messages, &meta, pkt)
            });
            ends.push(messages.len());
        }
        let mut out = vec![0u8; FLUSH_BYTES + 64 * 1024];
        let mut used = 0usize;
        for _ in 0..passes {
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
        }
    } else {
        let mut enc = JsonEncoder::new("localdev");
        let mut out = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
        let mut used = 0usize;
        for _ in 0..passes {
            for &(link, start, end, meta) in &frames {
                used = decode_with(link, &bytes[start..end], |pkt| {
                    enc.encode_at(&mut out, used, &meta, pkt)
                });
                if used >= FLUSH_BYTES {
                    black_box(&out[..used]);
                    used = 0;
                }
            }
            black_box(&out[..used]);
        }
    }
    println!("{} packets, {passes} passes, {mode}", frames.len());
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: bench_passes decode|decode_encode|copy_output PASSES");
    ExitCode::from(2)
}
