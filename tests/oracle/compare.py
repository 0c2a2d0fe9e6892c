#!/usr/bin/python3
"""Compare netpipe-fast's JSON packets with the scapy oracle, packet by packet.

    /usr/bin/python3 tests/oracle/compare.py --bin target/debug/netpipe-fast pcaps/*.pcap

For each FILE it runs `BIN read FILE` and `scapy_json.py FILE` (both at once),
pairs the packets by position and compares: packet count; time_ns, wire_len,
cap_len; the layer keys of `data` in order; and, for every layer present on
both sides, every field present on either side, recursively.  The envelope is
checked against what follows from scapy's view of the packet: `created` is
scapy's timestamp as UTC text, `source` is the --source-host given to the run,
the keys come in docs/FORMAT.md's order, `community_id` only on packets where
scapy sees IP or IPv6, and `decode_error` is present when scapy could not even
build the link layer.  A packet on which scapy raised ({"scapy_error": ...})
cannot be compared: it fails the run unless --allow-scapy-errors N allows that
many (a count, not a blanket pass; none are needed for pcaps/ today).

Prints a summary per file and exits 1 when anything differs (or a command
fails), 0 otherwise.  Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCAPY_JSON = os.path.join(HERE, "scapy_json.py")
ENVELOPE_FIELDS = ("time_ns", "wire_len", "cap_len")
MISSING = "<missing>"
# docs/FORMAT.md: envelope keys, always in this order; the first six always present.
ENVELOPE_ORDER = ("data", "created", "source", "time_ns", "wire_len", "cap_len",
                  "community_id", "community_id_outer", "ja3", "ja3_hash", "ja4",
                  "decode_error")
ENVELOPE_REQUIRED = ENVELOPE_ORDER[:6]
# The source name the runs are given (and so expected in every message).
SOURCE = "oracle-check"


def same(a, b):
    """JSON equality that keeps true/false apart from 1/0 and 1 from 1.0, and keys in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def diff_values(path, ours, theirs, out):
    """Append (path, ours, theirs) for every leaf that differs."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        ours_order = [k for k in ours if k in theirs]
        theirs_order = [k for k in theirs if k in ours]
        if ours_order != theirs_order:
            out.append(("%s.<key order>" % path, ours_order, theirs_order))
        for k in list(ours) + [k for k in theirs if k not in ours]:
            diff_values(
                "%s.%s" % (path, k),
                ours.get(k, MISSING),
                theirs.get(k, MISSING),
                out,
            )
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for i, (x, y) in enumerate(zip(ours, theirs)):
            diff_values("%s[%d]" % (path, i), x, y, out)
    elif not same(ours, theirs):
        out.append((path, ours, theirs))


def layer_base(key):
    """dot1q_2 -> dot1q, for the per-field tallies."""
    head, sep, tail = key.rpartition("_")
    if sep and tail.isdigit() and head:
        return head
    return key


def tally_key(path):
    """data.tcp.fields_options.MSS -> tcp.fields_options; time_ns -> time_ns."""
    parts = path.split(".")
    if parts[0] != "data" or len(parts) < 2:
        return parts[0]
    layer = layer_base(parts[1])
    if len(parts) == 2:
        return layer
    field = parts[2].split("[", 1)[0]
    return "%s.%s" % (layer, field)


def envelope_diffs(ours, theirs):
    """The envelope checks that follow from scapy's record (see the module doc)."""
    diffs = []
    keys = list(ours)
    unknown = [k for k in keys if k not in ENVELOPE_ORDER]
    in_order = sorted(keys, key=lambda k: ENVELOPE_ORDER.index(k)
                      if k in ENVELOPE_ORDER else len(ENVELOPE_ORDER))
    missing = [k for k in ENVELOPE_REQUIRED if k not in ours]
    if unknown or missing or keys != in_order:
        diffs.append(("<envelope keys>", keys, "FORMAT.md order, required %s"
                      % ",".join(ENVELOPE_REQUIRED)))
    t = theirs.get("time_ns")
    if t is not None:
        want = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t // 10**9))
        if ours.get("created") != want:
            diffs.append(("created", ours.get("created", MISSING), want))
    if ours.get("source") != SOURCE:
        diffs.append(("source", ours.get("source", MISSING), SOURCE))
    sd = theirs.get("data")
    if isinstance(sd, dict):
        bases = {layer_base(k) for k in sd}
        if "community_id" in ours and not bases & {"ip", "ipv6"}:
            diffs.append(("community_id", ours["community_id"], "<no IP layer in scapy>"))
        # No link layer at all on scapy's side (an empty frame, or only raw bytes where a
        # link header belongs): the frame was cut inside its first header.
        link_missing = not sd or list(sd) == ["raw"]
        if link_missing and "decode_error" not in ours and ours.get("cap_len", 0) < 64:
            diffs.append(("decode_error", MISSING, "<link header cut short in scapy>"))
    return diffs


def compare_packet(ours, theirs):
    """Differences of one packet pair, as (path, ours, scapy) tuples."""
    diffs = envelope_diffs(ours, theirs)
    for k in ENVELOPE_FIELDS:
        if k == "time_ns" and theirs.get(k) is None:
            continue  # pcapng Simple Packet Block: no timestamp to compare
        a, b = ours.get(k, MISSING), theirs.get(k, MISSING)
        if not same(a, b):
            diffs.append((k, a, b))
    od = ours.get("data")
    sd = theirs.get("data")
    if not isinstance(od, dict):
        diffs.append(("data", od, "<object>"))
        return diffs
    if list(od) != list(sd):
        diffs.append(("data.<layers>", list(od), list(sd)))
    for key in od:
        if key in sd:
            diff_values("data." + key, od[key], sd[key], diffs)
    return diffs


