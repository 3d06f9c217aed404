#!/usr/bin/env python3
"""Copies a safetensors file keeping only the named tensors (used to keep repo fixtures small).

usage: trim_safetensors.py SRC DST NAME [NAME...]   (a NAME ending in * is a prefix)
"""
import json, struct, sys

src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
body = raw[8 + n:]
keep = lambda k: any(k == p or (p.endswith("*") and k.startswith(p[:-1])) for p in names)
out_header, chunks, offset = {}, [], 0
for k, v in header.items():
    if k == "__metadata__" or not keep(k):
        continue
    a, b = v["data_offsets"]
    chunks.append(body[a:b])
    out_header[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [offset, offset + b - a]}
    offset += b - a
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
