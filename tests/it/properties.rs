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

use netpipe_fast::decode::dns::{MAX_MESSAGE_NAME_JSON_BYTES, MAX_RECORDS_PER_SECTION};
use netpipe_fast::decode::mpls::MplsPayload;
use netpipe_fast::decode::{decode, decode_with_options, DecodeOptions, Layer, LinkType};
use netpipe_fast::encode::{max_message_bytes, FrameMeta, JsonEncoder};
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

/// Envelope keys that appear only on some messages.
const OPTIONAL_KEYS: [&str; 3] = ["community_id", "community_id_outer", "decode_error"];
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
    assert!(
        line.len() <= max_message_bytes(frame.len(), SOURCE),
        "{} bytes of JSON from {} bytes, over the documented bound {} ({})",
        line.len(),
        frame.len(),
        max_message_bytes(frame.len(), SOURCE),
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
                || OPTIONAL_KEYS.contains(&key.as_str())
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
    for key in ["community_id", "community_id_outer"] {
        if let Some(id) = obj.get(key) {
            let id = id.as_str().unwrap_or_default();
            assert!(
                id.len() == 30
                    && id.starts_with("1:")
                    && id.ends_with('=')
                    && id[2..29]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
                "{key} {id:?} ({})",
                context()
            );
        }
    }
    assert!(
        obj.get("community_id_outer").is_none() || text.matches("\"ip").count() >= 2,
        "community_id_outer without two IP layers ({})",
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

/// An IPv4 packet (link type Raw) carrying `dns` in UDP from port 53.
fn ipv4_udp_dns(dns: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + dns.len();
    let total16 = u16::try_from(total).expect("fits one IPv4 packet");
    let mut f = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    f[2..4].copy_from_slice(&total16.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&(total16 - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(dns);
    f
}

/// A DNS response of maximal pointer fan-out: one question whose name is `labels` labels of
/// `label_len` copies of `byte` (255 wire bytes at most), then `records` answers of type
/// `rtype` whose owner and rdata names are 2-byte pointers to it (or, with `chain`, one
/// 1-byte label plus a pointer to the previous owner, so names grow up to the per-name cap).
fn fan_out_message(
    labels: usize,
    label_len: u8,
    byte: u8,
    records: usize,
    rtype: u16,
    chain: bool,
) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    m.extend_from_slice(&u16::try_from(records).unwrap_or(u16::MAX).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for _ in 0..labels {
        m.push(label_len);
        m.extend(std::iter::repeat(byte).take(usize::from(label_len)));
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut prev_owner = 12usize;
    for _ in 0..records {
        let owner = m.len();
        if chain && prev_owner < 0x3fff {
            m.extend_from_slice(&[1, byte]);
        }
        let target = if chain { prev_owner } else { 12 };
        m.extend_from_slice(&[0xc0 | (target >> 8) as u8, target as u8]);
        prev_owner = owner.min(0x3fff);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
        let rdata: Vec<u8> = match rtype {
            15 => vec![0, 10, 0xc0, 12],
            33 => vec![0, 1, 0, 2, 0, 53, 0xc0, 12],
            6 => {
                let mut r = vec![0xc0, 12, 0xc0, 12];
                r.extend_from_slice(&[0; 20]);
                r
            }
            _ => vec![0xc0, 12],
        };
        m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&rdata);
    }
    m
}

/// What the DNS layer of `json` decoded: the JSON bytes of its names and its entry counts.
fn dns_names_and_entries(json: &Value) -> (usize, [usize; 4]) {
    let dns = &json["data"]["dns"];
    let mut names = 0;
    let mut entries = [0; 4];
    for (i, section) in ["qd", "an", "ns", "ar"].iter().enumerate() {
        for item in dns[section].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            entries[i] += 1;
            for key in [
                "qname", "rrname", "rdata", "exchange", "target", "mname", "rname",
            ] {
                if let Some(name) = item[key].as_str() {
                    // As written in JSON, without the quotes.
                    names += serde_json::to_string(name).unwrap().len() - 2;
                }
            }
        }
    }
    (names, entries)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Crafted messages of maximal pointer fan-out (long names, bytes that need escaping,
    /// thousands of pointer-only records, pointer chains): the JSON stays within the
    /// documented bound, the decoded names within the per-message budget, each section within
    /// its entry cap, and whatever was not decoded is `raw` with `decode_error` "over limit".
    #[test]
    fn dns_pointer_fan_out_is_bounded(
        labels in 1usize..=4,
        label_len in 1u8..=63,
        byte in prop_oneof![Just(b'a'), Just(b'"'), Just(0x01u8), Just(0xffu8), any::<u8>()],
        records in 0usize..=4000,
        rtype in prop_oneof![Just(5u16), Just(12), Just(15), Just(33), Just(6), Just(1), Just(16)],
        chain in any::<bool>(),
    ) {
        // 255 wire bytes at most per name (RFC 1035), as a resolver would send.
        let labels = labels.min(254 / (usize::from(label_len) + 1)).max(1);
        let msg = fan_out_message(labels, label_len, byte, records, rtype, chain);
        prop_assume!(msg.len() <= 65_507);
        let frame = ipv4_udp_dns(&msg);
        check_all_link_types(&frame, 1, 0);
        let mut enc = JsonEncoder::new(SOURCE);
        let mut out = Vec::new();
        let cap_len = frame.len() as u32;
        let meta = FrameMeta { time_ns: 1, wire_len: cap_len, cap_len };
        enc.encode(&mut out, &meta, &decode(LinkType::Raw, &frame));
        let json: Value = serde_json::from_slice(&out).unwrap();
        let (names, entries) = dns_names_and_entries(&json);
        prop_assert!(names <= MAX_MESSAGE_NAME_JSON_BYTES, "{names} name bytes");
        prop_assert!(entries.iter().all(|&n| n <= usize::from(MAX_RECORDS_PER_SECTION)));
        if entries[1] < records && json["data"].get("dns").is_some() {
            prop_assert_eq!(&json["decode_error"]["reason"], "over limit");
            prop_assert_eq!(&json["decode_error"]["layer"], "dns");
            prop_assert!(json["data"]["raw"]["load"].is_string(), "the rest is raw");
        }
    }
}

/// The issue's case: one 1,511-byte frame of pointer fan-out made 83 KB of JSON; a 64 KB
/// datagram made 10.5 MB. Both now stay within the documented bound, and the records that fit
/// the budget are decoded exactly (the first answer's owner is the whole question name).
#[test]
fn dns_amplification_of_the_issue_is_capped() {
    let name_len_wire = 4 * 60; // four 59-byte labels
    for (records, frame_bytes_at_most) in [(87, 1_511), (4_600, 65_535)] {
        let msg = fan_out_message(4, 59, b'w', records, 5, false);
        let frame = ipv4_udp_dns(&msg);
        assert!(frame.len() <= frame_bytes_at_most, "{} bytes", frame.len());
        let mut enc = JsonEncoder::new(SOURCE);
        let mut out = Vec::new();
        let cap_len = frame.len() as u32;
        let meta = FrameMeta {
            time_ns: 1,
            wire_len: cap_len,
            cap_len,
        };
        enc.encode(&mut out, &meta, &decode(LinkType::Raw, &frame));
        let bound = max_message_bytes(frame.len(), SOURCE);
        assert!(out.len() <= bound, "{} > {bound}", out.len());
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["decode_error"]["reason"], "over limit", "{records}");
        let an = json["data"]["dns"]["an"].as_array().expect("answers");
        let full = format!("{}.", vec!["w".repeat(59); 4].join("."));
        assert_eq!(full.len(), name_len_wire);
        assert_eq!(an[0]["rrname"], full.as_str());
        assert_eq!(an[0]["rdata"], full.as_str());
        // Each answer holds two full names; the question one.
        assert_eq!(an.len(), (MAX_MESSAGE_NAME_JSON_BYTES - 240) / 480);
        assert_eq!(json["data"]["dns"]["ancount"], records);
        println!(
            "{records} records: {} bytes of frame, {} of JSON",
            frame.len(),
            out.len()
        );
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

// ---- tunnels ----

/// The entries of a JSON object in text order (serde_json's `Map` is sorted by key).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, Value>()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// `(layer key without its `_N` suffix, value)` of each entry of a message's `data`, in
/// order.
fn layers_of(msg: &Value) -> Vec<(String, Value)> {
    let Ordered(entries) =
        serde_json::from_str(msg["__text"].as_str().expect("text")).expect("data object");
    entries
        .into_iter()
        .map(|(k, v)| {
            let base = match k.rsplit_once('_') {
                Some((head, tail))
                    if !head.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    head.to_string()
                }
                _ => k,
            };
            (base, v)
        })
        .collect()
}

fn message_with(link: LinkType, frame: &[u8], opts: &DecodeOptions) -> Value {
    let mut out = Vec::new();
    let meta = FrameMeta {
        time_ns: 0,
        wire_len: frame.len() as u32,
        cap_len: frame.len() as u32,
    };
    JsonEncoder::new(SOURCE).encode(&mut out, &meta, &decode_with_options(link, frame, opts));
    let mut msg: Value = serde_json::from_slice(&out).expect("valid JSON");
    // Keep the `data` object's text too: its key order is part of the contract.
    let text = std::str::from_utf8(&out).expect("UTF-8");
    let start = text.find("{\"data\":").expect("data") + "{\"data\":".len();
    let end = text.rfind("},\"created\":").expect("created") + 1;
    msg["__text"] = Value::String(text[start..end].to_string());
    msg
}

/// Ethernet / IPv4 192.0.2.1 -> 192.0.2.2 carrying `payload` as IP protocol `proto`.
fn outer_ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x00, 0x5e, 0x00, 0x53, 0xa1, 0x00, 0x00, 0x5e, 0x00, 0x53, 0xb2, 0x08, 0x00,
    ];
    let total = (20 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ]);
    f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    f.extend_from_slice(payload);
    f
}

fn in_vxlan(inner: &[u8]) -> Vec<u8> {
    let len = (8 + 8 + inner.len()) as u16;
    let mut udp = vec![0xc3, 0x50, 0x12, 0xb5, (len >> 8) as u8, len as u8, 0, 0];
    udp.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x13, 0x89, 0]);
    udp.extend_from_slice(inner);
    outer_ipv4(17, &udp)
}

