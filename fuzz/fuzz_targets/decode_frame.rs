//! Fuzz target: one frame through `decode` and `JsonEncoder::encode`.
//!
//! Input layout: the first byte selects the link type (modulo the number of link types, in
//! the order of `LINK_TYPES`), the rest is the frame. The target fails on a panic (including
//! arithmetic overflow: cargo fuzz builds with debug assertions), on output that is not
//! exactly one line, and on a line that is not valid JSON with `data` as an object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netpipe_fast::decode::{decode, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};

/// Selector byte `n` means `LINK_TYPES[n % 7]`; `seed-corpus.py` writes seeds in this order.
const LINK_TYPES: [LinkType; 7] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, frame)) = input.split_first() else {
        return;
    };
    let link = LINK_TYPES[usize::from(selector) % LINK_TYPES.len()];
    let pkt = decode(link, frame);

    let cap_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let meta = FrameMeta {
        // 2026-11-29 12:00:00 UTC plus something input-dependent, so `created` varies.
        time_ns: 1_795_953_600_000_000_000 + i64::from(selector) * 1_000_000_007,
        wire_len: cap_len,
        cap_len,
    };
    let mut out = Vec::with_capacity(frame.len() * 3 + 256);
    JsonEncoder::new("localdev").encode(&mut out, &meta, &pkt);

    let line = out
        .strip_suffix(b"\n")
        .expect("message ends with a newline");
    assert!(!line.contains(&b'\n'), "message spans several lines");
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => panic!(
            "invalid JSON ({e}) under {link:?}: {}",
            String::from_utf8_lossy(line)
        ),
    };
    assert!(value["data"].is_object(), "`data` is not an object");
    assert_eq!(value["cap_len"].as_u64(), Some(u64::from(cap_len)));
});
