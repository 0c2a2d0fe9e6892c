//! The packet writer: appends one JSON message per packet (see `docs/FORMAT.md`) to a reused
//! buffer. No intermediate tree, no per-packet allocation once the buffer has grown.

use super::community_id;
use super::hex::{
    fill_mac6, ipv6_text, push_dec, push_hex, push_ipv4, push_ipv6, push_latin1_escaped, push_mac,
    push_mac6, push_str_escaped, push_u64, put_ipv4, put_nine_digits, Decimal,
};
use super::out::{Fixed, Out};
use crate::decode::arp::{AddrForm, Arp};
use crate::decode::bytes;
use crate::decode::dns::{self, Dns, RdataNames};
use crate::decode::ethernet::{Sll2Hdr, SllHdr};
use crate::decode::icmp::{self, Icmp};
use crate::decode::icmpv6::{Icmpv6, Icmpv6Kind, NdOptKind, NdOption};
use crate::decode::ipv4::Ipv4;
use crate::decode::ipv6::{ExtHeader, ExtKind, Ipv6};
use crate::decode::tcp::{Tcp, TcpOptions};
use crate::decode::udp::Udp;
use crate::decode::{geneve::Geneve, gre, gre::Gre, mpls::MplsHdr, pppoe::Pppoe, vxlan::Vxlan};
use crate::decode::{Layer, Packet};
use crate::time::format_created;

// Field writers. The names are literals, so each key token is a constant of known length
// and the compiler copies it inline (no call per field).
macro_rules! key {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}
macro_rules! num {
    ($out:expr, $name:literal, $v:expr) => {{
        key!($out, $name);
        push_dec($out, $v);
    }};
}
macro_rules! num_first {
    ($out:expr, $name:literal, $v:expr) => {{
        $out.extend_from_slice(concat!("\"", $name, "\":").as_bytes());
        push_dec($out, $v);
    }};
}
macro_rules! hex_field {
    ($out:expr, $name:literal, $bytes:expr) => {{
        key!($out, $name);
        $out.push(b'"');
        push_hex($out, $bytes);
        $out.push(b'"');
    }};
}
macro_rules! ipv4_field {
    ($out:expr, $name:literal, $a:expr) => {{
        key!($out, $name);
        push_ipv4_or_hex($out, $a);
    }};
}
macro_rules! ipv6_field {
    ($out:expr, $name:literal, $a:expr) => {{
        key!($out, $name);
        push_ipv6_or_hex($out, $a);
    }};
}

// Writers into a fixed window (`Out::fixed`): each key a constant padded to a multiple of
// eight bytes, written by whole words; the window's room was checked once for the layer.
macro_rules! wkey {
    ($w:expr, $text:expr) => {{
        const TEXT: &str = $text;
        const BLOCK: [u8; TEXT.len().div_ceil(8) * 8] = padded_block(TEXT);
        $w.put_padded(&BLOCK, TEXT.len());
    }};
}
macro_rules! wnum {
    ($w:expr, $name:literal, $v:expr) => {{
        wkey!($w, concat!(",\"", $name, "\":"));
        Decimal::put_to($v, $w);
    }};
}
macro_rules! wnum_first {
    ($w:expr, $name:literal, $v:expr) => {{
        wkey!($w, concat!("\"", $name, "\":"));
        Decimal::put_to($v, $w);
    }};
}

/// `text` in an array of `K` bytes (at least its length), zeros after it.
const fn padded_block<const K: usize>(text: &str) -> [u8; K] {
    let b = text.as_bytes();
    let mut block = [0u8; K];
    let mut i = 0;
    while i < b.len() {
        block[i] = b[i];
        i += 1;
    }
    block
}

mod apps;

/// What the capture says about a frame besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// Bytes captured.
    pub cap_len: u32,
}

/// Writes packet messages. Holds the escaped `source` value and a one-entry cache of the
/// formatted `created` second, so consecutive packets of the same second cost nothing there.
#[derive(Clone, Debug)]
pub struct JsonEncoder {
    source_json: Vec<u8>,
    /// The second [`JsonEncoder::head`] was made for.
    cached_sec: i64,
    /// What follows `data` up to the nanoseconds and changes only with the second:
    /// `},"created":"...","source":"...","time_ns":` and, for a second after the epoch, its
    /// digits (the nanoseconds' nine follow). Rebuilt in place when the second changes.
    head: Vec<u8>,
    /// `head` padded to [`HEAD_BYTES`] (when it fits), written by one fixed-size copy.
    head_block: [u8; HEAD_BYTES],
    /// Seed of the Community ID hash (`--community-id-seed`, default 0).
    community_id_seed: u16,
    community_ids: community_id::IdCache,
    /// Where the innermost `community_id` text (`1:...`) starts in the last message written,
    /// from the message's first byte; `None` when it has none.
    community_id_at: Option<usize>,
}

impl JsonEncoder {
    /// `source_host` is the `source` value of every message (`SOURCE_HOST`, default
    /// `localdev`).
    pub fn new(source_host: &str) -> JsonEncoder {
        // Escaping grows a byte to at most six (`\u00XX`).
        let mut source_json = vec![0u8; 6 * source_host.len()];
        let mut out = Out::new(&mut source_json);
        push_str_escaped(&mut out, source_host);
        let n = out.len();
        source_json.truncate(n);
        JsonEncoder {
            source_json,
            cached_sec: i64::MIN,
            head: Vec::new(),
            head_block: [0; HEAD_BYTES],
            community_id_seed: 0,
            community_ids: community_id::IdCache::default(),
            community_id_at: None,
        }
    }

    /// Uses `seed` for the Community ID of every message (the specification's default is 0).
    pub fn with_community_id_seed(mut self, seed: u16) -> JsonEncoder {
        self.community_id_seed = seed;
        self
    }

    /// Where the innermost `community_id` value (`1:` and the base64 digest) starts in the
    /// message written last, counted from its first byte; `None` when that message has no
    /// `community_id`. For `--partitions` (see `encode::batch::flow_hash`), which then need
    /// not search the message for it.
    pub fn community_id_at(&self) -> Option<usize> {
        self.community_id_at
    }

    /// Appends the message for `pkt` and a newline to `out`.
    pub fn encode(&mut self, out: &mut Vec<u8>, meta: &FrameMeta, pkt: &Packet<'_>) {
        let start = out.len();
        let end = self.encode_at(out, start, meta, pkt);
        out.truncate(end);
    }

    /// Writes the message for `pkt` and a newline into `buf` at offset `used` and returns the
    /// new end. `buf.len()` is treated as room to write in, not as content: it is grown
    /// (zero-filled) only when the packet might not fit, so a buffer reused across packets is
    /// never cleared or re-zeroed. This is the workers' path.
    pub fn encode_at(
        &mut self,
        buf: &mut Vec<u8>,
        used: usize,
        meta: &FrameMeta,
        pkt: &Packet<'_>,
    ) -> usize {
        self.encode_marked_at(buf, used, meta, pkt, 0)
    }

    /// As [`JsonEncoder::encode_at`] for a datagram reassembled from `fragments` fragments:
    /// the envelope says so (`"reassembled":{"fragments":N}` after `cap_len`).
    pub fn encode_reassembled_at(
        &mut self,
        buf: &mut Vec<u8>,
        used: usize,
        meta: &FrameMeta,
        pkt: &Packet<'_>,
        fragments: u16,
    ) -> usize {
        self.encode_marked_at(buf, used, meta, pkt, fragments.max(1))
    }

    /// `reassembled`: 0 for a captured frame, else the fragment count.
    #[inline(always)]
    fn encode_marked_at(
        &mut self,
        buf: &mut Vec<u8>,
        used: usize,
        meta: &FrameMeta,
        pkt: &Packet<'_>,
        reassembled: u16,
    ) -> usize {
        let bound = size_bound(pkt, &self.source_json);
        if buf.len() < used + bound {
            buf.resize(used + bound, 0);
        }
        let written = {
            let mut out = Out::new(&mut buf[used..]);
            self.write_message(&mut out, meta, pkt, reassembled);
            if !out.overflowed() {
                return used + out.len();
            }
            out.len()
        };
        // The estimate was short (it should not be): grow to the exact size and write again.
        buf.resize(used + written, 0);
        let mut out = Out::new(&mut buf[used..]);
        self.write_message(&mut out, meta, pkt, reassembled);
        used + out.len()
    }

