//! Filters from outside the interpreter: tcpdump expressions compiled through libpcap (the
//! `bpf` feature) and the text `tcpdump -ddd` prints.

use super::{BpfFilter, BpfInsn, FilterError, MAX_INSNS};

impl BpfFilter {
    /// Compiles a tcpdump-syntax expression (`pcap-filter(7)`) for frames of `link_type`
    /// (a `LINKTYPE_*` value: 1 Ethernet, 113 Linux cooked, 101 raw IP, ...). The empty
    /// expression accepts everything. Needs the `bpf` feature (libpcap); without it, use
    /// [`BpfFilter::from_program`] or [`BpfFilter::from_ddd`] with a program compiled elsewhere.
    #[cfg(feature = "bpf")]
    pub fn compile(expr: &str, link_type: u32) -> Result<BpfFilter, FilterError> {
        let dlt = i32::try_from(linktype_to_dlt(link_type))
            .map_err(|_| FilterError::new(expr, link_type, "link type out of range"))?;
        let insns = crate::source::ring::sys::libpcap::compile(dlt, expr)
            .map_err(|message| FilterError::new(expr, link_type, message))?;
        Self::from_insns(expr, link_type, insns)
    }

    /// A filter from the text `tcpdump -ddd` prints (the instruction count on the first line,
    /// then one `code jt jf k` line in decimal per instruction), for frames of `link_type`.
    /// Blank lines are ignored; anything else unreadable, or a count that does not match, is
    /// a [`FilterError`]. `expr` names the filter as in [`BpfFilter::from_program`].
    pub fn from_ddd(expr: &str, link_type: u32, ddd: &str) -> Result<BpfFilter, FilterError> {
        let mut lines = ddd.lines().map(str::trim).filter(|l| !l.is_empty());
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| FilterError::new(expr, link_type, "no instruction count on line 1"))?;
        let mut insns = Vec::with_capacity(count.min(MAX_INSNS));
        for line in lines {
            let insn = parse_insn(line).ok_or_else(|| {
                FilterError::new(expr, link_type, format!("unreadable instruction {line:?}"))
            })?;
            insns.push(insn);
        }
        if insns.len() != count {
            return Err(FilterError::new(
                expr,
                link_type,
                format!("{} instructions, the first line says {count}", insns.len()),
            ));
        }
        Self::from_insns(expr, link_type, insns)
    }
}

/// `pcap_open_dead` takes a `DLT_*` value. For most link types it equals the `LINKTYPE_*`
/// value stored in capture files; these are the exceptions on Linux (values from libpcap's
/// `pcap/dlt.h` and the tcpdump.org link-layer header type registry).
#[cfg(feature = "bpf")]
fn linktype_to_dlt(link_type: u32) -> u32 {
    match link_type {
        100 => 11, // ATM_RFC1483
        101 => 12, // RAW
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        106 => 19, // ATM_CLIP
        other => other,
    }
}

