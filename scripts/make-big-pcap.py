#!/usr/bin/env python3
"""Make a big pcap for memory tests by repeating another pcap's records.

Usage:  scripts/make-big-pcap.py SRC DEST [MIN_BYTES]      (MIN_BYTES defaults to 1 GiB)

Copies SRC's file header, then SRC's records over and over until DEST holds at least
MIN_BYTES. Each repetition is shifted in time past the end of the previous one (by the
source's span plus one second), so timestamps keep increasing through the whole file. Works
on classic pcap in either byte order, microsecond or nanosecond resolution; pcapng is not
supported. Plain Python, no scapy. Prints the number of packets and bytes written.
"""

import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__.strip())
    src, dest = argv[1], argv[2]
    min_bytes = int(argv[3]) if len(argv) == 4 else 1 << 30
    with open(src, "rb") as f:
        data = f.read()
    if data[:4] not in MAGICS:
        sys.exit(f"make-big-pcap.py: {src}: not a classic pcap file")
    order, per_sec = MAGICS[data[:4]]
    rec_hdr = struct.Struct(order + "IIII")

    # Parse every record once: (timestamp in ticks, lengths, bytes).
    records = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, orig = rec_hdr.unpack_from(data, pos)
        body = data[pos + 16:pos + 16 + incl]
        if len(body) != incl:
            sys.exit(f"make-big-pcap.py: {src}: truncated record at offset {pos}")
        records.append((sec * per_sec + frac, incl, orig, body))
        pos += 16 + incl
    if not records:
        sys.exit(f"make-big-pcap.py: {src}: no records")
    first = min(r[0] for r in records)
    last = max(r[0] for r in records)
    shift_per_rep = last - first + per_sec

    written = 24
    packets = 0
    rep = 0
    with open(dest, "wb") as out:
        out.write(data[:24])
        while written < min_bytes:
            shift = rep * shift_per_rep
            chunk = []
            for ticks, incl, orig, body in records:
                t = ticks + shift
                chunk.append(rec_hdr.pack(t // per_sec, t % per_sec, incl, orig))
                chunk.append(body)
            blob = b"".join(chunk)
            out.write(blob)
            written += len(blob)
            packets += len(records)
            rep += 1
    print(f"{dest}: {packets} packets, {written} bytes ({rep} copies of {src})")


if __name__ == "__main__":
    main(sys.argv)