    fn write_message(
        &mut self,
        out: &mut Out<'_>,
        meta: &FrameMeta,
        pkt: &Packet<'_>,
        reassembled: u16,
    ) {
        self.community_id_at = None;
        out.extend_from_slice(b"{\"data\":");
        let ip = write_layers(out, pkt);
        let sec = meta.time_ns.div_euclid(1_000_000_000);
        if sec != self.cached_sec {
            self.cache_head(sec);
        }
        match self.head.len() {
            n if n <= HEAD_BYTES => out.extend_padded(&self.head_block, n),
            _ => out.extend_from_slice(&self.head),
        }
        let nanos = meta.time_ns.rem_euclid(1_000_000_000) as u32;
        if sec <= 0 {
            if meta.time_ns < 0 {
                out.push(b'-');
            }
            push_u64(out, meta.time_ns.unsigned_abs());
        }
        // Every write starts before byte 48: 16 bytes for the nine digits and per key, 16 per
        // `u32` number.
        out.fixed::<64>(|w| {
            if sec > 0 {
                // The seconds are in `head`: nine digits of nanoseconds follow them (cheaper
                // than one 19-digit number).
                put_nine_digits(w, nanos);
            }
            wnum!(w, "wire_len", meta.wire_len);
            wnum!(w, "cap_len", meta.cap_len);
        });
        if reassembled != 0 {
            out.extend_from_slice(b",\"reassembled\":{\"fragments\":");
            push_dec(out, reassembled);
            out.push(b'}');
        }
        self.write_community_ids(out, pkt, ip);
        apps::write_fingerprints(out, pkt);
        if let Some(e) = pkt.error {
            out.extend_from_slice(b",\"decode_error\":{\"layer\":\"");
            out.extend_from_slice(e.layer.as_str().as_bytes());
            out.extend_from_slice(b"\",\"reason\":\"");
            out.extend_from_slice(e.kind.as_str().as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"}\n");
    }

    /// Makes [`JsonEncoder::head`] for second `sec` (once per second of capture time, so
    /// consecutive packets of the same second share it).
    #[cold]
    #[inline(never)]
    fn cache_head(&mut self, sec: i64) {
        self.cached_sec = sec;
        let head = &mut self.head;
        head.clear();
        head.extend_from_slice(b"},\"created\":\"");
        head.extend_from_slice(&format_created(sec));
        head.extend_from_slice(b"\",\"source\":\"");
        head.extend_from_slice(&self.source_json);
        head.extend_from_slice(b"\",\"time_ns\":");
        if sec > 0 {
            let mut digits = [0u8; 24];
            let mut o = Out::new(&mut digits);
            push_u64(&mut o, sec.unsigned_abs());
            let n = o.len();
            head.extend_from_slice(digits.get(..n).unwrap_or(&[]));
        }
        self.head_block = [0; HEAD_BYTES];
        if let Some(d) = self.head_block.get_mut(..head.len()) {
            d.copy_from_slice(head);
        }
    }
}

/// Room for [`JsonEncoder::head`] in one fixed-size copy: the envelope's constant text
/// (37 bytes), 19 bytes of time and at most 10 of seconds leave 62 for the escaped source host;
/// a longer head is copied by length.
const HEAD_BYTES: usize = 128;

/// The largest message, newline included, that a frame of `frame_len` captured bytes can
/// produce with source host `source` (docs/FORMAT.md, "Size of a message"):
/// `512 * (MAX_LAYERS + 1) + 16 * frame_len + MAX_MESSAGE_NAME_JSON_BYTES + 6 * source.len()`.
/// Every layer's keys fit in 512 bytes plus at most 16 JSON bytes per byte of its own header
/// (hex, numbers, TCP and IPv6 option lists, DNS record keys), `raw` and `padding` are two hex
/// digits per byte, DNS names as written in JSON are capped per message, and the source is escaped once (six bytes per byte at
/// most). Tested against the real encoder in tests/it/properties.rs.
pub fn max_message_bytes(frame_len: usize, source: &str) -> usize {
    512 * (crate::decode::MAX_LAYERS + 1)
        + 16 * frame_len
        + dns::MAX_MESSAGE_NAME_JSON_BYTES
        + 6 * source.len()
}

impl JsonEncoder {
    /// `community_id` of the innermost flow and, for a tunnelled packet, `community_id_outer`
    /// of the outermost one (docs/FORMAT.md).
    #[inline]
    /// `ip`: the IP headers' indices as [`write_layers`] returns them.
    fn write_community_ids(
        &mut self,
        out: &mut Out<'_>,
        pkt: &Packet<'_>,
        ip: Option<(usize, usize)>,
    ) {
        // The flows of `flow::flow_tuples_at`, each found and looked up in one call.
        let Some((outermost, innermost)) = ip else {
            return;
        };
        let seed = self.community_id_seed;
        if let Some(id) = self.community_ids.id_at(pkt, innermost, seed) {
            out.extend_from_slice(b",\"community_id\":\"");
            self.community_id_at = Some(out.len());
            out.extend_from_slice(id);
            out.push(b'"');
        }
        if outermost != innermost {
            if let Some(id) = self.community_ids.id_at(pkt, outermost, seed) {
                out.extend_from_slice(b",\"community_id_outer\":\"");
                out.extend_from_slice(id);
                out.push(b'"');
            }
        }
    }
}

/// An upper bound of the message size for `pkt`, so it can be written without growing the
/// buffer: [`max_message_bytes`]'s argument with the payload and padding counted at their two
/// hex digits per byte instead of 16 (every other frame byte is some layer's header, at most
/// 16 JSON bytes each). A formula of lengths, not a walk of the layers (which cost about as
/// much as writing a layer, a mispredicted jump per layer included). The room is zero-filled
/// when the buffer grows, so it must stay near the real size: 16 bytes per payload byte made a
/// 16 MiB record reserve (and touch) 256 MiB.
#[inline(always)]
fn size_bound(pkt: &Packet<'_>, source_json: &[u8]) -> usize {
    let hex = pkt.raw.len() + pkt.padding.len();
    let headers = pkt.frame_len().saturating_sub(hex);
    512 * (crate::decode::MAX_LAYERS + 1)
        + 16 * headers
        + 2 * hex
        + dns::MAX_MESSAGE_NAME_JSON_BYTES
        + source_json.len()
}

/// The JSON key stem of a layer: scapy's class name in lower case.
fn layer_key(layer: &Layer<'_>) -> &'static str {
    match layer_block(layer) {
        Ok(block) => block.key,
        Err(key) => key,
    }
}

/// Room for the longest `"key":{` of [`layer_block`] (`"cookedlinuxv2":{`, 17 bytes).
const BLOCK_BYTES: usize = 24;

/// A layer's `"key":{` laid out in a fixed-size array, so it is written by one fixed-size
/// copy (a copy of a length known only at run time is a `memcpy` call).
struct Block {
    /// `"key":{` and zeros after it.
    text: [u8; BLOCK_BYTES],
    /// Bytes of `text` that count.
    len: u8,
    /// The key alone.
    key: &'static str,
    /// [`key_signature`] of the key.
    sig: u64,
}

impl Block {
    const fn new(text: &'static str, key: &'static str) -> Block {
        let b = text.as_bytes();
        let mut padded = [0u8; BLOCK_BYTES];
        let mut i = 0;
        while i < b.len() {
            padded[i] = b[i];
            i += 1;
        }
        Block {
            text: padded,
            len: b.len() as u8,
            key,
            sig: key_signature(key),
        }
    }
}

/// `"key":{` of a layer, written by one copy when the key is not repeated (`Ok`); for the
/// layers whose key comes from the decoder's kind tables, the key alone (`Err`).
#[inline(always)]
fn layer_block(layer: &Layer<'_>) -> Result<&'static Block, &'static str> {
    macro_rules! block {
        ($key:literal) => {{
            static BLOCK: Block = Block::new(concat!("\"", $key, "\":{"), $key);
            &BLOCK
        }};
    }
    match layer {
        Layer::Ether(_) => Ok(block!("ether")),
        Layer::Dot3(_) => Ok(block!("dot3")),
        Layer::Vlan { ad: true, .. } => Ok(block!("dot1ad")),
        Layer::Vlan { ad: false, .. } => Ok(block!("dot1q")),
        Layer::Sll(_) => Ok(block!("cookedlinux")),
        Layer::Sll2(_) => Ok(block!("cookedlinuxv2")),
        Layer::Loopback(_) => Ok(block!("loopback")),
        Layer::Arp(_) => Ok(block!("arp")),
        Layer::Ipv4(ip) if ip.quoted => Ok(block!("iperror")),
        Layer::Ipv4(_) => Ok(block!("ip")),
        Layer::Ipv6(ip) if ip.quoted => Ok(block!("iperror6")),
        Layer::Ipv6(_) => Ok(block!("ipv6")),
        Layer::Ipv6Ext(e) => Err(e.kind.key()),
        Layer::Icmp(i) if i.quoted => Ok(block!("icmperror")),
        Layer::Icmp(_) => Ok(block!("icmp")),
        Layer::Icmpv6(i) => Err(i.kind.key()),
        Layer::NdOption(o) => Err(o.kind.key()),
        Layer::Tcp(t) if t.quoted => Ok(block!("tcperror")),
        Layer::Tcp(_) => Ok(block!("tcp")),
        Layer::Udp(u) if u.quoted => Ok(block!("udperror")),
        Layer::Udp(_) => Ok(block!("udp")),
        Layer::Dns(_) => Ok(block!("dns")),
        Layer::Vxlan(_) => Ok(block!("vxlan")),
        Layer::Geneve(_) => Ok(block!("geneve")),
        Layer::Gre(g) if g.pptp => Ok(block!("gre_pptp")),
        Layer::Gre(_) => Ok(block!("gre")),
        Layer::Erspan(e) => Err(e.kind.key()),
        Layer::Mpls(_) => Ok(block!("mpls")),
        Layer::Pppoe(p) if p.discovery => Ok(block!("pppoed")),
        Layer::Pppoe(_) => Ok(block!("pppoe")),
        Layer::Ppp(_) => Ok(block!("ppp")),
        Layer::Ntp(_) => Ok(block!("ntpheader")),
        Layer::Bootp(_) => Ok(block!("bootp")),
        Layer::Dhcp(_) => Ok(block!("dhcp")),
        Layer::Http(h) if h.response => Ok(block!("httpresponse")),
        Layer::Http(_) => Ok(block!("httprequest")),
        Layer::Tls(_) => Ok(block!("tls")),
    }
}

/// A cheap signature of a key, so the common case (no key repeats) needs no search.
#[inline]
const fn key_signature(key: &str) -> u64 {
    let b = key.as_bytes();
    let last = match b.last() {
        Some(&l) => l as usize,
        None => 0,
    };
    1u64 << ((b.len() * 7 + last) % 64)
}

/// Writes `sep` (`{` before the first member of `data`, `,` before the others) and
/// `"key":{` for the layer at `index`, with a `_2`, `_3`, ... suffix when an earlier layer had
/// the same key.
#[inline]
fn open_layer(
    out: &mut Out<'_>,
    pkt: &Packet<'_>,
    index: usize,
    layer: &Layer<'_>,
    signatures: &mut u64,
    sep: u8,
) {
    let block = layer_block(layer);
    let (key, sig) = match block {
        Ok(b) => (b.key, b.sig),
        Err(k) => (k, key_signature(k)),
    };
    let repeated = *signatures & sig != 0;
    *signatures |= sig;
    if let (Ok(b), false) = (block, repeated) {
        // `"key":{` in one fixed-size copy, straight from the static block (patching a copy
        // of it on the stack first would make the copy's loads wait for that store).
        out.fixed::<64>(|w| {
            w.put(&[sep]);
            w.put_padded(&b.text, usize::from(b.len));
        });
        return;
    }
    out.push(sep);
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    if repeated {
        let earlier = pkt
            .layers()
            .take(index)
            .filter(|l| layer_key(l) == key)
            .count();
        if earlier > 0 {
            out.push(b'_');
            push_u64(out, earlier as u64 + 1);
        }
    }
    out.extend_from_slice(b"\":{");
}

/// Writes the `data` object after its key (`{`, the members, not the closing `}`); returns
/// the indices of the outermost and the innermost IP
/// header not quoted inside an ICMP error (what `flow::flow_tuples_at` takes), noted on the
/// way so the Community ID needs no walk of its own.
fn write_layers(out: &mut Out<'_>, pkt: &Packet<'_>) -> Option<(usize, usize)> {
    let mut ip_at: Option<(usize, usize)> = None;
    let mut note_ip = |index: usize, quoted: bool| {
        if !quoted {
            ip_at = Some(ip_at.map_or((index, index), |(first, _)| (first, index)));
        }
    };
    let mut signatures = 0u64;
    // `{` before the first member, `,` before the others.
    let mut sep = b'{';
    for (index, layer) in pkt.layers().enumerate() {
        open_layer(out, pkt, index, layer, &mut signatures, sep);
        sep = b',';
        match layer {
            Layer::Ether(h) => out.fixed::<128>(|w| {
                const TEMPLATE: &[u8; 64] = &padded_block(
                    "\"dst\":\"..:..:..:..:..:..\",\"src\":\"..:..:..:..:..:..\",\"type\":",
                );
                // The 59 bytes of keys and addresses; the rest is room for the number.
                w.slot::<64>(|t| {
                    *t = *TEMPLATE;
                    fill_mac6(t, 7, &h.dst);
                    fill_mac6(t, 33, &h.src);
                    59
                });
                Decimal::put_to(h.ether_type.get(), w);
            }),
            Layer::Dot3(h) => {
                out.extend_from_slice(b"\"dst\":\"");
                push_mac6(out, &h.dst);
                out.extend_from_slice(b"\",\"src\":\"");
                push_mac6(out, &h.src);
                out.extend_from_slice(b"\",\"len\":");
                push_dec(out, h.ether_type.get());
            }
            Layer::Vlan { hdr, .. } => out.fixed::<64>(|w| {
                wnum_first!(w, "prio", hdr.prio());
                wnum!(w, "id", hdr.dei());
                wnum!(w, "vlan", hdr.vlan());
                wnum!(w, "type", hdr.ether_type.get());
            }),
            Layer::Sll(h) => write_sll(out, h),
            Layer::Sll2(h) => write_sll2(out, h),
            Layer::Loopback(t) => {
                num_first!(out, "type", *t);
            }
            Layer::Arp(a) => {
                write_arp(out, a);
            }
            Layer::Ipv4(ip) => {
                note_ip(index, ip.quoted);
                write_ipv4(out, ip);
            }
            Layer::Ipv6(ip) => {
                note_ip(index, ip.quoted);
                write_ipv6(out, ip);
            }
            Layer::Ipv6Ext(e) => {
                write_ext(out, e);
            }
            Layer::Icmp(i) => {
                write_icmp(out, i);
            }
            Layer::Icmpv6(i) => {
                write_icmpv6(out, i);
            }
            Layer::NdOption(o) => {
                write_nd_option(out, o);
            }
            Layer::Tcp(t) => {
                write_tcp(out, t);
            }
            Layer::Udp(u) => {
                write_udp(out, u);
            }
            Layer::Dns(d) => {
                write_dns(out, d);
            }
            Layer::Vxlan(v) => write_vxlan(out, v),
            Layer::Geneve(g) => write_geneve(out, g),
            Layer::Gre(g) => write_gre(out, g),
            Layer::Erspan(e) => write_erspan(out, e),
            Layer::Mpls(m) => write_mpls(out, m),
            Layer::Pppoe(p) => write_pppoe(out, p),
            Layer::Ppp(proto) => num_first!(out, "proto", *proto),
            Layer::Ntp(n) => apps::write_ntp(out, n),
            Layer::Bootp(b) => apps::write_bootp(out, b),
            Layer::Dhcp(d) => apps::write_dhcp(out, d),
            Layer::Http(h) => apps::write_http(out, h),
            Layer::Tls(t) => apps::write_tls(out, t),
        }
        out.push(b'}');
    }
    // `raw` and `padding` are written once each even if the layer budget is full.
    if !pkt.raw.is_empty() {
        out.push(sep);
        sep = b',';
        out.extend_from_slice(b"\"raw\":{\"load\":\"");
        push_hex(out, pkt.raw);
        out.extend_from_slice(b"\"}");
    }
    if !pkt.padding.is_empty() {
        out.push(sep);
        sep = b',';
        out.extend_from_slice(b"\"padding\":{\"load\":\"");
        push_hex(out, pkt.padding);
        out.extend_from_slice(b"\"}");
    }
    if sep == b'{' {
        // No member: `{}`.
        out.push(b'{');
    }
    ip_at
}

// ---- field helpers: `first` variants omit the leading comma ----

#[inline]
fn key(out: &mut Out<'_>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

#[inline]
fn field(out: &mut Out<'_>, name: &str, v: u32) {
    key(out, name, false);
    push_dec(out, v);
}

// Out of line, as the other layers a capture has in few packets or only at its link layer
// (ARP, IPv6 extension headers, ICMPv6 and its options): the hot arms of `write_layers`
// (Ethernet, IP, TCP, UDP, DNS) then fit the instruction cache together with the decoder.
#[inline(never)]
fn write_sll(out: &mut Out<'_>, h: &SllHdr) {
    num_first!(out, "pkttype", h.pkttype.get());
    num!(out, "lladdrtype", h.lladdrtype.get());
    num!(out, "lladdrlen", h.lladdrlen.get());
    hex_field!(out, "src", &h.src);
    num!(out, "proto", h.proto.get());
}

#[inline(never)]
fn write_sll2(out: &mut Out<'_>, h: &Sll2Hdr) {
    num_first!(out, "proto", h.proto.get());
    num!(out, "reserved", h.reserved.get());
    num!(out, "ifindex", h.ifindex.get());
    num!(out, "lladdrtype", h.lladdrtype.get());
    num!(out, "pkttype", h.pkttype);
    num!(out, "lladdrlen", h.lladdrlen);
    hex_field!(out, "src", &h.src);
}

fn push_ipv4_or_hex(out: &mut Out<'_>, a: &[u8]) {
    out.push(b'"');
    match <&[u8; 4]>::try_from(a) {
        Ok(a4) => push_ipv4(out, a4),
        Err(_) => push_hex(out, a),
    }
    out.push(b'"');
}

fn push_ipv6_or_hex(out: &mut Out<'_>, a: &[u8]) {
    out.push(b'"');
    match <&[u8; 16]>::try_from(a) {
        Ok(a16) => push_ipv6(out, a16),
        Err(_) => push_hex(out, a),
    }
    out.push(b'"');
}

#[inline(never)]
fn write_arp(out: &mut Out<'_>, a: &Arp<'_>) {
    let h = a.hdr;
    let hw = a.hw_form();
    let pr = a.proto_form();
    // Ethernet and IPv4 addresses (nearly every ARP packet): the whole layer in one window.
    // Every write ends before byte 190: 62 bytes of numbers and keys, then per address a
    // 16-byte key block and a 24-byte MAC or 16-byte IPv4 block (17 or 15 bytes of text).
    if let (AddrForm::Mac, AddrForm::Ipv4, Some(hwsrc), Some(psrc), Some(hwdst), Some(pdst)) = (
        hw,
        pr,
        <&[u8; 6]>::try_from(a.hwsrc()).ok(),
        <&[u8; 4]>::try_from(a.psrc()).ok(),
        <&[u8; 6]>::try_from(a.hwdst()).ok(),
        <&[u8; 4]>::try_from(a.pdst()).ok(),
    ) {
        const MAC: [u8; 24] = padded_block("..:..:..:..:..:..");
        out.fixed::<256>(|w| {
            wnum_first!(w, "hwtype", h.hwtype.get());
            wnum!(w, "ptype", h.ptype.get());
            wnum!(w, "hwlen", h.hwlen);
            wnum!(w, "plen", h.plen);
            wnum!(w, "op", h.op.get());
            wkey!(w, ",\"hwsrc\":\"");
            w.slot::<24>(|t| {
                *t = MAC;
                fill_mac6(t, 0, hwsrc);
                17
            });
            wkey!(w, "\",\"psrc\":\"");
            put_ipv4(w, psrc);
            wkey!(w, "\",\"hwdst\":\"");
            w.slot::<24>(|t| {
                *t = MAC;
                fill_mac6(t, 0, hwdst);
                17
            });
            wkey!(w, "\",\"pdst\":\"");
            put_ipv4(w, pdst);
            w.put(b"\"");
        });
        return;
    }
    num_first!(out, "hwtype", h.hwtype.get());
    num!(out, "ptype", h.ptype.get());
    num!(out, "hwlen", h.hwlen);
    num!(out, "plen", h.plen);
    num!(out, "op", h.op.get());
    for (name, bytes, form) in [
        ("hwsrc", a.hwsrc(), hw),
        ("psrc", a.psrc(), pr),
        ("hwdst", a.hwdst(), hw),
        ("pdst", a.pdst(), pr),
    ] {
        key(out, name, false);
        match form {
            AddrForm::Mac => {
                out.push(b'"');
                push_mac(out, bytes);
                out.push(b'"');
            }
            AddrForm::Ipv4 => push_ipv4_or_hex(out, bytes),
            AddrForm::Ipv6 => push_ipv6_or_hex(out, bytes),
            AddrForm::Bytes => {
                out.push(b'"');
                push_hex(out, bytes);
                out.push(b'"');
            }
        }
    }
}

fn write_ipv4(out: &mut Out<'_>, ip: &Ipv4<'_>) {
    let Some((h, options)) = ip.split() else {
        return;
    };
    // Every write starts before byte 166 (in the window's first half): 8 or 16 bytes per
    // key, 4 per `u8`, 8 per `u16` number, 16 per address.
    out.fixed::<512>(|w| {
        wnum_first!(w, "version", h.version());
        wnum!(w, "ihl", h.ihl());
        wnum!(w, "tos", h.tos);
        wnum!(w, "len", h.total_len.get());
        wnum!(w, "id", h.id.get());
        // Three bits.
        wnum!(w, "flags", (h.flags_frag.get() >> 13) as u8);
        wnum!(w, "frag", h.frag());
        wnum!(w, "ttl", h.ttl);
        wnum!(w, "proto", h.proto);
        wnum!(w, "chksum", h.chksum.get());
        wkey!(w, ",\"src\":\"");
        put_ipv4(w, &h.src);
        wkey!(w, "\",\"dst\":\"");
        put_ipv4(w, &h.dst);
        wkey!(w, "\",\"options\":\"");
    });
    push_hex(out, options);
    out.push(b'"');
}

fn write_ipv6(out: &mut Out<'_>, ip: &Ipv6<'_>) {
    let h = ip.hdr;
    let vtf = h.vtf.get();
    out.fixed::<512>(|w| {
        // Four and eight bits.
        wnum_first!(w, "version", (vtf >> 28) as u8);
        wnum!(w, "tc", (vtf >> 20) as u8);
        wnum!(w, "fl", h.fl());
        wnum!(w, "plen", h.plen.get());
        wnum!(w, "nh", h.nh);
        wnum!(w, "hlim", h.hlim);
        wkey!(w, ",\"src\":\"");
        w.slot(|t| ipv6_text(t, &h.src));
        wkey!(w, "\",\"dst\":\"");
        w.slot(|t| ipv6_text(t, &h.dst));
        w.put(b"\"");
    });
}

#[inline(never)]
fn write_ext(out: &mut Out<'_>, e: &ExtHeader<'_>) {
    num_first!(out, "nh", e.nh());
    match e.kind {
        ExtKind::HopByHop | ExtKind::DestOpt => {
            num!(out, "len", e.len_field());
            hex_field!(out, "options", e.options());
        }
        ExtKind::Routing => {
            num!(out, "len", e.len_field());
            let (rtype, segleft, reserved) = e.routing_fields();
            num!(out, "type", rtype);
            num!(out, "segleft", segleft);
            num!(out, "reserved", reserved);
            key!(out, "addresses");
            out.push(b'[');
            for (i, a) in e.addresses().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_ipv6_or_hex(out, a);
            }
            out.push(b']');
        }
        ExtKind::Fragment => {
            let (res1, offset, res2, m, id) = e.fragment_fields();
            num!(out, "res1", res1);
            num!(out, "offset", offset);
            num!(out, "res2", res2);
            num!(out, "m", m);
            num!(out, "id", id);
        }
    }
}

fn write_icmp(out: &mut Out<'_>, i: &Icmp<'_>) {
    let t = i.icmp_type();
    let id_seq = icmp::ID_SEQ_TYPES.contains(&t);
    // Where `unused` is, after the fields before it.
    let at = match t {
        13 | 14 => 20,
        17 | 18 => 12,
        3 | 5 => 8,
        11 | 12 => 6,
        _ if id_seq => 8,
        _ => 4,
    };
    // The types with an address before `unused` write it between two windows.
    let address = matches!(t, 5 | 17 | 18);
    // Every write ends before byte 180: at most 147 bytes of keys and numbers (type, code,
    // chksum, id, seq, three timestamps, unused), the last a 16-byte block.
    out.fixed::<256>(|w| {
        wnum_first!(w, "type", t);
        wnum!(w, "code", i.code());
        wnum!(w, "chksum", i.be16(2));
        if id_seq {
            wnum!(w, "id", i.be16(4));
            wnum!(w, "seq", i.be16(6));
        }
        match t {
            13 | 14 => {
                wnum!(w, "ts_ori", i.be32(8));
                wnum!(w, "ts_rx", i.be32(12));
                wnum!(w, "ts_tx", i.be32(16));
            }
            12 => {
                wnum!(w, "ptr", i.byte(4));
                wnum!(w, "length", i.byte(5));
            }
            3 | 11 => {
                wnum!(w, "reserved", i.byte(4));
                wnum!(w, "length", i.byte(5));
                if t == 3 {
                    wnum!(w, "nexthopmtu", i.be16(6));
                }
            }
            _ => {}
        }
        if !address {
            put_icmp_unused(w, i, t, at);
        }
    });
    if address {
        if t == 5 {
            ipv4_field!(out, "gw", sub(i.bytes, 4, 8));
        } else {
            ipv4_field!(out, "addr_mask", sub(i.bytes, 8, 12));
        }
        out.fixed::<64>(|w| put_icmp_unused(w, i, t, at));
    }
}

/// ICMP's `unused` field at `at` (as wide as scapy has it for type `t`, or an empty string).
#[inline(always)]
fn put_icmp_unused<const N: usize>(w: &mut Fixed<'_, N>, i: &Icmp<'_>, t: u8, at: usize) {
    match icmp::unused_len(t) {
        2 => wnum!(w, "unused", i.be16(at)),
        4 => wnum!(w, "unused", i.be32(at)),
        _ => wkey!(w, ",\"unused\":\"\""),
    }
}

#[inline(never)]
fn write_icmpv6(out: &mut Out<'_>, i: &Icmpv6<'_>) {
    // The echo types' data is written after the window, by length.
    let mut data = None;
    // Neighbour solicitations and advertisements end with their target address.
    let mut tgt = None;
    // Every write ends before byte 170: at most 153 bytes of keys and numbers (a router
    // advertisement's), then a 16-byte number block; or 77 (a neighbour advertisement's,
    // the target's key included), then the address's 48-byte slot and the quote.
    out.fixed::<256>(|w| {
        wnum_first!(w, "type", i.byte(0));
        wnum!(w, "code", i.byte(1));
        wnum!(w, "cksum", i.be16(2));
        match i.kind {
            Icmpv6Kind::DestUnreach | Icmpv6Kind::TimeExceeded => {
                wnum!(w, "length", i.byte(4));
                wnum!(w, "unused", i.be32(4) & 0x00ff_ffff);
            }
            Icmpv6Kind::PacketTooBig => wnum!(w, "mtu", i.be32(4)),
            Icmpv6Kind::ParamProblem => wnum!(w, "ptr", i.be32(4)),
            Icmpv6Kind::EchoRequest | Icmpv6Kind::EchoReply => {
                wnum!(w, "id", i.be16(4));
                wnum!(w, "seq", i.be16(6));
                wkey!(w, ",\"data\":\"");
                data = Some(i.bytes.get(8..).unwrap_or(&[]));
            }
            Icmpv6Kind::RouterSolicit => wnum!(w, "res", i.be32(4)),
            Icmpv6Kind::RouterAdvert => {
                let b = i.byte(5);
                wnum!(w, "chlim", i.byte(4));
                wnum!(w, "M", b >> 7);
                wnum!(w, "O", (b >> 6) & 1);
                wnum!(w, "H", (b >> 5) & 1);
                wnum!(w, "prf", (b >> 3) & 3);
                wnum!(w, "P", (b >> 2) & 1);
                wnum!(w, "res", b & 3);
                wnum!(w, "routerlifetime", i.be16(6));
                wnum!(w, "reachabletime", i.be32(8));
                wnum!(w, "retranstimer", i.be32(12));
            }
            Icmpv6Kind::NeighborSolicit => {
                wnum!(w, "res", i.be32(4));
                tgt = Some(sub(i.bytes, 8, 24));
            }
            Icmpv6Kind::NeighborAdvert => {
                let x = i.be32(4);
                wnum!(w, "R", x >> 31);
                wnum!(w, "S", (x >> 30) & 1);
                wnum!(w, "O", (x >> 29) & 1);
                wnum!(w, "res", x & 0x1fff_ffff);
                tgt = Some(sub(i.bytes, 8, 24));
            }
        }
        if let Some(a) = tgt.and_then(|t| <&[u8; 16]>::try_from(t).ok()) {
            wkey!(w, ",\"tgt\":\"");
            w.slot(|t| ipv6_text(t, a));
            w.put(b"\"");
            tgt = None;
        }
    });
    if let Some(d) = data {
        push_hex(out, d);
        out.push(b'"');
    }
    if let Some(t) = tgt {
        // A target cut short: what there is of it, in hex.
        ipv6_field!(out, "tgt", t);
    }
}

#[inline(never)]
fn write_nd_option(out: &mut Out<'_>, o: &NdOption<'_>) {
    if let (NdOptKind::SrcLlAddr | NdOptKind::DstLlAddr, Ok(mac)) =
        (o.kind, <&[u8; 6]>::try_from(sub(o.bytes, 2, 8)))
    {
        const MAC: [u8; 24] = padded_block("..:..:..:..:..:..");
        // Every write ends before byte 56: at most 20 bytes of keys and numbers, the 16-byte
        // key block, the 24-byte address block (17 bytes of text) and the closing quote.
        out.fixed::<128>(|w| {
            wnum_first!(w, "type", o.byte(0));
            wnum!(w, "len", o.byte(1));
            wkey!(w, ",\"lladdr\":\"");
            w.slot::<24>(|t| {
                *t = MAC;
                fill_mac6(t, 0, mac);
                17
            });
            w.put(b"\"");
        });
        return;
    }
    num_first!(out, "type", o.byte(0));
    num!(out, "len", o.byte(1));
    match o.kind {
        NdOptKind::SrcLlAddr | NdOptKind::DstLlAddr => {
            key!(out, "lladdr");
            out.push(b'"');
            push_mac(out, sub(o.bytes, 2, 8));
            out.push(b'"');
        }
        NdOptKind::PrefixInfo => {
            let b = o.byte(3);
            num!(out, "prefixlen", o.byte(2));
            num!(out, "L", b >> 7);
            num!(out, "A", (b >> 6) & 1);
            num!(out, "R", (b >> 5) & 1);
            num!(out, "res1", b & 0x1f);
            num!(out, "validlifetime", o.be32(4));
            num!(out, "preferredlifetime", o.be32(8));
            num!(out, "res2", o.be32(12));
            ipv6_field!(out, "prefix", sub(o.bytes, 16, 32));
        }
        NdOptKind::Mtu => {
            let res = u16::from_be_bytes([o.byte(2), o.byte(3)]);
            num!(out, "res", res);
            num!(out, "mtu", o.be32(4));
        }
    }
}

/// scapy 2.5's name for a TCP option kind, if it has one.
fn tcp_option_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        0 => "EOL",
        1 => "NOP",
        2 => "MSS",
        3 => "WScale",
        4 => "SAckOK",
        5 => "SAck",
        8 => "Timestamp",
        14 => "AltChkSum",
        15 => "AltChkSumOpt",
        19 => "MD5",
        25 => "Mood",
        28 => "UTO",
        29 => "AO",
        34 => "TFO",
        _ => return None,
    })
}

