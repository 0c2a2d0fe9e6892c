//! "No allocation on the hot path" (issue 12), measured: a counting global allocator wraps the
//! system one, and after a warm-up pass, decoding and JSON-encoding every frame of the
//! fixtures (`pcaps/mixed.pcap`, the tunnel, TLS, HTTP, DHCP, NTP and DNS captures, and every
//! other capture in `pcaps/`) must allocate, reallocate and free nothing. Two loops are
//! measured: the criterion bench's (`benches/decode_encode.rs`: `decode_with` then
//! `JsonEncoder::encode_at` into one reused buffer) and the workers' (`Worker::process` into a
//! `JsonBatch`, cleared when full as the publisher hands it back).
//!
//! The allocator counts per thread, only while that thread's flag is set, so the test
//! harness and other threads do not count. This is its own test target (a
//! `#[global_allocator]` applies to the whole binary), run by scripts/test.sh.
//!
//! To find an allocation the test reports, run it with `NETPIPE_ALLOC_BACKTRACE=1`: each
//! counted allocation then prints a backtrace (taken with counting off, so its own
//! allocations are not counted).

use netpipe_fast::decode::{decode_with, decode_with_options_then, DecodeOptions, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::source::pcap_file::CaptureReader;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::path::{Path, PathBuf};

/// The system allocator, counting the calls made by a thread while its flag is on.
struct Counting;

thread_local! {
    /// Count this thread's calls (set only around the measured loops).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations, reallocations and frees counted on this thread.
    static CALLS: Cell<[u64; 3]> = const { Cell::new([0; 3]) };
    /// Print a backtrace for each counted call (`NETPIPE_ALLOC_BACKTRACE`), read before
    /// counting starts (reading the environment allocates).
    static BACKTRACE: Cell<bool> = const { Cell::new(false) };
}

const ALLOC: usize = 0;
const REALLOC: usize = 1;
const FREE: usize = 2;

impl Counting {
    fn note(what: usize, size: usize) {
        // `try_with`: the thread-locals may be gone while a thread exits.
        let on = COUNTING.try_with(Cell::get).unwrap_or(false);
        if !on {
            return;
        }
        let _ = CALLS.try_with(|c| {
            let mut calls = c.get();
            calls[what] += 1;
            c.set(calls);
        });
        if BACKTRACE.try_with(Cell::get).unwrap_or(false) {
            // Counting off while the backtrace is taken and printed (both allocate).
            let _ = COUNTING.try_with(|c| c.set(false));
            let kind = ["alloc", "realloc", "free"][what];
            eprintln!(
                "counted {kind} of {size} bytes at:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            let _ = COUNTING.try_with(|c| c.set(true));
        }
    }
}

// SAFETY (for the impl): every method forwards to `System` with the caller's own arguments,
// so `System`'s guarantees are the caller's. The bookkeeping touches only const-initialised
// thread-locals without destructors, which never allocate; only the opt-in backtrace branch
// allocates, before `System` is called and with counting off, so those nested calls go
// straight to `System` and cannot recurse further.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::note(ALLOC, layout.size());
        // SAFETY: the caller's `layout` is passed on unchanged (GlobalAlloc::alloc's contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::note(ALLOC, layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::note(REALLOC, new_size);
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through this type)
        // with `layout`; the caller's arguments are passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Counting::note(FREE, layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout` (as in `realloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING_ALLOCATOR: Counting = Counting;

/// `NETPIPE_ALLOC_BACKTRACE` is set: print where each counted call comes from.
fn trace_from_env() -> bool {
    std::env::var_os("NETPIPE_ALLOC_BACKTRACE").is_some()
}

/// Runs `f` with this thread's calls counted (and with a backtrace printed for each when
/// `trace`); returns [allocations, reallocations, frees].
fn counted(trace: bool, f: impl FnOnce()) -> [u64; 3] {
    BACKTRACE.with(|b| b.set(trace));
    CALLS.with(|c| c.set([0; 3]));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    CALLS.with(Cell::get)
}

/// The batch size the bench's loop flushes at (a worker's batch, `encode::batch::BATCH_BYTES`).
const FLUSH_BYTES: usize = netpipe_fast::encode::batch::BATCH_BYTES;

/// Every frame of the measured captures, back to back in one buffer (as in a ring block).
struct Frames {
    bytes: Vec<u8>,
    /// (capture file index, link type, byte range in `bytes`, metadata) of each frame.
    frames: Vec<(usize, LinkType, usize, usize, FrameMeta)>,
    files: Vec<PathBuf>,
}

/// The captures issue 12 names, then every other one in `pcaps/` (sorted).
fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let named = [
        "mixed.pcap",
        "tunnels.pcap",
        "tls.pcap",
        "http.pcap",
        "dhcp.pcap",
        "ntp.pcap",
        "ethernet-udp-dns.pcap",
    ];
    let mut files: Vec<PathBuf> = named.iter().map(|n| dir.join(n)).collect();
    let mut others: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.ends_with(".pcap") || name.ends_with(".pcapng")) && !named.contains(&&*name)
        })
        .collect();
    others.sort();
    files.extend(others);
    files
}

