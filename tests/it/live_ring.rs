//! Live capture through a TPACKET_V3 ring (`netpipe_fast::source::ring`), between two network
//! namespaces of our own joined by a veth pair. Nothing is sent anywhere else.
//!
//! Needs root and `ip netns`. Without them the tests say why and pass, unless
//! `NETPIPE_REQUIRE_LIVE=1`, which makes them fail instead (CI sets it).
//!
//! How the sockets get into a namespace: a short-lived thread calls setns(2) on
//! `/var/run/netns/NAME` (which changes only that thread's namespace), creates the socket
//! there and hands it back; a socket stays in the namespace it was created in, so the test
//! thread can use it afterwards. The ring is opened in namespace B on `vb`; the frames are
//! built here, byte for byte, and sent from namespace A through an AF_PACKET socket on `va`,
//! so every captured frame can be compared with what was sent. They are addressed to a MAC
//! address that is not B's, so B's stack drops them and answers nothing.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netpipe_fast::decode::{decode, Layer, LinkType};
use netpipe_fast::encode::FrameMeta;
use netpipe_fast::source::filter::BpfFilter;
use netpipe_fast::source::ring::{iface, rx, sys};
use netpipe_fast::source::ring::{FanoutMode, Ring, RingConfig, RingError, RingErrorKind};

use crate::common::frames::{ipv4_frame, SRC_MAC};
use crate::common::harness::{self, NetnsPair};

/// The whole file should finish in well under 20 s; each wait is bounded by this.
const DEADLINE: Duration = Duration::from_secs(5);
/// No new frame for this long after the expected ones arrived: nothing more is coming.
const QUIET: Duration = Duration::from_millis(300);

fn live_available() -> bool {
    harness::live_available("live ring test", &[])
}

fn netns_pair(tag: &str) -> NetnsPair {
    NetnsPair::new("np-ring", tag, Some(("192.0.2.1/24", "192.0.2.2/24")))
}

/// Runs `f` on a thread that has entered network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: `file` is an open network-namespace file for the whole call; setns(2) only
        // switches this (short-lived) thread's network namespace and touches no memory of ours.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

fn open_ring(ns: &str, cfg: RingConfig) -> Result<Ring, RingError> {
    in_netns(ns, move || Ring::open(&cfg))
}

fn small_config(iface: &str) -> RingConfig {
    let mut cfg = RingConfig::new(iface);
    cfg.block_bytes = 1 << 16;
    cfg.block_count = 8;
    cfg
}

/// An AF_PACKET socket bound to `va` in namespace A, for sending whole frames.
struct Sender(OwnedFd);

impl Sender {
    fn open(ns: &str) -> Sender {
        in_netns(ns, || {
            let fd = sys::open_packet_socket().expect("packet socket in A");
            let ifindex = iface::interface_index("va").expect("va in A");
            rx::bind_interface(&fd, ifindex).expect("bind to va");
            Sender(fd)
        })
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a live, readable buffer of `frame.len()` bytes for the whole
        // call; send(2) only reads it. The descriptor is owned by `self`.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn echo_request(vlan_tci: Option<u16>, seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x4e, 0x50];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"netpipe-fast ring test payload..");
    ipv4_frame(vlan_tci, 1, 1, &icmp)
}

fn udp_datagram(port: u16) -> Vec<u8> {
    let mut udp = vec![0x30, 0x39];
    udp.extend_from_slice(&port.to_be_bytes());
    udp.extend_from_slice(&[0, 12, 0, 0]);
    udp.extend_from_slice(b"udp!");
    ipv4_frame(None, 17, 1, &udp)
}

fn arp_request() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 9]);
    f
}

struct Seen {
    bytes: Vec<u8>,
    meta: FrameMeta,
}