/// Big-endian u16 at the start of `b` (0 if `b` is shorter).
fn be_u16(b: &[u8]) -> u16 {
    bytes::be16(b, 0)
}

/// Big-endian u32 at the start of `b` (0 if `b` is shorter).
fn be_u32(b: &[u8]) -> u32 {
    bytes::be32(b, 0)
}

/// `b[from..to]`, or what exists of it.
fn sub(b: &[u8], from: usize, to: usize) -> &[u8] {
    b.get(from..to.min(b.len())).unwrap_or(&[])
}

fn write_tcp(out: &mut Out<'_>, t: &Tcp<'_>) {
    let Some((h, options)) = t.split() else {
        return;
    };
    let off_flags = h.off_flags.get();
    let mut options_written = false;
    // Every write starts before byte 254 (in the window's first half): 8 to 32 bytes per
    // key, 4 per `u8`, 8 per `u16`, 16 per `u32` number.
    out.fixed::<512>(|w| {
        wnum_first!(w, "sport", h.sport.get());
        wnum!(w, "dport", h.dport.get());
        wnum!(w, "seq", h.seq.get());
        wnum!(w, "ack", h.ack.get());
        // Four and three bits.
        wnum!(w, "dataofs", (off_flags >> 12) as u8);
        wnum!(w, "reserved", ((off_flags >> 9) & 7) as u8);
        wnum!(w, "flags", h.flags());
        wnum!(w, "window", h.window.get());
        wnum!(w, "chksum", h.chksum.get());
        wnum!(w, "urgptr", h.urgptr.get());
        wkey!(w, ",\"fields_options\":{");
        // NOP, NOP, Timestamp (RFC 7323, appendix A): the options of most segments of a
        // connection, written here as the general loop below would write them.
        if let [1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3] = *options {
            wkey!(w, "\"NOP\":null,\"Timestamp\":");
            Decimal::put_to(u32::from_be_bytes([v0, v1, v2, v3]), w);
            wkey!(w, ",\"TSecr\":");
            Decimal::put_to(u32::from_be_bytes([e0, e1, e2, e3]), w);
            w.put(b"}");
            options_written = true;
        }
        // MSS, SAckOK, Timestamp, NOP, WScale: what Linux puts in a SYN and a SYN-ACK.
        if let [2, 4, m0, m1, 4, 2, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3, 1, 3, 3, ws] = *options {
            wkey!(w, "\"MSS\":");
            Decimal::put_to(u16::from_be_bytes([m0, m1]), w);
            wkey!(w, ",\"SAckOK\":\"\",\"Timestamp\":");
            Decimal::put_to(u32::from_be_bytes([v0, v1, v2, v3]), w);
            wkey!(w, ",\"TSecr\":");
            Decimal::put_to(u32::from_be_bytes([e0, e1, e2, e3]), w);
            wkey!(w, ",\"NOP\":null,\"WScale\":");
            Decimal::put_to(ws, w);
            w.put(b"}");
            options_written = true;
        }
    });
    if options_written {
        return;
    }
    // The original built a Python dict option by option: a kind seen again keeps the place of
    // its first occurrence and takes the later value; `TSecr` is set beside each well-formed
    // Timestamp and removed by a malformed one, so it stands after the well-formed Timestamp
    // that last inserted it (`tsecr_at`), with the last Timestamp's value. Options are at most
    // 40 bytes, so the scans for earlier and later kinds stay short.
    let mut tsecr_at = None;
    let mut last_timestamp: &[u8] = &[];
    for (i, opt) in TcpOptions::new(options).enumerate() {
        if opt.kind == 8 {
            last_timestamp = opt.data;
            if opt.data.len() != 8 {
                tsecr_at = None;
            } else if tsecr_at.is_none() {
                tsecr_at = Some(i);
            }
        }
    }
    let mut first = true;
    let mut later = TcpOptions::new(options);
    for (i, opt) in TcpOptions::new(options).enumerate() {
        later.next();
        let seen_before = TcpOptions::new(options).take(i).any(|o| o.kind == opt.kind);
        if !seen_before {
            // The value is the last occurrence's.
            let last = later
                .clone()
                .filter(|o| o.kind == opt.kind)
                .last()
                .unwrap_or(opt);
            if !first {
                out.push(b',');
            }
            first = false;
            write_tcp_option(out, last.kind, last.data);
        }
        if tsecr_at == Some(i) {
            out.extend_from_slice(b",\"TSecr\":");
            push_dec(out, be_u32(sub(last_timestamp, 4, 8)));
        }
    }
    out.push(b'}');
}

