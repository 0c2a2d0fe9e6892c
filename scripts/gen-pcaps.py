#!/usr/bin/python3
"""Write netpipe-fast's packet-capture fixtures.

Usage:  /usr/bin/python3 scripts/gen-pcaps.py [OUTDIR]   (default: the repository's pcaps/)

Run it with Debian's python3 and its python3-scapy package (scapy 2.5.0). scapy builds the
packets (so lengths and checksums are right unless a fixture breaks them on purpose); the
capture files themselves -- pcap in either byte order, nanosecond pcap, pcapng -- are written
here with struct, so every header byte is under our control. Nothing is sent on any network.

The output is deterministic: timestamps start at 2026-11-29 12:00:00 UTC and move in fixed
steps, and every random choice comes from a seeded random.Random, so two runs give
byte-identical files (compare with sha256sum).

Addresses come from documentation ranges only: 192.0.2.0/24, 198.51.100.0/24 and
203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849) and MACs 00:00:5e:00:53:xx (RFC 7042),
plus the link-local and multicast addresses IPv6 neighbour discovery cannot do without.

One function per fixture file; pcaps/README.md describes what each file holds.
"""

import calendar
import ipaddress
import os
import random
import struct
import sys
from collections import namedtuple

from scapy.config import conf

conf.verb = 0

# pylint: disable=wrong-import-position
from scapy.layers.inet import (  # noqa: E402
    fragment,
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_EOL,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    IPOption_Timestamp,
)
from scapy.layers.inet6 import (  # noqa: E402
    HAO,
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLReport,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    fragment6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck  # noqa: E402
from scapy.packet import Raw  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Link types (https://www.tcpdump.org/linktypes.html)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD

# 2026-11-29 12:00:00 UTC; each file starts at its own whole minute after this.
T0_NS = calendar.timegm((2026, 11, 29, 12, 0, 0)) * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000

SNAPLEN = 262144

# ---------------------------------------------------------------------------------------------
# Hosts

Host = namedtuple("Host", "mac ip4 ip6 ll6")

CLIENT = Host("00:00:5e:00:53:0a", "192.0.2.10", "2001:db8::10", "fe80::200:5eff:fe00:530a")
CLIENT2 = Host("00:00:5e:00:53:0b", "192.0.2.11", "2001:db8::11", "fe80::200:5eff:fe00:530b")
GATEWAY = Host("00:00:5e:00:53:01", "192.0.2.1", "2001:db8::1", "fe80::200:5eff:fe00:5301")
RESOLVER = Host("00:00:5e:00:53:35", "192.0.2.53", "2001:db8::53", "fe80::200:5eff:fe00:5335")
# Off-link hosts: their frames carry the gateway's MAC.
SERVER = Host(GATEWAY.mac, "198.51.100.20", "2001:db8:1::20", None)
SERVER2 = Host(GATEWAY.mac, "198.51.100.21", "2001:db8:1::21", None)
ROUTER = Host(GATEWAY.mac, "203.0.113.1", "2001:db8:2::1", None)

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"


def mac_bytes(mac):
    return bytes(int(octet, 16) for octet in mac.split(":"))


# ---------------------------------------------------------------------------------------------
# Capture files

Record = namedtuple("Record", "ts_ns data wire_len")


class Capture:
    """The packets of one file, in order, with a clock that only moves forward."""

    def __init__(self, minute, linktype=LINKTYPE_ETHERNET):
        self.now_ns = T0_NS + minute * MINUTE_NS
        self.linktype = linktype
        self.records = []

    def add(self, frame, gap_us=1000, gap_ns=0, caplen=None, wire_len=None):
        """Append one frame `gap_us` (+ `gap_ns`) after the previous one.

        `caplen` keeps only the first bytes, as a small snaplen would; the record's wire length
        stays the full frame length unless `wire_len` says otherwise.
        """
        data = frame if isinstance(frame, bytes) else bytes(frame)
        self.now_ns += gap_us * 1000 + gap_ns
        full_len = len(data) if wire_len is None else wire_len
        if caplen is not None:
            data = data[:caplen]
        self.records.append(Record(self.now_ns, data, full_len))
        return data


def write_pcap(path, linktype, records, byteorder="<", nanosecond=False, snaplen=SNAPLEN):
    """Classic libpcap format, version 2.4, in the given byte order ('<' or '>')."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    with open(path, "wb") as out:
        out.write(struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for rec in records:
            sec, frac_ns = divmod(rec.ts_ns, 1_000_000_000)
            frac = frac_ns if nanosecond else frac_ns // 1000
            out.write(struct.pack(byteorder + "IIII", sec, frac, len(rec.data), rec.wire_len))
            out.write(rec.data)


def pcapng_options(options, byteorder):
    """Options are (code, value bytes); the list ends with opt_endofopt."""
    if not options:
        return b""
    out = b""
    for code, value in options:
        out += struct.pack(byteorder + "HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)
    return out + b"\0\0\0\0"


def pcapng_block(block_type, body, byteorder):
    total = 12 + len(body)
    return struct.pack(byteorder + "II", block_type, total) + body + \
        struct.pack(byteorder + "I", total)


def write_pcapng(path, section_options, interfaces, packets, statistics=(), byteorder="<"):
    """pcapng with one section, in the given byte order.

    Numeric option values (if_tsresol aside, which is one byte) must already be packed in
    `byteorder` by the caller.

    interfaces: (linktype, snaplen, options) per Interface Description Block; an if_tsresol
    option (code 9) sets the unit of that interface's timestamps.
    packets: (interface_id, ts_ns, data, wire_len, options) -> Enhanced Packet Blocks.
    statistics: (interface_id, ts_ns, options) -> Interface Statistics Blocks at the end.
    """
    units_per_s = []
    for _linktype, _snaplen, options in interfaces:
        resol = 6
        for code, value in options:
            if code == 9:
                resol = value[0]
        assert resol < 0x80, "only power-of-ten resolutions are written here"
        units_per_s.append(10**resol)

    bo = byteorder

    def stamp(interface_id, ts_ns):
        units = ts_ns * units_per_s[interface_id] // 1_000_000_000
        return struct.pack(bo + "II", units >> 32, units & 0xFFFFFFFF)

    with open(path, "wb") as out:
        body = struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1) + \
            pcapng_options(section_options, bo)
        out.write(pcapng_block(0x0A0D0D0A, body, bo))
        for linktype, snaplen, options in interfaces:
            body = struct.pack(bo + "HHI", linktype, 0, snaplen) + pcapng_options(options, bo)
            out.write(pcapng_block(0x00000001, body, bo))
        for interface_id, ts_ns, data, wire_len, options in packets:
            body = (
                struct.pack(bo + "I", interface_id)
                + stamp(interface_id, ts_ns)
                + struct.pack(bo + "II", len(data), wire_len)
                + data
                + b"\0" * ((-len(data)) % 4)
                + pcapng_options(options, bo)
            )
            out.write(pcapng_block(0x00000006, body, bo))
        for interface_id, ts_ns, options in statistics:
            body = struct.pack(bo + "I", interface_id) + stamp(interface_id, ts_ns)
            out.write(pcapng_block(0x00000005, body + pcapng_options(options, bo), bo))


# ---------------------------------------------------------------------------------------------
# Building blocks


def eth(src, dst, ethertype=None):
    """An Ethernet header; both MACs always given so scapy never looks anything up."""
    fields = {"src": src.mac if isinstance(src, Host) else src,
              "dst": dst.mac if isinstance(dst, Host) else dst}
    if ethertype is not None:
        fields["type"] = ethertype
    return Ether(**fields)


class TcpConn:
    """One TCP connection; tracks sequence numbers, ACKs, IP ids and timestamps per side.

    `link(from_client)` returns the layers under IP (an Ether header, Ether/Dot1Q, ...) or
    None for raw IP.
    """

    def __init__(self, client, server, sport, dport, link, v6=False, cisn=1000, sisn=5000,
                 ts_opt=True, ip_id=(0x1000, 0x2000), ts_base=(100000, 900000), rng=None):
        self.client, self.server = client, server
        self.sport, self.dport = sport, dport
        self.link = link
        self.v6 = v6
        self.seq = {True: cisn, False: sisn}
        self.ip_id = {True: ip_id[0], False: ip_id[1]}
        self.tsval = {True: ts_base[0], False: ts_base[1]}
        self.ts_opt = ts_opt
        self.window = {True: 502, False: 509}
        self.rng = rng

    def syn_options(self, from_client):
        ts = self.tsval[from_client]
        if from_client:
            return [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (ts, 0)), ("NOP", None),
                    ("WScale", 7)]
        return [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (ts, self.tsval[True])),
                ("NOP", None), ("WScale", 7)]

    def seg(self, from_client, flags, payload=b"", options=None, seq=None, advance=True,
            ip=None, **tcp_fields):
        """One segment; returns the full frame as a scapy packet."""
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        if seq is None:
            seq = self.seq[from_client]
        ack = self.seq[not from_client] if "A" in flags else 0
        self.tsval[from_client] += 1 if self.rng is None else self.rng.randint(1, 40)
        if options is None:
            if "S" in flags:
                options = self.syn_options(from_client)
            elif self.ts_opt:
                options = [("NOP", None), ("NOP", None),
                           ("Timestamp", (self.tsval[from_client], self.tsval[not from_client]))]
            else:
                options = []
        fields = {"window": 64240 if "S" in flags else self.window[from_client]}
        fields.update(tcp_fields)
        tcp = TCP(sport=self.sport if from_client else self.dport,
                  dport=self.dport if from_client else self.sport,
                  seq=seq, ack=ack, flags=flags, options=options, **fields)
        ip_fields = dict(ip or {})
        if self.v6:
            ip_fields.setdefault("hlim", 64 if from_client else 55)
            l3 = IPv6(src=src.ip6, dst=dst.ip6, **ip_fields)
        else:
            ip_fields.setdefault("id", self.ip_id[from_client])
            ip_fields.setdefault("flags", "DF")
            ip_fields.setdefault("ttl", 64 if from_client else 55)
            l3 = IP(src=src.ip4, dst=dst.ip4, **ip_fields)
            self.ip_id[from_client] = (self.ip_id[from_client] + 1) & 0xFFFF
        pkt = l3 / tcp
        if payload:
            pkt = pkt / Raw(payload)
        if advance:
            grow = len(payload) + (1 if "S" in flags else 0) + (1 if "F" in flags else 0)
            self.seq[from_client] = (seq + grow) & 0xFFFFFFFF
        under = self.link(from_client)
        return pkt if under is None else under / pkt


def eth_link(client, server):
    return lambda from_client: eth(client, server) if from_client else eth(server, client)


def no_link(_from_client):
    return None


def ip4(src, dst, **fields):
    fields.setdefault("ttl", 64)
    return IP(src=src.ip4 if isinstance(src, Host) else src,
              dst=dst.ip4 if isinstance(dst, Host) else dst, **fields)


def ip6(src, dst, **fields):
    fields.setdefault("hlim", 64)
    return IPv6(src=src.ip6 if isinstance(src, Host) else src,
                dst=dst.ip6 if isinstance(dst, Host) else dst, **fields)


def http_request(path, host="www.example.com", extra=b""):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"User-Agent: netpipe-fixture/1.0\r\nAccept: */*\r\n" + extra + b"\r\n")


def http_response(body, content_type=b"text/html"):
    head = (b"HTTP/1.1 200 OK\r\nServer: fixture\r\nContent-Type: " + content_type +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    return head + body


def filler_text(rng, size):
    """Readable, deterministic body text of exactly `size` bytes."""
    words = [b"packet", b"capture", b"fixture", b"network", b"frame", b"header", b"payload",
             b"example", b"documentation", b"address", b"netpipe", b"decode", b"json"]
    out = bytearray(b"<html><body><p>")
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---------------------------------------------------------------------------------------------
# DNS messages, written by hand so that name compression is exactly what we ask for
# (RFC 1035 section 4; EDNS0 per RFC 6891).

DNS_A, DNS_NS, DNS_CNAME, DNS_SOA, DNS_PTR, DNS_MX, DNS_TXT = 1, 2, 5, 6, 12, 15, 16
DNS_AAAA, DNS_SRV, DNS_OPT, DNS_SPF = 28, 33, 41, 99
DNS_PRIVATE = 65280
CLASS_IN = 1


def dns_flags(qr=0, opcode=0, aa=0, tc=0, rd=1, ra=0, z=0, ad=0, cd=0, rcode=0):
    return (qr << 15 | opcode << 11 | aa << 10 | tc << 9 | rd << 8 | ra << 7 | z << 6 |
            ad << 5 | cd << 4 | rcode)


class DnsWriter:
    def __init__(self):
        self.buf = bytearray()
        self.suffixes = {}

    def u8(self, value):
        self.buf += struct.pack("!B", value)

    def u16(self, value):
        self.buf += struct.pack("!H", value)

    def u32(self, value):
        self.buf += struct.pack("!I", value)

    def raw(self, data):
        self.buf += data

    def name(self, name, compress=True):
        labels = [label for label in name.encode("latin-1").split(b".") if label]
        for i in range(len(labels)):
            key = b".".join(labels[i:]).lower()
            if compress and key in self.suffixes:
                self.u16(0xC000 | self.suffixes[key])
                return
            if len(self.buf) < 0x3FFF:
                self.suffixes.setdefault(key, len(self.buf))
            self.u8(len(labels[i]))
            self.raw(labels[i])
        self.u8(0)


def rr(name, rtype, rdata, ttl=300, rclass=CLASS_IN):
    """rdata: bytes, or a function writing into the DnsWriter (for names inside rdata)."""
    return (name, rtype, rclass, ttl, rdata)


def rd_a(addr):
    return bytes(int(x) for x in addr.split("."))


def rd_aaaa(addr):
    return ipaddress.IPv6Address(addr).packed


def rd_name(target, compress=True):
    return lambda w: w.name(target, compress)


def rd_mx(preference, exchange):
    def write(w):
        w.u16(preference)
        w.name(exchange)
    return write


def rd_soa(mname, rname, serial, refresh, retry, expire, minimum):
    def write(w):
        w.name(mname)
        w.name(rname)
        for value in (serial, refresh, retry, expire, minimum):
            w.u32(value)
    return write


def rd_srv(priority, weight, port, target):
    # RFC 2782: the target name is not compressed.
    def write(w):
        w.u16(priority)
        w.u16(weight)
        w.u16(port)
        w.name(target, compress=False)
    return write


def rd_txt(*strings):
    return b"".join(bytes([len(s)]) + s for s in strings)


def rr_opt(udp_size=1232, ext_rcode=0, version=0, do=0, options=()):
    """EDNS0 OPT pseudo-record: class is the UDP payload size, TTL carries flags."""
    rdata = b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options)
    ttl = ext_rcode << 24 | version << 16 | do << 15
    return (".", DNS_OPT, udp_size, ttl, rdata)


def dns_message(ident, flags, qd=(), an=(), ns=(), ar=(), counts=None):
    """A DNS message; qd items are (name, qtype, qclass), section items come from rr()."""
    w = DnsWriter()
    w.u16(ident)
    w.u16(flags)
    for count in counts or (len(qd), len(an), len(ns), len(ar)):
        w.u16(count)
    for name, qtype, qclass in qd:
        w.name(name)
        w.u16(qtype)
        w.u16(qclass)
    for section in (an, ns, ar):
        for name, rtype, rclass, ttl, rdata in section:
            w.name(name)
            w.u16(rtype)
            w.u16(rclass)
            w.u32(ttl)
            length_at = len(w.buf)
            w.u16(0)
            if callable(rdata):
                rdata(w)
            else:
                w.raw(rdata)
            struct.pack_into("!H", w.buf, length_at, len(w.buf) - length_at - 2)
    return bytes(w.buf)


def dns_over_tcp(message):
    """RFC 1035 4.2.2: a two-byte length in front of each message."""
    return struct.pack("!H", len(message)) + message


EDNS_COOKIE = 10  # RFC 7873


def dns_exchanges():
    """(query, response) pairs covering every record type the decoder knows, and some it doesn't."""
    q = dns_flags
    r = lambda **kw: dns_flags(qr=1, ra=1, **kw)  # noqa: E731
    cookie = bytes.fromhex("0123456789abcdef")
    out = []

    # A with a CNAME chain, NS in authority, glue A/AAAA and OPT in additional.
    out.append((
        dns_message(0x1A01, q(), qd=[("www.example.com.", DNS_A, CLASS_IN)],
                    ar=[rr_opt(options=[(EDNS_COOKIE, cookie)])]),
        dns_message(0x1A01, r(), qd=[("www.example.com.", DNS_A, CLASS_IN)],
                    an=[rr("www.example.com.", DNS_CNAME, rd_name("web.example.com."), 3600),
                        rr("web.example.com.", DNS_A, rd_a("192.0.2.80")),
                        rr("web.example.com.", DNS_A, rd_a("192.0.2.81"))],
                    ns=[rr("example.com.", DNS_NS, rd_name("ns1.example.com."), 86400),
                        rr("example.com.", DNS_NS, rd_name("ns2.example.com."), 86400)],
                    ar=[rr("ns1.example.com.", DNS_A, rd_a("198.51.100.53"), 86400),
                        rr("ns1.example.com.", DNS_AAAA, rd_aaaa("2001:db8:1::53"), 86400),
                        rr_opt(options=[(EDNS_COOKIE, cookie + bytes(range(16)))])]),
    ))
    # AAAA
    out.append((
        dns_message(0x1A02, q(ad=1), qd=[("www.example.com.", DNS_AAAA, CLASS_IN)]),
        dns_message(0x1A02, r(), qd=[("www.example.com.", DNS_AAAA, CLASS_IN)],
                    an=[rr("www.example.com.", DNS_CNAME, rd_name("web.example.com."), 3600),
                        rr("web.example.com.", DNS_AAAA, rd_aaaa("2001:db8:1::80"))]),
    ))
    # MX with glue
    out.append((
        dns_message(0x1A03, q(), qd=[("example.com.", DNS_MX, CLASS_IN)]),
        dns_message(0x1A03, r(), qd=[("example.com.", DNS_MX, CLASS_IN)],
                    an=[rr("example.com.", DNS_MX, rd_mx(10, "mail.example.com.")),
                        rr("example.com.", DNS_MX, rd_mx(20, "mail2.example.net."))],
                    ar=[rr("mail.example.com.", DNS_A, rd_a("198.51.100.25"))]),
    ))
    # PTR
    out.append((
        dns_message(0x1A04, q(), qd=[("80.2.0.192.in-addr.arpa.", DNS_PTR, CLASS_IN)]),
        dns_message(0x1A04, r(aa=1), qd=[("80.2.0.192.in-addr.arpa.", DNS_PTR, CLASS_IN)],
                    an=[rr("80.2.0.192.in-addr.arpa.", DNS_PTR, rd_name("web.example.com."))]),
    ))
    # TXT: several strings in one record, an empty one, a quote, a byte above 0x7f.
    out.append((
        dns_message(0x1A05, q(), qd=[("example.com.", DNS_TXT, CLASS_IN)]),
        dns_message(0x1A05, r(), qd=[("example.com.", DNS_TXT, CLASS_IN)],
                    an=[rr("example.com.", DNS_TXT,
                           rd_txt(b"v=spf1 ip4:192.0.2.0/24 -all", b"hello \"world\"", b"",
                                  b"caf\xe9")),
                        rr("example.com.", DNS_TXT, rd_txt(b"x" * 200))]),
    ))
    # SRV (uncompressed targets) with glue
    out.append((
        dns_message(0x1A06, q(), qd=[("_sip._udp.example.com.", DNS_SRV, CLASS_IN)]),
        dns_message(0x1A06, r(), qd=[("_sip._udp.example.com.", DNS_SRV, CLASS_IN)],
                    an=[rr("_sip._udp.example.com.", DNS_SRV,
                           rd_srv(10, 60, 5060, "sip.example.com.")),
                        rr("_sip._udp.example.com.", DNS_SRV,
                           rd_srv(20, 0, 5060, "sip2.example.com."))],
                    ar=[rr("sip.example.com.", DNS_A, rd_a("198.51.100.60"))]),
    ))
    # NS
    out.append((
        dns_message(0x1A07, q(rd=0), qd=[("example.com.", DNS_NS, CLASS_IN)]),
        dns_message(0x1A07, r(aa=1, rd=0), qd=[("example.com.", DNS_NS, CLASS_IN)],
                    an=[rr("example.com.", DNS_NS, rd_name("ns1.example.com."), 86400),
                        rr("example.com.", DNS_NS, rd_name("ns2.example.com."), 86400)],
                    ar=[rr("ns1.example.com.", DNS_A, rd_a("198.51.100.53"), 86400),
                        rr("ns2.example.com.", DNS_A, rd_a("203.0.113.53"), 86400)]),
    ))
    soa = rd_soa("ns1.example.com.", "hostmaster.example.com.", 2026112901, 7200, 3600,
                 1209600, 300)
    # SOA
    out.append((
        dns_message(0x1A08, q(), qd=[("example.com.", DNS_SOA, CLASS_IN)]),
        dns_message(0x1A08, r(aa=1), qd=[("example.com.", DNS_SOA, CLASS_IN)],
                    an=[rr("example.com.", DNS_SOA, soa, 3600)]),
    ))
    # NXDOMAIN: SOA in authority, DNSSEC-ish bits set.
    out.append((
        dns_message(0x1A09, q(cd=1), qd=[("nosuch.example.com.", DNS_A, CLASS_IN)],
                    ar=[rr_opt(udp_size=4096, do=1)]),
        dns_message(0x1A09, r(aa=1, cd=1, rcode=3), qd=[("nosuch.example.com.", DNS_A, CLASS_IN)],
                    ns=[rr("example.com.", DNS_SOA, soa, 300)],
                    ar=[rr_opt(udp_size=1232, do=1)]),
    ))
    # A type from the private-use range with opaque rdata.
    out.append((
        dns_message(0x1A0A, q(), qd=[("opaque.example.com.", DNS_PRIVATE, CLASS_IN)]),
        dns_message(0x1A0A, r(), qd=[("opaque.example.com.", DNS_PRIVATE, CLASS_IN)],
                    an=[rr("opaque.example.com.", DNS_PRIVATE, bytes.fromhex("deadbeef0001"))]),
    ))
    # SPF (type 99), obsolete: rdata has TXT layout.
    out.append((
        dns_message(0x1A0B, q(), qd=[("example.com.", DNS_SPF, CLASS_IN)]),
        dns_message(0x1A0B, r(), qd=[("example.com.", DNS_SPF, CLASS_IN)],
                    an=[rr("example.com.", DNS_SPF, rd_txt(b"v=spf1 -all"))]),
    ))
    # A referral with no answers (ancount 0, nscount and arcount only).
    out.append((
        dns_message(0x1A0C, q(rd=0), qd=[("www.example.org.", DNS_A, CLASS_IN)]),
        dns_message(0x1A0C, dns_flags(qr=1, rd=0), qd=[("www.example.org.", DNS_A, CLASS_IN)],
                    ns=[rr("example.org.", DNS_NS, rd_name("a.iana-servers.example."), 172800)],
                    ar=[rr("a.iana-servers.example.", DNS_A, rd_a("203.0.113.43"), 172800)]),
    ))
    return out


# ---------------------------------------------------------------------------------------------
# ethernet-ipv4-tcp.pcap


def fixture_ethernet_ipv4_tcp():
    cap = Capture(0)
    link = eth_link(CLIENT, SERVER)
    rng = random.Random(4)

    # HTTP on port 80.
    conn = TcpConn(CLIENT, SERVER, 51514, 80, link, cisn=0x1F2E3D4C, sisn=0x8A7B6C5D)
    every_option = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""),
                    ("Timestamp", (100000, 0)), ("EOL", None)]
    cap.add(conn.seg(True, "S", options=every_option), gap_us=0)
    cap.add(conn.seg(False, "SA", options=[("MSS", 1400), ("SAckOK", b""),
                                            ("Timestamp", (900000, 100000)), ("NOP", None),
                                            ("WScale", 8), ("EOL", None)],
                     ip={"flags": 0, "id": 0}), gap_us=21000)
    # ACK with Record Route (two slots, one filled) behind a NOP.
    cap.add(conn.seg(True, "A", ip={"options": [IPOption_NOP(),
                                                 IPOption_RR(pointer=8, routers=["192.0.2.1",
                                                                                 "0.0.0.0"])]}),
            gap_us=120)
    # Request with Router Alert, NOP and EOL.
    request = http_request("/index.html")
    cap.add(conn.seg(True, "PA", request,
                     ip={"options": [IPOption_Router_Alert(), IPOption_NOP(), IPOption_EOL()]}),
            gap_us=80)
    cap.add(conn.seg(False, "A"), gap_us=20500)

    # Response in five pieces; pieces 1 and 3 arrive late, so the client SACKs 2 and 4.
    body = filler_text(rng, 2600)
    response = http_response(body)
    pieces = chunks(response, 600)
    starts = []
    seq = conn.seq[False]
    for piece in pieces:
        starts.append(seq)
        seq += len(piece)
    end_seq = seq
    for i in (0, 2, 4):
        cap.add(conn.seg(False, "PA" if i == 4 else "A", pieces[i], seq=starts[i],
                         advance=False), gap_us=300)
    conn.seq[False] = starts[1]
    sack = (starts[2], starts[3], starts[4], end_seq)
    cap.add(conn.seg(True, "A", options=[("NOP", None), ("NOP", None),
                                          ("Timestamp", (100050, 900010)), ("NOP", None),
                                          ("NOP", None), ("SAck", sack)]), gap_us=90)
    for i in (1, 3):
        cap.add(conn.seg(False, "A", pieces[i], seq=starts[i], advance=False), gap_us=21000)
    conn.seq[False] = end_seq
    # ACK carrying User Timeout (RFC 5482) and an option kind scapy has no name for.
    cap.add(conn.seg(True, "A", options=[("NOP", None), ("NOP", None), ("UTO", 300)]),
            gap_us=60)
    cap.add(conn.seg(True, "A", options=[(30, bytes.fromhex("01020304")), ("NOP", None),
                                          ("NOP", None)]), gap_us=40)
    # Close.
    cap.add(conn.seg(True, "FA"), gap_us=50000)
    cap.add(conn.seg(False, "FA"), gap_us=20800)
    cap.add(conn.seg(True, "A"), gap_us=70)

    # Port 8080: ECN negotiation, DSCP/ECN codepoints, URG data, the NS bit, then RST.
    conn = TcpConn(CLIENT, SERVER2, 51620, 8080, eth_link(CLIENT, SERVER2),
                   cisn=0x00000001, sisn=0xFFFFFF00, ip_id=(0x3000, 0x7000))
    cap.add(conn.seg(True, "SEC", ip={"tos": 0x00}), gap_us=100000)
    cap.add(conn.seg(False, "SAE", ip={"tos": 0x00}), gap_us=18000)
    cap.add(conn.seg(True, "A"), gap_us=100)
    cap.add(conn.seg(True, "PA", b"POST /api HTTP/1.1\r\nHost: api.example.com\r\n"
                     b"Content-Length: 5\r\n\r\nhello", ip={"tos": 0x2A}), gap_us=200)
    cap.add(conn.seg(False, "AE", ip={"tos": 0x03}), gap_us=18000)  # CE mark echoed
    cap.add(conn.seg(True, "AC", ip={"tos": 0x02}), gap_us=100)
    cap.add(conn.seg(True, "PAU", b"!", urgptr=1, ip={"tos": 0xB8}), gap_us=100)
    # Sequence number wraps past 2^32 on the server side here.
    cap.add(conn.seg(False, "PA", b"HTTP/1.1 204 No Content\r\n\r\n" + b"z" * 240), gap_us=18000)
    cap.add(conn.seg(True, "NA"), gap_us=100)  # NS (RFC 3540) bit set
    cap.add(conn.seg(True, "RA", options=[]), gap_us=5000)

    # A segment sent as two IPv4 fragments (MF on the first, offset 185*8 on the second).
    conn = TcpConn(CLIENT, SERVER, 51700, 80, link, cisn=0x11111111, sisn=0x22222222,
                   ip_id=(0x4242, 0x5000))
    whole = conn.seg(True, "PA", filler_text(rng, 1900), ip={"flags": 0})
    ip_bytes = bytes(whole[IP])
    transport = ip_bytes[20:]
    first, second = transport[:1480], transport[1480:]
    cap.add(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0x4242, flags="MF", frag=0, proto=6)
            / Raw(first), gap_us=200000)
    cap.add(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0x4242, flags=0, frag=185, proto=6)
            / Raw(second), gap_us=10)

    # A BGP-style SYN with a TCP MD5 signature (RFC 2385), answered by RST; the SYN has the
    # reserved IPv4 flag bit set and a low TTL.
    conn = TcpConn(CLIENT, ROUTER, 179, 179, eth_link(CLIENT, ROUTER), cisn=0x0BADF00D,
                   sisn=0, ts_opt=False, ip_id=(0x0101, 0))
    cap.add(conn.seg(True, "S", options=[("MSS", 1400), ("NOP", None), ("NOP", None),
                                          ("MD5", bytes(range(0xA0, 0xB0)))],
                     ip={"flags": "evil", "ttl": 1, "tos": 0xC0}), gap_us=300000)
    cap.add(conn.seg(False, "RA", options=[], ip={"flags": 0}), gap_us=4000)
    return cap


