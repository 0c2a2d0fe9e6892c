//! Property tests: whatever bytes arrive, under whatever link type, `decode` and
//! `JsonEncoder::encode` do not panic and write exactly one line of valid JSON whose `data` is
//! an object and whose envelope echoes the frame's metadata (docs/FORMAT.md).
//!
//! Inputs are (a) arbitrary bytes, (b) a real frame's leading bytes followed by arbitrary
//! bytes, and (c) real frames from `pcaps/` with bytes flipped, overwritten, inserted, removed
//! or cut off. Every input is decoded under every link type, because a capture file may lie
//! about its link type and headers of one link type are plausible garbage for another.
//!
//! The real frames come from every capture in `pcaps/` and, when it is there, tcpdump's test
//! corpus in `../shared/corpus/tcpdump-tests` (many protocols and deliberately malformed
//! frames; `tests/corpus.rs` runs those files as they are, this file mutates them). When
//! neither holds a capture, a few frames built here stand in, so the properties still run.

use netpipe_fast::decode::{decode, Layer, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::source::pcap_file::CaptureReader;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

const SOURCE: &str = "localdev";

const ALL_LINK_TYPES: [LinkType; 7] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

/// Envelope keys of a message, in the order FORMAT.md requires (`decode_error` is optional).
const ENVELOPE_KEYS: [&str; 6] = [
    "data", "created", "source", "time_ns", "wire_len", "cap_len",
];

/// Envelope keys after `cap_len` for a packet holding a TLS ClientHello.
const FINGERPRINT_KEYS: [&str; 3] = ["ja3", "ja3_hash", "ja4"];

/// A real frame: its link type and bytes.
struct RealFrame {
    link: LinkType,
    bytes: Vec<u8>,
}

/// Capture directories searched for real frames (a missing one is skipped).
const CAPTURE_DIRS: [&str; 2] = ["pcaps", "../shared/corpus/tcpdump-tests"];

/// The real frames whose decode holds an application layer besides DNS.
fn application_frames() -> &'static [RealFrame] {
    static FRAMES: OnceLock<Vec<RealFrame>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let frames: Vec<RealFrame> = real_frames()
            .iter()
            .filter(|f| {
                decode(f.link, &f.bytes).layers().any(|l| {
                    matches!(
                        l,
                        Layer::Tls(_) | Layer::Http(_) | Layer::Bootp(_) | Layer::Ntp(_)
                    )
                })
            })
            .map(|f| RealFrame {
                link: f.link,
                bytes: f.bytes.clone(),
            })
            .collect();
        assert!(
            frames.len() >= 20,
            "pcaps/ should hold TLS, HTTP, DHCP and NTP frames (tls.pcap, http.pcap, ...)"
        );
        frames
    })
}

/// Frames of every capture in [`CAPTURE_DIRS`] whose link type the decoder supports (read up
/// to the first damaged record of each file), or the stand-ins below when there are none.
fn real_frames() -> &'static [RealFrame] {
    static FRAMES: OnceLock<Vec<RealFrame>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths: Vec<_> = CAPTURE_DIRS
            .iter()
            .filter_map(|dir| fs::read_dir(root.join(dir)).ok())
            .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pcap" | "pcapng")
                )
            })
            .collect();
        paths.sort();
        let mut frames = Vec::new();
        for path in paths {
            let Ok(mut reader) = CaptureReader::open(&path) else {
                continue;
            };
            while let Ok(Some(frame)) = reader.next_frame() {
                if let Some(link) = LinkType::from_number(frame.link_type) {
                    frames.push(RealFrame {
                        link,
                        bytes: frame.data.to_vec(),
                    });
                }
            }
        }
        if frames.is_empty() {
            frames = stand_in_frames();
        }
        frames
    })
}