/// One `"name":value` of `fields_options`.
fn write_tcp_option(out: &mut Out<'_>, kind: u8, d: &[u8]) {
    out.push(b'"');
    match tcp_option_name(kind) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => push_dec(out, kind),
    }
    out.extend_from_slice(b"\":");
    match (kind, d.len()) {
        (0 | 1, _) => out.extend_from_slice(b"null"),
        (2 | 28, 2) => push_dec(out, be_u16(d)),
        (3, 1) => push_dec(out, d[0]),
        (8, 8) => push_dec(out, be_u32(d)),
        (5, n) if n % 4 == 0 && n != 4 => {
            out.push(b'[');
            for (i, c) in d.chunks_exact(4).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_dec(out, be_u32(c));
            }
            out.push(b']');
        }
        (5, 4) => push_dec(out, be_u32(d)),
        (14, 3) => {
            out.push(b'[');
            push_dec(out, d.first().copied().unwrap_or(0));
            out.push(b',');
            push_dec(out, be_u16(sub(d, 1, 3)));
            out.push(b']');
        }
        (34, 8) => {
            out.push(b'[');
            push_dec(out, be_u32(d));
            out.push(b',');
            push_dec(out, be_u32(sub(d, 4, 8)));
            out.push(b']');
        }
        _ => {
            out.push(b'"');
            push_hex(out, d);
            out.push(b'"');
        }
    }
}