# ---------------------------------------------------------------------------------------------
# ethernet-udp-dns.pcap


def fixture_ethernet_udp_dns():
    cap = Capture(1)
    sport = 40000
    for query, response in dns_exchanges():
        sport += 7
        cap.add(eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=sport & 0xFFFF)
                / UDP(sport=sport, dport=53) / Raw(query), gap_us=150000)
        cap.add(eth(RESOLVER, CLIENT) / ip4(RESOLVER, CLIENT, id=(sport + 1) & 0xFFFF, ttl=64)
                / UDP(sport=53, dport=sport) / Raw(response), gap_us=1200)

    # A large TXT answer: truncated over UDP (TC=1), then fetched again over TCP.
    question = ("big.example.com.", DNS_TXT, CLASS_IN)
    txt = rd_txt(*[(b"chunk-%02d-" % i) + b"t" * 200 for i in range(6)])
    query = dns_message(0x2B01, dns_flags(), qd=[question])
    cap.add(eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=0x2B01)
            / UDP(sport=40500, dport=53) / Raw(query), gap_us=150000)
    cap.add(eth(RESOLVER, CLIENT) / ip4(RESOLVER, CLIENT, id=0x2B02)
            / UDP(sport=53, dport=40500)
            / Raw(dns_message(0x2B01, dns_flags(qr=1, ra=1, tc=1), qd=[question])), gap_us=900)

    conn = TcpConn(CLIENT, RESOLVER, 40501, 53, eth_link(CLIENT, RESOLVER), cisn=0x5A5A0000,
                   sisn=0xA5A50000)
    cap.add(conn.seg(True, "S"), gap_us=500)
    cap.add(conn.seg(False, "SA"), gap_us=300)
    cap.add(conn.seg(True, "A"), gap_us=50)
    tcp_query = dns_message(0x2B02, dns_flags(), qd=[question],
                            ar=[rr_opt(options=[(EDNS_COOKIE, bytes(8))])])
    cap.add(conn.seg(True, "PA", dns_over_tcp(tcp_query)), gap_us=40)
    cap.add(conn.seg(False, "A"), gap_us=300)
    full_tcp = dns_message(0x2B02, dns_flags(qr=1, ra=1), qd=[question],
                           an=[rr("big.example.com.", DNS_TXT, txt)])
    cap.add(conn.seg(False, "PA", dns_over_tcp(full_tcp)), gap_us=900)
    cap.add(conn.seg(True, "A"), gap_us=40)
    cap.add(conn.seg(True, "FA"), gap_us=200)
    cap.add(conn.seg(False, "FA"), gap_us=300)
    cap.add(conn.seg(True, "A"), gap_us=40)

    # Plain UDP on ports scapy binds nothing to.
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, "203.0.113.50", id=0x0514)
            / UDP(sport=41514, dport=514)
            / Raw(b"<34>Nov 29 12:01:05 client app[42]: disk almost full"), gap_us=100000)
    cap.add(eth(CLIENT, CLIENT2) / ip4(CLIENT, CLIENT2, id=0x0007)
            / UDP(sport=41007, dport=7) / Raw(b"echo me " * 8), gap_us=1000)
    cap.add(eth(CLIENT2, CLIENT) / ip4(CLIENT2, CLIENT, id=0x0008)
            / UDP(sport=7, dport=41007) / Raw(b"echo me " * 8), gap_us=300)
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, SERVER, id=0x8235, ttl=1)
            / UDP(sport=41999, dport=33434), gap_us=1000)  # empty payload
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, SERVER, id=0x0443)
            / UDP(sport=41443, dport=443) / Raw(bytes(random.Random(443).randrange(256)
                                                      for _ in range(120))), gap_us=1000)
    # IPv4 UDP may send no checksum at all (RFC 768).
    cap.add(eth(CLIENT, CLIENT2) / ip4(CLIENT, CLIENT2, id=0x0009)
            / UDP(sport=41009, dport=9, chksum=0) / Raw(b"discard this"), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# ethernet-icmp.pcap


def fixture_ethernet_icmp():
    cap = Capture(2)
    out = lambda: eth(CLIENT, GATEWAY)  # noqa: E731
    back = lambda: eth(GATEWAY, CLIENT)  # noqa: E731
    payload = bytes(range(0x10, 0x38))  # 40 bytes, like Linux ping's pattern area

    for seq in (1, 2):
        cap.add(out() / ip4(CLIENT, SERVER, id=0x100 + seq, flags="DF")
                / ICMP(type=8, id=0x4D2, seq=seq) / Raw(payload), gap_us=1000000)
        cap.add(back() / ip4(SERVER, CLIENT, id=0x900 + seq, ttl=55)
                / ICMP(type=0, id=0x4D2, seq=seq) / Raw(payload), gap_us=18700)
    # Echo with an IPv4 Timestamp option (ping -T tsonly).
    cap.add(out() / ip4(CLIENT, SERVER, id=0x103,
                        options=[IPOption_Timestamp(flg=0, timestamp=[43200000, 0, 0])])
            / ICMP(type=8, id=0x4D2, seq=3) / Raw(payload[:8]), gap_us=1000000)

    # Destination unreachable, port unreachable: quotes IP + the whole UDP datagram.
    probe = bytes(ip4(CLIENT, SERVER, id=0x7777) / UDP(sport=42000, dport=9999)
                  / Raw(b"anyone there?"))
    cap.add(out() / ip4(CLIENT, SERVER, id=0x7777) / UDP(sport=42000, dport=9999)
            / Raw(b"anyone there?"), gap_us=100000)
    cap.add(back() / ip4(SERVER, CLIENT, id=0x9901, ttl=55) / ICMP(type=3, code=3)
            / Raw(probe), gap_us=18000)
    # Host unreachable: IP header + first 8 bytes of TCP only (RFC 792 minimum).
    syn = bytes(ip4(CLIENT, "198.51.100.99", id=0x7778, flags="DF")
                / TCP(sport=51000, dport=80, seq=0xC0FFEE, flags="S",
                      options=[("MSS", 1460), ("SAckOK", b""), ("NOP", None),
                               ("WScale", 7)]))
    cap.add(back() / ip4(ROUTER, CLIENT, id=0x9902, ttl=250) / ICMP(type=3, code=1)
            / Raw(syn[:28]), gap_us=3000000)
    # Administratively prohibited: the full TCP header with options quoted.
    cap.add(back() / ip4(ROUTER, CLIENT, id=0x9903, ttl=250) / ICMP(type=3, code=13)
            / Raw(syn), gap_us=1000)
    # Fragmentation needed with the next-hop MTU (RFC 1191).
    big = bytes(ip4(CLIENT, SERVER, id=0x7779, flags="DF")
                / TCP(sport=51001, dport=80, seq=1, ack=1, flags="A") / Raw(b"D" * 1400))
    cap.add(back() / ip4(ROUTER, CLIENT, id=0x9904, ttl=250)
            / ICMP(type=3, code=4, nexthopmtu=1280) / Raw(big[:548]), gap_us=1000)
    # Time exceeded in transit for a traceroute probe.
    trace = bytes(ip4(CLIENT, SERVER, id=0x8236, ttl=1) / UDP(sport=42001, dport=33435)
                  / Raw(b"@" * 32))
    cap.add(out() / ip4(CLIENT, SERVER, id=0x8236, ttl=1) / UDP(sport=42001, dport=33435)
            / Raw(b"@" * 32), gap_us=500000)
    cap.add(back() / ip4(GATEWAY, CLIENT, id=0x9905, ttl=255) / ICMP(type=11, code=0)
            / Raw(trace[:28]), gap_us=400)
    # Fragment reassembly time exceeded.
    cap.add(back() / ip4(SERVER, CLIENT, id=0x9906, ttl=55) / ICMP(type=11, code=1)
            / Raw(trace), gap_us=1000)
    # Redirect for host, pointing at a better gateway; quotes an echo request.
    echo = bytes(ip4(CLIENT, "198.51.100.77", id=0x104) / ICMP(type=8, id=0x4D3, seq=1)
                 / Raw(payload))
    cap.add(back() / ip4(GATEWAY, CLIENT, id=0x9907, ttl=255)
            / ICMP(type=5, code=1, gw="192.0.2.254") / Raw(echo[:28]), gap_us=200000)
    # Timestamp request / reply (RFC 792): milliseconds since midnight UT.
    cap.add(out() / ip4(CLIENT, SERVER, id=0x105) / ICMP(type=13, id=0x4D4, seq=1,
                                                        ts_ori=43260000, ts_rx=0, ts_tx=0),
            gap_us=500000)
    cap.add(back() / ip4(SERVER, CLIENT, id=0x9908, ttl=55)
            / ICMP(type=14, id=0x4D4, seq=1, ts_ori=43260000, ts_rx=43260009,
                   ts_tx=43260010), gap_us=18000)
    # Address mask request / reply (RFC 950).
    cap.add(eth(CLIENT, BROADCAST) / ip4(CLIENT, "192.0.2.255", id=0x106)
            / ICMP(type=17, id=0x4D5, seq=1, addr_mask="0.0.0.0"), gap_us=500000)
    cap.add(back() / ip4(GATEWAY, CLIENT, id=0x9909, ttl=255)
            / ICMP(type=18, id=0x4D5, seq=1, addr_mask="255.255.255.0"), gap_us=600)
    # Parameter problem, pointer at the bad option byte of the quoted header.
    bad = bytes(ip4(CLIENT, SERVER, id=0x107, options=[IPOption_NOP(), IPOption_EOL()])
                / UDP(sport=42002, dport=9999))
    bad = bytearray(bad)
    bad[21] = 0x99  # an option type nobody knows
    refresh_ipv4_checksum(bad, 0)
    bad = bytes(bad)
    cap.add(back() / ip4(SERVER, CLIENT, id=0x990A, ttl=55) / ICMP(type=12, code=0, ptr=21)
            / Raw(bad), gap_us=300000)
    # Source quench (deprecated, RFC 6633) still decodes.
    cap.add(back() / ip4(ROUTER, CLIENT, id=0x990B, ttl=250) / ICMP(type=4, code=0)
            / Raw(echo[:28]), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# ethernet-arp.pcap


def arp_frame(src_mac, dst_mac, op, hwsrc, psrc, hwdst, pdst, pad=b""):
    return eth(src_mac, dst_mac) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst,
                                       pdst=pdst) / Raw(pad) if pad else \
        eth(src_mac, dst_mac) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst, pdst=pdst)


