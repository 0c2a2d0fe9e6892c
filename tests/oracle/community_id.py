#!/usr/bin/python3
"""Check netpipe-fast's `community_id` / `community_id_outer` against the `communityid`
package from PyPI (Corelight's reference implementation), packet by packet.

    PYTHON community_id.py --bin target/debug/netpipe-fast [--seed N] FILE...

PYTHON needs scapy 2.5 (for the oracle's dissection) and `communityid`: scripts/test.sh makes
target/communityid-venv (a venv with the system site packages, so Debian's python3-scapy is
seen). The flow tuple of each packet comes from the scapy oracle's view of the frame
(scapy_json.packet_data), never from netpipe-fast's output: the innermost `ip`/`ipv6` layer
(not `iperror`), its protocol after any IPv6 extension headers, and the ports (or ICMP type
and code) of the transport layer after it, or of the raw bytes when scapy's class for it is
not one netpipe-fast decodes (SCTP, other ICMPv6 types). For tunnelled packets (two or more
IP layers), `community_id_outer` is the same over the outermost IP layer.

Exits 1 on any difference, 0 otherwise; prints a summary per file.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import communityid  # noqa: E402
import scapy_json  # noqa: E402

PORT_PROTOS = {1, 6, 17, 58, 132}
TRANSPORT = {6: ("tcp",), 17: ("udp",), 1: ("icmp",), 58: ("icmpv6",)}


def base(key):
    head, sep, tail = key.rpartition("_")
    return head if sep and tail.isdigit() else key


def tuple_at(data, keys, at):
    """(proto, saddr, daddr, a, b) for the IP layer keys[at], or None."""
    ip = data[keys[at]]
    v6 = base(keys[at]) == "ipv6"
    proto = ip["nh"] if v6 else ip["proto"]
    first = v6 or ip["frag"] == 0
    i = at + 1
    while i < len(keys) and keys[i].startswith("ipv6exthdr"):
        ext = data[keys[i]]
        proto = ext["nh"]
        if base(keys[i]) == "ipv6exthdrfragment" and ext["offset"] != 0:
            first = False
        i += 1
    if proto not in PORT_PROTOS:
        return proto, ip["src"], ip["dst"], None, None
    nxt = keys[i] if i < len(keys) else None
    if nxt is not None and base(nxt) in ("tcp", "udp"):
        d = data[nxt]
        if base(nxt) != TRANSPORT[proto][0]:
            return None
        return proto, ip["src"], ip["dst"], d["sport"], d["dport"]
    if nxt is not None and base(nxt) == "icmp" and proto == 1:
        d = data[nxt]
        return proto, ip["src"], ip["dst"], d["type"], d["code"]
    if nxt is not None and base(nxt).startswith("icmpv6") and proto == 58:
        d = data[nxt]
        return proto, ip["src"], ip["dst"], d["type"], d["code"]
    if nxt == "raw" and first and proto in (58, 132):
        raw = bytes.fromhex(data["raw"]["load"])
        if proto == 132 and len(raw) >= 4:
            return proto, ip["src"], ip["dst"], int.from_bytes(raw[0:2], "big"), \
                int.from_bytes(raw[2:4], "big")
        if proto == 58 and len(raw) >= 2:
            return proto, ip["src"], ip["dst"], raw[0], raw[1]
    return None


def reference_id(cid, tpl):
    proto, saddr, daddr, a, b = tpl
    if proto == 6:
        ft = communityid.FlowTuple.make_tcp(saddr, daddr, a, b)
    elif proto == 17:
        ft = communityid.FlowTuple.make_udp(saddr, daddr, a, b)
    elif proto == 132:
        ft = communityid.FlowTuple.make_sctp(saddr, daddr, a, b)
    elif proto == 1:
        ft = communityid.FlowTuple.make_icmp(saddr, daddr, a, b)
    elif proto == 58:
        ft = communityid.FlowTuple.make_icmp6(saddr, daddr, a, b)
    else:
        ft = communityid.FlowTuple.make_ip(saddr, daddr, proto)
    return cid.calc(ft)


def expected(cid, data):
    keys = list(data)
    ips = [i for i, k in enumerate(keys) if base(k) in ("ip", "ipv6")]
    out = {}
    if not ips:
        return out
    inner = tuple_at(data, keys, ips[-1])
    if inner is not None:
        out["community_id"] = reference_id(cid, inner)
    if len(ips) > 1:
        outer = tuple_at(data, keys, ips[0])
        if outer is not None:
            out["community_id_outer"] = reference_id(cid, outer)
    return out


def check_file(binary, seed, path):
    cmd = [binary, "read", "-q", "--community-id-seed", str(seed), path]
    ours = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    lines = ours.stdout.decode().splitlines()
    cid = communityid.CommunityID(seed=seed)
    n = diff = ids = skipped = 0
    shown = []
    for (frame, linktype, _t, _w), line in zip(scapy_json.records(path), lines):
        n += 1
        msg = json.loads(line)
        try:
            data = scapy_json.packet_data(frame, linktype)
        except Exception as e:  # the oracle could not dissect it: not compared
            skipped += 1
            shown.append("#%d oracle: %s" % (n - 1, e))
            continue
        want = expected(cid, data)
        got = {k: msg[k] for k in ("community_id", "community_id_outer") if k in msg}
        ids += len(want)
        if want != got:
            diff += 1
            if len(shown) < 10:
                shown.append("#%d ours %s reference %s" % (n - 1, got, want))
    count_ok = n == len(lines)
    print("== %s: %d packets, %d ids compared, %d differ, %d not dissected%s" % (
        path, n, ids, diff, skipped, "" if count_ok else " COUNT DIFFERS"))
    for s in shown:
        print("   " + s)
    return diff == 0 and skipped == 0 and count_ok and ours.returncode in (0, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    ok = all([check_file(args.bin, args.seed, f) for f in args.files])
    print("RESULT: %s" % ("same" if ok else "differences found"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
