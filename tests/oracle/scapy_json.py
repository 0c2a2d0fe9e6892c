#!/usr/bin/python3
"""Differential-test oracle: decode a pcap/pcapng file with scapy 2.5 and print one
JSON object per packet, normalised as docs/FORMAT.md says.

    /usr/bin/python3 tests/oracle/scapy_json.py FILE

Each line is {"data": {...}, "time_ns": N, "wire_len": N, "cap_len": N}; when scapy
itself raises on a packet the line carries {"scapy_error": "..."} instead of "data".

The oracle copies scapy's dissection (layer choice, layer boundaries, field values);
it normalises only what FORMAT.md asks for and the few places where scapy's result
does not come from the packet's bytes (defaults for fields it never read, host-
dependent bindings, negative indexes).  Every such rule has a tag ([T1], [D2], ...)
that tests/oracle/README.md explains.

Standard library and scapy only.
"""

import json
import logging
import struct
import sys

# scapy logs a line for every odd packet; the oracle's output is stdout only.
logging.getLogger("scapy").setLevel(logging.ERROR)

import scapy  # noqa: E402

if not scapy.VERSION.startswith("2.5"):
    sys.exit(
        "scapy_json.py: the oracle is written against scapy 2.5 (Debian python3-scapy); "
        "this is scapy %s" % scapy.VERSION
    )

import scapy.all  # noqa: E402,F401  (conf.load_layers: the bindings a scapy user gets)
from scapy.config import conf  # noqa: E402
from scapy.main import load_layer  # noqa: E402

# [A0] HTTP (TCP 80/8080) and TLS (TCP 443) are bound only once loaded, in this order; the
# HTTP body is kept as captured (no de-chunking or decompression: the oracle accounts for
# every wire byte).
load_layer("http")
load_layer("tls")
conf.contribs["http"]["auto_compression"] = False

from scapy.layers import dhcp as sdhcp  # noqa: E402
from scapy.layers import http as shttp  # noqa: E402
from scapy.layers import ntp as sntp  # noqa: E402
from scapy.layers.tls import extensions as stlsext  # noqa: E402
from scapy.layers.tls import handshake as stlshs  # noqa: E402
from scapy.layers.tls import record as stlsrec  # noqa: E402
from scapy.fields import ConditionalField, MultipleTypeField, StrFixedLenField  # noqa: E402
from scapy.layers import dns as sdns  # noqa: E402
from scapy.layers import inet as sinet  # noqa: E402
from scapy.layers import inet6 as sinet6  # noqa: E402
from scapy.layers import l2 as sl2  # noqa: E402
from scapy.packet import NoPayload, Packet, Padding, Raw  # noqa: E402
from scapy.utils import RawPcapNgReader, RawPcapReader  # noqa: E402
from scapy.layers import ppp as sppp  # noqa: E402
from scapy.layers import vxlan as svxlan  # noqa: E402
# Tunnel classes scapy keeps in contrib (importing a contrib module is what load_contrib
# does: it makes the module's bindings).
from scapy.contrib import erspan as serspan  # noqa: E402
from scapy.contrib import geneve as sgeneve  # noqa: E402
from scapy.contrib import mpls as smpls  # noqa: E402
from scapy.packet import bind_layers, split_layers  # noqa: E402

# scapy's readers cut every record at MTU (65535) bytes; the oracle reads whole
# records [E3].
MAX_RECORD = 1 << 32

# The layers netpipe-fast decodes: exact classes (a subclass is another layer).
SUPPORTED = {
    sl2.Ether, sl2.Dot3, sl2.Dot1Q, sl2.Dot1AD, sl2.CookedLinux, sl2.CookedLinuxV2,
    sl2.Loopback, sl2.ARP,
    sinet.IP, sinet.ICMP, sinet.TCP, sinet.UDP,
    sinet.IPerror, sinet.TCPerror, sinet.UDPerror, sinet.ICMPerror,
    sinet6.IPv6, sinet6.IPerror6,
    sinet6.IPv6ExtHdrHopByHop, sinet6.IPv6ExtHdrRouting,
    sinet6.IPv6ExtHdrFragment, sinet6.IPv6ExtHdrDestOpt,
    sinet6.ICMPv6EchoRequest, sinet6.ICMPv6EchoReply,
    sinet6.ICMPv6ND_NS, sinet6.ICMPv6ND_NA, sinet6.ICMPv6ND_RS, sinet6.ICMPv6ND_RA,
    sinet6.ICMPv6NDOptSrcLLAddr, sinet6.ICMPv6NDOptDstLLAddr,
    sinet6.ICMPv6NDOptPrefixInfo, sinet6.ICMPv6NDOptMTU, sinet6.ICMPv6NDOptUnknown,
    sinet6.ICMPv6DestUnreach, sinet6.ICMPv6PacketTooBig,
    sinet6.ICMPv6TimeExceeded, sinet6.ICMPv6ParamProblem, sinet6.ICMPv6Unknown,
    sdns.DNS,
    svxlan.VXLAN, sgeneve.GENEVE, sl2.GRE, sl2.GRE_PPTP,
    serspan.ERSPAN_I, serspan.ERSPAN_II, serspan.ERSPAN_III, serspan.ERSPAN_PlatformSpecific,
    smpls.MPLS, sppp.PPPoE, sppp.PPPoED, sppp.PPP,
    sntp.NTPHeader, sdhcp.BOOTP, sdhcp.DHCP, shttp.HTTPRequest, shttp.HTTPResponse,
    stlsrec.TLS,
}