def run_both(binary, pcap, python):
    """Run netpipe-fast and the oracle side by side; return both record lists."""
    with tempfile.TemporaryFile() as ours_out, tempfile.TemporaryFile() as ours_err, \
            tempfile.TemporaryFile() as scapy_out, tempfile.TemporaryFile() as scapy_err:
        ours = subprocess.Popen([binary, "read", "--source-host", SOURCE, pcap],
                                stdout=ours_out, stderr=ours_err, stdin=subprocess.DEVNULL)
        oracle = subprocess.Popen([python, SCAPY_JSON, pcap], stdout=scapy_out,
                                  stderr=scapy_err, stdin=subprocess.DEVNULL)
        ours_rc = ours.wait()
        oracle_rc = oracle.wait()
        problems = []
        if ours_rc != 0:
            ours_err.seek(0)
            problems.append("%s read %s exited %d: %s" % (
                binary, pcap, ours_rc, ours_err.read().decode("utf-8", "replace")[-2000:]))
        if oracle_rc != 0:
            scapy_err.seek(0)
            problems.append("scapy_json.py %s exited %d: %s" % (
                pcap, oracle_rc, scapy_err.read().decode("utf-8", "replace")[-2000:]))
        results = []
        for fh, what in ((ours_out, "netpipe-fast"), (scapy_out, "scapy_json.py")):
            fh.seek(0)
            tmp = fh.read()
            recs = []
            for n, line in enumerate(tmp.splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except ValueError as e:
                    problems.append("%s: output line %d is not JSON (%s): %r" % (
                        what, n, e, line[:200]))
                    break
            results.append(recs)
        return results[0], results[1], problems


def short(v, limit=160):
    s = json.dumps(v, separators=(",", ":")) if v is not MISSING else MISSING
    return s if len(s) <= limit else s[:limit] + "..."


def compare_file(binary, pcap, python, max_shown, allowed_errors):
    ours, theirs, problems = run_both(binary, pcap, python)
    tallies = {}
    shown = []
    n_diff_packets = 0
    n_scapy_errors = 0
    scapy_error_kinds = {}
    for i, (o, s) in enumerate(zip(ours, theirs)):
        if "scapy_error" in s:
            n_scapy_errors += 1
            kind = s["scapy_error"][:80]
            scapy_error_kinds[kind] = scapy_error_kinds.get(kind, 0) + 1
            continue
        diffs = compare_packet(o, s)
        if diffs:
            n_diff_packets += 1
            for path, a, b in diffs:
                k = tally_key(path)
                tallies[k] = tallies.get(k, 0) + 1
                if len(shown) < max_shown:
                    shown.append((i, path, a, b))
    count_differs = len(ours) != len(theirs)
    failed = bool(problems or count_differs or n_diff_packets)
    if n_scapy_errors > allowed_errors[0]:
        problems.append("scapy raised on %d packet(s), %d allowed (--allow-scapy-errors): "
                        "those packets were not compared" % (n_scapy_errors, allowed_errors[0]))
        failed = True
    allowed_errors[0] = max(0, allowed_errors[0] - n_scapy_errors)

    print("== %s" % pcap)
    print("   packets: netpipe-fast %d, scapy %d%s" % (
        len(ours), len(theirs), "  <-- COUNT DIFFERS" if count_differs else ""))
    print("   scapy errors (not compared): %d" % n_scapy_errors)
    for kind, n in sorted(scapy_error_kinds.items(), key=lambda kv: -kv[1]):
        print("      %6d  %s" % (n, kind))
    print("   packets with differences: %d" % n_diff_packets)
    for p in problems:
        print("   PROBLEM: %s" % p.rstrip())
    if tallies:
        print("   differences per layer.field:")
        for k, n in sorted(tallies.items(), key=lambda kv: (-kv[1], kv[0])):
            print("      %6d  %s" % (n, k))
    if shown:
        print("   first %d differences (packet index, path, netpipe-fast, scapy):" % len(shown))
        for i, path, a, b in shown:
            print("      #%d %s" % (i, path))
            print("         ours:  %s" % short(a))
            print("         scapy: %s" % short(b))
    print("   %s" % ("DIFFERENT" if failed else "same"))
    return failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="path of the netpipe-fast binary")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter with scapy 2.5 for scapy_json.py (default %(default)s)")
    ap.add_argument("--allow-scapy-errors", type=int, default=0, metavar="N",
                    help="packets scapy may fail on, over all files, before the run fails "
                         "(default %(default)s)")
    ap.add_argument("--show", type=int, default=20,
                    help="differences listed per file (default %(default)s)")
    ap.add_argument("files", nargs="+", metavar="FILE")
    args = ap.parse_args(argv)
    failed = False
    allowed_errors = [args.allow_scapy_errors]
    for pcap in args.files:
        try:
            failed |= compare_file(args.bin, pcap, args.python, args.show, allowed_errors)
        except OSError as e:
            print("== %s\n   PROBLEM: %s\n   DIFFERENT" % (pcap, e))
            failed = True
    print("RESULT: %s" % ("differences found" if failed else "no differences"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