def fixture_ethernet_arp():
    cap = Capture(3)
    pad = bytes(18)  # frames padded to the 60-byte Ethernet minimum, as a NIC would
    # Request and reply as seen from the requester (unpadded outgoing, padded incoming).
    cap.add(arp_frame(CLIENT.mac, BROADCAST, 1, CLIENT.mac, CLIENT.ip4, ZERO_MAC, GATEWAY.ip4),
            gap_us=0)
    cap.add(arp_frame(GATEWAY.mac, CLIENT.mac, 2, GATEWAY.mac, GATEWAY.ip4, CLIENT.mac,
                      CLIENT.ip4, pad), gap_us=400)
    # Another host asks for us, we answer.
    cap.add(arp_frame(CLIENT2.mac, BROADCAST, 1, CLIENT2.mac, CLIENT2.ip4, ZERO_MAC, CLIENT.ip4,
                      pad), gap_us=2000000)
    cap.add(arp_frame(CLIENT.mac, CLIENT2.mac, 2, CLIENT.mac, CLIENT.ip4, CLIENT2.mac,
                      CLIENT2.ip4), gap_us=50)
    # Probe (RFC 5227): sender IP 0.0.0.0.
    cap.add(arp_frame(RESOLVER.mac, BROADCAST, 1, RESOLVER.mac, "0.0.0.0", ZERO_MAC,
                      RESOLVER.ip4, pad), gap_us=1000000)
    # Gratuitous request (announcement) and gratuitous reply.
    cap.add(arp_frame(RESOLVER.mac, BROADCAST, 1, RESOLVER.mac, RESOLVER.ip4, ZERO_MAC,
                      RESOLVER.ip4, pad), gap_us=2000000)
    cap.add(arp_frame(GATEWAY.mac, BROADCAST, 2, GATEWAY.mac, GATEWAY.ip4, BROADCAST,
                      GATEWAY.ip4, pad), gap_us=1000000)
    # Unicast refresh (Linux re-validates the neighbour entry this way).
    cap.add(arp_frame(CLIENT.mac, GATEWAY.mac, 1, CLIENT.mac, CLIENT.ip4, ZERO_MAC,
                      GATEWAY.ip4), gap_us=30000000)
    cap.add(arp_frame(GATEWAY.mac, CLIENT.mac, 2, GATEWAY.mac, GATEWAY.ip4, CLIENT.mac,
                      CLIENT.ip4, pad), gap_us=300)
    return cap


# ---------------------------------------------------------------------------------------------
# ethernet-ipv6.pcap


