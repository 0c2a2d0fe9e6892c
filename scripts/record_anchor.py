#!/usr/bin/env python3
"""The anchor for scripts/bench-record.sh: a minimal re-implementation, written for this
project, of the algorithm of the original recorder (AntiNex network-pipeline,
RecordPacketsToCSV; REFERENCE section 4), to time it on the same messages as ours. It is not
the original's code. What it keeps, because it sets the cost:

- per message and per layer: pandas.json_normalize, then DataFrame.to_json and json.loads;
  columns prefixed per layer; the message kept in memory with an `id` (uuid4) and `received`;
- every SAVE_AFTER_NUM messages: the whole JSON archive written again (json.dumps, indent 4,
  sorted keys, as the original's ppj), the key union rebuilt, every row rebuilt, a DataFrame of
  all rows, and the whole CSV written again with DataFrame.to_csv; at the end, once more.

The broker and its acks are left out (it reads JSON lines), so it measures the recorder alone.

Usage: record_anchor.py MESSAGES.jsonl OUT_DIR SAVE_AFTER_NUM
Prints: messages wall_seconds cpu_seconds (the recording loop only: no interpreter start-up)
"""
import datetime
import json
import os
import sys
import time
import uuid

import pandas as pd

PREFIX = {"ether": "eth_", "ip": "ip_", "ipv6": "ipv6_", "tcp": "tcp_", "udp": "udp_",
          "dns": "dns_", "icmp": "icmp_", "arp": "arp_", "raw": "raw_", "padding": "pad_"}
SEED = ["eth_id", "ip_id", "ipvsix_id", "icmp_id", "arp_id", "tcp_id", "udp_id", "dns_id",
        "raw_id", "pad_id"]


def now():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def main():
    src, out_dir, save_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    csv_path = os.path.join(out_dir, "anchor.csv")
    archive_path = os.path.join(out_dir, "anchor.json")
    with open(src, encoding="utf-8") as f:
        lines = [l for l in f if l.strip()]
    keys = list(SEED)
    seen = set(SEED)
    flats, msgs = [], []

    def save():
        with open(archive_path, "w") as f:
            f.write(json.dumps({"packets": msgs, "dataset": "netdata",
                                "num_packets": len(msgs), "created": now()},
                               indent=4, sort_keys=True))
        rows = []
        for idx, r in enumerate(flats):
            row = {"idx": idx}
            for k in keys:
                row[k] = r.get(k)
            rows.append(row)
        if rows:
            df = pd.DataFrame(rows, columns=["idx"] + sorted(keys)).set_index("idx")
            df.to_csv(csv_path, sep=",", encoding="utf-8", index=True)

    start = time.perf_counter()
    cpu_start = time.process_time()
    for line in lines:
        msg = json.loads(line)
        flat = {}
        for layer, value in msg["data"].items():
            prefix = PREFIX.get(layer, layer + "_")
            dt = json.loads(pd.json_normalize(value).to_json())
            for k in dt:
                name = prefix + k
                flat[name] = dt[k]["0"]
                if name not in seen:
                    seen.add(name)
                    keys.append(name)
        msg["id"] = str(uuid.uuid4())
        msg["received"] = now()
        if flat:
            flats.append(flat)
            msgs.append(msg)
        if len(msgs) % save_after == 0:
            save()
    save()
    print(len(lines), "%.3f" % (time.perf_counter() - start),
          "%.3f" % (time.process_time() - cpu_start))


if __name__ == "__main__":
    main()