/// Hand-built frames (documentation addresses, RFC 5737 / RFC 3849) used only when no
/// capture directory holds a capture.
fn stand_in_frames() -> Vec<RealFrame> {
    let ether = |ether_type: [u8; 2], payload: &[u8]| {
        let mut f = vec![
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, 0x00, 0x00, 0x5e, 0x00, 0x53, 0x02,
        ];
        f.extend_from_slice(&ether_type);
        f.extend_from_slice(payload);
        f
    };
    // IPv4 192.0.2.1 -> 198.51.100.2, TCP 40000 -> 80 SYN with MSS, SACK-permitted,
    // timestamps, NOP, window scale.
    let ipv4_tcp: Vec<u8> = [
        &[
            0x45, 0x00, 0x00, 0x3c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
        ][..],
        &[192, 0, 2, 1, 198, 51, 100, 2],
        &[
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ],
        &[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ],
    ]
    .concat();
    // IPv4 UDP 53 -> 53, a DNS query for "example.com." type A.
    let dns_query: Vec<u8> = [
        &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &[7],
        b"example",
        &[3],
        b"com",
        &[0, 0, 1, 0, 1],
    ]
    .concat();
    let udp_len = (8 + dns_query.len()) as u16;
    let ip_len = 20 + udp_len;
    let ipv4_udp_dns: Vec<u8> = [
        &[0x45, 0x00][..],
        &ip_len.to_be_bytes(),
        &[0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 203, 0, 113, 53],
        &[0, 53, 0, 53],
        &udp_len.to_be_bytes(),
        &[0, 0],
        &dns_query,
    ]
    .concat();
    // IPv6 2001:db8::1 -> 2001:db8::2, ICMPv6 echo request with 4 bytes of data.
    let mut ipv6_icmp = vec![0x60, 0, 0, 0, 0, 12, 58, 64];
    ipv6_icmp.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ipv6_icmp.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ipv6_icmp.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4]);
    // ARP request who-has 192.0.2.2 tell 192.0.2.1.
    let arp: Vec<u8> = [
        &[0, 1, 8, 0, 6, 4, 0, 1][..],
        &[0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, 192, 0, 2, 1],
        &[0, 0, 0, 0, 0, 0, 192, 0, 2, 2],
    ]
    .concat();
    // 802.1Q VLAN 100 carrying the IPv4 TCP packet.
    let vlan: Vec<u8> = [&[0x00, 0x64, 0x08, 0x00][..], &ipv4_tcp].concat();
    vec![
        RealFrame {
            link: LinkType::Ethernet,
            bytes: ether([0x08, 0x00], &ipv4_tcp),
        },
        RealFrame {
            link: LinkType::Ethernet,
            bytes: ether([0x08, 0x00], &ipv4_udp_dns),
        },
        RealFrame {
            link: LinkType::Ethernet,
            bytes: ether([0x86, 0xdd], &ipv6_icmp),
        },
        RealFrame {
            link: LinkType::Ethernet,
            bytes: ether([0x08, 0x06], &arp),
        },
        RealFrame {
            link: LinkType::Ethernet,
            bytes: ether([0x81, 0x00], &vlan),
        },
        RealFrame {
            link: LinkType::Raw,
            bytes: ipv4_udp_dns.clone(),
        },
        RealFrame {
            link: LinkType::Ipv6,
            bytes: ipv6_icmp,
        },
    ]
}