fn load() -> Frames {
    let mut all = Frames {
        bytes: Vec::new(),
        frames: Vec::new(),
        files: captures(),
    };
    for (i, path) in all.files.iter().enumerate() {
        let mut reader = CaptureReader::open(path)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/gen-pcaps.py writes it)", path.display()));
        let before = all.frames.len();
        while let Some(f) = reader
            .next_frame()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        {
            let Some(link) = LinkType::from_number(f.link_type) else {
                panic!("{}: unsupported link type {}", path.display(), f.link_type);
            };
            let start = all.bytes.len();
            all.bytes.extend_from_slice(f.data);
            let meta = FrameMeta {
                time_ns: f.time_ns,
                wire_len: f.wire_len,
                cap_len: f.data.len() as u32,
            };
            all.frames.push((i, link, start, all.bytes.len(), meta));
        }
        assert!(all.frames.len() > before, "{}: no frames", path.display());
    }
    all
}

/// Frames (by file) whose processing allocated, for the failure message.
fn offenders(all: &Frames, per_frame: &[[u64; 3]]) -> String {
    let mut out = String::new();
    for (n, (&(file, ..), calls)) in all.frames.iter().zip(per_frame).enumerate() {
        if calls.iter().any(|&c| c > 0) && out.len() < 4000 {
            let first = all.frames.iter().position(|f| f.0 == file).unwrap();
            out += &format!(
                "\n  {} frame {}: {} alloc, {} realloc, {} free",
                all.files[file].display(),
                n - first + 1,
                calls[ALLOC],
                calls[REALLOC],
                calls[FREE]
            );
        }
    }
    out
}

fn assert_none(what: &str, all: &Frames, per_frame: &[[u64; 3]]) {
    let mut per_file: Vec<[u64; 3]> = vec![[0; 3]; all.files.len()];
    for (&(file, ..), calls) in all.frames.iter().zip(per_frame) {
        for k in 0..3 {
            per_file[file][k] += calls[k];
        }
    }
    assert!(
        per_file.iter().all(|c| *c == [0; 3]),
        "{what}: the hot path allocated (rerun with NETPIPE_ALLOC_BACKTRACE=1 for where):{}",
        offenders(all, per_frame)
    );
}

/// The criterion bench's loop: `decode_with`, then `encode_at` into one reused buffer emptied
/// at a batch's size. One pass warms up (the buffer grows to what the largest message needs,
/// the encoder's caches fill); the second is counted frame by frame.
#[test]
fn decode_and_encode_allocate_nothing_after_warm_up() {
    let all = load();
    let trace = trace_from_env();
    let mut enc = JsonEncoder::new("localdev");
    let mut out = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
    let mut used = 0usize;
    let mut written = [0usize; 2];
    let mut per_frame = Vec::with_capacity(all.frames.len());
    for measured in [false, true] {
        for &(_, link, start, end, meta) in &all.frames {
            let mut step = || {
                let before = used;
                used = decode_with(link, &all.bytes[start..end], |pkt| {
                    enc.encode_at(&mut out, used, &meta, pkt)
                });
                written[usize::from(measured)] += used - before;
                if used >= FLUSH_BYTES {
                    black_box(&out[..used]);
                    used = 0;
                }
            };
            if measured {
                per_frame.push(counted(trace, &mut step));
            } else {
                step();
            }
        }
    }
    assert_eq!(per_frame.len(), all.frames.len());
    // The counted pass wrote every message again (the loop was not optimised away), and the
    // counter works: the same allocator sees a Vec being made and freed.
    assert_eq!(written[1], written[0]);
    assert!(written[0] > all.frames.len() * 100, "{written:?} bytes");
    assert_eq!(counted(false, || drop(black_box(vec![1u8; 10]))), [1, 0, 1]);
    assert_none("decode_with + encode_at", &all, &per_frame);
}