fn write_udp(out: &mut Out<'_>, u: &Udp<'_>) {
    let h = u.hdr;
    out.fixed::<128>(|w| {
        wnum_first!(w, "sport", h.sport.get());
        wnum!(w, "dport", h.dport.get());
        wnum!(w, "len", h.len.get());
        wnum!(w, "chksum", h.chksum.get());
    });
}

// The tunnel and application writers stay out of line (`inline(never)`): inlined, they made
// `write_layers` big enough that its common arms (Ethernet, IP, TCP, DNS) ran about 30 ns per
// packet slower on mixed.pcap (perf, issue 12), and the layers they write are rare.
#[inline(never)]
fn write_mpls(out: &mut Out<'_>, m: &MplsHdr) {
    num_first!(out, "label", m.label());
    num!(out, "cos", m.cos());
    num!(out, "s", m.s());
    num!(out, "ttl", m.ttl());
}

#[inline(never)]
fn write_vxlan(out: &mut Out<'_>, v: &Vxlan<'_>) {
    let b = v.bytes;
    num_first!(out, "flags", v.flags());
    let mut at = 1;
    if v.has_next_protocol() {
        num!(out, "reserved0", bytes::be16(b, at));
        num!(out, "NextProtocol", bytes::byte(b, at + 2));
        at += 3;
    }
    if !v.has_group_policy() && !v.has_next_protocol() {
        num!(out, "reserved1", bytes::be32(b, 0) & 0x00ff_ffff);
    }
    if v.has_group_policy() {
        num!(out, "gpflags", bytes::byte(b, at));
        num!(out, "gpid", bytes::be16(b, at + 1));
    }
    num!(out, "vni", v.vni());
    num!(out, "reserved2", v.reserved2());
}