/// Decodes `frame` under `link`, encodes it onto the end of `out` (which may already hold
/// earlier messages) and checks the new message.
fn check_one(
    enc: &mut JsonEncoder,
    out: &mut Vec<u8>,
    link: LinkType,
    frame: &[u8],
    meta: FrameMeta,
) {
    let start = out.len();
    let pkt = decode(link, frame);
    enc.encode(out, &meta, &pkt);
    let line = &out[start..];
    let context = || format!("link {link:?}, frame {}", hex(frame));

    assert!(
        line.len() >= 2 && line.ends_with(b"\n"),
        "message does not end in a newline ({})",
        context()
    );
    let body = &line[..line.len() - 1];
    assert!(
        !body.contains(&b'\n'),
        "message spans more than one line ({})",
        context()
    );
    assert!(
        body.starts_with(b"{\"data\":{"),
        "message does not start with the data object ({})",
        context()
    );
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "invalid JSON ({e}) for {}: {}",
            context(),
            String::from_utf8_lossy(body)
        )
    });
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("message is not an object ({})", context()));
    assert!(
        obj.get("data").is_some_and(Value::is_object),
        "`data` is not an object ({})",
        context()
    );
    for key in obj.keys() {
        assert!(
            ENVELOPE_KEYS.contains(&key.as_str())
                || key == "decode_error"
                || FINGERPRINT_KEYS.contains(&key.as_str()),
            "unexpected envelope key {key:?} ({})",
            context()
        );
    }
    // Envelope key order (serde_json's default map is sorted, so look at the text).
    let text = std::str::from_utf8(body).expect("valid JSON is UTF-8");
    let data_end = text
        .rfind("},\"created\":\"")
        .unwrap_or_else(|| panic!("no `created` after `data` ({})", context()));
    let tail = &text[data_end..];
    let mut at = 0;
    for key in &ENVELOPE_KEYS[1..] {
        let needle = format!("\"{key}\":");
        let found = tail[at..].find(&needle).unwrap_or_else(|| {
            panic!("envelope key {key} missing or out of order ({})", context())
        });
        at += found + needle.len();
    }

    let created = obj["created"].as_str().expect("`created` is text");
    assert_eq!(created.len(), 19, "`created` {created:?} ({})", context());
    assert_eq!(obj["source"], SOURCE, "({})", context());
    assert_eq!(
        obj["time_ns"].as_i64(),
        Some(meta.time_ns),
        "({})",
        context()
    );
    assert_eq!(
        obj["wire_len"].as_u64(),
        Some(u64::from(meta.wire_len)),
        "({})",
        context()
    );
    assert_eq!(
        obj["cap_len"].as_u64(),
        Some(u64::from(meta.cap_len)),
        "({})",
        context()
    );
    // TLS client fingerprints come together, and only with a ClientHello in `data`.
    if let Some(ja3) = obj.get("ja3") {
        let hash = obj["ja3_hash"].as_str().expect("ja3_hash with ja3");
        assert!(ja3.is_string() && hash.len() == 32, "({})", context());
        assert!(
            obj["data"].get("tls").is_some() || obj["data"].get("tls_2").is_some(),
            "ja3 without a tls layer ({})",
            context()
        );
        if let Some(ja4) = obj.get("ja4") {
            let ja4 = ja4.as_str().expect("ja4 text");
            assert!(
                ja4.len() == 36 && ja4.starts_with('t'),
                "ja4 {ja4} ({})",
                context()
            );
        }
    } else {
        assert!(obj.get("ja4").is_none() && obj.get("ja3_hash").is_none());
    }
    if let Some(err) = obj.get("decode_error") {
        assert!(
            err["layer"].is_string() && err["reason"].is_string(),
            "decode_error {err} ({})",
            context()
        );
    }
}

/// Checks `frame` under every link type, all messages appended to one buffer (as a worker's
/// batch is), then checks the buffer holds exactly one line per link type.
fn check_all_link_types(frame: &[u8], time_ns: i64, extra_wire_len: u16) {
    let mut enc = JsonEncoder::new(SOURCE);
    let mut out = Vec::new();
    let cap_len = frame.len() as u32;
    let meta = FrameMeta {
        time_ns,
        wire_len: cap_len + u32::from(extra_wire_len),
        cap_len,
    };
    for link in ALL_LINK_TYPES {
        check_one(&mut enc, &mut out, link, frame, meta);
    }
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        ALL_LINK_TYPES.len()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One edit of a real frame.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR the byte at the index with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite the byte at the index, favouring the values headers treat specially.
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    /// Cut the frame at the index.
    Truncate(Index),
    /// Overwrite two bytes with a big-endian 16-bit value (lengths, ports, EtherTypes).
    SetU16(Index, u16),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0u8),
        Just(0xff),
        Just(0x7f),
        Just(0x80),
        Just(0x45),
        Just(0x60),
        Just(0x06),
        Just(0x11),
        Just(0x3a),
        any::<u8>(),
    ]
}

fn interesting_u16() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(0xffff),
        Just(0x0800),
        Just(0x86dd),
        Just(0x0806),
        Just(0x8100),
        Just(0x88a8),
        Just(53),
        Just(5353),
        any::<u16>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        3 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), interesting_u16()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let len = frame.len();
    match m {
        Mutation::Insert(i, b) => frame.insert(i.index(len + 1), *b),
        _ if len == 0 => {}
        Mutation::Flip(i, mask) => frame[i.index(len)] ^= mask,
        Mutation::Set(i, b) => frame[i.index(len)] = *b,
        Mutation::Remove(i) => {
            frame.remove(i.index(len));
        }
        Mutation::Truncate(i) => frame.truncate(i.index(len)),
        Mutation::SetU16(i, v) => {
            let at = i.index(len);
            for (k, b) in v.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = frame.get_mut(at + k) {
                    *slot = b;
                }
            }
        }
    }
}

