//! Fuzz target: one frame through `decode` and `JsonEncoder::encode`.
//!
//! Input layout: the first byte selects the link type (its low 7 bits modulo the number of
//! link types, in the order of `LINK_TYPES`) and, with its top bit, `--mpls-payload ether`;
//! the rest is the frame. The target fails on a panic (including
//! arithmetic overflow: cargo fuzz builds with debug assertions), on output that is not
//! exactly one line, and on a line that is not valid JSON with `data` as an object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netpipe_fast::decode::mpls::MplsPayload;
use netpipe_fast::decode::{decode_with_options, DecodeOptions, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};

/// Selector byte `n` means `LINK_TYPES[(n & 0x7f) % 7]`; `seed-corpus.py` writes seeds in
/// this order (selectors 0-6, default options).
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
    let link = LINK_TYPES[usize::from(selector & 0x7f) % LINK_TYPES.len()];
    let opts = DecodeOptions {
        mpls_payload: if selector & 0x80 != 0 {
            MplsPayload::Ether
        } else {
            MplsPayload::Ip
        },
    };
    let pkt = decode_with_options(link, frame, &opts);

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
