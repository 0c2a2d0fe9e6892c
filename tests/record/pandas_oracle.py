#!/usr/bin/env python3
"""Differential oracle for `netpipe-fast record`: builds the CSV from the same messages the way
the original recorder (AntiNex network-pipeline, RecordPacketsToCSV) built it with pandas, and
compares it with ours cell by cell.

Written for this project from the original's documented behaviour (REFERENCE section 4):
each layer of `data` through pandas.json_normalize and a to_json/json.loads round trip,
columns prefixed per layer, the ten `<prefix>id` columns the original always had, rows of the
sorted union of columns (old pandas sorted the keys of a list of dicts; pandas >= 0.25 keeps
insertion order, so the sort is explicit here), missing cells None, DataFrame.to_csv.

Known, documented differences that the comparison allows:
- pandas turns an integer column with a missing cell into floats ("8080.0"); we write the
  integer ("8080"): cells are compared as numbers when both parse as numbers;
- pandas writes a list cell as Python's repr; we write JSON: list cells are compared as values.

Usage: pandas_oracle.py MESSAGES.jsonl OURS.csv [ORACLE_OUT.csv]
Exit 0 when equal; 1 with the differences on stderr.
"""
import ast
import base64
import csv
import io
import json
import sys

import pandas as pd

PREFIX = {"ether": "eth_", "ip": "ip_", "ipv6": "ipv6_", "tcp": "tcp_", "udp": "udp_",
          "dns": "dns_", "icmp": "icmp_", "arp": "arp_", "raw": "raw_", "padding": "pad_"}
ALWAYS = ["eth_id", "ip_id", "ipvsix_id", "icmp_id", "arp_id", "tcp_id", "udp_id", "dns_id",
          "raw_id", "pad_id"]


def packet(line):
    """The packet message inside a line: kombu envelope or the message itself."""
    msg = json.loads(line)
    if isinstance(msg, dict) and "body" in msg and "data" not in msg:
        body = msg["body"]
        if msg.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode("utf-8")
        msg = json.loads(body) if isinstance(body, str) else body
    return msg


def flat_row(msg):
    flat = {}
    for layer, value in msg["data"].items():
        prefix = PREFIX.get(layer, layer + "_")
        df = pd.json_normalize(value)
        dt = json.loads(df.to_json())
        for k in dt:
            flat[prefix + k] = dt[k]["0"]
    return flat


def oracle_csv(lines):
    rows = []
    keys = set(ALWAYS)
    for line in lines:
        try:
            msg = packet(line)
            if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
                continue
            if not all(isinstance(v, dict) for v in msg["data"].values()):
                continue
            flat = flat_row(msg)
        except (ValueError, KeyError, TypeError):
            continue
        if not flat:
            continue
        keys.update(flat)
        rows.append(flat)
    columns = sorted(keys)
    all_rows = []
    for idx, r in enumerate(rows):
        new_row = {"idx": idx}
        for k in columns:
            new_row[k] = r.get(k)
        all_rows.append(new_row)
    df = pd.DataFrame(all_rows, columns=["idx"] + columns).set_index("idx")
    return df.to_csv(sep=",", encoding="utf-8", index=True)


def as_number(s):
    try:
        return float(s)
    except ValueError:
        return None


def as_list(s):
    if not s.startswith("["):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(s)
        except (ValueError, SyntaxError):
            pass
    return None


def same(a, b):
    if a == b:
        return True
    na, nb = as_number(a), as_number(b)
    if na is not None and nb is not None:
        return na == nb
    la, lb = as_list(a), as_list(b)
    return la is not None and la == lb


def main():
    messages, ours = sys.argv[1], sys.argv[2]
    with open(messages, encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n") if l.strip()]
    theirs = oracle_csv(lines)
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            f.write(theirs)
    with open(ours, encoding="utf-8", newline="") as f:
        our_rows = list(csv.reader(f))
    their_rows = list(csv.reader(io.StringIO(theirs)))
    problems = []
    if our_rows[:1] != their_rows[:1]:
        a, b = set(our_rows[0]), set(their_rows[0])
        problems.append("header differs: only ours %s; only pandas %s"
                        % (sorted(a - b)[:10], sorted(b - a)[:10]))
    if len(our_rows) != len(their_rows):
        problems.append("rows: ours %d, pandas %d" % (len(our_rows) - 1, len(their_rows) - 1))
    header = their_rows[0]
    for i, (o, t) in enumerate(zip(our_rows[1:], their_rows[1:])):
        if len(o) != len(t):
            problems.append("row %d: %d cells, pandas %d" % (i, len(o), len(t)))
            continue
        for name, a, b in zip(header, o, t):
            if not same(a, b):
                problems.append("row %d column %s: ours %r, pandas %r" % (i, name, a, b))
        if len(problems) > 20:
            break
    numeric_widened = sum(1 for o, t in zip(our_rows[1:], their_rows[1:])
                          for a, b in zip(o, t) if a != b)
    if problems:
        sys.stderr.write("\n".join(problems[:20]) + "\n")
        sys.exit(1)
    print("equal: %d rows, %d columns (%d cells differ only in number or list spelling)"
          % (len(our_rows) - 1, len(header), numeric_widened))


if __name__ == "__main__":
    main()