def fixture_ethernet_ipv6():
    cap = Capture(4)
    out = lambda: eth(CLIENT, GATEWAY)  # noqa: E731
    back = lambda: eth(GATEWAY, CLIENT)  # noqa: E731
    payload = bytes(range(0x20, 0x58))

    # Neighbour discovery first, as a host coming up would.
    cap.add(eth(CLIENT, "33:33:00:00:00:02") / ip6(CLIENT.ll6, "ff02::2", hlim=255)
            / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT.mac), gap_us=0)
    cap.add(eth(GATEWAY, "33:33:00:00:00:01") / ip6(GATEWAY.ll6, "ff02::1", hlim=255)
            / ICMPv6ND_RA(chlim=64, M=0, O=1, routerlifetime=1800, reachabletime=30000,
                          retranstimer=1000)
            / ICMPv6NDOptSrcLLAddr(lladdr=GATEWAY.mac) / ICMPv6NDOptMTU(mtu=1500)
            / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64, L=1, A=1,
                                    validlifetime=86400, preferredlifetime=14400),
            gap_us=3000)
    cap.add(eth(CLIENT, "33:33:ff:00:00:01") / ip6(CLIENT.ip6, "ff02::1:ff00:1", hlim=255)
            / ICMPv6ND_NS(tgt=GATEWAY.ip6) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT.mac),
            gap_us=200000)
    cap.add(back() / ip6(GATEWAY.ip6, CLIENT.ip6, hlim=255)
            / ICMPv6ND_NA(R=1, S=1, O=1, tgt=GATEWAY.ip6)
            / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY.mac), gap_us=300)
    # MLDv1 report behind a hop-by-hop header with Router Alert and PadN.
    cap.add(eth(CLIENT, "33:33:00:00:00:fb") / ip6(CLIENT.ll6, "ff02::fb", hlim=1)
            / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN(optdata=b"")])
            / ICMPv6MLReport(mladdr="ff02::fb"), gap_us=5000)

    # Echo request / reply.
    for seq in (1, 2):
        cap.add(out() / ip6(CLIENT, SERVER) / ICMPv6EchoRequest(id=0x77, seq=seq, data=payload),
                gap_us=1000000)
        cap.add(back() / ip6(SERVER, CLIENT, hlim=55)
                / ICMPv6EchoReply(id=0x77, seq=seq, data=payload), gap_us=19000)

    # TCP: handshake, a request, the answer, reset.
    conn = TcpConn(CLIENT, SERVER, 52000, 80, eth_link(CLIENT, SERVER), v6=True,
                   cisn=0x600D0000, sisn=0x0BAD0000)
    cap.add(conn.seg(True, "S", ip={"fl": 0xABCDE}), gap_us=500000)
    cap.add(conn.seg(False, "SA", ip={"fl": 0x12345}), gap_us=19000)
    cap.add(conn.seg(True, "A", ip={"fl": 0xABCDE}), gap_us=60)
    cap.add(conn.seg(True, "PA", http_request("/v6", host="[2001:db8:1::20]"),
                     ip={"fl": 0xABCDE, "tc": 0x28}), gap_us=50)
    cap.add(conn.seg(False, "PA", http_response(b"<p>over IPv6</p>"), ip={"fl": 0x12345}),
            gap_us=20000)
    cap.add(conn.seg(True, "RA", options=[], ip={"fl": 0xABCDE}), gap_us=100)

    # UDP: a DNS query over IPv6, and plain UDP.
    query, response = dns_exchanges()[1]
    cap.add(eth(CLIENT, RESOLVER) / ip6(CLIENT, RESOLVER) / UDP(sport=43001, dport=53)
            / Raw(query), gap_us=100000)
    cap.add(eth(RESOLVER, CLIENT) / ip6(RESOLVER, CLIENT) / UDP(sport=53, dport=43001)
            / Raw(response), gap_us=800)
    cap.add(out() / ip6(CLIENT, SERVER) / UDP(sport=43002, dport=514)
            / Raw(b"<13>syslog over IPv6"), gap_us=1000)

    # Extension headers, alone and chained.
    cap.add(out() / ip6(CLIENT, SERVER)
            / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00\x00\x00\x00")])
            / UDP(sport=43003, dport=9999) / Raw(b"hop-by-hop"), gap_us=1000)
    cap.add(out() / ip6(CLIENT, "2001:db8:2::1")
            / IPv6ExtHdrRouting(type=0, segleft=2, addresses=["2001:db8:3::1", SERVER.ip6])
            / UDP(sport=43004, dport=9999) / Raw(b"source routed"), gap_us=1000)
    # With a Home Address option the checksum pseudo-header uses the home address (RFC 6275
    # 6.3), which scapy does not know; take the checksum from a build with that source.
    home = "2001:db8::99"
    as_sent_home = bytes(ip6(home, SERVER) / UDP(sport=43005, dport=9999)
                         / Raw(b"destination options"))
    udp_sum = struct.unpack_from("!H", as_sent_home, 40 + 6)[0]
    cap.add(out() / ip6(CLIENT, SERVER)
            / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00"), HAO(hoa=home)])
            / UDP(sport=43005, dport=9999, chksum=udp_sum)
            / Raw(b"destination options"), gap_us=1000)
    cap.add(out() / ip6(CLIENT, SERVER)
            / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"\xab\xcd"),
                                         PadN(optdata=b"")])
            / TCP(sport=52001, dport=80, seq=7, ack=9, flags="A", window=500), gap_us=1000)
    # A UDP datagram in two fragments; the first carries the UDP header.
    frag_id = 0x1234ABCD
    # scapy fills the UDP checksum only with an IPv6 header under it: build whole, then cut.
    datagram = bytes((ip6(CLIENT, SERVER) / UDP(sport=43006, dport=9999)
                      / Raw(b"F" * 1500))[UDP])
    cap.add(out() / ip6(CLIENT, SERVER) / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=frag_id)
            / Raw(datagram[:1232]), gap_us=1000)
    cap.add(out() / ip6(CLIENT, SERVER)
            / IPv6ExtHdrFragment(nh=17, offset=1232 // 8, m=0, id=frag_id)
            / Raw(datagram[1232:]), gap_us=10)
    # Atomic fragment (offset 0, M clear) around a TCP segment.
    cap.add(out() / ip6(CLIENT, SERVER) / IPv6ExtHdrFragment(offset=0, m=0, id=0x0A70)
            / TCP(sport=52002, dport=80, seq=1, ack=1, flags="A", window=500), gap_us=1000)
    # The RFC 8200 order: hop-by-hop, destination options, routing, fragment, destination
    # options, upper layer.
    cap.add(out() / ip6(CLIENT, "2001:db8:2::1")
            / IPv6ExtHdrHopByHop(options=[RouterAlert(value=2), PadN(optdata=b"")])
            / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
            / IPv6ExtHdrRouting(type=0, segleft=1, addresses=[SERVER.ip6])
            / IPv6ExtHdrFragment(offset=0, m=0, id=0xC4A1)
            / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
            / TCP(sport=52003, dport=80, seq=100, ack=200, flags="PA", window=500)
            / Raw(b"chained"), gap_us=1000)
    cap.add(out() / ip6(CLIENT, "2001:db8:2::1")
            / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00\x00\x00\x00")])
            / IPv6ExtHdrRouting(type=0, segleft=0, addresses=[])
            / UDP(sport=43007, dport=9999) / Raw(b"empty routing header"), gap_us=1000)
    # Destination options followed by No Next Header (59): nothing after it.
    cap.add(out() / ip6(CLIENT, SERVER)
            / IPv6ExtHdrDestOpt(nh=59, options=[PadN(optdata=b"\x00\x00\x00\x00")]),
            gap_us=1000)

    # ICMPv6 errors, each quoting the packet that caused it.
    udp_probe = bytes(ip6(CLIENT, SERVER) / UDP(sport=43008, dport=9999) / Raw(b"knock"))
    cap.add(back() / ip6(SERVER, CLIENT, hlim=55) / ICMPv6DestUnreach(code=4)
            / Raw(udp_probe), gap_us=100000)
    cap.add(back() / ip6(ROUTER, CLIENT, hlim=250) / ICMPv6DestUnreach(code=3)
            / Raw(udp_probe), gap_us=1000)
    big = bytes(ip6(CLIENT, SERVER) / TCP(sport=52004, dport=80, seq=1, ack=1, flags="A",
                                          window=500) / Raw(b"T" * 1400))
    cap.add(back() / ip6(ROUTER, CLIENT, hlim=250) / ICMPv6PacketTooBig(mtu=1280)
            / Raw(big[:1232]), gap_us=1000)
    trace = bytes(ip6(CLIENT, SERVER, hlim=1) / UDP(sport=43009, dport=33434) / Raw(b"@" * 24))
    cap.add(back() / ip6(GATEWAY, CLIENT, hlim=64) / ICMPv6TimeExceeded(code=0) / Raw(trace),
            gap_us=1000)
    unknown_nh = bytes(ip6(CLIENT, SERVER, nh=0xFD) / Raw(b"experimental protocol 253"))
    cap.add(back() / ip6(SERVER, CLIENT, hlim=55) / ICMPv6ParamProblem(code=1, ptr=6)
            / Raw(unknown_nh), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# vlan.pcap


def fixture_vlan():
    cap = Capture(5)
    rng = random.Random(5)
    # 802.1Q, one tag: several VLAN ids, priorities, DEI.
    cap.add(eth(CLIENT, SERVER) / Dot1Q(prio=0, id=0, vlan=10) / ip4(CLIENT, SERVER, id=1)
            / TCP(sport=53000, dport=80, seq=1, flags="S", window=64240,
                  options=[("MSS", 1460), ("SAckOK", b"")]), gap_us=0)
    cap.add(eth(SERVER, CLIENT) / Dot1Q(prio=0, id=0, vlan=10) / ip4(SERVER, CLIENT, id=2)
            / TCP(sport=80, dport=53000, seq=77, ack=2, flags="SA", window=65535,
                  options=[("MSS", 1460), ("SAckOK", b"")]), gap_us=15000)
    query, response = dns_exchanges()[0]
    cap.add(eth(CLIENT, RESOLVER) / Dot1Q(prio=5, id=1, vlan=20) / ip4(CLIENT, RESOLVER, id=3)
            / UDP(sport=44001, dport=53) / Raw(query), gap_us=1000)
    cap.add(eth(RESOLVER, CLIENT) / Dot1Q(prio=5, id=1, vlan=20) / ip4(RESOLVER, CLIENT, id=4)
            / UDP(sport=53, dport=44001) / Raw(response), gap_us=700)
    cap.add(eth(CLIENT, BROADCAST) / Dot1Q(prio=7, id=0, vlan=4094)
            / ARP(op=1, hwsrc=CLIENT.mac, psrc=CLIENT.ip4, hwdst=ZERO_MAC, pdst=GATEWAY.ip4),
            gap_us=1000)
    cap.add(eth(GATEWAY, CLIENT) / Dot1Q(prio=7, id=0, vlan=4094)
            / ARP(op=2, hwsrc=GATEWAY.mac, psrc=GATEWAY.ip4, hwdst=CLIENT.mac,
                  pdst=CLIENT.ip4) / Raw(bytes(14)), gap_us=300)
    # Priority tag only (VLAN 0) around IPv6.
    cap.add(eth(CLIENT, GATEWAY) / Dot1Q(prio=6, id=0, vlan=0) / ip6(CLIENT, SERVER)
            / ICMPv6EchoRequest(id=9, seq=1, data=b"tagged"), gap_us=1000)
    cap.add(eth(CLIENT, GATEWAY) / Dot1Q(prio=1, id=0, vlan=1) / ip4(CLIENT, SERVER, id=5)
            / ICMP(type=8, id=9, seq=1) / Raw(b"vlan one"), gap_us=1000)
    cap.add(eth(CLIENT, GATEWAY) / Dot1Q(prio=3, id=1, vlan=2049) / ip4(CLIENT, SERVER, id=6)
            / UDP(sport=44002, dport=514) / Raw(b"<14>tagged syslog"), gap_us=1000)

    # 802.1ad QinQ: S-tag 0x88a8 outside, C-tag 0x8100 inside.
    cap.add(eth(CLIENT, SERVER, ETH_P_8021AD) / Dot1AD(prio=3, id=0, vlan=100, type=ETH_P_8021Q)
            / Dot1Q(prio=0, id=0, vlan=10) / ip4(CLIENT, SERVER, id=7)
            / UDP(sport=44003, dport=9999) / Raw(b"qinq"), gap_us=1000)
    cap.add(eth(SERVER, CLIENT, ETH_P_8021AD) / Dot1AD(prio=3, id=1, vlan=100, type=ETH_P_8021Q)
            / Dot1Q(prio=2, id=0, vlan=11) / ip6(SERVER, CLIENT)
            / UDP(sport=9999, dport=44003) / Raw(b"qinq v6"), gap_us=1000)
    cap.add(eth(CLIENT, BROADCAST, ETH_P_8021AD)
            / Dot1AD(prio=0, id=0, vlan=200, type=ETH_P_8021Q) / Dot1Q(prio=0, id=0, vlan=30)
            / ARP(op=1, hwsrc=CLIENT.mac, psrc=CLIENT.ip4, hwdst=ZERO_MAC, pdst=CLIENT2.ip4),
            gap_us=1000)
    # Two 0x8100 tags (the pre-802.1ad way of stacking).
    cap.add(eth(CLIENT, SERVER, ETH_P_8021Q) / Dot1Q(prio=4, id=0, vlan=300, type=ETH_P_8021Q)
            / Dot1Q(prio=4, id=0, vlan=31) / ip4(CLIENT, SERVER, id=8)
            / TCP(sport=53001, dport=80, seq=1000, ack=2000, flags="PA", window=502)
            / Raw(http_request("/double-tagged")), gap_us=1000)
    cap.add(eth(SERVER, CLIENT, ETH_P_8021Q) / Dot1Q(prio=4, id=0, vlan=300, type=ETH_P_8021Q)
            / Dot1Q(prio=4, id=0, vlan=31) / ip4(SERVER, CLIENT, id=9)
            / TCP(sport=80, dport=53001, seq=2000, ack=1000, flags="A", window=509),
            gap_us=15000)
    # Three tags: S-tag, then two C-tags.
    cap.add(eth(CLIENT, SERVER, ETH_P_8021AD) / Dot1AD(prio=1, id=0, vlan=400, type=ETH_P_8021Q)
            / Dot1Q(prio=1, id=0, vlan=40, type=ETH_P_8021Q) / Dot1Q(prio=1, id=0, vlan=41)
            / ip4(CLIENT, SERVER, id=10) / ICMP(type=8, id=10, seq=1) / Raw(b"three tags"),
            gap_us=1000)
    # A tagged frame padded to the 64-byte minimum with arbitrary trailer bytes.
    ack = bytes(eth(CLIENT, SERVER) / Dot1Q(prio=0, id=0, vlan=10) / ip4(CLIENT, SERVER, id=11)
                / TCP(sport=53000, dport=80, seq=2, ack=78, flags="A", window=502))
    cap.add(ack + bytes(rng.randrange(256) for _ in range(64 - len(ack))), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# tunnels.pcap
#
# Tunnel headers are packed here with struct (every bit under our control, independent of how
# scapy's contrib classes build them); scapy builds the IP/UDP/TCP around and inside them, so
# outer lengths and checksums are right.

VTEP_A = Host("00:00:5e:00:53:a1", "203.0.113.11", "2001:db8:2::11", None)
VTEP_B = Host("00:00:5e:00:53:b2", "203.0.113.12", "2001:db8:2::12", None)
TENANT_A = Host("00:00:5e:00:53:c1", "192.0.2.101", "2001:db8:3::101", None)
TENANT_B = Host("00:00:5e:00:53:c2", "192.0.2.102", "2001:db8:3::102", None)
ETH_P_TEB = 0x6558          # transparent Ethernet bridging (GRE, GENEVE)
ETH_P_MPLS_UC = 0x8847
ETH_P_MPLS_MC = 0x8848
ETH_P_PPPOE_DISC = 0x8863
ETH_P_PPPOE_SESS = 0x8864
ETH_P_ERSPAN_II = 0x88BE
ETH_P_ERSPAN_III = 0x22EB
ETH_P_PPP_GRE = 0x880B


def vxlan_hdr(vni, flags=0x08, next_protocol=None, gp=None, reserved2=0):
    """RFC 7348 header; next_protocol sets the VXLAN-GPE P bit, gp=(gpflags, gpid) the G bit."""
    if next_protocol is not None:
        flags |= 0x04
    if gp is not None:
        flags |= 0x80
    out = bytes([flags])
    if next_protocol is not None:
        out += struct.pack("!HB", 0, next_protocol)
    if gp is not None:
        out += struct.pack("!BH", gp[0], gp[1])
    if next_protocol is None and gp is None:
        out += b"\x00\x00\x00"
    return out + struct.pack("!I", (vni << 8) | reserved2)


def geneve_hdr(vni, proto, options=(), oam=0, critical=0):
    """RFC 8926 header; options are (class, type, data) with len(data) a multiple of 4."""
    opts = b"".join(struct.pack("!HBB", c, t, len(d) // 4) + d for c, t, d in options)
    return struct.pack("!BBHI", len(opts) // 4, (oam << 7) | (critical << 6), proto,
                       vni << 8) + opts


def gre_hdr(proto, key=None, seq=None, chksum=None, version=0):
    b0 = (0x80 if chksum is not None else 0) | (0x20 if key is not None else 0) \
        | (0x10 if seq is not None else 0)
    out = struct.pack("!BBH", b0, version, proto)
    if chksum is not None:
        out += struct.pack("!HH", chksum, 0)
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out


def gre_pptp_hdr(payload_len, call_id, seq=None, ack=None):
    b0 = 0x20 | (0x10 if seq is not None else 0)
    b1 = (0x80 if ack is not None else 0) | 1
    out = struct.pack("!BBHHH", b0, b1, ETH_P_PPP_GRE, payload_len, call_id)
    if seq is not None:
        out += struct.pack("!I", seq)
    if ack is not None:
        out += struct.pack("!I", ack)
    return out


def erspan_ii_hdr(vlan, cos, session_id, index, en=3, t=0):
    return struct.pack("!HHI", (1 << 12) | vlan, (cos << 13) | (en << 11) | (t << 10)
                       | session_id, index)


def erspan_iii_hdr(vlan, cos, session_id, timestamp, sgt, hw=0, d=0, gra=1, platform=None):
    o = 1 if platform is not None else 0
    out = struct.pack("!HHIHH", (2 << 12) | vlan, (cos << 13) | session_id, timestamp, sgt,
                      (hw << 4) | (d << 3) | (gra << 1) | o)
    if platform is not None:
        platf_id, info1, info2 = platform
        out += struct.pack("!II", (platf_id << 26) | info1, info2)
    return out


def mpls_stack(*labels):
    """(label, cos, ttl) entries, outermost first; the last gets the bottom-of-stack bit."""
    out = b""
    for i, (label, cos, ttl) in enumerate(labels):
        s = 1 if i == len(labels) - 1 else 0
        out += struct.pack("!I", (label << 12) | (cos << 9) | (s << 8) | ttl)
    return out


def pppoe_hdr(code, session, payload):
    return struct.pack("!BBHH", 0x11, code, session, len(payload)) + payload


def fixture_tunnels():
    cap = Capture(21)
    query, response = dns_exchanges()[0]
    # Inner tenant traffic, built once and wrapped in each tunnel.
    syn = (ip4(TENANT_A, TENANT_B, id=0x101) / TCP(sport=41000, dport=80, seq=1000, flags="S",
           window=64240, options=[("MSS", 1410), ("SAckOK", b""), ("WScale", 7)]))
    synack = (ip4(TENANT_B, TENANT_A, id=0x201) / TCP(sport=80, dport=41000, seq=9000, ack=1001,
              flags="SA", window=65160, options=[("MSS", 1410)]))
    dnsq = ip4(TENANT_A, RESOLVER, id=0x102) / UDP(sport=41001, dport=53) / Raw(query)
    dnsr = ip4(RESOLVER, TENANT_A, id=0x202) / UDP(sport=53, dport=41001) / Raw(response)
    ping = ip4(TENANT_A, TENANT_B, id=0x103) / ICMP(type=8, id=7, seq=1) / Raw(b"inner ping")
    pong = ip4(TENANT_B, TENANT_A, id=0x203) / ICMP(type=0, id=7, seq=1) / Raw(b"inner ping")
    udp6 = ip6(TENANT_A, TENANT_B) / UDP(sport=41002, dport=9999) / Raw(b"inner v6 datagram")
    tcp6 = (ip6(TENANT_A, TENANT_B) / TCP(sport=41003, dport=443, seq=77, flags="S",
            window=64800, options=[("MSS", 1390)]))
    icmp6 = ip6(TENANT_B, TENANT_A) / ICMPv6EchoRequest(id=8, seq=2, data=b"v6 ping in tunnel")
    arp = ARP(op=1, hwsrc=TENANT_A.mac, psrc=TENANT_A.ip4, hwdst=ZERO_MAC, pdst=TENANT_B.ip4)

    def l2(inner, src=TENANT_A, dst=TENANT_B):
        """An inner Ethernet frame around `inner` (IPv4, IPv6 or ARP)."""
        return bytes(eth(src, dst) / inner)

    def outer4(payload_layer, src=VTEP_A, dst=VTEP_B, ip_id=0x4000):
        return eth(src, dst) / under_ip(ip4(src, dst, id=ip_id, flags="DF"), payload_layer)

    def outer6(payload_layer, src=VTEP_A, dst=VTEP_B):
        return eth(src, dst) / under_ip(ip6(src, dst), payload_layer)

    def udp(sport, dport, payload):
        return UDP(sport=sport, dport=dport) / Raw(payload)

    # VXLAN (RFC 7348) on 4789 both ways, on Linux's 8472, over IPv6, and inside 802.1Q.
    cap.add(outer4(udp(51000, 4789, vxlan_hdr(5001) + l2(syn))), gap_us=0)
    cap.add(outer4(udp(51001, 4789, vxlan_hdr(5001) + l2(synack, TENANT_B, TENANT_A)),
                   VTEP_B, VTEP_A, 0x5000), gap_us=300)
    cap.add(outer4(udp(51002, 8472, vxlan_hdr(0xABCDEF, reserved2=0x5A) + l2(dnsq))))
    cap.add(outer6(udp(51003, 4789, vxlan_hdr(42) + l2(udp6))))
    cap.add(eth(VTEP_A, VTEP_B) / Dot1Q(prio=3, vlan=700) / ip4(VTEP_A, VTEP_B, id=0x4001)
            / udp(51004, 4789, vxlan_hdr(7) + l2(ping)))
    # VXLAN group policy (G bit) around ARP; VXLAN-GPE (4790) with next protocol IPv4 and IPv6.
    cap.add(outer4(udp(51005, 4789, vxlan_hdr(9, gp=(0x08, 0x1234)) + l2(arp, TENANT_A,
                                                                        BROADCAST))))
    cap.add(outer4(udp(51006, 4790, vxlan_hdr(10, next_protocol=1) + bytes(ping))))
    cap.add(outer4(udp(51007, 4790, vxlan_hdr(11, next_protocol=2) + bytes(icmp6))))
    # GENEVE (RFC 8926): Ethernet with two options, IPv4 with none, IPv6 with OAM + critical.
    opts = [(0x0102, 0x80, b"\x00\x00\x00\x2a"), (0xFFFF, 0x01, b"geneve-option-8b")]
    cap.add(outer4(udp(52000, 6081, geneve_hdr(0x123456, ETH_P_TEB, opts) + l2(dnsq))))
    cap.add(outer4(udp(52001, 6081, geneve_hdr(77, ETH_P_IP) + bytes(syn))))
    cap.add(outer4(udp(52002, 6081, geneve_hdr(78, ETH_P_IPV6, [(0x0101, 0x03, b"")], oam=1,
                                               critical=1) + bytes(tcp6))))
    # GRE (RFC 2784/2890): plain IPv4, key+sequence around Ethernet, checksum, over IPv6.
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_IP) + bytes(ping))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_IP) + bytes(pong)), VTEP_B, VTEP_A))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_TEB, key=0x0A0B0C0D, seq=1) + l2(dnsr, RESOLVER,
                                                                        TENANT_A))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_IPV6, chksum=0x1234, key=5) + bytes(udp6))))
    cap.add(outer6(GRE_raw(gre_hdr(ETH_P_IP) + bytes(synack))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_8021Q) + bytes(Dot1Q(vlan=33) / syn))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_ARP) + bytes(arp))))
    # Two deep: VXLAN inside GRE, GENEVE inside VXLAN, GRE inside IP-in-IP.
    inner_vxlan = ip4(VTEP_A, VTEP_B, id=0x4100) / udp(53000, 4789, vxlan_hdr(900) + l2(syn))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_IP, key=99) + bytes(inner_vxlan)), ROUTER, SERVER))
    inner_geneve = ip4(VTEP_A, VTEP_B, id=0x4101) / udp(53001, 6081, geneve_hdr(
        901, ETH_P_TEB, [(0x0103, 0x02, b"\x01\x02\x03\x04")]) + l2(ping))
    cap.add(outer4(udp(53002, 4789, vxlan_hdr(902) + l2(inner_geneve, VTEP_A, VTEP_B))))
    inner_gre = under_ip(ip4(VTEP_A, VTEP_B, id=0x4102), GRE_raw(gre_hdr(ETH_P_IP)
                                                                   + bytes(dnsq)))
    cap.add(outer4(IPIP_raw(bytes(inner_gre)), ROUTER, SERVER))
    # MPLS (RFC 3032): over Ethernet (unicast two labels, multicast one), inside GRE (two deep
    # with VXLAN under it), MPLS in IP (RFC 4023), MPLS in UDP (RFC 7510, port 6635), and a
    # label stack whose payload is not IP (raw by default).
    cap.add(eth(ROUTER, SERVER, ETH_P_MPLS_UC) / Raw(mpls_stack((16001, 0, 64), (24, 5, 63))
                                                    + bytes(syn)))
    cap.add(eth(ROUTER, SERVER, ETH_P_MPLS_MC) / Raw(mpls_stack((300, 1, 10)) + bytes(udp6)))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_MPLS_UC) + mpls_stack((1000, 0, 255), (2000, 0, 255))
                           + bytes(inner_vxlan))))
    cap.add(outer4(Tunnelled(137, mpls_stack((17, 0, 1)) + bytes(pong)), ip_id=0x4002))
    cap.add(outer4(udp(53003, 6635, mpls_stack((18, 2, 8)) + bytes(tcp6))))
    cap.add(eth(ROUTER, SERVER, ETH_P_MPLS_UC) / Raw(mpls_stack((19, 0, 5)) + l2(ping)))
    # ERSPAN: type II (GRE 0x88be with sequence), type III with and without the
    # platform-specific sub-header (GRE 0x22eb), type I (0x88be without sequence number).
    mirrored = l2(syn)
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_ERSPAN_II, seq=17) + erspan_ii_hdr(100, 3, 0x155,
                                                                            0xABCDE)
                           + mirrored)))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_ERSPAN_III, seq=18) + erspan_iii_hdr(
        200, 1, 0x2AA, 0x01020304, 0xBEEF, hw=5, d=1) + l2(tcp6))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_ERSPAN_III, seq=19) + erspan_iii_hdr(
        201, 0, 0x001, 0x0A0B0C0D, 0, platform=(3, 0x123456, 0xCAFEF00D)) + l2(arp))))
    cap.add(outer4(GRE_raw(gre_hdr(ETH_P_ERSPAN_II) + l2(pong, TENANT_B, TENANT_A))))
    # PPPoE: discovery (PADI with tags, padded to 60 bytes), session with PPP around IPv4 and
    # IPv6 (padded), an LCP echo; PPTP's enhanced GRE with a compressed PPP protocol field.
    tags = struct.pack("!HH", 0x0101, 0) + struct.pack("!HH", 0x0103, 4) + b"\x00\x00\x12\x34"
    padi = bytes(eth(CLIENT, BROADCAST, ETH_P_PPPOE_DISC)) + pppoe_hdr(0x09, 0, tags)
    cap.add(padi + bytes(60 - len(padi)))
    cap.add(bytes(eth(CLIENT, GATEWAY, ETH_P_PPPOE_SESS)) + pppoe_hdr(0, 0x2A, b"\x00\x21"
                                                                      + bytes(dnsq)))
    sess6 = bytes(eth(GATEWAY, CLIENT, ETH_P_PPPOE_SESS)) + pppoe_hdr(0, 0x2A, b"\x00\x57"
                                                                      + bytes(icmp6))
    cap.add(sess6 + b"\x00" * 4)
    lcp = b"\xc0\x21" + b"\x09\x01\x00\x08" + b"\x11\x22\x33\x44"
    cap.add(bytes(eth(CLIENT, GATEWAY, ETH_P_PPPOE_SESS)) + pppoe_hdr(0, 0x2A, lcp)
            + bytes(60 - 14 - 6 - len(lcp)))
    ppp_payload = b"\x21" + bytes(ping)
    cap.add(outer4(GRE_raw(gre_pptp_hdr(len(ppp_payload), 0x0400, seq=3, ack=2)
                           + ppp_payload)))
    # IP in IP (RFC 2003), IPv6 in IPv4 (6in4, RFC 4213), IPv4 in IPv6, IPv6 in IPv6.
    cap.add(eth(ROUTER, SERVER) / ip4(ROUTER, SERVER, id=0x4003) / dnsr)
    cap.add(eth(ROUTER, SERVER) / ip4(ROUTER, SERVER, id=0x4004) / tcp6)
    cap.add(eth(ROUTER, SERVER) / ip6(ROUTER, SERVER) / syn)
    cap.add(eth(ROUTER, SERVER) / ip6(ROUTER, SERVER) / icmp6)
    # Flows the Community ID treats specially: SCTP (ports, not decoded), RSVP (no ports),
    # SCTP inside VXLAN.
    sctp = SCTP(sport=2905, dport=2905, tag=0) / SCTPChunkInit(init_tag=0x1234, a_rwnd=65535,
                                                             n_out_streams=2, n_in_streams=2,
                                                             init_tsn=1)
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, SERVER, id=0x4005) / sctp)
    cap.add(eth(GATEWAY, CLIENT) / ip6(SERVER, CLIENT) / SCTP(sport=2905, dport=2905, tag=0x1234)
            / SCTPChunkInitAck(init_tag=0x5678, a_rwnd=65535, n_out_streams=2, n_in_streams=2,
                               init_tsn=1))
    cap.add(outer4(udp(51008, 4789, vxlan_hdr(12) + l2(ip4(TENANT_A, TENANT_B, id=0x104)
                                                       / sctp))))
    rsvp = bytes([0x10, 1, 0, 0, 0xFF, 0, 0, 8]) + bytes(8)
    cap.add(outer4(Tunnelled(46, rsvp), ROUTER, SERVER, ip_id=0x4006))
    # Cut short inside each tunnel header (wire length kept).
    full = bytes(outer4(udp(54000, 4789, vxlan_hdr(5) + l2(syn))))
    cap.add(full, caplen=14 + 20 + 8 + 5)
    full = bytes(outer4(udp(54001, 6081, geneve_hdr(6, ETH_P_TEB, opts) + l2(syn))))
    cap.add(full, caplen=14 + 20 + 8 + 14)
    full = bytes(outer4(GRE_raw(gre_hdr(ETH_P_TEB, key=1, seq=2) + l2(syn))))
    cap.add(full, caplen=14 + 20 + 9)
    full = bytes(eth(ROUTER, SERVER, ETH_P_MPLS_UC) / Raw(mpls_stack((1, 0, 1), (2, 0, 2))
                                                          + bytes(syn)))
    cap.add(full, caplen=14 + 6)
    full = bytes(outer4(GRE_raw(gre_hdr(ETH_P_ERSPAN_III, seq=1) + erspan_iii_hdr(
        1, 0, 1, 1, 1) + l2(syn))))
    cap.add(full, caplen=14 + 20 + 8 + 7)
    full = bytes(eth(CLIENT, GATEWAY, ETH_P_PPPOE_SESS)) + pppoe_hdr(0, 1, b"\x00\x21"
                                                                     + bytes(syn))
    cap.add(full, caplen=14 + 4)
    # A GENEVE option whose length runs past the option area: the header is malformed.
    bad = bytearray(geneve_hdr(8, ETH_P_TEB, [(0x0102, 0x80, b"\x00\x00\x00\x01")]))
    bad[11] = 3
    cap.add(outer4(udp(54002, 6081, bytes(bad) + l2(syn))))
    return cap


Tunnelled = namedtuple("Tunnelled", "proto payload")


def GRE_raw(payload):  # noqa: N802  (used like a layer)
    """GRE bytes (packed by gre_hdr) as the payload of IP protocol / next header 47."""
    return Tunnelled(47, payload)


def IPIP_raw(payload):  # noqa: N802
    return Tunnelled(4, payload)


def under_ip(l3, payload_layer):
    """`l3` / payload, setting the protocol field when the payload is Tunnelled bytes (scapy
    only infers it from layers it knows)."""
    if isinstance(payload_layer, Tunnelled):
        l3.setfieldval("nh" if isinstance(l3, IPv6) else "proto", payload_layer.proto)
        return l3 / Raw(payload_layer.payload)
    return l3 / payload_layer


# ---------------------------------------------------------------------------------------------
# Linux cooked captures (tcpdump -i any)

SLL_HOST, SLL_BROADCAST, SLL_MULTICAST, SLL_OTHERHOST, SLL_OUTGOING = 0, 1, 2, 3, 4
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772


