#!/usr/bin/python3
"""Reassembly oracle: what `netpipe-fast read --reassemble` must produce, made with scapy.

Usage:  /usr/bin/python3 tests/oracle/defrag.py IN.pcap OUT.pcap

Reads IN with scapy, groups the IPv4 and IPv6 fragments of the outermost IP header into
datagrams by the keys docs/FORMAT.md names (IPv4: source, destination, protocol, id; IPv6:
source, destination, fragment id), with the same capture-time timeout (30 s from a datagram's
first fragment) and the same handling of exact duplicates. Every datagram that completes is
reassembled by scapy -- `defrag()` for IPv4, `defragment6()` for IPv6 (given its fragments
sorted by offset: scapy 2.5's own reordering in defragment6 does not reorder) -- and written to
OUT as an Ethernet frame with the link-layer header of the fragment that completed it, in the
order of completion. Datagrams with overlapping fragments: IPv6 ones are dropped (RFC 5722) and
write nothing; IPv4 ones are put together here by "first wins" (scapy's defrag refuses
overlaps), which is the one part of this oracle that is not scapy's.

Prints one line per datagram written and a last line with the counts.
"""

import sys

from scapy.config import conf
from scapy.layers.inet import IP, defrag
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

conf.verb = 0
TIMEOUT_NS = 30 * 1_000_000_000


def outer_ip(pkt):
    for layer in (IP, IPv6):
        if layer in pkt:
            return pkt[layer]
    return None


def fragment_of(pkt):
    """(key, offset, data, more, ip) for a fragment, else None."""
    ip = outer_ip(pkt)
    if ip is None:
        return None
    if isinstance(ip, IP):
        if not ip.flags.MF and ip.frag == 0:
            return None
        data = bytes(ip.payload)[: ip.len - ip.ihl * 4]
        return (("4", ip.src, ip.dst, ip.proto, ip.id), ip.frag * 8, data, bool(ip.flags.MF), ip)
    if IPv6ExtHdrFragment not in ip:
        return None
    fh = ip[IPv6ExtHdrFragment]
    if fh.offset == 0 and fh.m == 0:
        return None
    return (("6", ip.src, ip.dst, fh.id), fh.offset * 8, bytes(fh.payload), bool(fh.m), ip)


def main(argv):
    packets = rdpcap(argv[1])
    open_ = {}
    out = []
    clock = None
    done = 0
    for pkt in packets:
        f = fragment_of(pkt)
        if f is None:
            continue
        key, offset, data, more, ip = f
        t = int(pkt.time * 1_000_000_000) if not hasattr(pkt.time, "numerator") else \
            pkt.time.numerator * 1_000_000_000 // pkt.time.denominator
        clock = t if clock is None else max(clock, t)
        for k in [k for k, d in open_.items() if d["first"] + TIMEOUT_NS < clock]:
            del open_[k]
        d = open_.setdefault(key, {"first": clock, "frags": [], "dead": False})
        if d["dead"]:
            continue
        span = (offset, offset + len(data))
        if any((o, o + len(b)) == span and b == data for o, b, _, _ in d["frags"]):
            continue  # exact duplicate
        overlap = any(o < span[1] and span[0] < o + len(b) for o, b, _, _ in d["frags"])
        if overlap and key[0] == "6":
            d["dead"] = True  # RFC 5722
            continue
        d["frags"].append((offset, data, more, pkt))
        last = [fr for fr in d["frags"] if not fr[2]]
        if not last or not any(fr[0] == 0 for fr in d["frags"]):
            continue
        total = last[0][0] + len(last[0][1])
        covered = 0
        for o, b, _, _ in sorted(d["frags"], key=lambda fr: fr[0]):
            if o > covered:
                break
            covered = max(covered, o + len(b))
        if covered < total:
            continue
        del open_[key]
        frags = d["frags"]
        if key[0] == "4":
            if any(a[0] < b[0] + len(b[1]) and b[0] < a[0] + len(a[1])
                   for i, a in enumerate(frags) for b in frags[:i]):
                # First wins, by arrival.
                buf = bytearray(total)
                have = bytearray(total)
                for o, b, _, _ in frags:
                    for i, x in enumerate(b):
                        if not have[o + i]:
                            buf[o + i], have[o + i] = x, 1
                first = outer_ip([fr for fr in frags if fr[0] == 0][0][3]).copy()
                first.remove_payload()
                first.flags.MF = False
                first.frag = 0
                del first.len
                del first.chksum
                whole = IP(bytes(first / Raw(bytes(buf))))
            else:
                ips = [IP(bytes(outer_ip(fr[3]))[: outer_ip(fr[3]).len])
                       for fr in sorted(frags, key=lambda fr: fr[0])]
                _, defragmented, missing = defrag(ips)
                assert len(defragmented) == 1 and not missing, (key, missing)
                whole = defragmented[0]
        else:
            ips = [IPv6(bytes(outer_ip(fr[3]))) for fr in sorted(frags, key=lambda fr: fr[0])]
            whole = defragment6(ips)
        completing = pkt
        link = bytes(completing)[: len(bytes(completing)) - len(bytes(outer_ip(completing)))]
        frame = Ether(link + bytes(whole))
        frame.time = completing.time
        out.append(frame)
        done += 1
        print("datagram %s: %d fragments, %d bytes" % (key, len(frags), len(bytes(whole))))
    wrpcap(argv[2], out, linktype=1)
    print("%d datagrams reassembled" % done)


if __name__ == "__main__":
    main(sys.argv)
