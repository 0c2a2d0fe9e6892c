//! Fuzz target: a sequence of fragments through `source::reassembly::Reassembler`.
//!
//! Input layout: byte 0 picks the limits (memory cap 2-64 KiB, 2-17 fragments per datagram,
//! timeout 1-16 ns of capture time, so evictions, give-ups and timeouts all happen within a
//! short input). Then records, each starting with a control byte `c`:
//! - `c & 0x80` set: a raw frame; the next byte selects the link type (as `decode_frame`),
//!   the next its length `n`, then `n` bytes (fewer at the end of the input). Before it, the
//!   real-time clock of the global timeout (0-31 ns, from byte 0; 0 is off) moves `c & 0x0f`
//!   ns on and ticks.
//! - otherwise a well-formed fragment built from the next 4 bytes: `c & 1` IPv6, `c & 2`
//!   more-fragments, `(c >> 2) & 3` the identification (so datagrams collide), a 16-bit
//!   offset in 8-byte units (masked to 13 bits), the data length, then that many data bytes
//!   taken from the input (zero-filled when it runs out). `c >> 4 & 7` advances the clock.
//!
//! Checks: no panic (cargo fuzz builds with debug assertions: overflow counts), the memory
//! held never above the cap, every reassembled frame's IP length fields agree with its
//! length and its message is one line of valid JSON marked `reassembled`, nothing held
//! after `finish`, and the counts add up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netpipe_fast::decode::{decode, LinkType};
use netpipe_fast::encode::JsonEncoder;
use netpipe_fast::source::reassembly::{frame_meta, GiveUp, Reassembler, ReassemblyConfig};

const LINK_TYPES: [LinkType; 7] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fn fragment(c: u8, f: &[u8; 4], data: &[u8]) -> (LinkType, Vec<u8>) {
    let v6 = c & 1 != 0;
    let more = c & 2 != 0;
    let id = (c >> 2) & 3;
    let offset_units = u16::from_be_bytes([f[0], f[1]]) & 0x1fff;
    if v6 {
        let plen = 8 + data.len();
        let mut p = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 44, 64];
        p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let om = (offset_units << 3) | u16::from(more);
        p.extend_from_slice(&[17, 0]);
        p.extend_from_slice(&om.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, id]);
        p.extend_from_slice(data);
        (LinkType::Ipv6, p)
    } else {
        let total = 20 + data.len();
        let ff = offset_units | if more { 0x2000 } else { 0 };
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, id];
        p.extend_from_slice(&ff.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(data);
        (LinkType::Ipv4, p)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&limits, mut rest)) = input.split_first() else {
        return;
    };
    let cfg = ReassemblyConfig {
        memory_bytes: (usize::from(limits & 0x1f) + 1) * 2048,
        max_fragments: u16::from((limits >> 5) & 0x7) * 2 + 2,
        timeout_ns: i64::from(limits & 0x0f) + 1,
        // 0 (off) to 31 ns of real time, as the fuzzer's own clock below counts it.
        global_timeout_ns: u64::from(limits >> 3),
    };
    let mut r = Reassembler::new(cfg);
    let mut enc = JsonEncoder::new("localdev");
    let mut now = 0i64;
    let mut wall = 0u64;
    let mut offered = 0u64;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        now += i64::from((c >> 4) & 7);
        let (link, frame) = if c & 0x80 != 0 {
            // A raw frame's record also ticks the real-time clock, `c & 0x0f` ns on (0: a
            // tick that finds the clock where it was).
            wall += u64::from(c & 0x0f);
            r.tick_ns(wall);
            assert!(r.memory_bytes() <= cfg.memory_bytes, "memory over the cap");
            let Some((&sel, tail)) = rest.split_first() else {
                break;
            };
            let Some((&n, tail)) = tail.split_first() else {
                break;
            };
            let n = usize::from(n).min(tail.len());
            rest = &tail[n..];
            (LINK_TYPES[usize::from(sel) % LINK_TYPES.len()], tail[..n].to_vec())
        } else {
            let mut f = [0u8; 4];
            for b in &mut f {
                if let Some((&x, tail)) = rest.split_first() {
                    *b = x;
                    rest = tail;
                }
            }
            // Data lengths of 8-byte units (and sometimes not), up to 2 KiB.
            let len = usize::from(f[2]) * 8 + usize::from(f[3] & 7) * usize::from(f[3] >> 7);
            let take = len.min(rest.len());
            let mut data = rest[..take].to_vec();
            data.resize(len, 0);
            rest = &rest[take..];
            fragment(c, &f, &data)
        };
        offered += 1;
        let done = r
            .offer_at(link, &frame, now, Some(wall))
            .map(|d| (d.link, d.frame.to_vec(), d.fragments));
        assert!(r.memory_bytes() <= cfg.memory_bytes, "memory over the cap");
        if let Some((link, frame, fragments)) = done {
            assert!(fragments >= 1);
            let ip = match link {
                LinkType::Ipv4 | LinkType::Ipv6 | LinkType::Raw => &frame[..],
                LinkType::Ethernet => &frame[14..],
                LinkType::Null => &frame[4..],
                LinkType::LinuxSll => &frame[16..],
                LinkType::LinuxSll2 => &frame[20..],
            };
            if ip[0] >> 4 == 6 {
                assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])) + 40, ip.len());
            } else {
                assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
                assert_eq!(ip[6] & 0x3f, 0);
                assert_eq!(ip[7], 0);
            }
            let pkt = decode(link, &frame);
            let mut out = Vec::new();
            let end = enc.encode_reassembled_at(&mut out, 0, &frame_meta(now, &frame), &pkt, fragments);
            out.truncate(end);
            let line = out.strip_suffix(b"\n").expect("newline");
            assert!(!line.contains(&b'\n'));
            let v: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
            assert_eq!(v["reassembled"]["fragments"].as_u64(), Some(u64::from(fragments)));
        }
    }
    r.finish();
    assert_eq!(r.memory_bytes(), 0);
    assert_eq!(r.in_progress(), 0);
    let s = r.stats();
    assert!(s.fragments <= offered);
    assert!(s.peak_memory_bytes <= cfg.memory_bytes as u64);
    // Every datagram started ends exactly once: reassembled or given up for one reason.
    assert!(s.reassembled + s.given_up_total() <= s.fragments);
    let _ = GiveUp::ALL;
});
