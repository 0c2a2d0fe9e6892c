//! In-place decoders: every header is read through a `zerocopy` overlay borrowed from the
//! frame; nothing is copied or allocated, and no input can make them panic.
//!
//! [`decode`] walks a frame from its link layer inwards and returns a [`Packet`]: the layers it
//! recognised (outermost first), the undecoded rest (`raw`), the trailer beyond the innermost
//! length field (`padding`) and, when a header was cut short or malformed, a [`ParseError`]
//! naming the layer and the reason. Layer choice and boundaries follow scapy 2.5, whose class
//! and field names the JSON message keeps (see `docs/FORMAT.md`).

pub mod arp;
pub mod bytes;
pub mod dhcp;
pub mod dns;
pub mod ethernet;
pub mod fingerprint;
pub mod flow;
pub mod geneve;
pub mod gre;
pub mod http;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod ntp;
pub mod pppoe;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod vxlan;

use std::fmt;

/// Link types (LINKTYPE_* numbers of pcap/pcapng) the decoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// 0: BSD loopback, a 4-byte address family in the capturing host's byte order.
    Null,
    /// 1: Ethernet II.
    Ethernet,
    /// 101: raw IP, version from the first nibble.
    Raw,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
}

impl LinkType {
    /// Maps a LINKTYPE_* number; `None` for link types this decoder does not support.
    pub fn from_number(link_type: u32) -> Option<LinkType> {
        Some(match link_type {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The `LINKTYPE_*` number of this link type (as in pcap and pcapng files).
    pub fn number(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// A human name for a LINKTYPE_* number, for error messages.
pub fn link_type_name(link_type: u32) -> &'static str {
    match link_type {
        0 => "NULL (BSD loopback)",
        1 => "EN10MB (Ethernet)",
        6 => "IEEE802 (Token Ring)",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        101 => "RAW (raw IP)",
        104 => "C_HDLC (Cisco HDLC)",
        105 => "IEEE802_11 (Wi-Fi)",
        107 => "FRELAY",
        108 => "LOOP (OpenBSD loopback)",
        113 => "LINUX_SLL (Linux cooked v1)",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        127 => "IEEE802_11_RADIOTAP",
        143 => "DOCSIS",
        147..=162 => "USER",
        165 => "SCCP",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        215 => "IEEE802_15_4_NONASK_PHY",
        220 => "USB_LINUX_MMAPPED",
        228 => "IPV4",
        229 => "IPV6",
        230 => "IEEE802_15_4_NOFCS",
        239 => "NFLOG",
        249 => "USBPCAP",
        276 => "LINUX_SLL2 (Linux cooked v2)",
        _ => "unknown",
    }
}

/// The layer a [`ParseError`] happened in; also the JSON key stem of that layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerName {
    /// Ethernet II or IEEE 802.3 (`ether`).
    Ether,
    /// An 802.1Q or 802.1ad tag (`dot1q`).
    Dot1q,
    /// Linux cooked capture v1 (`cookedlinux`).
    Sll,
    /// Linux cooked capture v2 (`cookedlinuxv2`).
    Sll2,
    /// BSD loopback (`loopback`).
    Loopback,
    /// ARP (`arp`).
    Arp,
    /// IPv4 (`ip`).
    Ip,
    /// IPv6 (`ipv6`).
    Ipv6,
    /// An IPv6 extension header (`ipv6exthdr`).
    Ipv6Ext,
    /// ICMP (`icmp`).
    Icmp,
    /// ICMPv6 (`icmpv6`).
    Icmpv6,
    /// TCP (`tcp`).
    Tcp,
    /// UDP (`udp`).
    Udp,
    /// DNS (`dns`).
    Dns,
    /// VXLAN (`vxlan`).
    Vxlan,
    /// GENEVE (`geneve`).
    Geneve,
    /// GRE (`gre`).
    Gre,
    /// ERSPAN (`erspan`).
    Erspan,
    /// An MPLS label stack entry (`mpls`).
    Mpls,
    /// PPPoE (`pppoe`).
    Pppoe,
    /// PPP (`ppp`).
    Ppp,
    /// BOOTP and DHCP (`bootp`).
    Bootp,
    /// NTP (`ntpheader`).
    Ntp,
    /// An HTTP/1.x head (`http`).
    Http,
    /// A TLS hello (`tls`).
    Tls,
}

impl LayerName {
    /// The layer's JSON key stem (`ether`, `ip`, `tcp`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LayerName::Ether => "ether",
            LayerName::Dot1q => "dot1q",
            LayerName::Sll => "cookedlinux",
            LayerName::Sll2 => "cookedlinuxv2",
            LayerName::Loopback => "loopback",
            LayerName::Arp => "arp",
            LayerName::Ip => "ip",
            LayerName::Ipv6 => "ipv6",
            LayerName::Ipv6Ext => "ipv6exthdr",
            LayerName::Icmp => "icmp",
            LayerName::Icmpv6 => "icmpv6",
            LayerName::Tcp => "tcp",
            LayerName::Udp => "udp",
            LayerName::Dns => "dns",
            LayerName::Vxlan => "vxlan",
            LayerName::Geneve => "geneve",
            LayerName::Gre => "gre",
            LayerName::Erspan => "erspan",
            LayerName::Mpls => "mpls",
            LayerName::Pppoe => "pppoe",
            LayerName::Ppp => "ppp",
            LayerName::Bootp => "bootp",
            LayerName::Ntp => "ntpheader",
            LayerName::Http => "http",
            LayerName::Tls => "tls",
        }
    }
}

/// Why a layer could not be (fully) decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The header is cut short by the end of the captured bytes.
    Truncated,
    /// A length or offset field points outside the data or below the minimum.
    BadLength,
    /// A DNS name compression pointer loops or a name exceeds its bounds.
    BadName,
    /// A DNS section claims more records than its bytes hold.
    BadRecord,
    /// A DNS message goes past a per-message decoding limit (expanded name bytes, entries per
    /// section); the rest stays raw.
    OverLimit,
}