/// Reads the ring until `enough(&seen)` holds and then nothing new came for [`QUIET`], or
/// until [`DEADLINE`].
fn capture(ring: &mut Ring, enough: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut last_frame = Instant::now();
    while start.elapsed() < DEADLINE {
        let n = ring
            .next_block(Duration::from_millis(50), |bytes, meta| {
                seen.push(Seen {
                    bytes: bytes.to_vec(),
                    meta: *meta,
                })
            })
            .expect("next_block");
        if n > 0 {
            last_frame = Instant::now();
        } else if enough(&seen) && last_frame.elapsed() >= QUIET {
            break;
        }
    }
    seen
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

fn count_equal(seen: &[Seen], frame: &[u8]) -> usize {
    seen.iter().filter(|s| s.bytes == frame).count()
}

#[test]
fn every_frame_sent_appears_once_and_stats_are_running_totals() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("all");
    let mut ring = open_ring(&pair.b, small_config("vb")).expect("open ring on vb");
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
    assert_eq!(ring.link_type(), LinkType::Ethernet);
    let sender = Sender::open(&pair.a);

    let before_ns = now_ns();
    let requests: Vec<Vec<u8>> = (1..=20).map(|seq| echo_request(None, seq)).collect();
    for f in &requests {
        sender.send(f);
    }
    let seen = capture(&mut ring, |s| {
        requests.iter().all(|r| count_equal(s, r) > 0)
    });
    let after_ns = now_ns();
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(count_equal(&seen, r), 1, "echo request {} seen once", i + 1);
    }
    for s in &seen {
        assert_eq!(s.meta.cap_len as usize, s.bytes.len());
        assert!(s.meta.wire_len >= s.meta.cap_len);
    }
    for s in seen.iter().filter(|s| requests.contains(&s.bytes)) {
        assert!(
            (before_ns..=after_ns).contains(&s.meta.time_ns),
            "timestamp {} outside [{before_ns}, {after_ns}]",
            s.meta.time_ns
        );
        let pkt = decode(LinkType::Ethernet, &s.bytes);
        assert!(pkt
            .layers()
            .any(|l| matches!(l, Layer::Icmp(i) if i.icmp_type() == 8)));
    }

    let first = ring.stats();
    assert!(
        first.packets >= seen.len() as u64,
        "{first:?} vs {} frames",
        seen.len()
    );
    assert_eq!(first.frames, seen.len() as u64);
    assert_eq!((first.drops, first.freezes, first.bad_blocks), (0, 0, 0));

    // The kernel zeroes its counters on every read; ours keep adding up.
    let more: Vec<Vec<u8>> = (100..105).map(|seq| echo_request(None, seq)).collect();
    for f in &more {
        sender.send(f);
    }
    let seen2 = capture(&mut ring, |s| more.iter().all(|r| count_equal(s, r) > 0));
    for r in &more {
        assert_eq!(count_equal(&seen2, r), 1);
    }
    let second = ring.stats();
    // The kernel may have counted a frame at the first read that was read only after it
    // (first.packets > first.frames), so the running total covers every frame read and
    // never goes back; it is not first.packets plus the frames read since.
    assert!(
        second.packets >= first.packets && second.packets >= first.frames + seen2.len() as u64,
        "{second:?} after {first:?}"
    );
    assert_eq!(second.frames, first.frames + seen2.len() as u64);
    assert_eq!((second.drops, second.bad_blocks), (0, 0));
}

#[test]
fn kernel_filter_passes_only_matching_frames() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("flt");
    let mut cfg = small_config("vb");
    cfg.filter = Some(BpfFilter::compile("icmp", 1).expect("compile icmp"));
    cfg.snaplen = 1500;
    let mut ring = open_ring(&pair.b, cfg).expect("open filtered ring on vb");
    let sender = Sender::open(&pair.a);

    let requests: Vec<Vec<u8>> = (1..=10).map(|seq| echo_request(None, seq)).collect();
    // Non-matching frames first, so any that slipped through would be seen before the end.
    for port in 0..5 {
        sender.send(&udp_datagram(9000 + port));
    }
    sender.send(&arp_request());
    for (i, f) in requests.iter().enumerate() {
        sender.send(f);
        sender.send(&udp_datagram(9100 + i as u16));
    }
    let seen = capture(&mut ring, |s| {
        requests.iter().all(|r| count_equal(s, r) > 0)
    });
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(count_equal(&seen, r), 1, "echo request {} seen once", i + 1);
    }
    for s in &seen {
        let pkt = decode(LinkType::Ethernet, &s.bytes);
        let is_icmp = pkt
            .layers()
            .any(|l| matches!(l, Layer::Icmp(i) if !i.quoted));
        let is_udp_or_arp = pkt
            .layers()
            .any(|l| matches!(l, Layer::Udp(u) if !u.quoted) || matches!(l, Layer::Arp(_)));
        assert!(
            is_icmp && !is_udp_or_arp,
            "filter let through {:02x?}",
            s.bytes
        );
    }
    let stats = ring.stats();
    assert!(stats.packets >= seen.len() as u64, "{stats:?}");
    assert_eq!((stats.drops, stats.bad_blocks), (0, 0));
}