def cooked_traffic():
    """(pkttype, arphrd, ll address, ifindex, ethertype, payload) for both cooked formats."""
    rng = random.Random(113)
    mac_c, mac_g = mac_bytes(CLIENT.mac), mac_bytes(GATEWAY.mac)
    items = []
    conn = TcpConn(CLIENT, SERVER, 54000, 80, no_link, cisn=0x1000, sisn=0x9000, rng=rng)
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_IP, conn.seg(True, "S")))
    items.append((SLL_HOST, ARPHRD_ETHER, mac_g, 2, ETH_P_IP, conn.seg(False, "SA")))
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_IP, conn.seg(True, "A")))
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_IP,
                  conn.seg(True, "PA", http_request("/cooked"))))
    items.append((SLL_HOST, ARPHRD_ETHER, mac_g, 2, ETH_P_IP,
                  conn.seg(False, "PA", http_response(filler_text(rng, 300)))))
    query, response = dns_exchanges()[2]
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_IP,
                  ip4(CLIENT, RESOLVER, id=0x51) / UDP(sport=45001, dport=53) / Raw(query)))
    items.append((SLL_HOST, ARPHRD_ETHER, mac_bytes(RESOLVER.mac), 2, ETH_P_IP,
                  ip4(RESOLVER, CLIENT, id=0x52) / UDP(sport=53, dport=45001) / Raw(response)))
    items.append((SLL_BROADCAST, ARPHRD_ETHER, mac_bytes(CLIENT2.mac), 2, ETH_P_ARP,
                  ARP(op=1, hwsrc=CLIENT2.mac, psrc=CLIENT2.ip4, hwdst=ZERO_MAC,
                      pdst=CLIENT.ip4)))
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_ARP,
                  ARP(op=2, hwsrc=CLIENT.mac, psrc=CLIENT.ip4, hwdst=CLIENT2.mac,
                      pdst=CLIENT2.ip4)))
    items.append((SLL_OUTGOING, ARPHRD_ETHER, mac_c, 2, ETH_P_IPV6,
                  ip6(CLIENT, SERVER) / ICMPv6EchoRequest(id=5, seq=1, data=b"cooked v6")))
    items.append((SLL_HOST, ARPHRD_ETHER, mac_g, 2, ETH_P_IPV6,
                  ip6(SERVER, CLIENT, hlim=55) / ICMPv6EchoReply(id=5, seq=1, data=b"cooked v6")))
    items.append((SLL_MULTICAST, ARPHRD_ETHER, mac_g, 2, ETH_P_IPV6,
                  ip6(GATEWAY.ll6, "ff02::1", hlim=255)
                  / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=GATEWAY.mac)))
    items.append((SLL_OTHERHOST, ARPHRD_ETHER, mac_bytes(CLIENT2.mac), 2, ETH_P_IP,
                  ip4(CLIENT2, SERVER, id=0x53) / ICMP(type=8, id=2, seq=7) / Raw(b"promisc")))
    # Loopback device: address length 6 but all zero.
    conn = TcpConn(Host(None, "127.0.0.1", "::1", None), Host(None, "127.0.0.1", "::1", None),
                   54001, 8080, no_link, ts_opt=False)
    items.append((SLL_HOST, ARPHRD_LOOPBACK, bytes(6), 1, ETH_P_IP, conn.seg(True, "S")))
    conn6 = TcpConn(Host(None, "127.0.0.1", "::1", None), Host(None, "127.0.0.1", "::1", None),
                    54002, 8080, no_link, v6=True, ts_opt=False)
    items.append((SLL_HOST, ARPHRD_LOOPBACK, bytes(6), 1, ETH_P_IPV6, conn6.seg(True, "S")))
    return items


def sll_header(pkttype, arphrd, lladdr, ethertype):
    """Linux cooked v1 (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html)."""
    return struct.pack("!HHH", pkttype, arphrd, len(lladdr)) + lladdr.ljust(8, b"\0") + \
        struct.pack("!H", ethertype)


def sll2_header(pkttype, arphrd, lladdr, ifindex, ethertype):
    """Linux cooked v2 (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html)."""
    return struct.pack("!HHIHBB", ethertype, 0, ifindex, arphrd, pkttype, len(lladdr)) + \
        lladdr.ljust(8, b"\0")


def fixture_sll():
    cap = Capture(6, LINKTYPE_LINUX_SLL)
    for i, (pkttype, arphrd, lladdr, _ifindex, ethertype, pkt) in enumerate(cooked_traffic()):
        cap.add(sll_header(pkttype, arphrd, lladdr, ethertype) + bytes(pkt),
                gap_us=0 if i == 0 else 1500)
    return cap


def fixture_sll2():
    cap = Capture(7, LINKTYPE_LINUX_SLL2)
    for i, (pkttype, arphrd, lladdr, ifindex, ethertype, pkt) in enumerate(cooked_traffic()):
        cap.add(sll2_header(pkttype, arphrd, lladdr, ifindex, ethertype) + bytes(pkt),
                gap_us=0 if i == 0 else 1500)
    return cap


# ---------------------------------------------------------------------------------------------
# Raw IP link types


def raw_ipv4_traffic():
    rng = random.Random(228)
    conn = TcpConn(CLIENT, SERVER, 55000, 80, no_link, cisn=0x3000, sisn=0x7000, rng=rng)
    query, response = dns_exchanges()[0]
    return [
        conn.seg(True, "S"),
        conn.seg(False, "SA"),
        conn.seg(True, "A"),
        conn.seg(True, "PA", http_request("/raw")),
        conn.seg(False, "PA", http_response(filler_text(rng, 500))),
        conn.seg(True, "FA"),
        ip4(CLIENT, RESOLVER, id=0x61) / UDP(sport=46001, dport=53) / Raw(query),
        ip4(RESOLVER, CLIENT, id=0x62) / UDP(sport=53, dport=46001) / Raw(response),
        ip4(CLIENT, SERVER, id=0x63) / ICMP(type=8, id=3, seq=1) / Raw(b"raw ping"),
        ip4(SERVER, CLIENT, id=0x64, ttl=55) / ICMP(type=0, id=3, seq=1) / Raw(b"raw ping"),
    ]


def raw_ipv6_traffic():
    rng = random.Random(229)
    conn = TcpConn(CLIENT, SERVER, 55001, 80, no_link, v6=True, cisn=0x3100, sisn=0x7100,
                   rng=rng)
    query, response = dns_exchanges()[1]
    return [
        conn.seg(True, "S"),
        conn.seg(False, "SA"),
        conn.seg(True, "A"),
        conn.seg(True, "PA", http_request("/raw6")),
        conn.seg(False, "PA", http_response(filler_text(rng, 400))),
        ip6(CLIENT, RESOLVER) / UDP(sport=46002, dport=53) / Raw(query),
        ip6(RESOLVER, CLIENT) / UDP(sport=53, dport=46002) / Raw(response),
        ip6(CLIENT, SERVER) / ICMPv6EchoRequest(id=4, seq=1, data=b"raw ping6"),
        ip6(SERVER, CLIENT, hlim=55) / ICMPv6EchoReply(id=4, seq=1, data=b"raw ping6"),
        ip6(CLIENT, SERVER) / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        / UDP(sport=46003, dport=9999) / Raw(b"raw with destopt"),
    ]


def fixture_raw_ip():
    cap = Capture(8, LINKTYPE_RAW)
    v4, v6 = raw_ipv4_traffic(), raw_ipv6_traffic()
    for i in range(max(len(v4), len(v6))):  # interleave the two families
        for pkts in (v4, v6):
            if i < len(pkts):
                cap.add(pkts[i], gap_us=2500)
    return cap


def fixture_raw_ipv4():
    cap = Capture(9, LINKTYPE_IPV4)
    for pkt in raw_ipv4_traffic():
        cap.add(pkt, gap_us=2500)
    return cap


def fixture_raw_ipv6():
    cap = Capture(10, LINKTYPE_IPV6)
    for pkt in raw_ipv6_traffic():
        cap.add(pkt, gap_us=2500)
    return cap


# ---------------------------------------------------------------------------------------------
# bsd-loopback.pcap


def fixture_bsd_loopback():
    """DLT_NULL: a 4-byte address family in the capturing host's byte order (little-endian
    here). IPv6 is 24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS."""
    cap = Capture(11, LINKTYPE_NULL)
    lo4 = Host(None, "127.0.0.1", "::1", None)
    conn = TcpConn(lo4, lo4, 56000, 8080, no_link, cisn=0x100, sisn=0x200)
    family = lambda value: struct.pack("<I", value)  # noqa: E731
    cap.add(family(2) + bytes(conn.seg(True, "S")), gap_us=0)
    cap.add(family(2) + bytes(conn.seg(False, "SA")), gap_us=30)
    cap.add(family(2) + bytes(conn.seg(True, "A")), gap_us=20)
    cap.add(family(2) + bytes(conn.seg(True, "PA", http_request("/loop", host="localhost"))),
            gap_us=20)
    cap.add(family(2) + bytes(ip4("127.0.0.1", "127.0.0.1", id=0x71)
                              / UDP(sport=56001, dport=53)
                              / Raw(dns_exchanges()[3][0])), gap_us=100)
    for af in (24, 28, 30):
        cap.add(family(af) + bytes(ip6("::1", "::1") / ICMPv6EchoRequest(id=af, seq=1,
                                                                       data=b"loopback")),
                gap_us=1000)
        cap.add(family(af) + bytes(ip6("::1", "::1") / ICMPv6EchoReply(id=af, seq=1,
                                                                     data=b"loopback")),
                gap_us=20)
    cap.add(family(30) + bytes(ip6("::1", "::1") / UDP(sport=56002, dport=9999)
                               / Raw(b"udp over lo0")), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# padding.pcap


def fixture_padding():
    cap = Capture(12)
    # TCP ACK (54 bytes) padded to 60 with zeros, as most NICs do.
    ack = eth(SERVER, CLIENT) / ip4(SERVER, CLIENT, id=0x81) / TCP(sport=80, dport=57000,
                                                                    seq=1, ack=1, flags="A",
                                                                    window=509)
    cap.add(bytes(ack) + bytes(6), gap_us=0)
    # The same padded with non-zero bytes (some switches leave junk there).
    cap.add(bytes(ack) + bytes.fromhex("deadbeef0102"), gap_us=1000)
    # A full-size frame with the 4-byte FCS left on.
    seg = eth(SERVER, CLIENT) / ip4(SERVER, CLIENT, id=0x82) / TCP(sport=80, dport=57000,
                                                                    seq=1, ack=1, flags="PA",
                                                                    window=509) / Raw(b"x" * 100)
    cap.add(bytes(seg) + bytes.fromhex("1c2d3e4f"), gap_us=1000)
    # UDP whose length covers 4 payload bytes while the IP payload holds 20: the extra 12
    # bytes belong to neither, and the Ethernet frame adds its own zero padding after that.
    udp_short = ip4(CLIENT, CLIENT2, id=0x83, proto=17) / Raw(
        bytes(UDP(sport=57001, dport=9999, len=12, chksum=0) / Raw(b"data")) + b"trailing-ip!")
    frame = bytes(eth(CLIENT, CLIENT2) / udp_short)
    cap.add(frame + bytes(60 - len(frame)) if len(frame) < 60 else frame, gap_us=1000)
    # UDP length shorter than the IP payload, no Ethernet padding (frame already > 60).
    udp_short2 = ip4(CLIENT, CLIENT2, id=0x84, proto=17) / Raw(
        bytes(UDP(sport=57002, dport=9999, len=20, chksum=0) / Raw(b"twelve bytes")) +
        b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14")
    cap.add(eth(CLIENT, CLIENT2) / udp_short2, gap_us=1000)
    # ICMP echo with Ethernet padding.
    ping = eth(CLIENT, CLIENT2) / ip4(CLIENT, CLIENT2, id=0x85) / ICMP(type=8, id=1, seq=1)
    cap.add(bytes(ping) + b"\xaa" * (60 - len(ping)), gap_us=1000)
    # ARP padded with a non-zero pattern.
    arp = eth(CLIENT2, BROADCAST) / ARP(op=1, hwsrc=CLIENT2.mac, psrc=CLIENT2.ip4,
                                        hwdst=ZERO_MAC, pdst=CLIENT.ip4)
    cap.add(bytes(arp) + bytes(range(1, 19)), gap_us=1000)
    # IPv6 UDP with a trailer past the payload length.
    v6 = eth(CLIENT, CLIENT2) / ip6(CLIENT, CLIENT2) / UDP(sport=57003, dport=9999) / Raw(b"v6")
    cap.add(bytes(v6) + bytes.fromhex("cafebabe"), gap_us=1000)
    # DNS query with a trailer after the UDP datagram.
    query = dns_exchanges()[0][0]
    dns = eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=0x86) / UDP(sport=57004, dport=53) \
        / Raw(query)
    cap.add(bytes(dns) + bytes.fromhex("00000000f00d"), gap_us=1000)
    # TCP data segment (PSH) short enough to be padded.
    tiny = eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0x87) / TCP(sport=57000, dport=80,
                                                                     seq=1, ack=1, flags="PA",
                                                                     window=502) / Raw(b"hi")
    cap.add(bytes(tiny) + b"\x00\x00\x00\xff", gap_us=1000)
    # VLAN-tagged ACK padded (to 64 bytes: 60 + the 4-byte tag).
    tagged = eth(CLIENT, SERVER) / Dot1Q(vlan=10) / ip4(CLIENT, SERVER, id=0x88) / TCP(
        sport=57005, dport=80, seq=1, ack=1, flags="A", window=502)
    cap.add(bytes(tagged) + bytes(64 - len(tagged)), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# malformed.pcap


def fixture_malformed():
    """A well-formed file of broken packets. Cut frames keep their real wire length, so their
    caplen is smaller than wire_len; the others are broken in their bytes."""
    cap = Capture(13)
    gap = 1000

    def cut(frame, caplen):
        cap.add(frame, gap_us=gap, caplen=caplen)

    # Reference packets to cut.
    tcp_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                ("WScale", 7)]
    tcp4 = bytes(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0xB1)
                 / TCP(sport=58000, dport=80, seq=1, flags="S", window=64240, options=tcp_opts))
    tcp4_ipopt = bytes(eth(CLIENT, SERVER)
                       / ip4(CLIENT, SERVER, id=0xB2,
                             options=[IPOption_RR(routers=["0.0.0.0"] * 4)])
                       / TCP(sport=58000, dport=80, seq=1, flags="S", window=64240))
    vlan = bytes(eth(CLIENT, SERVER) / Dot1Q(vlan=10) / ip4(CLIENT, SERVER, id=0xB3)
                 / UDP(sport=58001, dport=9999) / Raw(b"vlan"))
    udp4 = bytes(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0xB4) / UDP(sport=58002,
                                                                         dport=9999)
                 / Raw(b"udp payload"))
    icmp4 = bytes(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER, id=0xB5) / ICMP(type=8, id=1, seq=1)
                  / Raw(b"ping"))
    arp = bytes(eth(CLIENT, BROADCAST) / ARP(op=1, hwsrc=CLIENT.mac, psrc=CLIENT.ip4,
                                             hwdst=ZERO_MAC, pdst=GATEWAY.ip4))
    v6 = bytes(eth(CLIENT, SERVER) / ip6(CLIENT, SERVER) / UDP(sport=58003, dport=9999)
               / Raw(b"v6"))
    v6_chain = bytes(eth(CLIENT, SERVER) / ip6(CLIENT, "2001:db8:2::1")
                     / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN(optdata=b"")])
                     / IPv6ExtHdrRouting(type=0, segleft=1, addresses=[SERVER.ip6])
                     / IPv6ExtHdrFragment(offset=0, m=0, id=0xDEAD)
                     / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
                     / TCP(sport=58004, dport=80, seq=1, flags="S", window=64240,
                           options=tcp_opts))
    query, response = dns_exchanges()[0]
    dns_q = bytes(eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=0xB6)
                  / UDP(sport=58005, dport=53) / Raw(query))
    dns_r = bytes(eth(RESOLVER, CLIENT) / ip4(RESOLVER, CLIENT, id=0xB7)
                  / UDP(sport=53, dport=58005) / Raw(response))
    E, I4, I6 = 14, 20, 40  # header sizes
    udp_at = E + I4 + 8  # where DNS starts

    # A frame cut inside each header in turn.
    cut(tcp4, 0)  # nothing captured at all
    cut(tcp4, 6)  # Ethernet: destination only
    cut(tcp4, 13)  # Ethernet: half the EtherType
    cut(vlan, 16)  # inside the 802.1Q tag
    cut(vlan, 17)  # tag complete, inner EtherType cut
    cut(tcp4, E + 12)  # IPv4 fixed header
    cut(tcp4_ipopt, E + I4 + 6)  # IPv4 options
    cut(v6, E + 30)  # IPv6 fixed header
    cut(v6_chain, E + I6 + 4)  # hop-by-hop
    cut(v6_chain, E + I6 + 8 + 10)  # routing header, inside the address list
    cut(v6_chain, E + I6 + 8 + 24 + 4)  # fragment header
    cut(v6_chain, E + I6 + 8 + 24 + 8 + 3)  # destination options
    cut(v6_chain, E + I6 + 8 + 24 + 8 + 8 + 10)  # TCP after the chain
    cut(tcp4, E + I4 + 10)  # TCP fixed header
    cut(tcp4, E + I4 + 20 + 9)  # TCP options (inside Timestamp)
    cut(udp4, E + I4 + 5)  # UDP header
    cut(icmp4, E + I4 + 2)  # ICMP type/code only
    cut(icmp4, E + I4 + 6)  # ICMP echo id/seq
    cut(arp, E + 12)  # ARP
    cut(dns_q, udp_at + 7)  # DNS header
    cut(dns_q, udp_at + 12 + 6)  # DNS question name
    cut(dns_q, udp_at + 12 + 17 + 2)  # DNS question type/class
    cut(dns_r, udp_at + 12 + 21 + 6)  # DNS answer RR header (after the compressed name)
    cut(dns_r, udp_at + 12 + 21 + 12 + 3)  # DNS answer rdata (inside the CNAME target)
    cut(dns_r, len(dns_r) - 30)  # DNS additional section

    # IPv4 header length below the minimum (ihl 4, and ihl 0).
    # (Checksums are recomputed after each edit so that the edit is the only defect.)
    for ihl in (4, 0):
        frame = bytearray(udp4)
        frame[E] = 0x40 | ihl
        refresh_ipv4_checksum(frame, E)
        cap.add(bytes(frame), gap_us=gap)
    # IPv4 ihl claims options the packet does not have (ihl 15, total length 39).
    frame = bytearray(udp4)
    frame[E] = 0x4F
    refresh_ipv4_checksum(frame, E)
    cap.add(bytes(frame), gap_us=gap)
    # IPv4 total length larger than what arrived (and caplen == wire len).
    frame = bytearray(udp4)
    struct.pack_into("!H", frame, E + 2, 1500)
    refresh_ipv4_checksum(frame, E)
    cap.add(bytes(frame), gap_us=gap)
    # IPv4 total length smaller than the header.
    frame = bytearray(udp4)
    struct.pack_into("!H", frame, E + 2, 10)
    refresh_ipv4_checksum(frame, E)
    cap.add(bytes(frame), gap_us=gap)
    # Version 6 in an IPv4 EtherType, version 4 in an IPv6 one.
    frame = bytearray(udp4)
    frame[E] = 0x65
    refresh_ipv4_checksum(frame, E)
    cap.add(bytes(frame), gap_us=gap)
    frame = bytearray(v6)
    frame[E] = 0x40 | (frame[E] & 0x0F)
    cap.add(bytes(frame), gap_us=gap)
    # IPv4 option with length 0, and one whose length runs past the header.
    for opt in (b"\x07\x00\x00\x00", b"\x94\x20\x00\x00"):
        raw_ip = bytearray(bytes(ip4(CLIENT, SERVER, id=0xB8, options=[IPOption_NOP()] * 4)
                                 / UDP(sport=58006, dport=9999)))
        raw_ip[20:24] = opt
        refresh_ipv4_checksum(raw_ip, 0)
        cap.add(bytes(eth(CLIENT, SERVER, ETH_P_IP)) + bytes(raw_ip), gap_us=gap)
    # TCP data offset below 5, and one pointing past the segment.
    for dataofs in (3, 15):
        frame = bytearray(tcp4)
        frame[E + I4 + 12] = dataofs << 4
        refresh_l4_checksum(frame, E, E + I4, 16)
        cap.add(bytes(frame), gap_us=gap)
    # TCP options: an MSS of length 0 (a loop waiting to happen), and a final WScale whose
    # length runs past the header.
    opts_at = E + I4 + 20
    frame = bytearray(tcp4)
    frame[opts_at:opts_at + 4] = b"\x02\x00\x05\xb4"
    refresh_l4_checksum(frame, E, E + I4, 16)
    cap.add(bytes(frame), gap_us=gap)
    frame = bytearray(tcp4)
    frame[opts_at + 17:opts_at + 20] = b"\x03\x09\x07"
    refresh_l4_checksum(frame, E, E + I4, 16)
    cap.add(bytes(frame), gap_us=gap)
    # UDP length below 8, and above the IP payload.
    for udp_len in (4, 200):
        frame = bytearray(udp4)
        struct.pack_into("!H", frame, E + I4 + 4, udp_len)
        cap.add(bytes(frame), gap_us=gap)
    # IPv6 payload length past the frame; hop-by-hop length past the packet.
    frame = bytearray(v6)
    struct.pack_into("!H", frame, E + 4, 1400)
    cap.add(bytes(frame), gap_us=gap)
    frame = bytearray(v6_chain)
    frame[E + I6 + 1] = 200
    cap.add(bytes(frame), gap_us=gap)
    # ARP with hardware length 255 (the addresses run off the frame).
    frame = bytearray(arp)
    frame[E + 4] = 255
    cap.add(bytes(frame), gap_us=gap)
    # ICMP error quoting an IPv4 header cut to 10 bytes.
    cap.add(eth(SERVER, CLIENT) / ip4(SERVER, CLIENT, id=0xB9) / ICMP(type=3, code=3)
            / Raw(udp4[E:E + 10]), gap_us=gap)
    # ICMPv6 neighbour solicitation with an option of length 0.
    ns = bytearray(bytes(eth(CLIENT, "33:33:ff:00:00:01")
                         / ip6(CLIENT.ip6, "ff02::1:ff00:1", hlim=255)
                         / ICMPv6ND_NS(tgt=GATEWAY.ip6)
                         / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT.mac)))
    ns[E + I6 + 24 + 1] = 0
    refresh_l4_checksum(ns, E, E + I6, 2, v6=True)
    cap.add(bytes(ns), gap_us=gap)

    # DNS bodies that are broken inside a complete packet.
    def dns_frame(message, sport):
        return eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=sport & 0xFFFF) \
            / UDP(sport=sport, dport=53) / Raw(message)

    header = struct.pack("!HHHHHH", 0xBAD0, dns_flags(), 1, 0, 0, 0)
    # A name that points at itself.
    cap.add(dns_frame(header + b"\xc0\x0c" + b"\x00\x01\x00\x01", 58100), gap_us=gap)
    # Two pointers pointing at each other (in the answer section).
    looped = struct.pack("!HHHHHH", 0xBAD1, dns_flags(qr=1), 1, 1, 0, 0)
    looped += b"\x01a\xc0\x14" + b"\x00\x01\x00\x01"  # qname at 12: "a", then -> 20
    looped += b"\x01b\xc0\x0c" + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"
    assert looped[20:22] == b"\x01b"  # answer name at 20: "b", then -> 12
    cap.add(dns_frame(looped, 58101), gap_us=gap)
    # A label longer than the rest of the message.
    cap.add(dns_frame(header + b"\x3fonly-a-few-bytes", 58102), gap_us=gap)
    # A pointer past the end of the message.
    cap.add(dns_frame(header + b"\xc3\xff" + b"\x00\x01\x00\x01", 58103), gap_us=gap)
    # A reserved label type (0b10).
    cap.add(dns_frame(header + b"\x85abcde\x00" + b"\x00\x01\x00\x01", 58104), gap_us=gap)
    # Counts promising more records than there are.
    lying = bytearray(response)
    struct.pack_into("!HHHH", lying, 4, 5, 9, 9, 9)
    cap.add(dns_frame(bytes(lying), 58105), gap_us=gap)
    # rdlength longer than the message.
    short_rr = struct.pack("!HHHHHH", 0xBAD2, dns_flags(qr=1), 0, 1, 0, 0) + \
        b"\x00" + struct.pack("!HHIH", DNS_A, CLASS_IN, 60, 400) + b"\xc0\x00\x02"
    cap.add(dns_frame(short_rr, 58106), gap_us=gap)
    # A DNS header alone, shorter than 12 bytes, inside a complete UDP datagram.
    cap.add(dns_frame(b"\xba\xd3\x01\x00\x00", 58107), gap_us=gap)
    # DNS over TCP whose length prefix promises more than the segment holds.
    cap.add(eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=0xBA)
            / TCP(sport=58108, dport=53, seq=1, ack=1, flags="PA", window=502)
            / Raw(struct.pack("!H", 900) + query), gap_us=gap)
    # An EtherType nobody decodes (IEEE local experimental), and an 802.3 length field.
    cap.add(eth(CLIENT, SERVER, 0x88B5) / Raw(b"local experimental ethertype"), gap_us=gap)
    cap.add(eth(CLIENT, "01:80:c2:00:00:00", 0x0026)
            / Raw(bytes.fromhex("424203000000000080000000") + bytes(34)), gap_us=gap)
    return cap