# DNS record classes netpipe-fast decodes; a message holding any other record
# class (scapy's DNSSEC and TSIG classes) is left as raw [D4].
DNS_RECORDS = {
    sdns.DNSQR, sdns.DNSRR, sdns.DNSRRMX, sdns.DNSRRSOA, sdns.DNSRRSRV, sdns.DNSRROPT,
}
EDNS0_OPTIONS = {sdns.EDNS0TLV, sdns.EDNS0ClientSubnet}

TCP_OPTION_NAMES = sinet.TCPOptions[0]


class Malformed(Exception):
    """A supported layer the oracle does not accept as decoded: it becomes raw."""


class OracleBug(Exception):
    """The oracle's own bookkeeping failed; reported as a scapy_error "oracle: ..."."""


# A field scapy dissected and then deleted (DNSRRField.decodeRR deletes rdlen).
_DELETED = object()


# ---------------------------------------------------------------------------------
# Observing scapy (no change to what it decodes)

# Which fields scapy actually dissected, per packet object.  Packet.do_dissect stops
# at the end of its input and leaves the remaining fields at their defaults, and
# mutable defaults (DNS.qd's DNSQR("www.example.com"), IP.options' []) are copied
# into pkt.fields when the packet is created, so pkt.fields cannot tell a dissected
# field from a default.  The wrapper calls scapy's own do_dissect and records which
# entries of pkt.fields it replaced.
_DISSECTED = {}
_scapy_do_dissect = Packet.do_dissect


def _observing_do_dissect(self, s):
    before = dict(self.fields)
    rest = _scapy_do_dissect(self, s)
    done = {k for k, v in self.fields.items() if k not in before or before[k] is not v}
    _DISSECTED[id(self)] = (self, done)  # the reference keeps the id unique
    return rest


Packet.do_dissect = _observing_do_dissect

# DNS names [D3]: dns_get_str is lenient; every call is checked (same walk, step
# by step) and a name that is not well formed marks the frame's DNS as malformed.
_DNS_ANOMALIES = []
_scapy_dns_get_str = sdns.dns_get_str


def _dns_name_anomaly(s, pointer=0, pkt=None, _fullpacket=False):
    """Why the name dns_get_str(s, pointer, pkt, _fullpacket) reads is not well
    formed, or None.  Pointer loops are accepted: scapy ends the name there."""
    max_length = len(s)
    s_full = getattr(pkt, "_orig_s", None) if pkt is not None else None
    seen = []
    while True:
        if pointer >= max_length:
            return "name runs past the end"
        cur = s[pointer]
        pointer += 1
        if cur & 0xC0:  # scapy takes 0x40 and 0x80 for pointers too
            if pointer >= max_length:
                return "incomplete pointer"
            pointer = ((cur & 0x3F) << 8) + s[pointer] - 12
            if pointer < 0:
                return "pointer into the header"
            if pointer in seen:
                return None  # loop: scapy stops here, the name so far stands
            if not _fullpacket:
                if not s_full:
                    return None  # scapy raises by itself
                s = s_full
                max_length = len(s)
                _fullpacket = True
            seen.append(pointer)
        elif cur:
            if pointer + cur > max_length:
                return "label runs past the end"
            pointer += cur
        else:
            return None


def _observing_dns_get_str(s, pointer=0, pkt=None, _fullpacket=False):
    why = _dns_name_anomaly(s, pointer, pkt, _fullpacket)
    if why:
        _DNS_ANOMALIES.append(why)
    return _scapy_dns_get_str(s, pointer, pkt, _fullpacket)


sdns.dns_get_str = _observing_dns_get_str


# ---------------------------------------------------------------------------------
# Where the oracle decodes differently from scapy 2.5 on Linux [B1]-[B3]

# [B1] _IPv6GuessPayload.default_payload_class reads p[2] when nh == 43 (to spot a
# segment-routing header) without a length check; the IndexError turns the whole
# IPv6 layer into Raw.  A routing header of 1 or 2 bytes is raw from there instead.
_scapy_v6_guess = sinet6._IPv6GuessPayload.default_payload_class


def _v6_guess(self, p):
    if self.nh == 43 and len(p) < 3:
        return Raw
    return _scapy_v6_guess(self, p)


sinet6._IPv6GuessPayload.default_payload_class = _v6_guess

# [B2] IPv6.extract_padding, for plen 0 with a hop-by-hop header, hunts for a
# Jumbo option, reads its length in host byte order, and can raise.  A jumbogram's
# payload is everything captured.
_scapy_v6_padding = sinet6.IPv6.extract_padding


def _v6_padding(self, data):
    if self.plen == 0 and self.nh == 0:
        return data, b""
    return _scapy_v6_padding(self, data)


sinet6.IPv6.extract_padding = _v6_padding