#[test]
fn vlan_tags_are_put_back() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("vlan");
    let mut cfg = small_config("vb");
    cfg.promisc = false;
    let mut ring = open_ring(&pair.b, cfg).expect("open ring on vb");
    let sender = Sender::open(&pair.a);

    // Priority 3, VLAN 10. On receive the kernel moves the tag into the skb's metadata
    // (skb_vlan_untag), so the ring reports it in tp_vlan_tci and not in the bytes.
    let tci = (3 << 13) | 10;
    let tagged: Vec<Vec<u8>> = (1..=3).map(|seq| echo_request(Some(tci), seq)).collect();
    for f in &tagged {
        sender.send(f);
    }
    let seen = capture(&mut ring, |s| tagged.iter().all(|r| count_equal(s, r) > 0));
    for (i, r) in tagged.iter().enumerate() {
        assert_eq!(
            count_equal(&seen, r),
            1,
            "tagged frame {} seen once, byte for byte",
            i + 1
        );
    }
    for s in seen.iter().filter(|s| tagged.contains(&s.bytes)) {
        let pkt = decode(LinkType::Ethernet, &s.bytes);
        let vlan = pkt.layers().find_map(|l| match l {
            Layer::Vlan { hdr, ad } => Some((hdr.vlan(), hdr.prio(), *ad)),
            _ => None,
        });
        assert_eq!(vlan, Some((10, 3, false)));
        assert_eq!(s.meta.cap_len as usize, s.bytes.len());
        assert_eq!(s.meta.wire_len as usize, s.bytes.len());
    }
    let stats = ring.stats();
    assert!(
        stats.vlan_tags_restored >= 3,
        "the kernel should have stripped the tags: {stats:?}"
    );
}

#[test]
fn missing_and_down_interfaces_are_clear_errors() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("err");
    let err = open_ring(&pair.b, small_config("nope0")).expect_err("no such interface");
    assert_eq!(err.kind(), RingErrorKind::NoSuchInterface, "{err}");
    assert!(err.to_string().contains("no such interface"), "{err}");

    // A fresh namespace's loopback is down.
    let err = open_ring(&pair.b, small_config("lo")).expect_err("lo is down");
    assert_eq!(err.kind(), RingErrorKind::InterfaceDown, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("down") && text.contains("ip link set lo up"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn snaplen_cuts_frames_in_the_kernel() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("snap");
    let mut cfg = small_config("vb");
    cfg.snaplen = 40;
    cfg.filter = Some(BpfFilter::compile("icmp", 1).expect("compile icmp"));
    let mut ring = open_ring(&pair.b, cfg).expect("open ring on vb");
    let sender = Sender::open(&pair.a);
    let frame = echo_request(None, 7);
    assert!(frame.len() > 40);
    sender.send(&frame);
    let seen = capture(&mut ring, |s| s.iter().any(|s| frame.starts_with(&s.bytes)));
    let cut: Vec<&Seen> = seen.iter().filter(|s| s.bytes == frame[..40]).collect();
    assert_eq!(cut.len(), 1, "one frame cut to 40 bytes");
    assert_eq!(cut[0].meta.cap_len, 40);
    assert_eq!(cut[0].meta.wire_len as usize, frame.len());
}

#[test]
fn fanout_group_delivers_each_frame_to_one_ring() {
    if !live_available() {
        return;
    }
    let pair = netns_pair("fan");
    let group = (std::process::id() & 0xffff) as u16;
    let mut rings: Vec<Ring> = (0..2)
        .map(|_| {
            let mut cfg = small_config("vb");
            cfg.fanout = Some((group, FanoutMode::Lb));
            cfg.filter = Some(BpfFilter::compile("icmp", 1).expect("compile icmp"));
            open_ring(&pair.b, cfg).expect("open fanout ring")
        })
        .collect();
    // Hash mode is accepted too, in a group of its own.
    let mut hash_cfg = small_config("vb");
    hash_cfg.fanout = Some((group.wrapping_add(1), FanoutMode::Hash));
    drop(open_ring(&pair.b, hash_cfg).expect("open hash fanout ring"));

    let sender = Sender::open(&pair.a);
    let requests: Vec<Vec<u8>> = (1..=20).map(|seq| echo_request(None, seq)).collect();
    for f in &requests {
        sender.send(f);
    }
    let start = Instant::now();
    let mut per_ring: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
    while start.elapsed() < DEADLINE {
        for (ring, seen) in rings.iter_mut().zip(per_ring.iter_mut()) {
            ring.next_block(Duration::from_millis(20), |b, _| seen.push(b.to_vec()))
                .expect("next_block");
        }
        let total: usize = per_ring.iter().map(Vec::len).sum();
        if total >= requests.len() {
            break;
        }
    }
    for r in &requests {
        let n: usize = per_ring
            .iter()
            .map(|s| s.iter().filter(|b| *b == r).count())
            .sum();
        assert_eq!(n, 1, "each frame on exactly one ring");
    }
    assert!(
        per_ring.iter().all(|s| !s.is_empty()),
        "round robin used both rings: {:?}",
        per_ring.iter().map(Vec::len).collect::<Vec<_>>()
    );
}