impl ErrorKind {
    /// Every kind, in [`ErrorKind::index`] order (for per-kind counters).
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Truncated,
        ErrorKind::BadLength,
        ErrorKind::BadName,
        ErrorKind::BadRecord,
        ErrorKind::OverLimit,
    ];

    /// The kind as shown in messages and counters (`truncated`, `bad length`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadLength => "bad length",
            ErrorKind::BadName => "bad name",
            ErrorKind::BadRecord => "bad record",
            ErrorKind::OverLimit => "over limit",
        }
    }

    /// Position in [`ErrorKind::ALL`]: an index into per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A malformed or truncated layer: a small `Copy` value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The layer that could not be decoded.
    pub layer: LayerName,
    /// What was wrong with it.
    pub kind: ErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.layer.as_str(), self.kind.as_str())
    }
}

impl ParseError {
    pub(crate) fn new(layer: LayerName, kind: ErrorKind) -> ParseError {
        ParseError { layer, kind }
    }
}

/// One decoded layer, borrowing its header from the frame.
#[derive(Clone, Copy, Debug)]
pub enum Layer<'a> {
    /// Ethernet II header.
    Ether(&'a ethernet::EtherHdr),
    /// An IEEE 802.3 frame: the EtherType field holds a length (scapy `Dot3`).
    Dot3(&'a ethernet::EtherHdr),
    /// An 802.1Q (`dot1q`) or 802.1ad (`dot1ad`) tag.
    Vlan {
        /// The tag's TCI and inner EtherType.
        hdr: &'a ethernet::VlanHdr,
        /// True for an 802.1ad (S-tag, EtherType 0x88a8) tag.
        ad: bool,
    },
    /// Linux cooked capture v1 header.
    Sll(&'a ethernet::SllHdr),
    /// Linux cooked capture v2 header.
    Sll2(&'a ethernet::Sll2Hdr),
    /// BSD loopback; the value scapy shows as `type` (the family's first byte).
    Loopback(u32),
    /// ARP message.
    Arp(arp::Arp<'a>),
    /// IPv4 header and options.
    Ipv4(ipv4::Ipv4<'a>),
    /// IPv6 fixed header.
    Ipv6(ipv6::Ipv6<'a>),
    /// IPv6 extension header (hop-by-hop, routing, fragment, destination options).
    Ipv6Ext(ipv6::ExtHeader<'a>),
    /// ICMP header.
    Icmp(icmp::Icmp<'a>),
    /// ICMPv6 message.
    Icmpv6(icmpv6::Icmpv6<'a>),
    /// A neighbor discovery option of an ICMPv6 message.
    NdOption(icmpv6::NdOption<'a>),
    /// TCP header and options.
    Tcp(tcp::Tcp<'a>),
    /// UDP header.
    Udp(udp::Udp<'a>),
    /// DNS message.
    Dns(dns::Dns<'a>),
    /// VXLAN header.
    Vxlan(vxlan::Vxlan<'a>),
    /// GENEVE header and options.
    Geneve(geneve::Geneve<'a>),
    /// GRE, or the enhanced GRE header of PPTP (scapy `GRE_PPTP`).
    Gre(gre::Gre<'a>),
    /// ERSPAN header (type I, II, III or III's platform-specific sub-header).
    Erspan(gre::Erspan<'a>),
    /// One MPLS label stack entry.
    Mpls(&'a mpls::MplsHdr),
    /// PPPoE session (`pppoe`) or discovery (`pppoed`) header.
    Pppoe(pppoe::Pppoe<'a>),
    /// PPP: the protocol field's value.
    Ppp(u16),
    /// NTP (scapy `NTPHeader`).
    Ntp(ntp::Ntp<'a>),
    /// BOOTP fixed header (DHCP when the magic cookie follows).
    Bootp(dhcp::Bootp<'a>),
    /// The DHCP options after BOOTP's magic cookie.
    Dhcp(dhcp::Dhcp<'a>),
    /// An HTTP/1.x request or response head (scapy `HTTPRequest` / `HTTPResponse`).
    Http(http::Http<'a>),
    /// A TLS handshake record with a ClientHello or ServerHello.
    Tls(tls::Tls<'a>),
}

impl Layer<'_> {
    /// The name a `decode_error` gives this layer.
    pub fn name(&self) -> LayerName {
        match self {
            Layer::Ether(_) | Layer::Dot3(_) => LayerName::Ether,
            Layer::Vlan { .. } => LayerName::Dot1q,
            Layer::Sll(_) => LayerName::Sll,
            Layer::Sll2(_) => LayerName::Sll2,
            Layer::Loopback(_) => LayerName::Loopback,
            Layer::Arp(_) => LayerName::Arp,
            Layer::Ipv4(_) => LayerName::Ip,
            Layer::Ipv6(_) => LayerName::Ipv6,
            Layer::Ipv6Ext(_) => LayerName::Ipv6Ext,
            Layer::Icmp(_) => LayerName::Icmp,
            Layer::Icmpv6(_) | Layer::NdOption(_) => LayerName::Icmpv6,
            Layer::Tcp(_) => LayerName::Tcp,
            Layer::Udp(_) => LayerName::Udp,
            Layer::Dns(_) => LayerName::Dns,
            Layer::Vxlan(_) => LayerName::Vxlan,
            Layer::Geneve(_) => LayerName::Geneve,
            Layer::Gre(_) => LayerName::Gre,
            Layer::Erspan(_) => LayerName::Erspan,
            Layer::Mpls(_) => LayerName::Mpls,
            Layer::Pppoe(_) => LayerName::Pppoe,
            Layer::Ppp(_) => LayerName::Ppp,
            Layer::Ntp(_) => LayerName::Ntp,
            Layer::Bootp(_) | Layer::Dhcp(_) => LayerName::Bootp,
            Layer::Http(_) => LayerName::Http,
            Layer::Tls(_) => LayerName::Tls,
        }
    }
}

/// Most layers a frame can yield; deeper nesting ends in `raw` with a `decode_error` of
/// reason `over limit`.
pub const MAX_LAYERS: usize = 16;

/// A decoded frame. `layers[..len]` are valid; `raw` and `padding` are sub-slices of the frame.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// `layers[..len]` are the decoded layers; the rest are placeholders, never read.
    layers: [Layer<'a>; MAX_LAYERS],
    len: usize,
    /// Bytes after the last decoded layer (scapy's `Raw`).
    pub raw: &'a [u8],
    /// Trailer beyond the innermost length field (scapy's `Padding`).
    pub padding: &'a [u8],
    /// First malformation met, if any.
    pub error: Option<ParseError>,
    /// Length of the decoded frame in bytes.
    frame_len: usize,
    /// A layer was refused because [`MAX_LAYERS`] were there already (see
    /// [`Packet::over_limit`]).
    refused: bool,
}

impl<'a> Packet<'a> {
    fn new() -> Packet<'a> {
        Packet {
            frame_len: 0,
            layers: [Layer::Loopback(0); MAX_LAYERS],
            len: 0,
            raw: &[],
            padding: &[],
            error: None,
            refused: false,
        }
    }

    /// The decoded layers, outermost first.
    pub fn layers(&self) -> impl Iterator<Item = &Layer<'a>> {
        self.layers[..self.len].iter()
    }

    /// Length of the frame this packet was decoded from, in bytes (what bounds the size of its
    /// message, see `encode::max_message_bytes`).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// How many layers were decoded.
    pub fn layer_count(&self) -> usize {
        self.len
    }

    /// The decoded layers as a slice, outermost first.
    pub fn layers_slice(&self) -> &[Layer<'a>] {
        &self.layers[..self.len]
    }

    /// Adds a layer; false when [`MAX_LAYERS`] are there already: the walk stops, what is
    /// left is `raw`, and the refusal is noted for [`Packet::over_limit`] (a store, not a
    /// call: this is inlined into every decoder, and a call here made the walk too big for
    /// the common decoders to be inlined into it).
    fn push(&mut self, layer: Layer<'a>) -> bool {
        if self.len < MAX_LAYERS {
            self.layers[self.len] = layer;
            self.len += 1;
            true
        } else {
            self.refused = true;
            false
        }
    }

    /// The walk stopped at [`MAX_LAYERS`] with bytes still to decode: the packet says so
    /// (`decode_error` `{"layer": <the last layer kept>, "reason": "over limit"}`) unless it
    /// has an error already.
    #[cold]
    #[inline(never)]
    fn over_limit(&mut self) {
        if self.error.is_none() {
            if let Some(last) = self.layers_slice().last() {
                self.error = Some(ParseError::new(last.name(), ErrorKind::OverLimit));
            }
        }
    }
}

/// What comes next while walking inwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Ether,
    /// Continue by EtherType (Ethernet, VLAN and SLL all use the same table).
    EtherType(u16),
    Ipv4 {
        quoted: bool,
    },
    Ipv6 {
        quoted: bool,
    },
    /// IPv4 version nibble or IPv6, whichever the first byte says (link type 101).
    IpAny,
    /// An IPv6 next-header value; `quoted` inside an ICMPv6 error.
    Ipv6Nh {
        nh: u8,
        quoted: bool,
    },
    /// An IPv4 protocol number (only reached when the fragment offset is 0).
    IpProto {
        proto: u8,
        quoted: bool,
    },
    Tcp {
        quoted: bool,
    },
    Udp {
        quoted: bool,
    },
    Icmp {
        quoted: bool,
    },
    Icmpv6,
    NdOptions,
    Dns {
        tcp: bool,
    },
    Arp,
    Vxlan,
    Geneve,
    Gre,
    Erspan(gre::ErspanKind),
    Mpls,
    Pppoe {
        discovery: bool,
    },
    Ppp,
    /// UDP port 123.
    Ntp,
    /// UDP 67 <-> 68.
    Bootp,
    /// A TCP payload that may start with an HTTP/1.x request or status line.
    Http,
    /// A TCP payload that may start with a TLS handshake record.
    Tls,
    /// Nothing more to decode: the rest is `raw`.
    Stop,
}

/// The walk's cursor: `data[pos..end]` is what the next layer may use; `data[end..]` is
/// padding already split off by an outer length field.
pub(crate) struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub end: usize,
    /// What follows the bottom MPLS label (a decode option).
    pub payload_of_mpls: mpls::MplsPayload,
}

impl<'a> Cursor<'a> {
    /// The bytes available to the next layer.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..self.end).unwrap_or(&[])
    }

    /// Moves `pos` forward by `n` bytes (never past `end`).
    #[inline]
    pub fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.end);
    }

    /// Limits the remaining payload to `len` bytes from `pos`: the rest becomes padding.
    #[inline]
    pub fn limit(&mut self, len: usize) {
        let new_end = self.pos.saturating_add(len);
        if new_end < self.end {
            self.end = new_end;
        }
    }
}

/// Choices the bytes cannot make for the decoder (defaults: what a frame most likely holds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// What follows the bottom MPLS label (`--mpls-payload`).
    pub mpls_payload: mpls::MplsPayload,
}

/// Decodes one frame captured on `link`.
pub fn decode(link: LinkType, frame: &[u8]) -> Packet<'_> {
    decode_with_options(link, frame, &DecodeOptions::default())
}

/// Decodes one frame captured on `link` with non-default options.
pub fn decode_with_options<'a>(
    link: LinkType,
    frame: &'a [u8],
    opts: &DecodeOptions,
) -> Packet<'a> {
    let mut pkt = Packet::new();
    decode_into(&mut pkt, link, frame, opts);
    pkt
}

/// Decodes one frame and hands the result to `f` without moving it (a [`Packet`] is a few
/// hundred bytes; the per-packet path avoids copying it out).
#[inline]
pub fn decode_with<R>(link: LinkType, frame: &[u8], f: impl FnOnce(&Packet<'_>) -> R) -> R {
    decode_with_options_then(link, frame, &DecodeOptions::default(), f)
}

/// [`decode_with`] with non-default options.
#[inline]
pub fn decode_with_options_then<R>(
    link: LinkType,
    frame: &[u8],
    opts: &DecodeOptions,
    f: impl FnOnce(&Packet<'_>) -> R,
) -> R {
    let mut pkt = Packet::new();
    decode_into(&mut pkt, link, frame, opts);
    f(&pkt)
}

fn decode_into<'a>(pkt: &mut Packet<'a>, link: LinkType, frame: &'a [u8], opts: &DecodeOptions) {
    let mut cur = Cursor {
        data: frame,
        pos: 0,
        end: frame.len(),
        payload_of_mpls: opts.mpls_payload,
    };
    let mut next = match link {
        LinkType::Ethernet => Next::Ether,
        LinkType::Raw => Next::IpAny,
        LinkType::Ipv4 => Next::Ipv4 { quoted: false },
        LinkType::Ipv6 => Next::Ipv6 { quoted: false },
        LinkType::LinuxSll => ethernet::decode_sll(&mut cur, pkt),
        LinkType::LinuxSll2 => ethernet::decode_sll2(&mut cur, pkt),
        LinkType::Null => ethernet::decode_loopback(&mut cur, pkt),
    };
    // The walk. The rare layers' decoders (ARP, ICMPv6, tunnels, applications) are
    // `#[inline(never)]`: inlined here they nearly doubled this function's code, and the
    // common path (Ethernet, IP, TCP, UDP, DNS, ICMP) paid for it in instruction-cache misses.
    loop {
        if pkt.len >= MAX_LAYERS {
            if pkt.refused {
                pkt.over_limit();
            } else if next != Next::Stop && pkt.error.is_none() && !cur.rest().is_empty() {
                flag_if_over_limit(next, &cur, pkt);
            }
            break;
        }
        // The same steps as [`step`], written out here, so the hot loop's code is what it was
        // before `step` existed (callgrind: 13 fewer instructions per packet than calling it).
        next = match next {
            Next::Stop => break,
            Next::Ether => ethernet::decode_ether(&mut cur, pkt),
            Next::EtherType(t) => ethernet::by_ether_type(t, &mut cur, pkt),
            Next::Arp => arp::decode(&mut cur, pkt),
            Next::IpAny => match cur.rest().first().map(|b| b >> 4) {
                Some(6) => ipv6::decode(&mut cur, pkt, false),
                Some(_) => ipv4::decode(&mut cur, pkt, false),
                None => Next::Stop,
            },
            Next::Ipv4 { quoted } => ipv4::decode(&mut cur, pkt, quoted),
            Next::Ipv6 { quoted } => ipv6::decode(&mut cur, pkt, quoted),
            Next::IpProto { proto, quoted } => ipv4::by_proto(proto, quoted),
            Next::Ipv6Nh { nh, quoted } => ipv6::by_next_header(nh, quoted, &mut cur, pkt),
            Next::Tcp { quoted } => tcp::decode(&mut cur, pkt, quoted),
            Next::Udp { quoted } => udp::decode(&mut cur, pkt, quoted),
            Next::Icmp { quoted } => icmp::decode(&mut cur, pkt, quoted),
            Next::Icmpv6 => icmpv6::decode(&mut cur, pkt),
            Next::NdOptions => icmpv6::decode_nd_option(&mut cur, pkt),
            Next::Dns { tcp } => dns::decode(&mut cur, pkt, tcp),
            Next::Vxlan => vxlan::decode(&mut cur, pkt),
            Next::Geneve => geneve::decode(&mut cur, pkt),
            Next::Gre => gre::decode(&mut cur, pkt),
            Next::Erspan(kind) => gre::decode_erspan(kind, &mut cur, pkt),
            Next::Mpls => mpls::decode(&mut cur, pkt),
            Next::Pppoe { discovery } => pppoe::decode(&mut cur, pkt, discovery),
            Next::Ppp => pppoe::decode_ppp(&mut cur, pkt),
            Next::Ntp => ntp::decode(&mut cur, pkt),
            Next::Bootp => dhcp::decode(&mut cur, pkt),
            Next::Http => http::decode(&mut cur, pkt),
            Next::Tls => tls::decode(&mut cur, pkt),
        };
    }
    pkt.raw = cur.rest();
    pkt.padding = frame.get(cur.end..).unwrap_or(&[]);
    pkt.frame_len = frame.len();
}

/// One step of the walk, for [`flag_if_over_limit`]: decodes what `next` names (pushing its
/// layer, if any) and says what comes after it. The same match as the walk's own loop.
#[inline(never)]
fn step<'a>(next: Next, cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    match next {
        Next::Stop => Next::Stop,
        Next::Ether => ethernet::decode_ether(cur, pkt),
        Next::EtherType(t) => ethernet::by_ether_type(t, cur, pkt),
        Next::Arp => arp::decode(cur, pkt),
        Next::IpAny => match cur.rest().first().map(|b| b >> 4) {
            Some(6) => ipv6::decode(cur, pkt, false),
            Some(_) => ipv4::decode(cur, pkt, false),
            None => Next::Stop,
        },
        Next::Ipv4 { quoted } => ipv4::decode(cur, pkt, quoted),
        Next::Ipv6 { quoted } => ipv6::decode(cur, pkt, quoted),
        Next::IpProto { proto, quoted } => ipv4::by_proto(proto, quoted),
        Next::Ipv6Nh { nh, quoted } => ipv6::by_next_header(nh, quoted, cur, pkt),
        Next::Tcp { quoted } => tcp::decode(cur, pkt, quoted),
        Next::Udp { quoted } => udp::decode(cur, pkt, quoted),
        Next::Icmp { quoted } => icmp::decode(cur, pkt, quoted),
        Next::Icmpv6 => icmpv6::decode(cur, pkt),
        Next::NdOptions => icmpv6::decode_nd_option(cur, pkt),
        Next::Dns { tcp } => dns::decode(cur, pkt, tcp),
        Next::Vxlan => vxlan::decode(cur, pkt),
        Next::Geneve => geneve::decode(cur, pkt),
        Next::Gre => gre::decode(cur, pkt),
        Next::Erspan(kind) => gre::decode_erspan(kind, cur, pkt),
        Next::Mpls => mpls::decode(cur, pkt),
        Next::Pppoe { discovery } => pppoe::decode(cur, pkt, discovery),
        Next::Ppp => pppoe::decode_ppp(cur, pkt),
        Next::Ntp => ntp::decode(cur, pkt),
        Next::Bootp => dhcp::decode(cur, pkt),
        Next::Http => http::decode(cur, pkt),
        Next::Tls => tls::decode(cur, pkt),
    }
}

/// The walk reached [`MAX_LAYERS`] with `next` still to do: follows it on copies of the
/// cursor and packet. Only if a step tries to add a layer (which the full packet refuses)
/// is `pkt` flagged `over limit`; steps that add none (a protocol number
/// nothing decodes, a payload that is not the application its port suggests) leave it whole,
/// as the walk without the limit would.
#[cold]
#[inline(never)]
fn flag_if_over_limit<'a>(mut next: Next, cur: &Cursor<'a>, pkt: &mut Packet<'a>) {
    let mut probe = *pkt;
    let mut c = Cursor {
        data: cur.data,
        pos: cur.pos,
        end: cur.end,
        payload_of_mpls: cur.payload_of_mpls,
    };
    // Every step but a few dispatches (which lead to one that pushes or stops) tries to push,
    // so this ends within a handful of steps; the bound is only a guard.
    for _ in 0..MAX_LAYERS {
        if next == Next::Stop || probe.error.is_some() || probe.refused {
            break;
        }
        next = step(next, &mut c, &mut probe);
    }
    if probe.refused {
        pkt.over_limit();
    }
}

/// Records a malformation (the first one wins) and stops the walk.
#[inline]
pub(crate) fn fail(pkt: &mut Packet<'_>, layer: LayerName, kind: ErrorKind) -> Next {
    note(pkt, layer, kind);
    Next::Stop
}

/// Records a malformation without stopping (the layer itself was still usable).
#[inline]
pub(crate) fn note(pkt: &mut Packet<'_>, layer: LayerName, kind: ErrorKind) {
    if pkt.error.is_none() {
        pkt.error = Some(ParseError::new(layer, kind));
    }
}

/// Pushes a layer; when the layer budget is exhausted the walk stops and the rest is raw.
#[inline]
pub(crate) fn push<'a>(pkt: &mut Packet<'a>, layer: Layer<'a>) -> bool {
    pkt.push(layer)
}