/// The workers' loop: `Worker::process` into a `JsonBatch` that is cleared when full (the
/// publisher's hand-back), with and without partitions (a flow hash stored per message) and
/// with `--mpls-payload ether`.
#[cfg(feature = "brokers")]
#[test]
fn worker_process_allocates_nothing_after_warm_up() {
    use netpipe_fast::decode::mpls::MplsPayload;
    use netpipe_fast::encode::batch::{JsonBatch, WORKER_JSON_ROOM_BYTES};
    use netpipe_fast::pipeline::worker::{PacketOptions, Worker};

    let all = load();
    let trace = trace_from_env();
    let variants = [
        ("default options", PacketOptions::default()),
        (
            "--partitions 4",
            PacketOptions {
                partitions: 4,
                ..PacketOptions::default()
            },
        ),
        (
            "--mpls-payload ether",
            PacketOptions {
                decode: DecodeOptions {
                    mpls_payload: MplsPayload::Ether,
                },
                ..PacketOptions::default()
            },
        ),
    ];
    for (what, opts) in variants {
        let mut worker = Worker::with_options("localdev", &opts);
        let mut batch = JsonBatch::with_room(WORKER_JSON_ROOM_BYTES);
        let mut messages = 0usize;
        let mut per_frame = Vec::with_capacity(all.frames.len());
        let mut warm_reallocations = 0;
        for measured in [false, true] {
            if measured {
                warm_reallocations = batch.reallocations();
            }
            for &(_, link, start, end, meta) in &all.frames {
                let mut step = || {
                    worker.process(link, &all.bytes[start..end], &meta, &mut batch);
                    if batch.is_full() {
                        messages += batch.len();
                        black_box(batch.bytes());
                        batch.clear();
                    }
                };
                if measured {
                    per_frame.push(counted(trace, &mut step));
                } else {
                    step();
                }
            }
            messages += batch.len();
            batch.clear();
        }
        assert_none(&format!("Worker::process, {what}"), &all, &per_frame);
        assert_eq!(messages, 2 * all.frames.len(), "{what}");
        assert_eq!(worker.stats.decoded, 2 * all.frames.len() as u64, "{what}");
        // The batch's own account agrees: its buffers kept their size in the measured pass
        // (with partitions its flow-hash list, made empty, grows in the warm-up).
        assert_eq!(batch.reallocations(), warm_reallocations, "{what}");
    }
}

/// The decoder alone, with either MPLS payload choice: nothing is allocated for any frame
/// (no warm-up needed: decoding keeps no state).
#[test]
fn decoding_allocates_nothing() {
    let all = load();
    let trace = trace_from_env();
    for opts in [
        DecodeOptions::default(),
        DecodeOptions {
            mpls_payload: netpipe_fast::decode::mpls::MplsPayload::Ether,
        },
    ] {
        let mut decoded = 0usize;
        let per_frame: Vec<[u64; 3]> = all
            .frames
            .iter()
            .map(|&(_, link, start, end, _)| {
                counted(trace, || {
                    decoded += decode_with_options_then(link, &all.bytes[start..end], &opts, |p| {
                        black_box(p);
                        1
                    });
                })
            })
            .collect();
        assert_eq!(decoded, all.frames.len());
        assert_none(&format!("decode ({opts:?})"), &all, &per_frame);
    }
}