/// Ethernet / two MPLS labels / `inner` (an Ethernet pseudowire: needs `--mpls-payload
/// ether`).
fn in_mpls(inner: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x00, 0x5e, 0x00, 0x53, 0xa1, 0x00, 0x00, 0x5e, 0x00, 0x53, 0xb2, 0x88, 0x47,
    ];
    f.extend_from_slice(&[0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40]);
    f.extend_from_slice(inner);
    f
}

fn in_gre(inner: &[u8]) -> Vec<u8> {
    let mut gre = vec![0x20, 0x00, 0x65, 0x58, 0, 0, 0, 42];
    gre.extend_from_slice(inner);
    outer_ipv4(47, &gre)
}

/// Any Ethernet frame carried in VXLAN or in GRE (transparent Ethernet bridging) decodes to
/// the outer layers, the tunnel header, then exactly the layers and values the frame has on
/// its own, with suffixed keys; the outer values are the tunnel's, never the inner frame's;
/// and the innermost flow's Community ID is the one the frame has on its own.
#[test]
fn tunnelled_frames_keep_their_layers_and_flow() {
    let mut checked = 0;
    for real in real_frames()
        .iter()
        .filter(|f| f.link == LinkType::Ethernet)
    {
        let alone = decode(LinkType::Ethernet, &real.bytes);
        // The layer budget (16) must hold the 4 outer layers as well.
        // ... and the outer IPv4 length must hold the frame (jumbo frames are skipped).
        if alone.layer_count() > 12 || alone.layer_count() == 0 || real.bytes.len() > 9000 {
            continue;
        }
        let ether_pw = DecodeOptions {
            mpls_payload: MplsPayload::Ether,
        };
        for (tunnel, wrapped, opts) in [
            ("vxlan", in_vxlan(&real.bytes), DecodeOptions::default()),
            ("gre", in_gre(&real.bytes), DecodeOptions::default()),
            ("mpls", in_mpls(&real.bytes), ether_pw),
        ] {
            // The frame alone, decoded with the same options.
            let plain = message_with(LinkType::Ethernet, &real.bytes, &opts);
            let inner_layers = layers_of(&plain);
            let msg = message_with(LinkType::Ethernet, &wrapped, &opts);
            let layers = layers_of(&msg);
            let head: Vec<&str> = layers
                .iter()
                .take_while(|(k, _)| k != tunnel)
                .map(|(k, _)| k.as_str())
                .collect();
            let expected_head: &[&str] = match tunnel {
                "vxlan" => &["ether", "ip", "udp"],
                "gre" => &["ether", "ip"],
                _ => &["ether"],
            };
            assert_eq!(head, expected_head, "{}", hex(&real.bytes));
            if tunnel != "mpls" {
                assert_eq!(msg["data"]["ip"]["src"], "192.0.2.1");
            }
            assert_eq!(msg["data"]["ether"]["src"], "00:00:5e:00:53:b2");
            // The tunnel header (two label entries for MPLS), then the frame's own layers.
            let skip = if tunnel == "mpls" { 2 } else { 1 };
            let tail = &layers[head.len() + skip..];
            assert_eq!(
                tail,
                &inner_layers[..],
                "{tunnel} around {}",
                hex(&real.bytes)
            );
            assert_eq!(msg.get("decode_error"), plain.get("decode_error"));
            // With a flow of its own, the frame keeps its ID inside the tunnel, and the
            // tunnel's flow is `community_id_outer`.
            if plain.get("community_id").is_some() {
                assert_eq!(
                    msg.get("community_id"),
                    plain.get("community_id"),
                    "{tunnel} around {}",
                    hex(&real.bytes)
                );
                assert!(tunnel == "mpls" || msg.get("community_id_outer").is_some());
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} frames wrapped");
}

// ---------------------------------------------------------------------------------------------
// Fragment reassembly (`--reassemble`, docs/FORMAT.md "Fragment reassembly"): whatever the
// order, duplicates and overlaps of the fragments, the datagram comes out as the policy says
// (IPv4: first wins; IPv6: any overlap drops it, RFC 5722), and the memory held stays under
// the cap while a flood of distinct datagrams is counted as evictions.

use netpipe_fast::source::reassembly::{GiveUp, Reassembler, ReassemblyConfig};

/// A raw IPv4 fragment (link type 228) with identification `id`.
fn frag_v4(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let total = 20 + data.len();
    let ff = u16::try_from(offset / 8).unwrap() | if more { 0x2000 } else { 0 };
    let mut f = vec![0x45, 0, (total >> 8) as u8, total as u8];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&ff.to_be_bytes());
    f.extend_from_slice(&[64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    f.extend_from_slice(data);
    f
}

/// A raw IPv6 fragment (link type 229), fragment header right after the fixed header.
fn frag_v6(id: u32, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let plen = 8 + data.len();
    let mut f = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 44, 64];
    f.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let om = (u16::try_from(offset / 8).unwrap() << 3) | u16::from(more);
    f.extend_from_slice(&[17, 0]);
    f.extend_from_slice(&om.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Cuts `len` bytes into fragments at the given 8-byte-unit cut points: (offset, end).
fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| (c % len) / 8 * 8)
        .filter(|&c| c > 0)
        .collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any split, any order, any duplicates: one datagram, equal to the original, after
    /// the fragment that completed it, and nothing held afterwards.
    #[test]
    fn fragments_in_any_order_with_duplicates_reassemble(
        payload in prop::collection::vec(any::<u8>(), 1..4000),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
        dups in prop::collection::vec(any::<Index>(), 0..4),
        v6 in any::<bool>(),
    ) {
        let parts = pieces(payload.len(), &cuts);
        let mut sends: Vec<usize> = (0..parts.len()).collect();
        for d in &dups {
            sends.push(d.index(parts.len()));
        }
        // A permutation from the seed (Fisher-Yates with a small LCG).
        let mut seed = order | 1;
        for i in (1..sends.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            sends.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut got = Vec::new();
        for (t, &i) in sends.iter().enumerate() {
            let (s, e) = parts[i];
            let more = e < payload.len();
            let (link, f) = if v6 {
                (LinkType::Ipv6, frag_v6(77, s, more, &payload[s..e]))
            } else {
                (LinkType::Ipv4, frag_v4(77, s, more, &payload[s..e]))
            };
            if let Some(d) = r.offer(link, &f, t as i64) {
                got.push((t, d.frame.to_vec(), d.fragments));
            }
        }
        let s = r.stats();
        if parts.len() == 1 {
            // Offset 0 and no more fragments: not a fragment at all.
            prop_assert!(got.is_empty());
            prop_assert_eq!(s.fragments, 0);
        } else {
            // Duplicates sent after completion start a new datagram: at most one completes
            // per full set, the first completion is the original.
            prop_assert!(!got.is_empty());
            let (_, frame, n) = &got[0];
            let hdr = if v6 { 40 } else { 20 };
            prop_assert_eq!(&frame[hdr..], &payload[..]);
            prop_assert_eq!(usize::from(*n), parts.len());
            if v6 {
                prop_assert_eq!(frame[6], 17);
                prop_assert_eq!(usize::from(u16::from_be_bytes([frame[4], frame[5]])), payload.len());
            } else {
                prop_assert_eq!(usize::from(u16::from_be_bytes([frame[2], frame[3]])), 20 + payload.len());
            }
            prop_assert_eq!(s.given_up_total(), 0);
        }
        r.finish();
        prop_assert_eq!(r.memory_bytes(), 0);
    }

    /// Overlapping fragments: IPv6 never completes (RFC 5722) and counts one overlap; IPv4
    /// completes as "first wins" says, byte for byte.
    #[test]
    fn overlaps_follow_the_documented_policy(
        frags in prop::collection::vec((0usize..64, 1usize..16, any::<u8>()), 2..10),
        total_units in 8usize..80,
        v6 in any::<bool>(),
    ) {
        // Fragments of 8-byte units with a fill byte each; then a last fragment to total.
        let total = total_units * 8;
        let mut model = vec![None::<u8>; total];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut sent = Vec::new();
        for &(start, len, fill) in &frags {
            let s = (start % total_units) * 8;
            let e = (s + len * 8).min(total - 8).max(s);
            if e == s { continue; }
            sent.push((s, e, fill, true));
        }
        sent.push((total - 8, total, 0xab, false));
        let mut first = None;
        let mut overlapped = false;
        let mut ranges: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        for (t, &(s, e, fill, more)) in sent.iter().enumerate() {
            let data = vec![fill; e - s];
            let exact_dup = ranges.iter().any(|(a, b, d)| *a == s && *b == e && *d == data);
            if !exact_dup && ranges.iter().any(|(a, b, _)| *a < e && s < *b) {
                overlapped = true;
            }
            if !exact_dup {
                ranges.push((s, e, data.clone()));
            }
            if !(exact_dup || v6 && overlapped) {
                for (i, slot) in model[s..e].iter_mut().enumerate() {
                    slot.get_or_insert(data[i]);
                }
            }
            let (link, f) = if v6 {
                (LinkType::Ipv6, frag_v6(5, s, more, &data))
            } else {
                (LinkType::Ipv4, frag_v4(5, s, more, &data))
            };
            if let Some(d) = r.offer(link, &f, t as i64) {
                if first.is_none() {
                    first = Some(d.frame.to_vec());
                }
            }
        }
        let covered = model.iter().all(Option::is_some);
        let hdr = if v6 { 40 } else { 20 };
        if v6 && overlapped {
            prop_assert!(first.is_none());
            prop_assert_eq!(r.stats().given_up[GiveUp::Overlap.index()], 1);
        } else if covered && sent.iter().any(|&(s, _, _, _)| s == 0) {
            let frame = first.expect("complete");
            let want: Vec<u8> = model.iter().map(|b| b.unwrap()).collect();
            prop_assert_eq!(&frame[hdr..], &want[..]);
        } else {
            prop_assert!(first.is_none());
        }
    }

    /// Many datagrams at once with a small cap: the memory held never passes the cap, and
    /// every datagram ends exactly one way (reassembled, given up, or left at the end).
    #[test]
    fn memory_stays_under_the_cap(
        sends in prop::collection::vec((any::<u16>(), 0usize..8, any::<bool>(), 1usize..200), 1..300),
        cap_kib in 1usize..64,
    ) {
        let cap = cap_kib * 1024;
        let mut r = Reassembler::new(ReassemblyConfig {
            memory_bytes: cap,
            ..ReassemblyConfig::default()
        });
        for (t, &(id, unit, more, len)) in sends.iter().enumerate() {
            let data = vec![id as u8; len * 8];
            r.offer(LinkType::Ipv4, &frag_v4(id % 64, unit * 1024, more || unit == 0, &data), t as i64);
            prop_assert!(r.memory_bytes() <= cap);
        }
        let open = r.in_progress() as u64;
        let before = r.stats();
        r.finish();
        let s = r.stats();
        prop_assert!(s.peak_memory_bytes <= cap as u64);
        prop_assert!(s.given_up[GiveUp::Incomplete.index()] <= open);
        prop_assert_eq!(s.given_up_total() - before.given_up_total(), s.given_up[GiveUp::Incomplete.index()]);
        prop_assert_eq!(r.memory_bytes(), 0);
    }
}

/// The flood of the issue: 100,000 first fragments of distinct datagrams against an 8 MiB
/// cap. The memory held stays under it all along and every eviction is counted.
#[test]
fn a_flood_of_first_fragments_is_held_to_the_cap() {
    let cap = 8 << 20;
    let mut r = Reassembler::new(ReassemblyConfig {
        memory_bytes: cap,
        ..ReassemblyConfig::default()
    });
    let data = [0x5au8; 1400];
    let mut most = 0;
    for i in 0..100_000u32 {
        let mut f = frag_v4(i as u16, 0, true, &data);
        f[14] = (i >> 16) as u8; // another source address every 65,536 ids
        assert!(r.offer(LinkType::Ipv4, &f, i64::from(i) * 1000).is_none());
        most = most.max(r.memory_bytes());
        assert!(r.memory_bytes() <= cap);
    }
    let s = r.stats();
    let held = r.in_progress() as u64;
    assert!(most > cap - 4096, "the cap was used: {most}");
    assert_eq!(s.given_up[GiveUp::MemoryCap.index()] + held, 100_000);
    assert_eq!(s.fragments, 100_000);
    r.finish();
    assert_eq!(r.stats().given_up[GiveUp::Incomplete.index()], held);
    assert_eq!(r.memory_bytes(), 0);
}
