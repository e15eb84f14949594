"""Throughput of `embed_items` against a bare onnxruntime loop on the MovieLens-1M titles.

Both sides use the packaged all-MiniLM-L6-v2 graph, the same texts (ml-1m rendered with the
dataset template, 3,883 items), the same batch size and thread count, and both are timed end to
end: session creation, tokenization, inference, pooling (+ for embed_items: hashing, the HDF5
write). The bare loop sorts by length as well, so the ratio is the pipeline's own overhead.

    python bench/embed.py [--repeats 3] [--batch-size 64] [--threads N]

Target (2 cores): all 3,883 titles < 30 s, overhead <= 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_loop(folder: Path, texts, batch_size: int, threads: int) -> np.ndarray:
    """The least code that gives the same vectors: tokenizers + onnxruntime + mean pooling."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(folder / "model.onnx"), opts,
                                providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    enc = tok.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in enc], kind="stable")
    out = np.empty((len(texts), 384), np.float32)
    for lo in range(0, len(texts), batch_size):
        rows = order[lo:lo + batch_size]
        width = max(len(enc[i].ids) for i in rows)
        ids = np.zeros((len(rows), width), np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(rows):
            ids[r, :len(enc[i].ids)], mask[r, :len(enc[i].ids)] = enc[i].ids, 1
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        out[rows] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def main():
    from l3ae.embed.encoder import default_threads
    from l3ae.embed.packaged import resolve_encoder
    from l3ae.embed.pipeline import embed_items, render_texts
    from l3ae.io.datasets import DEFAULT_TEMPLATE, load_items
    from l3ae.io.readers import read_embeddings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=default_threads())
    args = ap.parse_args()

    folder = resolve_encoder(None)  # built once; not timed
    ids, columns = load_items("ml-1m")
    texts = render_texts(columns, DEFAULT_TEMPLATE)
    n = len(texts)
    print(f"ml-1m: {n} texts, batch {args.batch_size}, {args.threads} threads, "
          f"{args.repeats} repeats, cores visible {os.cpu_count()}")

    t_pipe, t_bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e.h5"
        for rep in range(args.repeats):  # interleaved: both sides see the same machine load
            t = time.perf_counter()
            ref = bare_loop(folder, texts, args.batch_size, args.threads)
            t_bare.append(time.perf_counter() - t)
            out.unlink(missing_ok=True)
            t = time.perf_counter()
            stats = embed_items(ids, texts, folder, out, batch_size=args.batch_size,
                                progress=False, threads=args.threads)
            t_pipe.append(time.perf_counter() - t)
            print(f"  repeat {rep + 1}: bare {t_bare[-1]:.2f} s, embed_items {t_pipe[-1]:.2f} s")
        E = read_embeddings(out)[1]
        t = time.perf_counter()
        again = embed_items(ids, texts, folder, out, progress=False)
        t_again = time.perf_counter() - t
    cos = np.einsum("ij,ij->i", E, ref)
    bare, pipe = statistics.median(t_bare), statistics.median(t_pipe)
    print(f"bare onnxruntime loop : {bare:6.2f} s  {n / bare:6.0f} texts/s (median)")
    print(f"embed_items           : {pipe:6.2f} s  {n / pipe:6.0f} texts/s (median)")
    print(f"overhead ratio        : {pipe / bare:6.3f}  ({100 * (pipe / bare - 1):+.1f}%)")
    print(f"unchanged re-run      : {t_again:6.2f} s  (reused {again['reused']}, "
          f"written {again['written']})")
    print(f"agreement             : min cosine {cos.min():.6f}; truncated {stats['truncated']}, "
          f"empty {stats['empty']}")


if __name__ == "__main__":
    main()