def inet_checksum(data):
    """RFC 1071 one's-complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def refresh_ipv4_checksum(frame, at):
    """Recompute the IPv4 header checksum in place after a deliberate edit, so that the edit is
    the only thing wrong with the header (a header shorter than 20 bytes is summed as 20)."""
    header_len = min(max(20, (frame[at] & 0x0F) * 4), len(frame) - at)
    struct.pack_into("!H", frame, at + 10, 0)
    struct.pack_into("!H", frame, at + 10, inet_checksum(bytes(frame[at:at + header_len])))


def refresh_l4_checksum(frame, l3_at, l4_at, checksum_offset, v6=False):
    """Recompute a TCP/UDP/ICMPv6 checksum in place after a deliberate edit of its header."""
    if v6:
        src, dst = bytes(frame[l3_at + 8:l3_at + 24]), bytes(frame[l3_at + 24:l3_at + 40])
        segment = bytes(frame[l4_at:])
        proto = frame[l3_at + 6]
        pseudo = src + dst + struct.pack("!IxxxB", len(segment), proto)
    else:
        total_len = struct.unpack_from("!H", frame, l3_at + 2)[0]
        src, dst = bytes(frame[l3_at + 12:l3_at + 16]), bytes(frame[l3_at + 16:l3_at + 20])
        segment = bytes(frame[l4_at:l3_at + total_len])
        pseudo = src + dst + struct.pack("!xBH", frame[l3_at + 9], len(segment))
    struct.pack_into("!H", frame, l4_at + checksum_offset, 0)
    segment = bytes(frame[l4_at:l4_at + len(segment)])
    struct.pack_into("!H", frame, l4_at + checksum_offset, inet_checksum(pseudo + segment))


# ---------------------------------------------------------------------------------------------
# File-format variants: the same kind of Ethernet traffic in other containers.


def sample_ethernet_traffic(seed):
    """A short, typical Ethernet conversation: ARP, DNS, a TCP/HTTP exchange, a ping, IPv6."""
    rng = random.Random(seed)
    query, response = dns_exchanges()[0]
    conn = TcpConn(CLIENT, SERVER, 59000 + seed % 100, 80, eth_link(CLIENT, SERVER),
                   cisn=rng.getrandbits(32), sisn=rng.getrandbits(32), rng=rng)
    return [
        arp_frame(CLIENT.mac, BROADCAST, 1, CLIENT.mac, CLIENT.ip4, ZERO_MAC, GATEWAY.ip4),
        arp_frame(GATEWAY.mac, CLIENT.mac, 2, GATEWAY.mac, GATEWAY.ip4, CLIENT.mac, CLIENT.ip4,
                  bytes(18)),
        eth(CLIENT, RESOLVER) / ip4(CLIENT, RESOLVER, id=1) / UDP(sport=47001, dport=53)
        / Raw(query),
        eth(RESOLVER, CLIENT) / ip4(RESOLVER, CLIENT, id=2) / UDP(sport=53, dport=47001)
        / Raw(response),
        conn.seg(True, "S"),
        conn.seg(False, "SA"),
        conn.seg(True, "A"),
        conn.seg(True, "PA", http_request("/variant")),
        conn.seg(False, "A"),
        conn.seg(False, "PA", http_response(filler_text(rng, 700))),
        conn.seg(True, "A"),
        conn.seg(True, "FA"),
        conn.seg(False, "FA"),
        conn.seg(True, "A"),
        eth(CLIENT, GATEWAY) / ip4(CLIENT, SERVER, id=3) / ICMP(type=8, id=7, seq=1)
        / Raw(b"variant ping"),
        eth(GATEWAY, CLIENT) / ip4(SERVER, CLIENT, id=4, ttl=55) / ICMP(type=0, id=7, seq=1)
        / Raw(b"variant ping"),
        eth(CLIENT, GATEWAY) / Dot1Q(vlan=10) / ip6(CLIENT, SERVER)
        / UDP(sport=47002, dport=9999) / Raw(b"tagged v6"),
    ]


def fixture_big_endian():
    cap = Capture(14)
    for pkt in sample_ethernet_traffic(14):
        cap.add(pkt, gap_us=3217)
    return cap


def fixture_nanosecond():
    cap = Capture(15)
    for i, pkt in enumerate(sample_ethernet_traffic(15)):
        # About 2 ms apart, each time with its own non-zero digits below the microsecond.
        target_ns = (cap.now_ns // 1000 + 2000) * 1000 + 1 + (347 * i + 122) % 999
        cap.add(pkt, gap_us=0, gap_ns=target_ns - cap.now_ns)
    # A last frame 999 ns after the previous one: only a nanosecond reader tells them apart.
    cap.add(sample_ethernet_traffic(15)[-1], gap_us=0, gap_ns=999)
    return cap


PcapngFile = namedtuple("PcapngFile", "section_options interfaces packets statistics byteorder")


def fixture_multi_pcapng():
    """Three interfaces, interleaved: Ethernet (microseconds, the default resolution), raw IP
    with if_tsresol 9 (nanoseconds), and Linux cooked v1 with if_tsresol 3 (milliseconds)."""
    interfaces = [
        (LINKTYPE_ETHERNET, SNAPLEN, [(2, b"eth0"), (3, b"wired, 1 Gb/s")]),
        (LINKTYPE_RAW, SNAPLEN, [(2, b"tun0"), (9, b"\x09")]),
        (LINKTYPE_LINUX_SLL, 128, [(2, b"any"), (9, b"\x03")]),
    ]
    ethernet = [bytes(p) for p in sample_ethernet_traffic(16)]
    raw = [bytes(p) for p in raw_ipv4_traffic()[:6] + raw_ipv6_traffic()[5:9]]
    cooked = [sll_header(pt, hrd, ll, et) + bytes(p)
              for pt, hrd, ll, _ifi, et, p in cooked_traffic()[:10]]
    now = T0_NS + 16 * MINUTE_NS
    packets = []
    streams = [(0, ethernet), (1, raw), (2, cooked)]
    i = 0
    while any(stream for _ifid, stream in streams):
        for interface_id, stream in streams:
            if not stream:
                continue
            data = stream.pop(0)
            # Each interface's clock only has its own resolution; round to it here so that the
            # written value is exact.
            now += 1_234_567 + 1_111 * i
            i += 1
            units = {0: 1000, 1: 1, 2: 1_000_000}[interface_id]
            ts = now - now % units
            wire_len = len(data)
            snaplen = interfaces[interface_id][1]
            options = []
            if i == 5:
                options.append((1, b"a comment on one packet"))
            packets.append((interface_id, ts, data[:snaplen], wire_len, options))
    section_options = [(2, b"x86_64"), (3, b"Linux"), (4, b"netpipe-fast scripts/gen-pcaps.py")]
    statistics = [(0, now, [(4, struct.pack("<Q", 17)), (5, struct.pack("<Q", 0))]),
                  (1, now, [(4, struct.pack("<Q", 10)), (5, struct.pack("<Q", 0))])]
    return PcapngFile(section_options, interfaces, packets, statistics, "<")


def fixture_big_endian_pcapng():
    """A big-endian section with two Ethernet interfaces (so libpcap-based tools read it too):
    eth0 at the default microsecond resolution, eth1 with if_tsresol 9."""
    interfaces = [
        (LINKTYPE_ETHERNET, SNAPLEN, [(2, b"eth0")]),
        (LINKTYPE_ETHERNET, SNAPLEN, [(2, b"eth1"), (9, b"\x09")]),
    ]
    now = T0_NS + 17 * MINUTE_NS
    packets = []
    for i, pkt in enumerate(sample_ethernet_traffic(17)):
        interface_id = i % 2
        now += 1_500_000 + 7_777 * i + 1
        ts = now - now % 1000 if interface_id == 0 else now
        packets.append((interface_id, ts, bytes(pkt), len(pkt), []))
    section_options = [(4, b"netpipe-fast scripts/gen-pcaps.py")]
    return PcapngFile(section_options, interfaces, packets, (), ">")


# ---------------------------------------------------------------------------------------------
# mixed.pcap: a few thousand flows' worth of ordinary traffic, for benches.

# Ports scapy binds a dissector to; mixed traffic avoids them as ephemeral ports so that every
# oracle sees the same layers.
SCAPY_BOUND_PORTS = {48879}


class MixedNet:
    """The hosts, URL paths and names the mixed capture's flows pick from."""

    def __init__(self, rng):
        self.rng = rng
        self.clients = [Host("00:00:5e:00:53:%02x" % (0x0A + i), "192.0.2.%d" % (10 + i),
                             "2001:db8::%x" % (0x10 + i),
                             "fe80::200:5eff:fe00:53%02x" % (0x0A + i)) for i in range(6)]
        self.servers = [Host(GATEWAY.mac, "198.51.100.%d" % (20 + i), "2001:db8:1::%x" % (0x20 + i),
                             None) for i in range(5)]
        self.paths = ["/", "/index.html", "/static/app.js", "/static/style.css", "/api/v1/items",
                      "/img/logo.png", "/favicon.ico", "/news/2026/11/29", "/search?q=netpipe"]
        self.names = ["www.example.com.", "api.example.com.", "cdn.example.net.",
                      "mail.example.org.", "static.example.com.", "ntp.example.net.",
                      "login.example.com.", "files.example.org."]

    def port(self):
        while True:
            port = self.rng.randint(32768, 60999)
            if port not in SCAPY_BOUND_PORTS:
                return port


def mixed_http_flow(net, rng, client, server, v6=False, vlan=None):
    """One HTTP request/response on its own connection; returns [(offset_ns, frame)]."""
    def link(from_client):
        base = eth(client, server) if from_client else eth(server, client)
        return base / Dot1Q(prio=vlan[1], vlan=vlan[0]) if vlan else base

    conn = TcpConn(client, server, net.port(), 80, link, v6=v6, cisn=rng.getrandbits(32),
                   sisn=rng.getrandbits(32), ip_id=(rng.getrandbits(16), 0), rng=rng)
    rtt = rng.randint(8, 60) * 1000_000 // 4  # 2..15 ms
    frames = []
    t = 0

    def emit(delay_ns, frame):
        nonlocal t
        t += delay_ns
        frames.append((t, frame))

    emit(0, conn.seg(True, "S"))
    emit(rtt, conn.seg(False, "SA", ip={"id": 0} if not v6 else None))
    emit(50_000, conn.seg(True, "A"))
    path = rng.choice(net.paths)
    cookie = b"Cookie: session=" + b"%032x" % rng.getrandbits(128) + b"\r\n" \
        if rng.random() < 0.6 else b""
    emit(40_000, conn.seg(True, "PA", http_request(path, extra=cookie)))
    size = rng.choice([0, 600, 2800, 4300, 5700, 7200, 9000, 12000, 15000])
    size += rng.randint(0, 1400)
    if size == 0 or rng.random() < 0.15:
        response = b"HTTP/1.1 304 Not Modified\r\nServer: fixture\r\nETag: \"%08x\"\r\n\r\n" \
            % rng.getrandbits(32)
    else:
        response = http_response(filler_text(rng, size))
    emit(rtt, conn.seg(False, "A"))
    pieces = chunks(response, 1448)
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        emit(rng.randint(20, 400) * 1000, conn.seg(False, "PA" if last else "A", piece))
        if n % 2 == 1 or last:
            emit(rng.randint(30, 200) * 1000, conn.seg(True, "A"))
    emit(rng.randint(1, 50) * 1000_000, conn.seg(True, "FA"))
    emit(rtt, conn.seg(False, "FA"))
    emit(40_000, conn.seg(True, "A"))
    return frames


def mixed_dns_flow(net, rng, client, v6=False, vlan=None):
    name = rng.choice(net.names)
    qtype = rng.choice([DNS_A, DNS_A, DNS_A, DNS_AAAA, DNS_AAAA, DNS_MX, DNS_TXT, DNS_PTR])
    ident = rng.getrandbits(16)
    opt = [rr_opt()] if rng.random() < 0.5 else []
    if qtype == DNS_PTR:
        name = "%d.2.0.192.in-addr.arpa." % rng.randint(1, 254)
    query = dns_message(ident, dns_flags(), qd=[(name, qtype, CLASS_IN)], ar=opt)
    answers = []
    if qtype == DNS_A:
        answers = [rr(name, DNS_A, rd_a("198.51.100.%d" % rng.randint(20, 24)),
                      rng.randint(30, 3600))
                   for _ in range(rng.randint(1, 3))]
    elif qtype == DNS_AAAA:
        answers = [rr(name, DNS_AAAA, rd_aaaa("2001:db8:1::%x" % rng.randint(0x20, 0x24)))]
    elif qtype == DNS_MX:
        answers = [rr(name, DNS_MX, rd_mx(10, "mx1." + name)),
                   rr(name, DNS_MX, rd_mx(20, "mx2." + name))]
    elif qtype == DNS_TXT:
        answers = [rr(name, DNS_TXT, rd_txt(b"v=spf1 -all", b"id=%08x" % rng.getrandbits(32)))]
    else:
        answers = [rr(name, DNS_PTR, rd_name(rng.choice(net.names)))]
    nxdomain = rng.random() < 0.08
    soa = rd_soa("ns1.example.com.", "hostmaster.example.com.", 2026112900, 7200, 3600,
                 1209600, 300)
    if nxdomain:
        response = dns_message(ident, dns_flags(qr=1, ra=1, rcode=3), qd=[(name, qtype, CLASS_IN)],
                               ns=[rr("example.com.", DNS_SOA, soa)], ar=opt)
    else:
        response = dns_message(ident, dns_flags(qr=1, ra=1), qd=[(name, qtype, CLASS_IN)],
                               an=answers, ar=opt)
    sport = net.port()
    frames = []
    for t, src, dst, s, d, msg in ((0, client, RESOLVER, sport, 53, query),
                                   (rng.randint(300, 30000) * 1000, RESOLVER, client, 53, sport,
                                    response)):
        l2 = eth(src, dst)
        if vlan:
            l2 = l2 / Dot1Q(prio=vlan[1], vlan=vlan[0])
        l3 = ip6(src, dst) if v6 else ip4(src, dst, id=rng.getrandbits(16))
        frames.append((t, l2 / l3 / UDP(sport=s, dport=d) / Raw(msg)))
    return frames


