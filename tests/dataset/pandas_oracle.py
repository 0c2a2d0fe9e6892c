#!/usr/bin/env python3
"""External oracle for `netpipe-fast dataset prepare`: builds the full and the clean CSV from
the same inputs with pandas, following README "Dataset" (the documented behaviour of the
original's prepare_dataset.py as this project keeps it), and compares them with ours.

Written for this project from README's text; only the deterministic parts are modelled:
labels by --label-column (the seeded random draw is not reproduced, so it is not used here).

- full CSV: `src_file`, the union of the inputs' columns in first-seen order, then
  `label_value`, `label_name` when a rule is given; a cell a file does not have is empty;
- label by column: a value above N gets the second label, empty or not a number the first;
- clean CSV: a column is kept when not ignored (the default drop list, and `label_name`),
  when some row has a value in it and every value is a decimal number (optional sign, digits,
  optional fraction, optional exponent); `label_value` last; a row with an empty kept cell
  is dropped (pandas dropna) or, with --fill-missing V, filled with V.

Usage: pandas_oracle.py OURS_FULL.csv OURS_CLEAN.csv LABEL_COLUMN|- ABOVE|- FILL|- INPUT...
Exit 0 when equal; 1 with the differences on stderr.
"""
import re
import sys

import pandas as pd

DROP = ["src_file", "raw_id", "raw_load", "raw_hex_load", "raw_hex_field_load", "pad_load",
        "eth_dst", "eth_src", "ip_dst", "ip_src"]
DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def number(text):
    try:
        return float(text) if DECIMAL.fullmatch(text) else None
    except ValueError:
        return None


def main():
    ours_full, ours_clean, label_col, above, fill = sys.argv[1:6]
    inputs = sys.argv[6:]
    frames = []
    for path in inputs:
        f = read(path)
        f.insert(0, "src_file", path)
        frames.append(f)
    # pd.concat keeps the columns in first-seen order (sort=False) and fills NaN for the
    # cells a file does not have: those are empty cells.
    full = pd.concat(frames, ignore_index=True, sort=False).fillna("")
    if label_col != "-":
        limit = float(above)

        def label(v):
            n = number(v)
            return 1 if n is not None and n > limit else 0
        which = full[label_col].map(label) if label_col in full else pd.Series(0, index=full.index)
        full["label_value"] = which.map({0: "0", 1: "1"})
        full["label_name"] = which.map({0: "not_attack", 1: "attack"})

    kept = []
    for c in full.columns:
        if c in DROP or c in ("label_name", "label_value"):
            continue
        values = [v for v in full[c] if v != ""]
        if values and all(DECIMAL.fullmatch(v) for v in values):
            kept.append(c)
    if "label_value" in full:
        kept.append("label_value")
    clean = full[kept].replace("", pd.NA)
    clean = clean.fillna(fill) if fill != "-" else clean.dropna()

    problems = []
    for name, want, path in (("full", full, ours_full), ("clean", clean, ours_clean)):
        got = read(path)
        if list(got.columns) != list(want.columns):
            problems.append(f"{name}: header {list(got.columns)} != pandas {list(want.columns)}")
            continue
        if len(got) != len(want):
            problems.append(f"{name}: {len(got)} rows != pandas {len(want)}")
            continue
        for i, (g, w) in enumerate(zip(got.itertuples(index=False), want.itertuples(index=False))):
            for col, a, b in zip(want.columns, g, w):
                if a != b and not (number(a) is not None and number(a) == number(b)):
                    problems.append(f"{name} row {i} {col}: ours {a!r} pandas {b!r}")
    for p in problems[:50]:
        print(p, file=sys.stderr)
    if not problems:
        print(f"equal: full {full.shape}, clean {clean.shape}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
