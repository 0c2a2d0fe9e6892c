#!/usr/bin/env python3
"""Seed the decode_frame fuzz corpus with real frames.

Usage:  fuzz/seed-corpus.py [CAPTURE_DIR ...]       (default: pcaps/)

Reads every .pcap / .pcapng file in the given directories (plain Python, no scapy) and writes
one corpus file per distinct (link type, frame): a selector byte naming the link type, as
fuzz_targets/decode_frame.rs maps it, followed by the frame (MPLS-over-Ethernet frames a second
time with the selector's top bit set, for `--mpls-payload ether`). Files are named by their SHA-1,
as libFuzzer names its own, into fuzz/corpus/decode_frame/. Frames of link types the decoder
does not support are skipped. Damaged files are read up to the damage.

pcaps/ holds frames of every layer the decoder knows, the application layers included
(tls.pcap: ClientHellos of several client shapes and ServerHellos; http.pcap; dhcp.pcap;
ntp.pcap), so the default seeds reach each decoder; decode_frame.dict adds their tokens.
"""

import hashlib
import os
import struct
import sys

# LINKTYPE_* number -> selector byte (index into LINK_TYPES in decode_frame.rs).
SELECTOR = {0: 0, 1: 1, 101: 2, 228: 3, 229: 4, 113: 5, 276: 6}

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "corpus", "decode_frame")


def pcap_frames(data):
    """(link type, frame) of a classic pcap file."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        return
    if len(data) < 24:
        return
    link = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack(order + "I", data[pos + 8:pos + 12])[0]
        pos += 16
        if incl > len(data) - pos:
            return
        yield link, data[pos:pos + incl]
        pos += incl


def pcapng_frames(data):
    """(link type, frame) of Enhanced and Simple Packet Blocks of a pcapng file."""
    pos = 0
    order = "<"
    links = []
    while pos + 12 <= len(data):
        btype = struct.unpack(order + "I", data[pos:pos + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[pos + 8:pos + 12]
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack(order + "I", data[pos + 4:pos + 8])[0]
        if blen < 12 or blen % 4 or pos + blen > len(data):
            return
        body = data[pos + 8:pos + blen - 4]
        if btype == 1 and len(body) >= 2:
            links.append(struct.unpack(order + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            iface, _, _, cap = struct.unpack(order + "IIII", body[:16])
            if iface < len(links) and cap <= len(body) - 20:
                yield links[iface], body[20:20 + cap]
        elif btype == 3 and len(body) >= 4 and links:
            orig = struct.unpack(order + "I", body[:4])[0]
            yield links[0], body[4:4 + min(orig, len(body) - 4)]
        pos += blen


def main(dirs):
    os.makedirs(OUT_DIR, exist_ok=True)
    written = 0
    for d in dirs:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if not name.endswith((".pcap", ".pcapng")) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            frames = pcapng_frames(data) if data[:4] == b"\x0a\x0d\x0d\x0a" else pcap_frames(data)
            for link, frame in frames:
                if link not in SELECTOR:
                    continue
                seeds = [bytes([SELECTOR[link]]) + frame]
                if link == 1 and frame[12:14] in (b"\x88\x47", b"\x88\x48"):
                    # MPLS over Ethernet: also with the selector's top bit, which decodes the
                    # payload after the bottom label as Ethernet (--mpls-payload ether).
                    seeds.append(bytes([SELECTOR[link] | 0x80]) + frame)
                for seed in seeds:
                    out = os.path.join(OUT_DIR, hashlib.sha1(seed).hexdigest())
                    if not os.path.exists(out):
                        with open(out, "wb") as f:
                            f.write(seed)
                        written += 1
    print(f"seed-corpus.py: wrote {written} new seeds into {OUT_DIR}")


if __name__ == "__main__":
    main(sys.argv[1:] or [os.path.join(HERE, "..", "pcaps")])