# [B3] DLT_NULL's 4-byte family is in the capturing host's byte order.  scapy shows
# the first byte as Loopback.type and binds 0 and 2 to IP and only the running
# host's AF_INET6 (10 on Linux) to IPv6.  The oracle keeps `type` and picks the
# payload from the family read in either byte order: 0 or 2 -> IP; 10 (Linux),
# 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS) -> IPv6; anything else raw.


def _loopback_payload(self, payload):
    head = self.original[:4] if self.original else b""
    family = head[0] if head[:1] != b"\x00" else (head[3] if len(head) == 4 else 0)
    if family in (0, 2):
        return sinet.IP
    if family in (10, 24, 28, 30):
        return sinet6.IPv6
    return Raw


sl2.Loopback.guess_payload_class = _loopback_payload


# [M1] MPLS: scapy binds EtherType 0x8847 after Ethernet (and 802.1Q, which shares
# Ethernet's bindings) and GRE only.  netpipe-fast reads 0x8847 and 0x8848 (multicast,
# RFC 5332) as MPLS after every link layer and GRE.
for _lower in (sl2.Ether, sl2.CookedLinux, sl2.CookedLinuxV2, sl2.GRE):
    for _etype in (0x8847, 0x8848):
        if _lower is sl2.Ether and _etype == 0x8847:
            continue
        if _lower is sl2.GRE:
            bind_layers(_lower, smpls.MPLS, proto=_etype)
        elif _lower is sl2.Ether:
            bind_layers(_lower, smpls.MPLS, type=_etype)
        else:
            bind_layers(_lower, smpls.MPLS, proto=_etype)
bind_layers(sl2.CookedLinuxV2, sppp.PPPoE, proto=0x8864)
bind_layers(sl2.CookedLinuxV2, sppp.PPPoED, proto=0x8863)


# [M2] After the bottom of the label stack scapy guesses IPv4 (nibble 4), IPv6 (6),
# BIER (5), a pseudowire control word (first two bytes 0) or else Ethernet.  The
# payload has no type field; netpipe-fast's default reads IPv4/IPv6 by the nibble and
# leaves anything else raw (`--mpls-payload ether` is not compared).
def _mpls_payload(self, payload):
    if not payload:
        return Padding
    if not self.s:
        return smpls.MPLS
    nibble = payload[0] >> 4
    if nibble == 4:
        return sinet.IP
    if nibble == 6:
        return sinet6.IPv6
    return Raw


smpls.MPLS.guess_payload_class = _mpls_payload

# [G1] ERSPAN type I (GRE 0x88be without a sequence number) has no header of its own;
# scapy 2.5 reads an ERSPAN II header there.  The oracle binds ERSPAN_I, scapy's own
# field-less class for it.
split_layers(sl2.GRE, serspan.ERSPAN, proto=0x88be, seqnum_present=0)
bind_layers(sl2.GRE, serspan.ERSPAN_I, proto=0x88be, seqnum_present=0)


# [P1] PPPoE session: the payload is `len` bytes and the rest of the frame padding
# (RFC 2516); scapy cuts by `len` only in the discovery class.
def _pppoe_padding(self, s):
    return s[:self.len], s[self.len:]


sppp.PPPoE.extract_padding = _pppoe_padding


# ---------------------------------------------------------------------------------
# Values [V]


def _hex(b):
    if isinstance(b, str):
        b = b.encode("latin-1")
    return bytes(b).hex()


def _latin1(b):
    return b if isinstance(b, str) else bytes(b).decode("latin-1")


def _leaf_field(pkt, f):
    """The field that decoded `f` in `pkt` (unwraps Emph, ConditionalField and
    MultipleTypeField)."""
    while True:
        if isinstance(f, MultipleTypeField):
            f = f._find_fld_pkt(pkt)
        elif isinstance(f, ConditionalField) or (hasattr(f, "fld") and not isinstance(f, Packet)):
            f = f.fld
        else:
            return f