def mixed_icmp_flow(net, rng, client):
    server = rng.choice(net.servers)
    ident = rng.getrandbits(16)
    payload = bytes(range(0x10, 0x10 + 48))
    frames = []
    t = 0
    for seq in range(1, rng.randint(2, 6)):
        frames.append((t, eth(client, GATEWAY)
                       / ip4(client, server, id=rng.getrandbits(16), flags="DF")
                       / ICMP(type=8, id=ident, seq=seq) / Raw(payload)))
        if rng.random() < 0.9:
            frames.append((t + rng.randint(5, 40) * 1000_000, eth(GATEWAY, client)
                           / ip4(server, client, id=rng.getrandbits(16), ttl=55)
                           / ICMP(type=0, id=ident, seq=seq) / Raw(payload)))
        else:
            probe = bytes(ip4(client, server, id=1, flags="DF") / ICMP(type=8, id=ident, seq=seq)
                          / Raw(payload))
            frames.append((t + 3000_000_000, eth(GATEWAY, client)
                           / ip4(ROUTER, client, id=rng.getrandbits(16), ttl=250)
                           / ICMP(type=3, code=1) / Raw(probe[:28])))
        t += 1000_000_000
    return frames


def mixed_arp_flow(net, rng, client):
    target = rng.choice(net.clients + [GATEWAY, RESOLVER])
    if target.ip4 == client.ip4:
        target = GATEWAY
    frames = [(0, arp_frame(client.mac, BROADCAST, 1, client.mac, client.ip4, ZERO_MAC,
                            target.ip4))]
    frames.append((rng.randint(100, 900) * 1000, arp_frame(
        target.mac, client.mac, 2, target.mac, target.ip4, client.mac, client.ip4, bytes(18))))
    return frames


def mixed_ipv6_misc_flow(net, rng, client):
    """ICMPv6 echo, or neighbour solicitation/advertisement."""
    server = rng.choice(net.servers)
    if rng.random() < 0.5:
        ident = rng.getrandbits(16)
        data = bytes(range(56))
        return [(0, eth(client, GATEWAY) / ip6(client, server)
                 / ICMPv6EchoRequest(id=ident, seq=1, data=data)),
                (rng.randint(5, 40) * 1000_000, eth(GATEWAY, client) / ip6(server, client, hlim=55)
                 / ICMPv6EchoReply(id=ident, seq=1, data=data))]
    solicited = "ff02::1:ff00:1"
    return [(0, eth(client, "33:33:ff:00:00:01") / ip6(client.ll6, solicited, hlim=255)
             / ICMPv6ND_NS(tgt=GATEWAY.ll6) / ICMPv6NDOptSrcLLAddr(lladdr=client.mac)),
            (rng.randint(100, 900) * 1000, eth(GATEWAY, client) / ip6(GATEWAY.ll6, client.ll6,
                                                                     hlim=255)
             / ICMPv6ND_NA(R=1, S=1, O=1, tgt=GATEWAY.ll6)
             / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY.mac))]


MIXED_PACKETS = 13620
MIXED_SECONDS = 600


def fixture_mixed():
    rng = random.Random(13620)
    net = MixedNet(rng)
    # Flow kinds with weights chosen so the packet shares land near REFERENCE.md's fixture:
    # TCP/HTTP about 55 %, then DNS, IPv6, VLAN, ICMP, ARP.
    kinds = [("http", 370), ("http6", 30), ("vlan_http", 30), ("dns", 1300), ("dns6", 300),
             ("vlan_dns", 300), ("icmp", 150), ("icmp6", 260), ("arp", 300)]
    total_weight = sum(weight for _kind, weight in kinds)
    timeline = []
    count = 0
    flow_no = 0
    while count < MIXED_PACKETS + 200:
        pick = rng.randrange(total_weight)
        for kind, weight in kinds:
            if pick < weight:
                break
            pick -= weight
        client = rng.choice(net.clients)
        vlan = (rng.choice([10, 20, 30]), rng.choice([0, 0, 3, 5]))
        if kind == "http":
            frames = mixed_http_flow(net, rng, client, rng.choice(net.servers))
        elif kind == "http6":
            frames = mixed_http_flow(net, rng, client, rng.choice(net.servers), v6=True)
        elif kind == "vlan_http":
            frames = mixed_http_flow(net, rng, client, rng.choice(net.servers), vlan=vlan)
        elif kind == "dns":
            frames = mixed_dns_flow(net, rng, client)
        elif kind == "dns6":
            frames = mixed_dns_flow(net, rng, client, v6=True)
        elif kind == "vlan_dns":
            frames = mixed_dns_flow(net, rng, client, vlan=vlan)
        elif kind == "icmp":
            frames = mixed_icmp_flow(net, rng, client)
        elif kind == "icmp6":
            frames = mixed_ipv6_misc_flow(net, rng, client)
        else:
            frames = mixed_arp_flow(net, rng, client)
        start = rng.randrange(MIXED_SECONDS * 1_000_000) * 1000  # whole microseconds
        for offset, frame in frames:
            timeline.append((start + offset - offset % 1000, flow_no, len(timeline), bytes(frame)))
        count += len(frames)
        flow_no += 1
    timeline.sort()
    cap = Capture(20)
    base = cap.now_ns
    for ts, _flow, _n, data in timeline[:MIXED_PACKETS]:
        cap.records.append(Record(base + ts, data, len(data)))
    return cap


# ---------------------------------------------------------------------------------------------
# Application layers: tls.pcap, http.pcap, dhcp.pcap, ntp.pcap
#
# The TLS hellos are assembled byte by byte here (every length under our control, so the
# "real client shapes" below keep their exact cipher and extension order); scapy decodes them
# in the oracle. Client shapes follow what the named clients sent in public captures: which
# extensions, in which order, with GREASE where the client uses it. The key shares, randoms
# and session ids are fixed filler, not real key material.


def tls_ext(ext_type, data=b""):
    return struct.pack("!HH", ext_type, len(data)) + data


def tls_u16_list(values, prefix=2):
    body = b"".join(struct.pack("!H", v) for v in values)
    return struct.pack("!H" if prefix == 2 else "!B", len(body)) + body


def tls_sni(host):
    name = host.encode()
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return tls_ext(0, struct.pack("!H", len(entry)) + entry)


def tls_alpn(*protocols):
    body = b"".join(bytes([len(p)]) + p for p in protocols)
    return tls_ext(16, struct.pack("!H", len(body)) + body)


# A valid uncompressed P-256 point (the curve's generator, SEC 2): scapy imports the key
# shares it reads, and refuses a filler point for secp256r1.
P256_POINT = bytes.fromhex(
    "04" "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")


def tls_key_share(*groups):
    def key(g, n):
        return P256_POINT if g == 23 else bytes([g & 0xFF]) * n
    body = b"".join(struct.pack("!HH", g, len(key(g, n))) + key(g, n) for g, n in groups)
    return tls_ext(51, struct.pack("!H", len(body)) + body)


def tls_hello(msgtype, version, random32, sid, middle, exts):
    body = struct.pack("!H", version) + random32 + bytes([len(sid)]) + sid + middle
    if exts is not None:
        block = b"".join(exts)
        body += struct.pack("!H", len(block)) + block
    return bytes([msgtype]) + struct.pack("!I", len(body))[1:] + body


def tls_client_hello(version, ciphers, exts, sid=b"", comp=(0,), seed=0):
    rng = random.Random(seed)
    random32 = bytes(rng.randrange(256) for _ in range(32))
    middle = tls_u16_list(ciphers) + bytes([len(comp)]) + bytes(comp)
    return tls_hello(1, version, random32, sid, middle, exts)


def tls_server_hello(version, cipher, exts, sid=b"", seed=0):
    rng = random.Random(seed)
    random32 = bytes(rng.randrange(256) for _ in range(32))
    return tls_hello(2, version, random32, sid, struct.pack("!HB", cipher, 0), exts)


def tls_record(content_type, payload, version=0x0301):
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


CHROME_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                  0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SIG_ALGS_CHROME = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def client_hello_chrome(host, seed):
    """Chrome 120 shape: GREASE first in ciphers, extensions, groups and versions."""
    grease = [0x0A0A, 0x3A3A, 0x5A5A, 0xDADA]
    g = grease[seed % 4]
    exts = [
        tls_ext(g),
        tls_sni(host),
        tls_ext(23),
        tls_ext(65281, b"\x00"),
        tls_ext(10, tls_u16_list([g, 29, 23, 24])),
        tls_ext(11, b"\x01\x00"),
        tls_ext(35),
        tls_alpn(b"h2", b"http/1.1"),
        tls_ext(5, b"\x01\x00\x00\x00\x00"),
        tls_ext(13, tls_u16_list(SIG_ALGS_CHROME)),
        tls_ext(18),
        tls_key_share((g, 1), (29, 32)),
        tls_ext(45, b"\x01\x01"),
        tls_ext(43, tls_u16_list([g, 0x0304, 0x0303], prefix=1)),
        tls_ext(27, b"\x02\x00\x02"),
        tls_ext(17513, b"\x00\x03\x02h2"),
        tls_ext(grease[(seed + 1) % 4], b"\x00"),
        tls_ext(21, bytes(37)),
    ]
    return tls_client_hello(0x0303, [g] + CHROME_CIPHERS, exts, sid=bytes(range(32)),
                            seed=seed)


def client_hello_firefox(host, seed):
    """Firefox 121 shape: no GREASE, delegated credentials and record size limit."""
    ciphers = [0x1301, 0x1303, 0x1302, 0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC02C, 0xC030,
               0xC00A, 0xC009, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    exts = [
        tls_sni(host),
        tls_ext(23),
        tls_ext(65281, b"\x00"),
        tls_ext(10, tls_u16_list([29, 23, 24, 25, 256, 257])),
        tls_ext(11, b"\x01\x00"),
        tls_ext(35),
        tls_alpn(b"h2", b"http/1.1"),
        tls_ext(5, b"\x01\x00\x00\x00\x00"),
        tls_ext(34, tls_u16_list([0x0403, 0x0503, 0x0603, 0x0203])),
        tls_key_share((29, 32), (23, 65)),
        tls_ext(43, tls_u16_list([0x0304, 0x0303], prefix=1)),
        tls_ext(13, tls_u16_list([0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401,
                                  0x0501, 0x0601, 0x0203, 0x0201])),
        tls_ext(45, b"\x01\x01"),
        tls_ext(28, b"\x40\x01"),
        tls_ext(21, bytes(151)),
    ]
    return tls_client_hello(0x0303, ciphers, exts, sid=bytes(range(100, 132)), seed=seed)


def client_hello_curl(host, seed):
    """curl 7.88 / OpenSSL 3 shape: many TLS 1.2 suites, encrypt_then_mac, ALPN http/1.1."""
    ciphers = [0x1302, 0x1303, 0x1301, 0xC02C, 0xC030, 0x009F, 0xCCA9, 0xCCA8, 0xCCAA,
               0xC02B, 0xC02F, 0x009E, 0xC024, 0xC028, 0x006B, 0xC023, 0xC027, 0x0067,
               0xC00A, 0xC014, 0x0039, 0xC009, 0xC013, 0x0033, 0x009D, 0x009C, 0x003D,
               0x003C, 0x0035, 0x002F, 0x00FF]
    exts = [
        tls_sni(host),
        tls_ext(11, b"\x03\x00\x01\x02"),
        tls_ext(10, tls_u16_list([29, 23, 30, 25, 24, 256, 257, 258, 259, 260])),
        tls_ext(35),
        tls_alpn(b"http/1.1"),
        tls_ext(22),
        tls_ext(23),
        tls_ext(49, b""),
        tls_ext(13, tls_u16_list([0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080A,
                                  0x080B, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601])),
        tls_ext(43, tls_u16_list([0x0304, 0x0303], prefix=1)),
        tls_ext(45, b"\x01\x01"),
        tls_key_share((29, 32)),
    ]
    return tls_client_hello(0x0303, ciphers, exts, sid=bytes(range(50, 82)), seed=seed)


def client_hello_legacy(seed):
    """An old TLS 1.0 client: no extensions at all, so no SNI (JA4 `i`), no ALPN."""
    ciphers = [0x0039, 0x0038, 0x0035, 0x0016, 0x0013, 0x000A, 0x0033, 0x0032, 0x002F,
               0x0005, 0x0004, 0x0015, 0x0012, 0x0009, 0x00FF]
    return tls_client_hello(0x0301, ciphers, None, seed=seed)


def client_hello_odd_alpn(seed):
    """A TLS 1.2 client whose first ALPN id is not alphanumeric at its end (JA4 then uses
    hex digits), GREASE in signature algorithms, and no supported_versions."""
    exts = [
        tls_sni("203.0.113.7.example"),
        tls_alpn(b"x-odd!", b"h2"),
        tls_ext(10, tls_u16_list([23, 24])),
        tls_ext(13, tls_u16_list([0x0601, 0x1A1A, 0x0401])),
        tls_ext(0xFF01, b"\x00"),
    ]
    return tls_client_hello(0x0303, [0xC02F, 0xC030, 0x009C], exts, seed=seed)


def fixture_tls():
    cap = Capture(30)
    rng = random.Random(443)
    shapes = [
        ("chrome", lambda s: client_hello_chrome("www.example.com", s)),
        ("firefox", lambda s: client_hello_firefox("static.example.org", s)),
        ("curl", lambda s: client_hello_curl("api.example.net", s)),
        ("legacy", client_hello_legacy),
        ("odd-alpn", client_hello_odd_alpn),
    ]
    port = 50100
    for n, (_name, make) in enumerate(shapes):
        v6 = n == 1
        server = SERVER if n % 2 == 0 else SERVER2
        conn = TcpConn(CLIENT, server, port + n, 443, eth_link(CLIENT, server), v6=v6,
                       cisn=rng.getrandbits(32), sisn=rng.getrandbits(32), rng=rng)
        cap.add(conn.seg(True, "S"), gap_us=20000)
        cap.add(conn.seg(False, "SA"), gap_us=9000)
        cap.add(conn.seg(True, "A"), gap_us=80)
        cap.add(conn.seg(True, "PA", tls_record(0x16, make(n))), gap_us=150)
        if n == 0:
            # TLS 1.3 ServerHello (legacy 1.2 layout) with supported_versions and key_share,
            # then the middlebox ChangeCipherSpec record and encrypted data.
            sh = tls_server_hello(0x0303, 0x1301, [tls_ext(43, b"\x03\x04"),
                                                   tls_ext(51, b"\x00\x1d\x00\x20" + bytes(32))],
                                  sid=bytes(range(32)), seed=1)
            cap.add(conn.seg(False, "PA", tls_record(0x16, sh, 0x0303)
                             + tls_record(0x14, b"\x01", 0x0303)
                             + tls_record(0x17, bytes(rng.randrange(256) for _ in range(90)),
                                          0x0303)), gap_us=9000)
        elif n == 2:
            # TLS 1.2 ServerHello with an empty server_name and renegotiation_info, ALPN,
            # followed in the same record by a (filler) Certificate message.
            sh = tls_server_hello(0x0303, 0xC02F, [tls_ext(0), tls_ext(65281, b"\x00"),
                                                   tls_alpn(b"http/1.1"), tls_ext(11, b"\x01\x00"),
                                                   tls_ext(23)], seed=2)
            cert = b"\x0b" + struct.pack("!I", 40)[1:] + bytes(40)
            cap.add(conn.seg(False, "PA", tls_record(0x16, sh + cert, 0x0303)), gap_us=9000)
        else:
            cap.add(conn.seg(False, "A"), gap_us=9000)
        # Application data both ways: not a hello, stays raw.
        cap.add(conn.seg(True, "PA", tls_record(0x17, bytes(rng.randrange(256)
                                                             for _ in range(60)), 0x0303)),
                gap_us=300)
        cap.add(conn.seg(True, "FA"), gap_us=40000)
    # A ClientHello on a port scapy binds nothing to (8443): found by its bytes.
    conn = TcpConn(CLIENT2, SERVER, 50200, 8443, eth_link(CLIENT2, SERVER), cisn=7, sisn=9)
    cap.add(conn.seg(True, "PA", tls_record(0x16, client_hello_chrome("alt.example.com", 7))),
            gap_us=30000)
    # A ClientHello split over two segments: the first holds a cut hello (raw, flagged).
    whole = tls_record(0x16, client_hello_firefox("split.example.com", 8))
    conn = TcpConn(CLIENT2, SERVER2, 50201, 443, eth_link(CLIENT2, SERVER2), cisn=70, sisn=90)
    cap.add(conn.seg(True, "PA", whole[:200]), gap_us=30000)
    cap.add(conn.seg(True, "PA", whole[200:]), gap_us=100)
    # A hello whose server-name list length is one short: refused whole (raw, flagged).
    bad = bytearray(tls_record(0x16, client_hello_odd_alpn(9)))
    sni_at = bytes(bad).find(b"\x00\x00\x00\x18\x00\x16")
    bad[sni_at + 5] -= 1
    cap.add(conn.seg(True, "PA", bytes(bad)), gap_us=100)
    # A port-443 segment carrying something else entirely.
    cap.add(conn.seg(True, "PA", b"SSH-2.0-OpenSSH_9.2\r\n"), gap_us=100)
    return cap


def fixture_http():
    cap = Capture(31)
    conn = TcpConn(CLIENT, SERVER, 50300, 80, eth_link(CLIENT, SERVER), cisn=1000, sisn=2000)
    requests = [
        # Known headers in odd spellings, a repeated known header (the last wins), unknown
        # headers (one repeated in another case: first place, last spelling and value),
        # a line without a colon, and a latin-1 byte in a value.
        b"GET /search?q=caf\xe9 HTTP/1.1\r\nhost: www.example.com\r\nUSER-AGENT: fixture/2\r\n"
        b"Accept-Encoding: gzip\r\nX-Trace: one\r\nno colon here\r\nAccept-Encoding: br\r\n"
        b"x-trace: two\r\nX-Empty:\r\nCookie: a=1; b=\"2\"\r\n\r\n",
        # HEAD with a path holding spaces (scapy splits at the first two runs of blanks).
        b"HEAD /a b HTTP/1.0\r\nHost: h\r\n\r\n",
        # OPTIONS *, CONNECT authority-form, DELETE, PUT with a body, TRACE.
        b"OPTIONS * HTTP/1.1\r\nHost: www.example.com\r\nMax-Forwards: 0\r\n\r\n",
        b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n",
        b"DELETE /item/7 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer t\r\n\r\n",
        b"PUT /item/8 HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n"
        b"Content-Length: 13\r\n\r\n{\"name\":\"x\"}\n",
        b"TRACE / HTTP/1.1\r\nHost: www.example.com\r\nVia: 1.1 proxy\r\n\r\n",
        # Head not finished in this segment: everything is head.
        b"GET /long HTTP/1.1\r\nHost: www.example.com\r\nReferer: http://www.example.com/",
    ]
    responses = [
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://www.example.com/\r\n"
        b"Content-Length: 0\r\nSet-Cookie: s=1\r\nX-Powered-By: fixture\r\nX-Custom: 1\r\n\r\n",
        # A status line with no reason: scapy cannot split it, so the three fields are
        # empty (or taken from same-named headers).
        b"HTTP/1.1 200 \r\nStatus-Code: 299\r\nServer: fixture\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
    ]
    cap.add(conn.seg(True, "S"), gap_us=1000)
    cap.add(conn.seg(False, "SA"), gap_us=9000)
    for i, req in enumerate(requests):
        cap.add(conn.seg(True, "PA", req), gap_us=500)
        if i < len(responses):
            cap.add(conn.seg(False, "PA", responses[i]), gap_us=9000)
    # Not HTTP on port 80: stays raw.
    cap.add(conn.seg(True, "PA", b"GET / HTTP/2\r\n\r\n"), gap_us=500)
    cap.add(conn.seg(True, "PA", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), gap_us=500)
    # Port 8080 over IPv6, and port 3128 (found by its first line).
    conn = TcpConn(CLIENT, SERVER, 50301, 8080, eth_link(CLIENT, SERVER), v6=True)
    cap.add(conn.seg(True, "PA", http_request("/v6", host="[2001:db8:1::20]:8080")), gap_us=700)
    cap.add(conn.seg(False, "PA", b"HTTP/1.1 204 No Content\r\nDate: Sun, 29 Nov 2026 "
                     b"12:31:00 GMT\r\n\r\n"), gap_us=700)
    conn = TcpConn(CLIENT, SERVER2, 50302, 3128, eth_link(CLIENT, SERVER2))
    cap.add(conn.seg(True, "PA", b"GET http://www.example.com/ HTTP/1.1\r\nHost: "
                     b"www.example.com\r\nProxy-Connection: keep-alive\r\n\r\n"), gap_us=700)
    cap.add(conn.seg(False, "PA", b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                     b"Proxy-Authenticate: Basic realm=\"p\"\r\n\r\n"), gap_us=700)
    return cap


def dhcp_frame(src, dst, sport, dport, bootp_fields, options, tail=b"", src_mac=None,
               dst_mac=BROADCAST):
    from scapy.layers.dhcp import BOOTP, DHCP
    payload = bytes(BOOTP(**bootp_fields) / DHCP(options=options)) if options is not None \
        else bytes(BOOTP(**bootp_fields))
    return (eth(src_mac or CLIENT.mac, dst_mac) / ip4(src, dst) / UDP(sport=sport, dport=dport)
            / Raw(payload + tail))


def fixture_dhcp():
    cap = Capture(32)
    chaddr = mac_bytes(CLIENT.mac)
    xid = 0x3903F326
    base = {"htype": 1, "hlen": 6, "xid": xid, "chaddr": chaddr}
    client_id = b"\x01" + chaddr
    prl = [1, 3, 6, 15, 26, 28, 51, 58, 59, 43, 119, 121]
    # DORA.
    cap.add(dhcp_frame("0.0.0.0", "255.255.255.255", 68, 67, dict(base, op=1, flags=0x8000),
                       [("message-type", "discover"), ("client_id", client_id),
                        ("max_dhcp_size", 1500), ("vendor_class_id", b"netpipe-fixture"),
                        ("hostname", b"fixture-host"), ("param_req_list", prl), "end",
                        "pad", "pad", "pad"]), gap_us=1000)
    server_opts = [("server_id", GATEWAY.ip4), ("lease_time", 86400),
                   ("renewal_time", 43200), ("rebinding_time", 75600),
                   ("subnet_mask", "255.255.255.0"), ("broadcast_address", "192.0.2.255"),
                   ("router", GATEWAY.ip4), ("name_server", RESOLVER.ip4, "192.0.2.54"),
                   ("domain", b"example.com"),
                   ("classless_static_routes", ["198.51.100.0/24:192.0.2.1",
                                                "0.0.0.0/0:192.0.2.1"]),
                   ("time_zone", 0xFFFFF1F0), "end"]  # -3600 s as scapy's unsigned IntField
    offer = dict(base, op=2, yiaddr=CLIENT.ip4, siaddr=GATEWAY.ip4)
    cap.add(dhcp_frame(GATEWAY.ip4, "255.255.255.255", 67, 68, offer,
                       [("message-type", "offer")] + server_opts, src_mac=GATEWAY.mac),
            gap_us=2000)
    cap.add(dhcp_frame("0.0.0.0", "255.255.255.255", 68, 67, dict(base, op=1, secs=1),
                       [("message-type", "request"), ("client_id", client_id),
                        ("requested_addr", CLIENT.ip4), ("server_id", GATEWAY.ip4),
                        ("hostname", b"fixture-host"), ("param_req_list", prl), "end"]),
            gap_us=1000)
    cap.add(dhcp_frame(GATEWAY.ip4, CLIENT.ip4, 67, 68, offer,
                       [("message-type", "ack")] + server_opts, src_mac=GATEWAY.mac,
                       dst_mac=CLIENT.mac), gap_us=2000)
    # Relayed renewal (giaddr, hops), with an option scapy has no name for (224) and an
    # empty lease_time, then a malformed tail (router option cut to 3 bytes).
    relayed = BOOTP_PLAIN(dict(base, op=1, hops=1, giaddr="192.0.2.254", ciaddr=CLIENT.ip4))
    cap.add(eth(GATEWAY, CLIENT) / ip4("192.0.2.254", GATEWAY) / UDP(sport=68, dport=67)
            / Raw(bytes(relayed) + bytes([99, 130, 83, 99])
                  + b"\x35\x01\x03\xe0\x02\x01\x02\x33\x00\xff"), gap_us=500000)
    raw_opts = b"\x35\x01\x08\x03\x03\xc0\x00\x02"
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, GATEWAY) / UDP(sport=68, dport=67)
            / Raw(bytes(BOOTP_PLAIN(dict(base, op=1))) + bytes([99, 130, 83, 99]) + raw_opts),
            gap_us=1000)
    # Plain BOOTP (no magic cookie): the vendor area stays BOOTP's options bytes.
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, GATEWAY) / UDP(sport=68, dport=67)
            / Raw(bytes(BOOTP_PLAIN(dict(base, op=1))) + bytes(64)), gap_us=1000)
    # Too short for BOOTP's fixed header: raw, flagged.
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, GATEWAY) / UDP(sport=68, dport=67)
            / Raw(bytes(BOOTP_PLAIN(dict(base, op=1)))[:200]), gap_us=1000)
    # Port 67 to port 67 (a relay talking to the server): scapy binds BOOTP there too.
    cap.add(eth(CLIENT, GATEWAY) / ip4(CLIENT, GATEWAY) / UDP(sport=67, dport=67)
            / Raw(bytes(BOOTP_PLAIN(dict(base, op=1)))), gap_us=1000)
    return cap