/// Capture times: ordinary ones, and the extremes a reader can hand over (it saturates to
/// the `i64` range).
fn time_ns() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 0i64..4_102_444_800_000_000_000,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary bytes under every link type.
    #[test]
    fn arbitrary_bytes(
        frame in prop::collection::vec(any::<u8>(), 0..2000),
        time_ns in time_ns(),
        extra in any::<u16>(),
    ) {
        check_all_link_types(&frame, time_ns, extra);
    }

    /// A real frame's first bytes (its headers, mostly) followed by arbitrary bytes, so the
    /// inner decoders see garbage more often than the first one does.
    #[test]
    fn real_prefix_then_arbitrary_bytes(
        pick in any::<Index>(),
        cut in any::<Index>(),
        tail in prop::collection::vec(any::<u8>(), 0..600),
        time_ns in time_ns(),
    ) {
        let frames = real_frames();
        let real = &frames[pick.index(frames.len())].bytes;
        let mut frame = real[..cut.index(real.len() + 1)].to_vec();
        frame.extend_from_slice(&tail);
        check_all_link_types(&frame, time_ns, 0);
    }

    /// Real frames carrying an application layer (TLS hello, HTTP head, BOOTP/DHCP, NTP),
    /// mutated: the application decoders see near-valid input far more often than the
    /// all-frames properties give them.
    #[test]
    fn mutated_application_frames(
        pick in any::<Index>(),
        edits in prop::collection::vec(mutation(), 1..8),
        time_ns in time_ns(),
    ) {
        let frames = application_frames();
        let mut frame = frames[pick.index(frames.len())].bytes.clone();
        for m in &edits {
            apply(&mut frame, m);
        }
        check_all_link_types(&frame, time_ns, 0);
    }

    /// Real frames with a few bytes flipped, overwritten, inserted, removed or cut off.
    #[test]
    fn mutated_real_frames(
        pick in any::<Index>(),
        edits in prop::collection::vec(mutation(), 1..8),
        time_ns in time_ns(),
    ) {
        let frames = real_frames();
        let mut frame = frames[pick.index(frames.len())].bytes.clone();
        for m in &edits {
            apply(&mut frame, m);
        }
        check_all_link_types(&frame, time_ns, 0);
    }
}

/// Every real frame, unmodified, under its own link type and every other one.
#[test]
fn every_real_frame_under_every_link_type() {
    let mut enc = JsonEncoder::new(SOURCE);
    let mut out = Vec::with_capacity(1 << 20);
    for (i, real) in real_frames().iter().enumerate() {
        let meta = FrameMeta {
            time_ns: 1_795_953_600_000_000_000 + i as i64 * 1_000,
            wire_len: real.bytes.len() as u32,
            cap_len: real.bytes.len() as u32,
        };
        // Own link type first; the others follow.
        check_one(&mut enc, &mut out, real.link, &real.bytes, meta);
        for link in ALL_LINK_TYPES.into_iter().filter(|&l| l != real.link) {
            check_one(&mut enc, &mut out, link, &real.bytes, meta);
        }
        out.clear();
    }
}

/// Every prefix of a spread of real frames under their own link type: a snap length can cut
/// a frame anywhere, and each cut must still give a message (with `decode_error` as needed).
#[test]
fn every_truncation_of_real_frames() {
    const FRAMES_TRIED: usize = 300;
    let frames = real_frames();
    let step = (frames.len() / FRAMES_TRIED).max(1);
    let mut enc = JsonEncoder::new(SOURCE);
    let mut out = Vec::with_capacity(1 << 16);
    for real in frames.iter().step_by(step) {
        for cut in 0..=real.bytes.len() {
            let frame = &real.bytes[..cut];
            let meta = FrameMeta {
                time_ns: 1_795_953_600_000_000_000,
                wire_len: real.bytes.len() as u32,
                cap_len: cut as u32,
            };
            check_one(&mut enc, &mut out, real.link, frame, meta);
            out.clear();
        }
    }
}
