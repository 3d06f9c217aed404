#!/usr/bin/env python3
"""faiss-cpu peer of benches/benches/index.rs: HNSW (M 32, efConstruction 100, efSearch as given)
on the same unit vectors, inner-product metric (= cosine), 2 threads. Reads the f32 matrix the
bench wrote ([n, d] little-endian) and the query vectors; prints build seconds, queries/s
(best of --passes) and recall@10 against exact search.

  python faiss_hnsw.py --vectors V.f32 --queries Q.f32 --dim 384 [--ef-search 64] [--threads 2] [--passes 5]
"""
import argparse
import json
import time

import faiss
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--queries", required=True, help="query vectors, [m, d] little-endian f32")
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=1, help="query passes; queries/s of the best")
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    x = np.fromfile(a.vectors, dtype="<f4").reshape(-1, a.dim)
    q = np.fromfile(a.queries, dtype="<f4").reshape(-1, a.dim)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    index = faiss.IndexHNSWFlat(a.dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    t0 = time.perf_counter()
    index.add(x)
    build = time.perf_counter() - t0
    index.hnsw.efSearch = a.ef_search
    qps = 0.0
    for _ in range(a.passes):  # best pass, as the Rust side
        t0 = time.perf_counter()
        found = []
        for i in range(len(q)):  # one query at a time, as a RAG request does
            _, got = index.search(q[i : i + 1], 10)
            found.append(got[0])
        qps = max(qps, len(q) / (time.perf_counter() - t0))
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    print(json.dumps({"faiss": faiss.__version__, "build_s": build, "queries_per_s": qps, "recall_at_10": float(recall),
                      "n": int(x.shape[0]), "ef_search": a.ef_search}))


if __name__ == "__main__":
    main()