#[inline(never)]
fn write_geneve(out: &mut Out<'_>, g: &Geneve<'_>) {
    num_first!(out, "version", g.version());
    num!(out, "optionlen", g.optionlen());
    num!(out, "oam", g.oam());
    num!(out, "critical", g.critical());
    num!(out, "reserved", g.reserved());
    num!(out, "proto", g.proto());
    num!(out, "vni", g.vni());
    num!(out, "reserved2", g.reserved2());
    key!(out, "options");
    out.push(b'[');
    // Options were checked to tile their area when the header was decoded.
    for (i, o) in g.options().flatten().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        num_first!(out, "classid", o.classid);
        num!(out, "type", o.opt_type);
        num!(out, "reserved", o.reserved);
        num!(out, "length", o.length);
        hex_field!(out, "data", o.data);
        out.push(b'}');
    }
    out.push(b']');
}

#[inline(never)]
fn write_gre(out: &mut Out<'_>, g: &Gre<'_>) {
    num_first!(out, "chksum_present", g.chksum_present());
    num!(out, "routing_present", g.routing_present());
    num!(out, "key_present", g.key_present());
    num!(out, "seqnum_present", g.seqnum_present());
    num!(out, "strict_route_source", g.strict_route_source());
    num!(out, "recursion_control", g.recursion_control());
    if g.pptp {
        num!(out, "acknum_present", g.acknum_present());
    }
    num!(out, "flags", g.flags());
    num!(out, "version", g.version());
    num!(out, "proto", g.proto());
    let mut word = 0;
    if g.pptp {
        let w = g.word(0);
        num!(out, "payload_len", w >> 16);
        num!(out, "call_id", w & 0xffff);
        word = 1;
        if g.seqnum_present() == 1 {
            num!(out, "sequence_number", g.word(word));
            word += 1;
        }
        if g.acknum_present() == 1 {
            num!(out, "ack_number", g.word(word));
        }
        return;
    }
    if g.chksum_present() == 1 || g.routing_present() == 1 {
        let w = g.word(word);
        num!(out, "chksum", w >> 16);
        num!(out, "offset", w & 0xffff);
        word += 1;
    }
    if g.key_present() == 1 {
        num!(out, "key", g.word(word));
        word += 1;
    }
    if g.seqnum_present() == 1 {
        num!(out, "sequence_number", g.word(word));
    }
}

#[inline(never)]
fn write_erspan(out: &mut Out<'_>, e: &gre::Erspan<'_>) {
    match e.kind {
        gre::ErspanKind::I => {}
        gre::ErspanKind::II | gre::ErspanKind::III => {
            let w0 = e.be16(0);
            let w1 = e.be16(2);
            num_first!(out, "ver", w0 >> 12);
            num!(out, "vlan", w0 & 0x0fff);
            num!(out, "cos", w1 >> 13);
            if e.kind == gre::ErspanKind::II {
                num!(out, "en", (w1 >> 11) & 3);
            } else {
                num!(out, "bso", (w1 >> 11) & 3);
            }
            num!(out, "t", (w1 >> 10) & 1);
            num!(out, "session_id", w1 & 0x03ff);
            let w2 = e.be32(4);
            if e.kind == gre::ErspanKind::II {
                num!(out, "reserved", w2 >> 20);
                num!(out, "index", w2 & 0x000f_ffff);
            } else {
                num!(out, "timestamp", w2);
                num!(out, "sgt_other", e.be16(8));
                let w = e.be16(10);
                num!(out, "p", w >> 15);
                num!(out, "ft", (w >> 10) & 0x1f);
                num!(out, "hw", (w >> 4) & 0x3f);
                num!(out, "d", (w >> 3) & 1);
                num!(out, "gra", (w >> 1) & 3);
                num!(out, "o", w & 1);
            }
        }
        gre::ErspanKind::PlatformSpecific => {
            let w = e.be32(0);
            num_first!(out, "platf_id", w >> 26);
            num!(out, "info1", w & 0x03ff_ffff);
            num!(out, "info2", e.be32(4));
        }
    }
}

#[inline(never)]
fn write_pppoe(out: &mut Out<'_>, p: &Pppoe<'_>) {
    let h = p.hdr;
    num_first!(out, "version", h.version());
    num!(out, "type", h.pppoe_type());
    num!(out, "code", h.code);
    num!(out, "sessionid", h.sessionid.get());
    num!(out, "len", h.len.get());
}

/// Writes a DNS name as a JSON string; `root` is what an empty name shows as.
fn dns_name(out: &mut Out<'_>, msg: &[u8], at: usize, root: &[u8]) {
    let start = dns_name_open(out);
    // Validated at decode time; an error here cannot happen, and would only cut the name.
    let _ = dns::walk_name(msg, at, |label| dns_label(out, label));
    dns_name_close(out, start, root);
}

/// Opens a name's string; the name's labels follow ([`dns_label`]), written while a walker
/// reads the name for its own ends (one walk per name, not two), then [`dns_name_close`].
#[inline(always)]
fn dns_name_open(out: &mut Out<'_>) -> usize {
    out.push(b'"');
    out.len()
}

#[inline(always)]
fn dns_label(out: &mut Out<'_>, label: &[u8]) {
    push_latin1_escaped(out, label);
    out.push(b'.');
}

/// Closes a name opened at `start`; `root` is what an empty name shows as.
#[inline(always)]
fn dns_name_close(out: &mut Out<'_>, start: usize, root: &[u8]) {
    if out.len() == start {
        out.extend_from_slice(root);
    }
    out.push(b'"');
}