def BOOTP_PLAIN(fields):
    from scapy.layers.dhcp import BOOTP
    return BOOTP(**fields)


def ntp_packet(first, stratum, poll, precision, delay, dispersion, ref_id, stamps):
    return (struct.pack("!BBBbII", first, stratum, poll, precision, delay, dispersion)
            + ref_id + b"".join(struct.pack("!Q", s) for s in stamps))


def fixture_ntp():
    cap = Capture(33)
    era = 0xEDBB0000  # seconds since 1900 in late 2026
    req = ntp_packet(0x23, 0, 6, -20, 0, 0, b"\x00\x00\x00\x00",
                     [0, 0, 0, (era + 10) << 32 | 0x12345678])
    cap.add(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER) / UDP(sport=49123, dport=123) / Raw(req),
            gap_us=1000)
    rep = ntp_packet(0x24, 2, 6, -24, 0x00000A3D, 0x00001B2C, bytes([192, 0, 2, 123]),
                     [(era + 5) << 32, (era + 10) << 32 | 0x12345678,
                      (era + 10) << 32 | 0x20000000, (era + 10) << 32 | 0x20100000])
    cap.add(eth(SERVER, CLIENT) / ip4(SERVER, CLIENT) / UDP(sport=123, dport=49123) / Raw(rep),
            gap_us=15000)
    # Stratum 1 server (reference id is text), symmetric mode both ports 123.
    s1 = ntp_packet(0x1C, 1, 4, -29, 0, 0x10, b"GPS\x00",
                    [(era + 1) << 32, 0, (era + 2) << 32, (era + 2) << 32 | 1])
    cap.add(eth(SERVER2, CLIENT) / ip4(SERVER2, CLIENT) / UDP(sport=123, dport=123) / Raw(s1),
            gap_us=15000)
    # Broadcast (mode 5) over IPv6, with a 20-byte MAC after the header (raw after it).
    bc = ntp_packet(0x25, 3, 6, -20, 0x100, 0x200, bytes([198, 51, 100, 1]),
                    [(era + 3) << 32, 0, 0, (era + 4) << 32])
    cap.add(eth(SERVER, CLIENT) / ip6(SERVER, CLIENT) / UDP(sport=123, dport=123)
            / Raw(bc + struct.pack("!I", 7) + bytes(range(16))), gap_us=15000)
    # Control message (mode 6) and a 40-byte stub: not NTPHeader, raw.
    cap.add(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER) / UDP(sport=49124, dport=123)
            / Raw(b"\x16\x02\x00\x01" + bytes(44)), gap_us=1000)
    cap.add(eth(CLIENT, SERVER) / ip4(CLIENT, SERVER) / UDP(sport=49125, dport=123)
            / Raw(req[:40]), gap_us=1000)
    return cap


# ---------------------------------------------------------------------------------------------
# IP fragments for `read --reassemble` (docs/FORMAT.md, "Fragment reassembly").


def big_dns_response(ident, records, name="frag.example.com."):
    """A DNS answer of `records` TXT records: about 100 bytes each, so it needs fragments."""
    an = [rr(name, DNS_TXT, rd_txt(b"fragment %02d of a response too big for one frame. " % i,
                                   b"padding text to make the record longer %02d" % i))
          for i in range(records)]
    return dns_message(ident, dns_flags(qr=1, ra=1), qd=[(name, DNS_TXT, CLASS_IN)], an=an)


def v4_fragments(datagram, size):
    """scapy's fragment(): the IPv4 datagram in fragments of `size` payload bytes."""
    return fragment(datagram, fragsize=size)


def v6_fragments(datagram, size):
    """scapy's fragment6(): fragments of at most `size` bytes each (headers included)."""
    return fragment6(datagram, size)


def v4_piece(src, dst, ident, offset, payload, more, proto=17):
    """One IPv4 fragment built by hand (for overlaps scapy's fragment() does not make)."""
    return IP(src=src.ip4, dst=dst.ip4, id=ident, ttl=64, proto=proto,
              flags="MF" if more else 0, frag=offset // 8) / Raw(payload)


def v6_piece(src, dst, ident, offset, payload, more, nh=17):
    return (IPv6(src=src.ip6, dst=dst.ip6, hlim=64)
            / IPv6ExtHdrFragment(nh=nh, offset=offset // 8, m=1 if more else 0, id=ident)
            / Raw(payload))


def fixture_fragments():
    cap = Capture(34)
    srv, cli = eth(RESOLVER, CLIENT), eth(CLIENT, RESOLVER)
    # 1. IPv4, three fragments in order (a DNS answer from the resolver).
    dns1 = ip4(RESOLVER, CLIENT, id=0x4101) / UDP(sport=53, dport=40001) \
        / Raw(big_dns_response(0x5101, 10))
    for f in v4_fragments(dns1, 400):
        cap.add(srv / f, gap_us=200)
    # An ordinary packet between datagrams.
    cap.add(cli / ip4(CLIENT, RESOLVER, id=0x4102) / UDP(sport=40002, dport=53)
            / Raw(dns_message(0x5102, dns_flags(), qd=[("frag.example.com.", DNS_TXT,
                                                       CLASS_IN)])), gap_us=1000)
    # 2. IPv4 out of order: last fragment first, then the middle ones, then the first.
    dns2 = ip4(RESOLVER, CLIENT, id=0x4103) / UDP(sport=53, dport=40002) \
        / Raw(big_dns_response(0x5102, 12))
    frags = v4_fragments(dns2, 512)
    for f in reversed(frags):
        cap.add(srv / f, gap_us=200)
    # 3. IPv4 with a duplicate: the second fragment twice (exact duplicate, not an overlap).
    dns3 = ip4(RESOLVER, CLIENT, id=0x4104) / UDP(sport=53, dport=40003) \
        / Raw(big_dns_response(0x5103, 8))
    frags = v4_fragments(dns3, 400)
    for f in [frags[0], frags[1], frags[1]] + frags[2:]:
        cap.add(srv / f, gap_us=200)
    # 4. IPv4 overlap (first wins): 0..512, then 256..768 of different bytes, then the rest.
    # (UDP checksum 0: none, as RFC 768 allows over IPv4.)
    payload = bytes(UDP(sport=40004, dport=9, len=8 + 1016, chksum=0)
                    / Raw((bytes(range(256)) * 4)[:1016]))
    cap.add(cli / v4_piece(CLIENT, RESOLVER, 0x4105, 0, payload[:512], True), gap_us=200)
    cap.add(cli / v4_piece(CLIENT, RESOLVER, 0x4105, 256, b"\xee" * 512, True), gap_us=200)
    cap.add(cli / v4_piece(CLIENT, RESOLVER, 0x4105, 768, payload[768:], False), gap_us=200)
    # 6. IPv4 behind an 802.1Q tag, in order.
    dns6 = ip4(RESOLVER, CLIENT, id=0x4107) / UDP(sport=53, dport=40006) \
        / Raw(big_dns_response(0x5106, 6))
    for f in v4_fragments(dns6, 400):
        cap.add(srv / Dot1Q(vlan=20) / f, gap_us=200)
    # 7. IPv6 in order (fragment6 on a datagram with a fragment header).
    dns7 = ip6(RESOLVER, CLIENT) / IPv6ExtHdrFragment(id=0x6107) \
        / UDP(sport=53, dport=40007) / Raw(big_dns_response(0x5107, 10))
    for f in v6_fragments(dns7, 500):
        cap.add(srv / f, gap_us=200)
    # 8. IPv6 out of order, then the first fragment once more after the datagram completed:
    # no longer a duplicate of anything held, it starts a new datagram (which times out).
    dns8 = ip6(RESOLVER, CLIENT) / IPv6ExtHdrFragment(id=0x6108) \
        / UDP(sport=53, dport=40008) / Raw(big_dns_response(0x5108, 9))
    frags = v6_fragments(dns8, 500)
    for f in [frags[1], frags[0]] + frags[2:] + [frags[0]]:
        cap.add(srv / f, gap_us=200)
    # 9. IPv6 with a hop-by-hop header before the fragment header, in order.
    dns9 = ip6(RESOLVER, CLIENT) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) \
        / IPv6ExtHdrFragment(id=0x6109) / UDP(sport=53, dport=40009) \
        / Raw(big_dns_response(0x5109, 7))
    for f in v6_fragments(dns9, 500):
        cap.add(srv / f, gap_us=200)
    # 10. IPv6 overlap: the second fragment overlaps the first by 8 bytes (RFC 5722: the
    # datagram is dropped, and the fragment after it is late).
    payload = bytes(UDP(sport=53, dport=40010, len=8 + 792, chksum=0)
                    / Raw((bytes(range(200)) * 4)[:792]))
    cap.add(srv / v6_piece(RESOLVER, CLIENT, 0x610A, 0, payload[:400], True), gap_us=200)
    cap.add(srv / v6_piece(RESOLVER, CLIENT, 0x610A, 392, payload[392:600], True), gap_us=200)
    cap.add(srv / v6_piece(RESOLVER, CLIENT, 0x610A, 600, payload[600:], False), gap_us=200)
    # 11. IPv4 timeout: the second half arrives 31 s after the first (Linux ipfrag_time and
    # our default are 30 s): the first is given up, the late half starts a datagram that is
    # left incomplete at the end.
    dns11 = ip4(RESOLVER, CLIENT, id=0x410B) / UDP(sport=53, dport=40011) \
        / Raw(big_dns_response(0x510B, 6))
    frags = v4_fragments(dns11, 400)
    cap.add(srv / frags[0], gap_us=200)
    for f in frags[1:]:
        cap.add(srv / f, gap_us=31_000_000)
    # 5. IPv4 incomplete: the middle fragment never comes (left incomplete at the end of the
    # file; it comes last so that the timeout of case 11 does not end it first).
    dns5 = ip4(RESOLVER, CLIENT, id=0x4106) / UDP(sport=53, dport=40005) \
        / Raw(big_dns_response(0x5105, 8))
    frags = v4_fragments(dns5, 400)
    cap.add(srv / frags[0], gap_us=200)
    cap.add(srv / frags[-1], gap_us=200)
    return cap


# ---------------------------------------------------------------------------------------------


def main(argv):
    outdir = argv[1] if len(argv) > 1 else os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pcaps"))
    os.makedirs(outdir, exist_ok=True)
    random.seed(0)  # in case scapy ever reaches for the global generator

    def pcap(name, fixture, **kw):
        cap = fixture()
        write_pcap(os.path.join(outdir, name), cap.linktype, cap.records, **kw)
        print("%-24s %6d packets  linktype %d" % (name, len(cap.records), cap.linktype))

    def pcapng(name, fixture):
        ng = fixture()
        write_pcapng(os.path.join(outdir, name), ng.section_options, ng.interfaces, ng.packets,
                     ng.statistics, ng.byteorder)
        print("%-24s %6d packets  linktypes %s" % (
            name, len(ng.packets), ", ".join(str(i[0]) for i in ng.interfaces)))

    pcap("ethernet-ipv4-tcp.pcap", fixture_ethernet_ipv4_tcp)
    pcap("ethernet-udp-dns.pcap", fixture_ethernet_udp_dns)
    pcap("ethernet-icmp.pcap", fixture_ethernet_icmp)
    pcap("ethernet-arp.pcap", fixture_ethernet_arp)
    pcap("ethernet-ipv6.pcap", fixture_ethernet_ipv6)
    pcap("vlan.pcap", fixture_vlan)
    pcap("sll.pcap", fixture_sll)
    pcap("sll2.pcap", fixture_sll2)
    pcap("raw-ip.pcap", fixture_raw_ip)
    pcap("raw-ipv4.pcap", fixture_raw_ipv4)
    pcap("raw-ipv6.pcap", fixture_raw_ipv6)
    pcap("bsd-loopback.pcap", fixture_bsd_loopback)
    pcap("padding.pcap", fixture_padding)
    pcap("malformed.pcap", fixture_malformed)
    pcap("big-endian.pcap", fixture_big_endian, byteorder=">")
    pcap("nanosecond.pcap", fixture_nanosecond, nanosecond=True)
    pcapng("multi.pcapng", fixture_multi_pcapng)
    pcapng("big-endian.pcapng", fixture_big_endian_pcapng)
    pcap("mixed.pcap", fixture_mixed)
    pcap("tunnels.pcap", fixture_tunnels)
    pcap("tls.pcap", fixture_tls)
    pcap("http.pcap", fixture_http)
    pcap("dhcp.pcap", fixture_dhcp)
    pcap("ntp.pcap", fixture_ntp)
    pcap("fragments.pcap", fixture_fragments)


if __name__ == "__main__":
    main(sys.argv)