/// Parses one `code jt jf k` line of `tcpdump -ddd` (decimal).
fn parse_insn(text: &str) -> Option<BpfInsn> {
    let mut fields = text.split_ascii_whitespace();
    let insn = BpfInsn {
        code: fields.next()?.parse().ok()?,
        jt: fields.next()?.parse().ok()?,
        jf: fields.next()?.parse().ok()?,
        k: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(insn)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    #[cfg(feature = "bpf")]
    use super::*;

    // ---- libpcap ------------------------------------------------------------------------

    #[cfg(feature = "bpf")]
    #[test]
    fn bad_expression_reports_libpcaps_message() {
        let err = BpfFilter::compile("tcp prt 80", 1).unwrap_err();
        assert_eq!(err.expression(), "tcp prt 80");
        assert_eq!(err.link_type(), 1);
        assert!(err.message().contains("syntax error"), "{}", err.message());
        assert_eq!(
            err.to_string(),
            r#"bad filter expression "tcp prt 80": syntax error"#
        );
        let err = BpfFilter::compile("port 99999", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"bad filter expression "port 99999": illegal port number 99999 > 65535"#
        );
        // Link-type-dependent refusals come from libpcap too.
        let err = BpfFilter::compile("vlan 10", 101).unwrap_err();
        assert!(err.message().contains("VLAN"), "{}", err.message());
        let err = BpfFilter::compile("ether broadcast", 113).unwrap_err();
        assert!(!err.message().is_empty());
        // Not representable as a C string: the crate's own error, still one line.
        let err = BpfFilter::compile("tcp\0\n", 1).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = BpfFilter::compile("tcp", u32::MAX).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("bad filter expression \"tcp\": "));
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert!(!boxed.to_string().is_empty());
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn compiled_program_is_libpcaps() {
        let f = compile("tcp", 1);
        assert_eq!(f.expression(), "tcp");
        assert_eq!(f.link_type(), 1);
        let cap = pcap::Capture::dead(pcap::Linktype(1)).unwrap();
        let theirs = cap.compile("tcp", true).unwrap();
        let theirs: Vec<String> = theirs
            .get_instructions()
            .iter()
            .map(|i| i.to_string())
            .collect();
        let ours: Vec<String> = f
            .instructions()
            .iter()
            .map(|i| format!("{} {} {} {}", i.code, i.jt, i.jf, i.k))
            .collect();
        assert_eq!(ours, theirs);
        // The dead handle's snapshot length (65535) is the "accept" verdict.
        assert!(f.instructions().contains(&insn(RET, 0, 0, 65535)));
        assert!(compile("", 1).matches(&[], 0));
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn dead_handle_vlan_uses_plain_loads() {
        for expr in ["vlan", "vlan 10", "vlan and tcp", "vlan 10 and vlan 20"] {
            let f = compile(expr, 1);
            assert!(!f.needs_kernel_metadata(), "{expr}");
            assert!(
                f.instructions().iter().all(|i| i.k < SKF_LL_OFF),
                "{expr}: {:?}",
                f.instructions()
            );
        }
        // `inbound` on Ethernet does use SKF_AD_PKTTYPE even on a dead handle.
        let inbound = compile("inbound", 1);
        assert!(inbound.needs_kernel_metadata());
        // On Linux cooked captures the packet type is in the header instead.
        assert!(!compile("inbound", 113).needs_kernel_metadata());
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn link_types_are_translated_for_libpcap() {
        // 101 is LINKTYPE_RAW; libpcap's dead handle wants DLT_RAW (12 on Linux).
        let raw = compile("udp port 53", 101);
        let frame = ipv4(
            17,
            [192, 0, 2, 1],
            [198, 51, 100, 7],
            0,
            &udp(5353, 53, b"q"),
        );
        assert!(raw.matches(&frame, frame.len() as u32));
        assert_eq!(raw.link_type(), 101);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn truncated_capture_keeps_wire_length_semantics() {
        let greater = compile("greater 100", 1);
        let frame = [0u8; 60];
        assert!(greater.matches(&frame, 1514));
        assert!(!greater.matches(&frame, 60));
        // Headers present but payload cut: still matches; a test past the cut rejects.
        let full = eth_ipv4(
            6,
            [192, 0, 2, 1],
            [198, 51, 100, 7],
            &tcp(1234, 80, 0x02, &[7; 200]),
        );
        let cut = &full[..54];
        let wire = full.len() as u32;
        assert!(compile("tcp port 80", 1).matches(cut, wire));
        assert!(!compile("tcp[100] = 7", 1).matches(cut, wire));
        assert!(compile("tcp[100] = 7", 1).matches(&full, wire));
    }

    // ---- frames for the differential test -----------------------------------------------

    #[cfg(feature = "bpf")]
    const MAC_A: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    #[cfg(feature = "bpf")]
    const MAC_B: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    #[cfg(feature = "bpf")]
    const BROADCAST: [u8; 6] = [0xff; 6];

    #[cfg(feature = "bpf")]
    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// The rest of an 802.1Q/802.1ad tag (TCI, then the inner EtherType), for a frame whose
    /// EtherType field holds the TPID.
    #[cfg(feature = "bpf")]
    fn tagged(vid: u16, inner: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&inner.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[cfg(feature = "bpf")]
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag_offset: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0x00];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34]);
        p.extend_from_slice(&frag_offset.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    #[cfg(feature = "bpf")]
    fn ipv6(next: u8, src_last: u8, dst_last: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        for last in [src_last, dst_last] {
            p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            p.extend_from_slice(&[0; 11]);
            p.push(last);
        }
        p.extend_from_slice(payload);
        p
    }

    #[cfg(feature = "bpf")]
    fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(payload);
        t
    }

    #[cfg(feature = "bpf")]
    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    #[cfg(feature = "bpf")]
    fn eth_ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        eth(MAC_B, MAC_A, 0x0800, &ipv4(proto, src, dst, 0, l4))
    }

    #[cfg(feature = "bpf")]
    fn arp_request() -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&MAC_A);
        a.extend_from_slice(&[192, 0, 2, 1]);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[192, 0, 2, 2]);
        a
    }

    /// Linux cooked header (`LINKTYPE_LINUX_SLL`): packet type, ARPHRD, address, protocol.
    #[cfg(feature = "bpf")]
    fn sll(packet_type: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&packet_type.to_be_bytes());
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&6u16.to_be_bytes());
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&protocol.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Network-layer packets (EtherType, bytes) shared by all three link types.
    #[cfg(feature = "bpf")]
    fn network_packets(rng: &mut Rng) -> Vec<(u16, Vec<u8>)> {
        let host = [192, 0, 2, 1];
        let peer = [198, 51, 100, 7];
        let other = [203, 0, 113, 9];
        let v4 = |proto, src, dst, l4: Vec<u8>| (0x0800, ipv4(proto, src, dst, 0, &l4));
        let v6 = |next, l4: Vec<u8>| (0x86dd, ipv6(next, 1, 2, &l4));
        let get = b"GET / HTTP/1.1\r\n";
        let mut v = vec![
            v4(6, peer, host, tcp(40000, 80, 0x02, b"")),
            v4(6, host, peer, tcp(443, 40001, 0x12, b"")),
            v4(6, host, other, tcp(22, 50000, 0x18, b"ssh")),
            v4(6, other, host, tcp(50000, 22, 0x10, b"")),
            v4(6, peer, other, tcp(8010, 8443, 0x11, &[0; 80])),
            v4(6, peer, host, tcp(1234, 80, 0x18, get)),
            v4(17, host, peer, udp(53, 33000, &[0xab; 40])),
            v4(17, other, host, udp(5353, 5353, b"")),
            v4(17, peer, [255; 4], udp(68, 67, &[0; 240])),
            v4(17, peer, [224, 0, 0, 251], udp(1500, 1500, b"")),
            v4(1, host, peer, vec![8, 0, 0, 0, 0, 1, 0, 1]),
            v4(1, peer, host, vec![0, 0, 0, 0, 0, 1, 0, 1]),
            v4(47, peer, other, vec![0, 0, 0x08, 0x00]),
            (0x0800, ipv4(6, peer, host, 0x2001, &tcp(1, 80, 0, b""))),
            (0x0800, ipv4(6, peer, host, 0x00b9, &[0; 16])),
            v6(6, tcp(40000, 443, 0x02, b"")),
            v6(17, udp(53, 40000, &[1; 30])),
            v6(58, vec![128, 0, 0, 0, 0, 1, 0, 1]),
            v6(44, vec![6, 0, 0, 1, 0, 0, 0, 0, 0, 80, 0, 80]),
            (0x0806, arp_request()),
            (0x88cc, vec![0x02, 0x07, 0x04]),
        ];
        // Random packets with a plausible start, so filters get past their first tests.
        let hosts = [host, peer, other, [0; 4], [255; 4]];
        let ports: [u16; 10] = [22, 53, 80, 443, 1000, 1500, 2000, 8010, 8443, 65535];
        for _ in 0..200 {
            let proto = rng.pick(&[1, 6, 17, 47, 58, 0]);
            let mut l4: Vec<u8> = (0..rng.below(60)).map(|_| rng.byte()).collect();
            if l4.len() >= 4 {
                l4[..2].copy_from_slice(&rng.pick(&ports).to_be_bytes());
                l4[2..4].copy_from_slice(&rng.pick(&ports).to_be_bytes());
            }
            let packet = if rng.below(3) == 0 {
                (0x86dd, ipv6(proto, rng.byte(), rng.byte(), &l4))
            } else {
                let any = rng.next() as u16;
                let frag = rng.pick(&[0, 0, 0x2000, 0x4000, 0x0001, any]);
                let mut p = ipv4(proto, rng.pick(&hosts), rng.pick(&hosts), frag, &l4);
                if rng.below(4) == 0 {
                    p[0] = 0x40 | (rng.byte() & 0x0f); // odd header lengths
                }
                (0x0800, p)
            };
            v.push(packet);
        }
        v
    }

    /// Cuts, flips and noise applied to a well-formed frame.
    #[cfg(feature = "bpf")]
    fn mutate(frame: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut f = frame.to_vec();
        match rng.below(3) {
            0 => f.truncate(rng.below(f.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(3) {
                    if !f.is_empty() {
                        let i = rng.below(f.len());
                        f[i] = rng.byte();
                    }
                }
            }
            _ => f.extend((0..rng.below(40)).map(|_| rng.byte())),
        }
        f
    }

    #[cfg(feature = "bpf")]
    fn frames_for(link_type: u32, rng: &mut Rng) -> Vec<Vec<u8>> {
        let packets = network_packets(rng);
        let mut frames = Vec::new();
        for (ethertype, packet) in &packets {
            match link_type {
                1 => {
                    let dst = rng.pick(&[MAC_A, MAC_B, BROADCAST, [0x01, 0, 0x5e, 0, 0, 1]]);
                    frames.push(eth(dst, MAC_A, *ethertype, packet));
                    for (tpid, vid) in [(0x8100, 10), (0x8100, 20), (0x88a8, 10), (0x9100, 4095)] {
                        frames.push(eth(MAC_B, MAC_A, tpid, &tagged(vid, *ethertype, packet)));
                    }
                    // Q-in-Q: outer 20, inner 10.
                    let inner = tagged(10, *ethertype, packet);
                    frames.push(eth(MAC_B, MAC_A, 0x88a8, &tagged(20, 0x8100, &inner)));
                }
                113 => {
                    for packet_type in [0, 4] {
                        frames.push(sll(packet_type, *ethertype, packet));
                    }
                }
                _ => {
                    if matches!(ethertype, 0x0800 | 0x86dd) {
                        frames.push(packet.clone());
                    }
                }
            }
        }
        let shaped = frames.len();
        for i in 0..shaped * 2 {
            let m = mutate(&frames[i % shaped], rng);
            frames.push(m);
        }
        for _ in 0..500 {
            let len = rng.pick(&[0, 1, 13, 14, 20, 34, 54, 64, 100, 200]) + rng.below(8);
            frames.push((0..len).map(|_| rng.byte()).collect());
        }
        frames
    }

    #[cfg(feature = "bpf")]
    const EXPRESSIONS: &[&str] = &[
        "",
        "tcp",
        "udp",
        "ip",
        "ip6",
        "arp",
        "icmp",
        "icmp6",
        "udp port 53",
        "vlan",
        "vlan 10",
        "vlan 20",
        "vlan and tcp",
        "vlan 20 and vlan 10 and ip",
        "tcp[tcpflags] & tcp-syn != 0",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)",
        "ip[6:2] & 0x1fff = 0",
        "greater 100",
        "less 64",
        "len >= 60 and len <= 100",
        "host 192.0.2.1 and not port 22",
        "net 198.51.100.0/24",
        "src net 192.0.2.0/25 or dst host 203.0.113.9",
        "ip proto 47",
        "ether broadcast",
        "ether multicast",
        "ether host 00:11:22:33:44:55",
        "ether proto 0x88cc",
        "ip multicast",
        "ip broadcast",
        "tcp and ( port 80 or port 443 or port 8010 or port 8443 )",
        "portrange 1000-2000",
        "ip6 and tcp port 443",
        "ip6 and udp",
        "icmp[icmptype] = icmp-echo",
        "ip[0] & 0xf != 5",
        "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
        "tcp[((tcp[12]&0xf0)>>2):4] = 0x47455420",
        "ip[1] * 3 + 1 = 1",
        "100 / ip[1] = 1",
        "100 % ip[1] = 0",
        "ip[1] ^ 0xff = 0xff",
        "-ip[1] = 0",
        "ip[8] << ip[9] = 0",
        "ip[8] >> ip[9] = 0",
        "ip[len - 1] = 0 or udp[len - 60] > 3",
        "inbound",
        "outbound",
        "not tcp and not udp",
        "udp and udp[8:4] = 0xabababab",
    ];

    #[cfg(feature = "bpf")]
    fn differential(link_type: u32, seed: u64) {
        let mut rng = Rng(seed);
        let frames = frames_for(link_type, &mut rng);
        let dlt = linktype_to_dlt(link_type) as i32;
        let mut compiled = 0;
        let mut accepted_somewhere = 0;
        for &expr in EXPRESSIONS {
            let cap = pcap::Capture::dead(pcap::Linktype(dlt)).unwrap();
            let oracle = cap.compile(expr, true);
            let ours = BpfFilter::compile(expr, link_type);
            let (oracle, ours) = match (oracle, ours) {
                (Ok(o), Ok(f)) => (o, f),
                (Err(_), Err(_)) => continue,
                (o, f) => panic!(
                    "{expr} on {link_type}: libpcap {:?}, ours {:?}",
                    o.err(),
                    f.err()
                ),
            };
            compiled += 1;
            let mut hits = 0;
            for frame in &frames {
                let want = oracle.filter(frame);
                let got = ours.matches(frame, frame.len() as u32);
                assert_eq!(
                    got, want,
                    "{expr:?} on link type {link_type}, frame {frame:02x?}"
                );
                hits += usize::from(got);
            }
            if hits > 0 && hits < frames.len() {
                accepted_somewhere += 1;
            }
        }
        assert!(
            compiled >= 30,
            "only {compiled} expressions compiled for {link_type}"
        );
        // Most filters should split the frames, or the comparison proves little.
        assert!(
            accepted_somewhere * 3 >= compiled * 2,
            "{accepted_somewhere} of {compiled} filters split the frames on {link_type}"
        );
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_ethernet() {
        differential(1, 0xe7e7_0001);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_linux_cooked() {
        differential(113, 0x5110_0113);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_raw_ip() {
        differential(101, 0x0a0a_0101);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn hand_built_frames_match_as_expected() {
        let syn = eth_ipv4(
            6,
            [198, 51, 100, 7],
            [192, 0, 2, 1],
            &tcp(40000, 80, 0x02, b""),
        );
        let dns = eth_ipv4(17, [192, 0, 2, 1], [198, 51, 100, 7], &udp(53, 40000, b"x"));
        let arp = eth(BROADCAST, MAC_A, 0x0806, &arp_request());
        let ip = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, &tcp(1, 443, 0x10, b""));
        let vlan10 = eth(MAC_B, MAC_A, 0x8100, &tagged(10, 0x0800, &ip));
        let cases: &[(&str, &[u8], bool)] = &[
            ("tcp[tcpflags] & tcp-syn != 0", &syn, true),
            ("tcp[tcpflags] & tcp-syn != 0", &dns, false),
            ("udp port 53", &dns, true),
            ("udp port 53", &syn, false),
            ("arp and ether broadcast", &arp, true),
            ("host 192.0.2.1 and not port 22", &syn, true),
            ("net 198.51.100.0/24", &dns, true),
            ("vlan 10 and tcp port 443", &vlan10, true),
            ("vlan 20", &vlan10, false),
            ("tcp", &vlan10, false),
        ];
        for &(expr, frame, want) in cases {
            let f = compile(expr, 1);
            assert_eq!(f.matches(frame, frame.len() as u32), want, "{expr}");
        }
    }

    /// `tcpdump -ddd -y EN10MB 'udp port 53'` (libpcap 1.10), pasted: a program compiled
    /// elsewhere runs without libpcap.
    const UDP_53_DDD: &str = "20
40 0 0 12
21 0 6 34525
48 0 0 20
21 0 15 17
40 0 0 54
21 12 0 53
40 0 0 56
21 10 11 53
21 0 10 2048
48 0 0 23
21 0 8 17
40 0 0 20
69 6 0 8191
177 0 0 14
72 0 0 14
21 2 0 53
72 0 0 16
21 0 1 53
6 0 0 262144
6 0 0 0
";

    #[test]
    fn ddd_text_runs_without_libpcap() {
        let f = BpfFilter::from_ddd("udp port 53", 1, UDP_53_DDD).unwrap();
        assert_eq!(f.instructions().len(), 20);
        assert_eq!(f.expression(), "udp port 53");
        let mut dns = vec![0u8; 14 + 20 + 8];
        dns[12..14].copy_from_slice(&[0x08, 0x00]);
        dns[14] = 0x45;
        dns[23] = 17;
        dns[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert!(f.matches(&dns, dns.len() as u32));
        dns[23] = 6; // TCP, same port
        assert!(!f.matches(&dns, dns.len() as u32));
        assert!(!f.matches(&dns[..20], dns.len() as u32));
    }

    #[test]
    fn ddd_text_errors_are_values() {
        let count = BpfFilter::from_ddd("x", 1, "3\n6 0 0 1\n").unwrap_err();
        assert!(count.message().contains("first line says 3"), "{count}");
        let bad = BpfFilter::from_ddd("x", 1, "1\n6 0 zero 1\n").unwrap_err();
        assert!(bad.message().contains("unreadable"), "{bad}");
        assert!(BpfFilter::from_ddd("x", 1, "").is_err());
        // The checker still applies: a program that does not end in a return.
        let open_end = BpfFilter::from_ddd("x", 1, "1\n40 0 0 12\n").unwrap_err();
        assert!(open_end.message().contains("checker"), "{open_end}");
        let ok = BpfFilter::from_program("all", 1, vec![insn(0x06, 0, 0, 1)]).unwrap();
        assert!(ok.matches(&[], 0));
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn ddd_text_is_what_libpcap_compiles() {
        // tcpdump's snapshot length is 262144, our dead handle's 65535: only the
        // accepting `ret` constants differ.
        let snap = |insns: &[BpfInsn]| -> Vec<BpfInsn> {
            insns
                .iter()
                .map(|i| match i.code {
                    0x06 if i.k != 0 => BpfInsn { k: 1, ..*i },
                    _ => *i,
                })
                .collect()
        };
        let ours = BpfFilter::from_ddd("udp port 53", 1, UDP_53_DDD).unwrap();
        let libpcap = compile("udp port 53", 1);
        assert_eq!(snap(ours.instructions()), snap(libpcap.instructions()));
    }
}