// Inlined into `write_layers` (its one caller) as it was before the application layers made
// `write_layers` larger: called out of line, every write goes through `&mut Out` in memory
// instead of registers, which cost about 20 ns per packet on mixed.pcap (perf, issue 12).
#[inline(always)]
fn write_dns(out: &mut Out<'_>, d: &Dns<'_>) {
    // The header's fields in one window: every write starts before byte 168.
    out.fixed::<512>(|w| {
        match d.tcp_length {
            Some(len) => {
                wnum_first!(w, "length", len);
                wnum!(w, "id", d.id());
            }
            None => wnum_first!(w, "id", d.id()),
        }
        let f = d.flags();
        // One- and four-bit fields.
        let bit = |shift: u16| ((f >> shift) & 1) as u8;
        wnum!(w, "qr", bit(15));
        wnum!(w, "opcode", ((f >> 11) & 0xf) as u8);
        wnum!(w, "aa", bit(10));
        wnum!(w, "tc", bit(9));
        wnum!(w, "rd", bit(8));
        wnum!(w, "ra", bit(7));
        wnum!(w, "z", bit(6));
        wnum!(w, "ad", bit(5));
        wnum!(w, "cd", bit(4));
        wnum!(w, "rcode", (f & 0xf) as u8);
        wnum!(w, "qdcount", d.qdcount());
        wnum!(w, "ancount", d.ancount());
        wnum!(w, "nscount", d.nscount());
        wnum!(w, "arcount", d.arcount());
        wkey!(w, ",\"qd\":[");
    });
    let msg = d.msg;
    let mut w = d.walker();
    for i in 0..d.shown[0] {
        if i > 0 {
            out.push(b',');
        }
        // The name is written as the walker reads it. Every shown question was read at
        // decode time, so this cannot fail; if it did, the entry is closed and the list ends.
        out.extend_from_slice(b"{\"qname\":\"");
        let start = out.len();
        let q = w.question_with(|label| dns_label(out, label));
        dns_name_close(out, start, b".");
        let Ok(q) = q else {
            out.push(b'}');
            break;
        };
        out.fixed::<64>(|w| {
            wnum!(w, "qtype", q.qtype);
            wnum!(w, "qclass", q.qclass);
            w.put(b"}");
        });
    }
    // Each section's `],"..":[` (closing the one before) is one 8-byte copy.
    for (open, count) in [
        (b"],\"an\":[", d.shown[1]),
        (b"],\"ns\":[", d.shown[2]),
        (b"],\"ar\":[", d.shown[3]),
    ] {
        out.extend_from_slice(open);
        for i in 0..count {
            if i > 0 {
                out.push(b',');
            }
            // As the questions: the owner name written while the walker reads it.
            out.extend_from_slice(b"{\"rrname\":\"");
            let start = out.len();
            let r = w.record_with(|label| dns_label(out, label));
            dns_name_close(out, start, b".");
            let Ok(r) = r else {
                out.push(b'}');
                break;
            };
            write_record(out, msg, &r);
        }
    }
    out.push(b']');
}