def _norm_value(f, v):
    if v is _DELETED:
        raise OracleBug("field %s deleted after dissection" % getattr(f, "name", "?"))
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return int(v)
    if type(v).__name__ == "FlagValue":
        return int(v)
    if isinstance(f, sdns.DNSStrField):
        return _latin1(v)
    if isinstance(f, sdns.DNSTextField):
        return [_latin1(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return _hex(v)
    if isinstance(v, str):
        return v  # MAC, IPv4, IPv6 texts
    if isinstance(v, (list, tuple)):
        return [_norm_value(None, x) for x in v]
    raise OracleBug("no normalisation for %s value %r" % (type(v).__name__, v))


def _dissected(pkt):
    entry = _DISSECTED.get(id(pkt))
    if entry is None or entry[0] is not pkt:
        raise OracleBug("%s was not dissected" % type(pkt).__name__)
    return entry[1]


def _field_values(pkt):
    """[(field, value)] of the fields of `pkt`, in scapy's order.

    [T1] A field scapy did not dissect because the bytes ran out is decoded from
    empty input instead of keeping scapy's default (DNS.qd with no bytes is [], not
    a question for www.example.com); when it cannot be (it needs bytes), the header
    is truncated and the layer is raw."""
    done = _dissected(pkt)
    out = []
    for f in pkt.fields_desc:
        name = f.name
        if name in done:
            out.append((f, pkt.fields.get(name, _DELETED)))
            continue
        if isinstance(f, ConditionalField) and not f._evalcond(pkt):
            continue
        try:
            _, val = f.getfield(pkt, b"")
        except Exception:
            raise Malformed("%s.%s truncated" % (type(pkt).__name__, name))
        if isinstance(f, ConditionalField) and val is None:
            continue
        out.append((f, val))
    # [T1] scapy fills a StrFixedLenField with whatever is left, without complaint.
    for f, v in out:
        leaf = _leaf_field(pkt, f)
        if isinstance(leaf, StrFixedLenField) and isinstance(v, (bytes, str)):
            want = leaf.length_from(pkt)
            if want is not None and len(v) < want:
                raise Malformed("%s.%s short" % (type(pkt).__name__, f.name))
    return out


def _plain_fields(pkt):
    """Object of a sub-packet's fields (DNS records, EDNS0 options)."""
    return {f.name: _norm_value(_leaf_field(pkt, f), v) for f, v in _field_values(pkt)}


def _header_bytes(layer):
    h = layer.raw_packet_cache
    if h is None:
        raise OracleBug("%s has no raw_packet_cache" % type(layer).__name__)
    return h


# ---------------------------------------------------------------------------------
# TCP options [O]


def _tcp_options(layer, scapy_opts):
    """fields_options (FORMAT.md) from the option bytes scapy read, checked option
    by option against scapy's own list (TCPOptionsField.m2i walks them the same
    way: EOL ends the list, a length below 2 counts as 2)."""
    x = _header_bytes(layer)[20:]
    raw_opts = []
    while x:
        kind = x[0]
        if kind == 0:
            raw_opts.append((0, b""))
            break
        if kind == 1:
            raw_opts.append((1, b""))
            x = x[1:]
            continue
        olen = x[1] if len(x) > 1 else 0
        olen = max(olen, 2)
        raw_opts.append((kind, x[2:olen]))
        x = x[olen:]
    scapy_opts = scapy_opts or []
    if len(raw_opts) != len(scapy_opts):
        raise OracleBug("tcp options %r vs scapy's %r" % (raw_opts, scapy_opts))
    out = {}
    for (kind, data), (oname, oval) in zip(raw_opts, scapy_opts):
        known = TCP_OPTION_NAMES.get(kind)
        if (known[0] if known else kind) != oname:
            raise OracleBug("tcp option %r vs scapy's %r" % (kind, oname))
        if kind in (0, 1):
            out[oname] = None
        elif kind in (2, 3, 28):  # MSS, WScale, UTO: a number when the size is right
            out[oname] = oval if isinstance(oval, int) else _hex(data)
        elif kind == 5:  # SAck: numbers when a multiple of 4 bytes
            if isinstance(oval, int):
                out[oname] = [oval]
            elif isinstance(oval, tuple):
                out[oname] = list(oval)
            else:
                out[oname] = _hex(data)
        elif kind == 8:  # Timestamp: TSval, and TSecr beside it
            if isinstance(oval, tuple) and len(oval) == 2:
                out[oname] = oval[0]
                out["TSecr"] = oval[1]
            else:
                out[oname] = _hex(data)
                out.pop("TSecr", None)  # TSecr belongs to the Timestamp it came with
        elif known:
            out[oname] = _hex(data)
        else:
            out[str(kind)] = _hex(data)
    return out


# ---------------------------------------------------------------------------------
# DNS [D]


def _rr_wire_rdlen(rr):
    # DNSRRField.decodeRR builds a record from b"\x00" + type/class/ttl/rdlen + rdata
    return struct.unpack("!H", rr.original[9:11])[0]


def _edns0_options(rr):
    """OPT rdata [D6]: the options cut by their optlen, each dissected with the
    class scapy picks for it.  (scapy's EDNS0ClientSubnet has no extract_padding,
    so in scapy the options after a client-subnet option become its Raw payload.)
    As in scapy, the last option's data is what is left of rdata when its optlen
    asks for more."""
    rdata = rr.original[11:11 + _rr_wire_rdlen(rr)]
    opts = []
    while rdata:
        if len(rdata) < 4:
            raise Malformed("dns OPT option header truncated")
        optlen = struct.unpack("!H", rdata[2:4])[0]
        chunk, rdata = rdata[:4 + optlen], rdata[4 + optlen:]
        try:
            o = sdns.EDNS0TLV(chunk)
        except Exception:
            # what scapy's PacketListField turns into Raw (e.g. a client subnet
            # whose address does not fit its family)
            raise Malformed("dns OPT option undecodable")
        if type(o) not in EDNS0_OPTIONS:
            raise OracleBug("EDNS0 option class %s" % type(o).__name__)
        if not isinstance(o.payload, NoPayload):
            raise Malformed("dns OPT option longer than its fields")
        opts.append(_plain_fields(o))
    return opts


def _dns_section(name, val):
    """qd/an/ns/ar: scapy 2.5 keeps a section as a chain of record packets."""
    if val is None:
        return []
    if not isinstance(val, Packet):
        # [D1] DNSRRField gives b"" when the count exceeds the bytes after the
        # header, and then reads the next section from the start again
        raise Malformed("dns.%s count exceeds the message" % name)
    items = []
    rr = val
    while not isinstance(rr, NoPayload):
        cls = type(rr)
        if cls not in DNS_RECORDS:
            # [D2] rdata longer than the type's fields (Raw after the record), or
            # [D4] a record class netpipe-fast does not decode
            raise Malformed("dns.%s holds %s" % (name, cls.__name__))
        if cls is not sdns.DNSQR:
            rdata = rr.original[11:]
            if len(rdata) < _rr_wire_rdlen(rr):
                raise Malformed("dns.%s rdata truncated" % name)  # [D2]
            if cls is sdns.DNSRR and rr.type == 16:
                # [D2] DNSTextField keeps a character-string cut by the end of rdata
                while rdata:
                    if rdata[0] + 1 > len(rdata):
                        raise Malformed("dns TXT string truncated")
                    rdata = rdata[rdata[0] + 1:]
        obj = {}
        for f, v in _field_values(rr):
            if f.name == "rdlen" and v is _DELETED:
                v = _rr_wire_rdlen(rr)  # [D5] decodeRR deletes it after compression
            if cls is sdns.DNSRROPT and f.name == "rdata":
                obj["rdata"] = _edns0_options(rr)
                continue
            obj[f.name] = _norm_value(_leaf_field(rr, f), v)
        items.append(obj)
        rr = rr.payload
    return items


def _geneve_options(layer, _opts):
    """[G2] GENEVE options: a list of each option's fields.  scapy 2.5's GeneveOptions has
    no extract_padding, so the options after the first become its Raw payload; the oracle
    cuts the option area (optionlen * 4 bytes) into options by their `length` and
    dissects each with GeneveOptions, as it does for EDNS0 options [D6].  Options that do
    not tile the area exactly make the header malformed: raw."""
    area = _header_bytes(layer)[8:8 + layer.optionlen * 4]
    if len(area) != layer.optionlen * 4:
        raise Malformed("geneve options truncated")
    items = []
    while area:
        if len(area) < 4:
            raise Malformed("geneve option header cut")
        size = 4 + (area[3] & 0x1F) * 4
        if size > len(area):
            raise Malformed("geneve option runs past optionlen")
        chunk, area = area[:size], area[size:]
        o = sgeneve.GeneveOptions(chunk)
        if not isinstance(o.payload, NoPayload):
            raise OracleBug("geneve option longer than its fields")
        items.append(_plain_fields(o))
    return items


# ---------------------------------------------------------------------------------
# Layers


def _layer_fields(layer):
    """(fields object, header bytes, bytes after the header that are raw or None)."""
    cls = type(layer)
    if cls in APP_LAYERS:
        return APP_LAYERS[cls](layer)
    fv = _field_values(layer)
    hdr = _header_bytes(layer)
    out = {}
    raw_after = None
    if cls is sdns.DNS and _DNS_ANOMALIES:
        raise Malformed("dns name: %s" % _DNS_ANOMALIES[0])
    if isinstance(layer, sinet.IP) and layer.ihl < 5:
        # [T2] scapy slices the options with a negative length (all but the last
        # 20 - 4*ihl bytes) and decodes the rest from there; the oracle shows the
        # fixed header, no options, and everything after it as raw.
        fv = [(f, v) for f, v in fv if f.name != "options"] + [(None, None)]
        hdr = hdr[:20]
        raw_after = layer.original[20:]
    for f, v in fv:
        if f is None:
            out["options"] = ""
            continue
        name = f.name
        if name == "autopad":
            continue  # phantom field, no bytes on the wire
        if name == "options" and isinstance(layer, sinet.IP):
            out[name] = _hex(hdr[20:])
        elif name == "options" and isinstance(
                layer, (sinet6.IPv6ExtHdrHopByHop, sinet6.IPv6ExtHdrDestOpt)):
            out[name] = _hex(hdr[2:])
        elif name == "options" and isinstance(layer, sinet.TCP):
            out["fields_options"] = _tcp_options(layer, v)
        elif cls is sdns.DNS and name in ("qd", "an", "ns", "ar"):
            out[name] = _dns_section(name, v)
        elif cls is sgeneve.GENEVE and name == "options":
            out[name] = _geneve_options(layer, v)
        else:
            out[name] = _norm_value(_leaf_field(layer, f), v)
    if isinstance(layer, sinet.TCP) and "fields_options" not in out:
        out["fields_options"] = {}
    return out, hdr, raw_after


def _layer_fields_generic(layer):
    saved = APP_LAYERS.pop(type(layer), None)
    try:
        return _layer_fields(layer)
    finally:
        if saved is not None:
            APP_LAYERS[type(layer)] = saved


# ---------------------------------------------------------------------------------
# Application layers [A]


def _bootp(layer):
    # [A1] BOOTP.extract_padding hands the options after the magic cookie to DHCP and
    # rewrites `options`, which drops scapy's raw_packet_cache: the header is the fixed
    # part and what is left in `options`.
    if layer.raw_packet_cache is None:
        layer.raw_packet_cache = bytes(layer.original)[:236 + len(layer.options)]
    return _generic_fields(layer)


def _dhcp_value(v):
    if isinstance(v, (bytes, bytearray)):
        return _hex(v)
    if isinstance(v, (list, tuple)):
        return [_dhcp_value(x) for x in v]
    if isinstance(v, (str, int)):
        return v
    raise OracleBug("dhcp value %r" % (v,))


def _dhcp(layer):
    """[A2] scapy's option list: "pad", "end", [name or code, values...] and, for a
    malformed tail, its bytes (hex)."""
    out = [_dhcp_value(o) for o in layer.options]
    return {"options": out}, _header_bytes(layer), None


def _http(layer):
    """[A3] First-line fields always (\"\" when scapy could not split the line); header
    fields only when the head has them; Unknown_Headers only when non-empty.  Texts are
    latin-1, like DNS names."""
    names = [f.name for f in layer.fields_desc]
    out = {}
    for n in names[:3]:
        out[n] = _latin1(layer.fields.get(n, b""))
    for n in names[3:]:
        if n == "Unknown_Headers":
            unknown = layer.fields.get(n)
            if unknown:
                out[n] = {_latin1(k): _latin1(v) for k, v in unknown.items()}
        elif n in layer.fields:
            out[n] = _latin1(layer.fields[n])
    return out, _header_bytes(layer), None


def _be16(b, at):
    return struct.unpack("!H", b[at:at + 2])[0] if len(b) >= at + 2 else None


TLS_DETAILED = (0, 10, 11, 13, 16, 43)


def _tls_hello_extents(msg, client):
    """[A4] The checks under which netpipe-fast shows a hello: every length inside the
    hello agrees with the bytes.  Returns the raw extensions [(type, data)] or None when
    the hello has none; raises Malformed otherwise."""
    body = msg[4:]
    if len(body) != int.from_bytes(msg[1:4], "big"):
        raise Malformed("tls msglen")
    if len(body) < 35:
        raise Malformed("tls hello short")
    at = 35 + body[34]
    if client:
        n = _be16(body, at)
        if n is None or n % 2 or len(body) < at + 2 + n:
            raise Malformed("tls ciphers")
        at += 2 + n
        if len(body) < at + 1 or len(body) < at + 1 + body[at]:
            raise Malformed("tls comp")
        at += 1 + body[at]
    else:
        if len(body) < at + 3:
            raise Malformed("tls server hello short")
        at += 3
    if at == len(body):
        return None
    n = _be16(body, at)
    if n is None or len(body) != at + 2 + n:
        raise Malformed("tls extlen")
    block = body[at + 2:]
    exts = []
    while block:
        t, ln = _be16(block, 0), _be16(block, 2)
        if ln is None or len(block) < 4 + ln:
            raise Malformed("tls extension cut")
        d = block[4:4 + ln]
        exts.append((t, d))
        block = block[4 + ln:]
        if len(exts) > 256:
            raise Malformed("tls too many extensions")
        if t in TLS_DETAILED and d and not _tls_ext_consistent(t, d, client):
            raise Malformed("tls extension %d lengths" % t)
    return exts


def _tls_ext_consistent(t, d, client):
    def names_tile(lst, hdr):
        while lst:
            if len(lst) < hdr:
                return False
            ln = lst[hdr - 1] if hdr == 1 else _be16(lst, 1)
            if len(lst) < hdr + ln:
                return False
            lst = lst[hdr + ln:]
        return True
    if t in (0, 16, 10, 13):
        if len(d) < 2 or _be16(d, 0) != len(d) - 2:
            return False
        if t == 0:
            return names_tile(d[2:], 3)
        if t == 16:
            return names_tile(d[2:], 1)
        return len(d) % 2 == 0
    if t == 11:
        return d[0] == len(d) - 1
    if client:
        return d[0] == len(d) - 1 and len(d) % 2 == 1
    return len(d) == 2


def _tls_ext(e, raw_type, raw_data):
    if e.type != raw_type:
        raise OracleBug("tls extension %r vs bytes %r" % (e.type, raw_type))
    out = {"type": e.type, "len": len(raw_data)}
    if raw_type not in TLS_DETAILED:
        out["val"] = _hex(raw_data)  # [A5] shown as scapy's TLS_Ext_Unknown
        return out
    if not raw_data:
        return out
    cls = type(e)
    if cls is stlsext.TLS_Ext_ServerName:
        out["servernameslen"] = e.servernameslen
        out["servernames"] = [{"nametype": n.nametype, "namelen": n.namelen,
                               "servername": _latin1(n.servername)} for n in e.servernames]
    elif cls is stlsext.TLS_Ext_ALPN:
        out["protocolslen"] = e.protocolslen
        out["protocols"] = [{"len": p.len, "protocol": _latin1(p.protocol)}
                            for p in e.protocols]
    elif cls is stlsext.TLS_Ext_SupportedGroups:
        out["groupslen"] = e.groupslen
        out["groups"] = list(e.groups)
    elif cls is stlsext.TLS_Ext_SignatureAlgorithms:
        out["sig_algs_len"] = e.sig_algs_len
        out["sig_algs"] = list(e.sig_algs)
    elif cls is stlsext.TLS_Ext_SupportedPointFormat:
        out["ecpllen"] = e.ecpllen
        out["ecpl"] = list(e.ecpl)
    elif cls is stlsext.TLS_Ext_SupportedVersion_CH:
        out["versionslen"] = e.versionslen
        out["versions"] = list(e.versions)
    elif cls is stlsext.TLS_Ext_SupportedVersion_SH:
        out["version"] = e.version
    else:
        raise Malformed("tls extension %d read as %s" % (raw_type, cls.__name__))
    return out


def _tls(layer):
    """[A4] The first record, when it is a handshake record whose first message is a
    ClientHello or a (pre-1.3 layout) ServerHello; the rest of the segment is raw.  The
    record's cipher-state fields (iv, mac, pad, padlen) are empty in clear text and not
    shown."""
    orig = bytes(layer.original)
    if len(orig) < 6 or orig[0] != 22 or orig[1] != 3:
        raise Malformed("tls: not a handshake record")
    frag = orig[5:5 + _be16(orig, 3)]
    if len(frag) < 4:
        raise Malformed("tls: record too short")
    msg = frag[:4 + int.from_bytes(frag[1:4], "big")]
    if len(msg) < 4 + int.from_bytes(frag[1:4], "big"):
        raise Malformed("tls: hello cut")
    msgs = layer.msg if isinstance(layer.msg, list) else []
    if not msgs or type(msgs[0]) not in (stlshs.TLSClientHello, stlshs.TLSServerHello):
        raise Malformed("tls: first message is not a hello")
    h = msgs[0]
    client = type(h) is stlshs.TLSClientHello
    exts = _tls_hello_extents(msg, client)
    hello = {"msgtype": h.msgtype, "msglen": h.msglen, "version": h.version,
             "gmt_unix_time": h.gmt_unix_time, "random_bytes": _hex(h.random_bytes),
             "sidlen": h.sidlen, "sid": _hex(h.sid)}
    if client:
        hello.update(cipherslen=h.cipherslen, ciphers=list(h.ciphers), complen=h.complen)
    else:
        hello["cipher"] = h.cipher
    hello["comp"] = list(h.comp)
    if exts is not None:
        scapy_exts = h.ext or []
        if len(scapy_exts) != len(exts):
            raise OracleBug("tls: scapy read %d extensions, the bytes hold %d" % (
                len(scapy_exts), len(exts)))
        hello["extlen"] = h.extlen
        hello["ext"] = [_tls_ext(e, t, d) for e, (t, d) in zip(scapy_exts, exts)]
    out = {"type": layer.type, "version": layer.version, "len": layer.len, "msg": [hello]}
    hdr = orig[:5 + len(msg)]
    return out, hdr, orig[len(hdr):]


def _generic_fields(layer):
    return _layer_fields_generic(layer)


APP_LAYERS = {
    sdhcp.BOOTP: _bootp,
    sdhcp.DHCP: _dhcp,
    shttp.HTTPRequest: _http,
    shttp.HTTPResponse: _http,
    stlsrec.TLS: _tls,
}


def _tcp_any_port(layer, raw):
    """[A6] On TCP ports scapy binds nothing to, netpipe-fast shows a segment that starts
    with a TLS ClientHello/ServerHello record or an HTTP/1.x request or status line; the
    oracle then has scapy dissect it as TLS or HTTP (scapy's own tests: HTTP's
    guess_payload_class, TLS's message classes) and compares that."""
    under = layer.underlayer
    if type(under) is not sinet.TCP or not raw or 53 in (under.sport, under.dport):
        return None
    if len(raw) >= 6 and raw[0] == 22 and raw[1] == 3 and raw[5] in (1, 2):
        return stlsrec.TLS(raw)
    cls = shttp.HTTP().guess_payload_class(raw)
    if cls in (shttp.HTTPRequest, shttp.HTTPResponse):
        return cls(raw)
    return None


# Shortest header of each link-layer class.  A shorter frame makes scapy raise at
# the top (PcapReader then gives a Raw packet): raw, like any truncated header [T1].
LINK_HEADER_MIN = {
    sl2.Ether: 14, sl2.Dot3: 14, sl2.CookedLinux: 16, sl2.CookedLinuxV2: 20,
    sl2.Loopback: 4, sinet.IP: 20, sinet6.IPv46: 20, sinet6.IPv6: 40,
}


def packet_data(frame, linktype):
    """The `data` object of one frame."""
    _DISSECTED.clear()
    del _DNS_ANOMALIES[:]
    try:
        return _packet_data(frame, linktype)
    finally:
        _DISSECTED.clear()


def _packet_data(frame, linktype):
    if not frame:
        return {}  # [E2]
    ll = conf.l2types.num2layer.get(linktype)
    if ll is None:
        return {"raw": {"load": _hex(frame)}}  # [L1] PcapReader: Raw packet
    try:
        pkt = ll(frame)
    except Exception:
        need = LINK_HEADER_MIN.get(ll)
        if ll is sinet6.IPv46 and frame[0] >> 4 == 6:
            need = 40
        if need is not None and len(frame) < need:
            return {"raw": {"load": _hex(frame)}}
        raise  # the caller reports it as scapy_error

    data = {}
    seen = {}
    consumed = 0  # bytes of the emitted layers' headers
    raw = None
    pads = []
    layer = pkt
    while not isinstance(layer, NoPayload):
        cls = type(layer)
        if cls is shttp.HTTP and isinstance(
                layer.payload, (shttp.HTTPRequest, shttp.HTTPResponse)):
            layer = layer.payload  # [A3] scapy's empty HTTP wrapper is not shown
            continue
        if cls is Raw and raw is None:
            other = _tcp_any_port(layer, layer.load)
            if other is not None:
                other.underlayer = layer.underlayer
                try:
                    result = _layer_fields(other)
                except Malformed:
                    result = None
                if result is not None:
                    layer = _splice(layer, other)
                    cls = type(layer)
        if cls is Padding:
            pads.append(layer.load)  # [P] every Padding, in wire order
            layer = layer.payload
            continue
        if cls is Raw and raw is None:
            raw = layer.load
            layer = layer.payload
            continue
        result = None
        if cls in SUPPORTED and raw is None:
            try:
                result = _layer_fields(layer)
            except Malformed:
                result = None
        if result is None:
            # [R] An unsupported class, or a supported layer the oracle does not
            # accept: the bytes its parent handed to it are raw.  Padding layers cut
            # by the outer layers stay padding; padding cut inside it is raw.
            raw = layer.original
            _outer_padding(layer, frame, consumed, raw, pads)
            break
        fields, hdr, raw_after = result
        key = cls.__name__.lower()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key = "%s_%d" % (key, seen[key])
        data[key] = fields
        consumed += len(hdr)
        if raw_after is not None:
            if raw_after:
                raw = raw_after
            _outer_padding(layer, frame, consumed, raw_after, pads)
            break
        layer = layer.payload

    if raw:
        data["raw"] = {"load": _hex(raw)}
    if pads:
        data["padding"] = {"load": _hex(b"".join(pads))}
    accounted = consumed + len(raw or b"") + sum(len(p) for p in pads)
    if accounted != len(frame):
        raise OracleBug("byte accounting: %d of %d bytes" % (accounted, len(frame)))
    return data


def _splice(raw_layer, other):
    """[A6] `other` (dissected from a Raw layer's bytes) in the Raw layer's place, with
    the Padding layers that followed the Raw layer after its own payload."""
    tail = raw_layer.payload
    last = other
    while not isinstance(last.payload, NoPayload):
        last = last.payload
    if not isinstance(tail, NoPayload):
        last.add_payload(tail)
    return other


def _outer_padding(layer, frame, consumed, raw, pads):
    """Append the Padding layers after `layer` that lie beyond `raw` in the frame
    (scapy appends each layer's padding at the end of the chain, innermost first,
    so the outer ones are the last)."""
    tail = []
    rest = layer.payload
    while not isinstance(rest, NoPayload):
        if type(rest) is Padding:
            tail.append(rest.load)
        rest = rest.payload
    outer = len(frame) - consumed - len(raw)
    keep = []
    total = 0
    for p in reversed(tail):
        if total >= outer:
            break
        keep.insert(0, p)
        total += len(p)
    if total != outer:
        raise OracleBug("cannot place the padding after %s" % type(layer).__name__)
    pads.extend(keep)


# ---------------------------------------------------------------------------------
# Files


def records(path):
    """(frame, linktype, time_ns, wire_len) of every packet record, read with
    scapy's streaming readers (RawPcapReader turns into RawPcapNgReader for pcapng)
    as PcapReader/PcapNgReader.read_packet read them, without the MTU cut [E3]."""
    reader = RawPcapReader(path)
    try:
        if isinstance(reader, RawPcapNgReader):
            while True:
                try:
                    rp = reader._read_block(size=MAX_RECORD)
                except EOFError:
                    return
                if rp is None:
                    continue
                frame, m = rp
                if m.tshigh is None:
                    t = None  # [E1] Simple Packet Block: no timestamp
                else:
                    t = (((m.tshigh << 32) + m.tslow) * 10**9) // m.tsresol
                yield frame, m.linktype, t, m.wirelen
        else:
            mult = 1 if reader.nano else 1000
            while True:
                try:
                    frame, m = reader._read_packet(size=MAX_RECORD)
                except EOFError:
                    return
                yield frame, reader.linktype, m.sec * 10**9 + m.usec * mult, m.wirelen
    finally:
        reader.close()


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: scapy_json.py FILE\n")
        return 2
    write = sys.stdout.write
    for frame, linktype, t, wirelen in records(argv[1]):
        rec = {}
        try:
            rec["data"] = packet_data(frame, linktype)
        except OracleBug as e:
            rec["scapy_error"] = "oracle: %s" % e
        except Exception as e:  # scapy raised while dissecting
            rec["scapy_error"] = "%s: %s" % (type(e).__name__, e)
        rec["time_ns"] = t
        rec["wire_len"] = wirelen
        rec["cap_len"] = len(frame)
        write(json.dumps(rec, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