/// A record after its owner name (written by the caller as it read the record).
fn write_record(out: &mut Out<'_>, msg: &[u8], r: &dns::Record<'_>) {
    if r.rtype == 41 {
        // OPT (RFC 6891): class is the UDP payload size, TTL holds extended RCODE, version, Z.
        // Every write ends before byte 102 (85 bytes of text, the last key a 16-byte block).
        out.fixed::<128>(|w| {
            wnum!(w, "type", r.rtype);
            wnum!(w, "rclass", r.rclass);
            wnum!(w, "extrcode", (r.ttl >> 24) as u8);
            wnum!(w, "version", (r.ttl >> 16) as u8);
            wnum!(w, "z", r.ttl as u16);
            wnum!(w, "rdlen", r.rdlen);
            wkey!(w, ",\"rdata\":[");
        });
        for (i, (code, len, data)) in dns::edns_options(r.rdata).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"optcode\":");
            push_dec(out, code);
            num!(out, "optlen", len);
            match dns::client_subnet(code, data) {
                Some(ecs) => {
                    num!(out, "family", ecs.family);
                    num!(out, "source_plen", ecs.source_plen);
                    num!(out, "scope_plen", ecs.scope_plen);
                    key!(out, "address");
                    out.push(b'"');
                    match ecs.address {
                        dns::SubnetAddr::V4(a) => push_ipv4(out, &a),
                        dns::SubnetAddr::V6(a) => push_ipv6(out, &a),
                    }
                    out.push(b'"');
                }
                None => hex_field!(out, "optdata", data),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        return;
    }
    let rd = r.rdata;
    let at = r.rdata_at;
    // Every write ends before byte 114: at most 55 bytes of fields, then the 16-byte key
    // block, an IPv6 address's 48-byte slot (39 bytes of text) and the closing 2 bytes.
    let mut closed = false;
    out.fixed::<160>(|w| {
        wnum!(w, "type", r.rtype);
        wnum!(w, "rclass", r.rclass);
        wnum!(w, "ttl", r.ttl);
        wnum!(w, "rdlen", r.rdlen);
        // The address records (A, AAAA) of the full length, whole in this window.
        match (r.rtype, rd.len()) {
            (1, 4) => {
                if let Some(a) = rd.first_chunk::<4>() {
                    wkey!(w, ",\"rdata\":\"");
                    put_ipv4(w, a);
                    w.put(b"\"}");
                    closed = true;
                }
            }
            (28, 16) => {
                if let Some(a) = rd.first_chunk::<16>() {
                    wkey!(w, ",\"rdata\":\"");
                    w.slot(|t| ipv6_text(t, a));
                    w.put(b"\"}");
                    closed = true;
                }
            }
            _ => {}
        }
    });
    if closed {
        return;
    }
    match dns::rdata_name_offsets(r.rtype) {
        Some(RdataNames::One) => {
            key!(out, "rdata");
            dns_name(out, msg, at, b"");
        }
        Some(RdataNames::Mx) => {
            num!(out, "preference", be_u16(rd));
            key!(out, "exchange");
            dns_name(out, msg, at + 2, b"");
        }
        Some(RdataNames::Srv) => {
            num!(out, "priority", be_u16(rd));
            num!(out, "weight", be_u16(sub(rd, 2, 4)));
            num!(out, "port", be_u16(sub(rd, 4, 6)));
            key!(out, "target");
            dns_name(out, msg, at + 6, b"");
        }
        Some(RdataNames::Soa) => {
            key!(out, "mname");
            dns_name(out, msg, at, b"");
            let after_m = dns::walk_name(msg, at, |_| {}).unwrap_or(at);
            key!(out, "rname");
            dns_name(out, msg, after_m, b"");
            let after_r = dns::walk_name(msg, after_m, |_| {}).unwrap_or(after_m);
            let nums = msg.get(after_r..after_r + 20).unwrap_or(&[0; 20]);
            for (i, name) in ["serial", "refresh", "retry", "expire", "minimum"]
                .iter()
                .enumerate()
            {
                field(out, name, be_u32(sub(nums, i * 4, i * 4 + 4)));
            }
        }
        None => {
            key!(out, "rdata");
            match r.rtype {
                1 => push_ipv4_or_hex(out, sub(rd, 0, 4)),
                28 => push_ipv6_or_hex(out, sub(rd, 0, 16)),
                16 => {
                    out.push(b'[');
                    for (i, s) in dns::txt_strings(rd).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.push(b'"');
                        push_latin1_escaped(out, s);
                        out.push(b'"');
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'"');
                    push_hex(out, rd);
                    out.push(b'"');
                }
            }
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType};

    #[test]
    fn repeated_keys_get_suffixes() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x12, 0x34]);
        let pkt = decode(LinkType::Ethernet, &f);
        let mut out = Vec::new();
        let meta = FrameMeta {
            time_ns: 0,
            wire_len: 22,
            cap_len: 22,
        };
        JsonEncoder::new("t\"x").encode(&mut out, &meta, &pkt);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("\"dot1q\":{\"prio\":0,\"id\":0,\"vlan\":1,"),
            "{s}"
        );
        assert!(
            s.contains("\"dot1q_2\":{\"prio\":0,\"id\":0,\"vlan\":2,"),
            "{s}"
        );
        assert!(s.contains("\"source\":\"t\\\"x\""), "{s}");
        assert!(s.ends_with("}\n"));
    }

    /// The envelope after `data` (the cached head, then nanoseconds and lengths): times
    /// before, at and after the epoch, the second changing back and forth, and a source host
    /// too long for the head's fixed-size copy.
    #[test]
    fn envelope_times_and_sources() {
        let f = [0u8; 14];
        let pkt = decode(LinkType::Ethernet, &f);
        for host in ["h", &"x\"y".repeat(40)] {
            let mut enc = JsonEncoder::new(host);
            let source = host.replace('"', "\\\"");
            for time_ns in [
                1_700_000_000_123_456_789i64,
                1_700_000_000_000_000_007,
                1_700_000_001_999_999_999,
                1_700_000_000_000_000_000,
                1_000_000_000,
                999_999_999,
                0,
                -1,
                -1_500_000_000,
                i64::MAX,
                i64::MIN,
            ] {
                let meta = FrameMeta {
                    time_ns,
                    wire_len: 70_000,
                    cap_len: 14,
                };
                let mut out = Vec::new();
                enc.encode(&mut out, &meta, &pkt);
                let s = String::from_utf8(out).unwrap();
                let created = format_created(time_ns.div_euclid(1_000_000_000));
                let want = format!(
                    "}},\"created\":\"{}\",\"source\":\"{source}\",\"time_ns\":{time_ns},\
                     \"wire_len\":70000,\"cap_len\":14}}\n",
                    std::str::from_utf8(&created).unwrap()
                );
                assert!(s.ends_with(&want), "{s}\nwant {want}");
            }
        }
    }

    /// ICMP's fields for each shape of header (the windowed writer), as scapy names them.
    #[test]
    fn icmp_fields_by_type() {
        let icmp_json = |icmp: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20 + icmp.len() as u8, 0, 0, 0, 0]);
            f.extend_from_slice(&[64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            f.extend_from_slice(icmp);
            let pkt = decode(LinkType::Ethernet, &f);
            let mut out = Vec::new();
            let meta = FrameMeta {
                time_ns: 0,
                wire_len: f.len() as u32,
                cap_len: f.len() as u32,
            };
            JsonEncoder::new("t").encode(&mut out, &meta, &pkt);
            String::from_utf8(out).unwrap()
        };
        let cases: [(&[u8], &str); 8] = [
            (
                &[8, 0, 0x12, 0x34, 0, 1, 0, 2, b'a', b'b'],
                r#""icmp":{"type":8,"code":0,"chksum":4660,"id":1,"seq":2,"unused":""}"#,
            ),
            (
                &[
                    13, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 255, 255, 255, 255,
                ],
                r#""icmp":{"type":13,"code":0,"chksum":0,"id":1,"seq":2,"ts_ori":3,"ts_rx":4,"ts_tx":4294967295,"unused":""}"#,
            ),
            (
                &[5, 1, 0, 0, 10, 0, 0, 1],
                r#""icmp":{"type":5,"code":1,"chksum":0,"gw":"10.0.0.1","unused":""}"#,
            ),
            (
                &[17, 0, 0, 0, 0, 7, 0, 8, 255, 255, 255, 0],
                r#""icmp":{"type":17,"code":0,"chksum":0,"id":7,"seq":8,"addr_mask":"255.255.255.0","unused":""}"#,
            ),
            (
                &[12, 0, 0, 0, 20, 3, 1, 2],
                r#""icmp":{"type":12,"code":0,"chksum":0,"ptr":20,"length":3,"unused":258}"#,
            ),
            (
                &[11, 0, 0, 0, 0, 5, 0, 9],
                r#""icmp":{"type":11,"code":0,"chksum":0,"reserved":0,"length":5,"unused":9}"#,
            ),
            (
                &[3, 4, 0, 0, 0, 0, 5, 220],
                r#""icmp":{"type":3,"code":4,"chksum":0,"reserved":0,"length":0,"nexthopmtu":1500,"unused":""}"#,
            ),
            (
                &[4, 0, 0, 0, 0, 1, 0, 0],
                r#""icmp":{"type":4,"code":0,"chksum":0,"unused":65536}"#,
            ),
        ];
        for (icmp, want) in cases {
            let s = icmp_json(icmp);
            assert!(s.contains(want), "{s}\nwant {want}");
        }
    }

    /// The layers written in fixed windows (`Out::fixed`), every field at its longest: the
    /// windows' sizes hold them (the debug assertions of `Fixed` check every write).
    #[test]
    fn longest_fixed_fields_fit_their_windows() {
        let encode = |f: &[u8]| {
            let pkt = decode(LinkType::Ethernet, f);
            let mut out = Vec::new();
            let meta = FrameMeta {
                time_ns: 0,
                wire_len: f.len() as u32,
                cap_len: f.len() as u32,
            };
            JsonEncoder::new("t").encode(&mut out, &meta, &pkt);
            String::from_utf8(out).unwrap()
        };
        // Ethernet, IPv4 (IP total length `total`, 10.0.0.1 to 10.0.0.2) and a TCP header with
        // every field at its widest but the data offset (`offset_byte`'s top nibble), then
        // `options`.
        let widest_tcp = |total: u8, offset_byte: u8, options: &[u8]| {
            let mut f = vec![0xab; 12];
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, total, 0, 0, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            f.extend_from_slice(&[0xff; 12]);
            f.extend_from_slice(&[offset_byte, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            f.extend_from_slice(options);
            f
        };
        // Ethernet, IPv4 with 40 bytes of options and every field at its widest (a later
        // fragment, so no TCP is decoded).
        let mut f = vec![0xab; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x4f]);
        f.extend_from_slice(&[0xff; 19]);
        f.extend_from_slice(&[0x01; 40]);
        let s = encode(&f);
        let want = format!(
            "{{\"data\":{{\"ether\":{{\"dst\":\"ab:ab:ab:ab:ab:ab\",\"src\":\"ab:ab:ab:ab:ab:ab\",\"type\":2048}},\
             \"ip\":{{\"version\":4,\"ihl\":15,\"tos\":255,\"len\":65535,\"id\":65535,\"flags\":7,\
             \"frag\":8191,\"ttl\":255,\"proto\":255,\"chksum\":65535,\"src\":\"255.255.255.255\",\
             \"dst\":\"255.255.255.255\",\"options\":\"{}\"}}",
            "01".repeat(40)
        );
        assert!(s.starts_with(&want), "{s}");
        // TCP with 40 bytes of options and every field at its widest.
        let s = encode(&widest_tcp(100, 0xff, &[0x01; 40]));
        let want = "\"tcp\":{\"sport\":65535,\"dport\":65535,\"seq\":4294967295,\
             \"ack\":4294967295,\"dataofs\":15,\"reserved\":7,\"flags\":511,\"window\":65535,\
             \"chksum\":65535,\"urgptr\":65535,\"fields_options\":{\"NOP\":null}}";
        assert!(s.contains(want), "{s}");
        // TCP with NOP, NOP, Timestamp and every field at its widest.
        let s = encode(&widest_tcp(
            72,
            0x8f,
            &[1, 1, 8, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
        ));
        let want = "\"tcp\":{\"sport\":65535,\"dport\":65535,\"seq\":4294967295,\
             \"ack\":4294967295,\"dataofs\":8,\"reserved\":7,\"flags\":511,\"window\":65535,\
             \"chksum\":65535,\"urgptr\":65535,\"fields_options\":{\"NOP\":null,\
             \"Timestamp\":4294967295,\"TSecr\":4294967294}}";
        assert!(s.contains(want), "{s}");
        // The SYN options (MSS, SAckOK, Timestamp, NOP, WScale) at their widest.
        let s = encode(&widest_tcp(
            80,
            0xaf,
            &[
                2, 4, 0xff, 0xff, 4, 2, 8, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1,
                3, 3, 0xff,
            ],
        ));
        let want = "\"urgptr\":65535,\"fields_options\":{\"MSS\":65535,\"SAckOK\":\"\",\
             \"Timestamp\":4294967295,\"TSecr\":4294967294,\"NOP\":null,\"WScale\":255}}";
        assert!(s.contains(want), "{s}");
        // IPv6 (every field at its widest) and UDP.
        let mut f = vec![0xab; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x6f, 0xff, 0xff, 0xff, 0, 8, 17, 255]);
        f.extend_from_slice(&[0x12; 32]);
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe, 0, 8, 0xff, 0xff]);
        let s = encode(&f);
        let want = "\"ipv6\":{\"version\":6,\"tc\":255,\"fl\":1048575,\"plen\":8,\"nh\":17,\
             \"hlim\":255,\"src\":\"1212:1212:1212:1212:1212:1212:1212:1212\",\
             \"dst\":\"1212:1212:1212:1212:1212:1212:1212:1212\"},\
             \"udp\":{\"sport\":65535,\"dport\":65534,\"len\":8,\"chksum\":65535}";
        assert!(s.contains(want), "{s}");
    }

    /// `fields_options` of an Ethernet/IPv4/TCP frame with these option bytes.
    fn tcp_options_json(options: &[u8]) -> String {
        assert_eq!(options.len() % 4, 0);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 20 + options.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        let dataofs = ((20 + options.len()) / 4) as u8;
        f.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, dataofs << 4, 0x10, 0, 1]);
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(options);
        let pkt = decode(LinkType::Ethernet, &f);
        let mut out = Vec::new();
        let meta = FrameMeta {
            time_ns: 0,
            wire_len: f.len() as u32,
            cap_len: f.len() as u32,
        };
        JsonEncoder::new("t").encode(&mut out, &meta, &pkt);
        let s = String::from_utf8(out).unwrap();
        let from = s.find("\"fields_options\":").expect("fields_options") + 17;
        let to = from + s[from..].find('}').unwrap() + 1;
        s[from..to].to_string()
    }

    /// As the original's Python dict: a repeated kind keeps its first place and its last
    /// value; a malformed Timestamp drops the TSecr of an earlier one, a later well-formed one
    /// adds it again at the end.
    #[test]
    fn tcp_options_follow_dict_insertion_order() {
        // NOP, Timestamp(1, 2), NOP, NOP, MSS 1460 (2 bytes of padding: EOL ends the list).
        let opts = [
            1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 2, 4, 5, 0xb4, 0, 0, 0,
        ];
        assert_eq!(
            tcp_options_json(&opts),
            r#"{"NOP":null,"Timestamp":1,"TSecr":2,"MSS":1460,"EOL":null}"#
        );
        // MSS 1, WScale 7, MSS 2: MSS stays first with the later value.
        let opts = [2, 4, 0, 1, 3, 3, 7, 2, 4, 0, 2, 0];
        assert_eq!(
            tcp_options_json(&opts),
            r#"{"MSS":2,"WScale":7,"EOL":null}"#
        );
        // Timestamp(1, 2), a 4-byte Timestamp (malformed), NOP, Timestamp(3, 4).
        let opts = [
            8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 8, 4, 0xaa, 0xbb, 1, 8, 10, 0, 0, 0, 3, 0, 0, 0, 4, 0,
            0, 0,
        ];
        assert_eq!(
            tcp_options_json(&opts),
            r#"{"Timestamp":3,"NOP":null,"TSecr":4,"EOL":null}"#
        );
    }
}
