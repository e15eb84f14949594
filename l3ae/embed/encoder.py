"""One text encoder: an ONNX graph, its tokenizer and how to pool, kept together in a folder.

An encoder folder holds exactly

    model.onnx          inputs (batch, seq) int64 among input_ids/attention_mask/token_type_ids,
                        output (batch, seq, dim) float32 (named by ``output`` below)
    tokenizer.json      a Hugging Face ``tokenizers`` file
    l3ae_encoder.json   {"format": "l3ae-encoder", "version": 1, "name", "source",
                         "pooling": "mean" | "cls" | "last", "normalize": bool, "max_length",
                         "output", "dim", "inputs", "pad_id"}

``Encoder.encode`` turns n texts into an (n, dim) float32 matrix: tokenize (truncating to
max_length), sort by token count so each batch pads little, run only the inputs the graph
declares, pool in float32 over the attention mask, L2-normalize when configured, and put the rows
back in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from l3ae.errors import DataFormatError

MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE = "model.onnx", "tokenizer.json", "l3ae_encoder.json"
ENCODER_FILES = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)
FORMAT, FORMAT_VERSION = "l3ae-encoder", 1
POOLINGS = ("mean", "cls", "last")
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# texts tokenized at once: bounds the token lists held in memory, still sorts well within a chunk
_CHUNK = 16384


@dataclass(frozen=True)
class EncoderConfig:
    """The contents of ``l3ae_encoder.json``."""

    name: str
    dim: int
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 256
    output: str = "last_hidden_state"
    inputs: tuple = KNOWN_INPUTS
    pad_id: int = 0
    source: str = ""
    extra: dict = field(default_factory=dict)  # exporter, model_type, versions: informative only

    def to_json(self) -> str:
        d = {"format": FORMAT, "version": FORMAT_VERSION, **asdict(self)}
        d["inputs"] = list(self.inputs)
        d.update(d.pop("extra"))
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict, path=None) -> "EncoderConfig":
        if d.get("format") != FORMAT:
            raise DataFormatError(f"'format' is {d.get('format')!r}, expected {FORMAT!r}",
                                  path=path)
        if d.get("version") != FORMAT_VERSION:
            raise DataFormatError(f"encoder format version {d.get('version')!r} is not supported "
                                  f"(this l3ae reads version {FORMAT_VERSION})", path=path)
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        known = {k: d[k] for k in names if k in d}
        lacking = [k for k in ("name", "dim") if k not in known]
        if lacking:
            raise DataFormatError(f"encoder config lacks {', '.join(lacking)}", path=path)
        try:
            for k in ("dim", "max_length", "pad_id"):
                if k in known:
                    known[k] = int(known[k])
            known["inputs"] = tuple(known.get("inputs", KNOWN_INPUTS))
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"bad encoder config: {exc}", path=path) from None
        if not isinstance(known.get("normalize", True), bool):
            raise DataFormatError(f"normalize must be true or false, got {known['normalize']!r}",
                                  path=path)
        extra = {k: v for k, v in d.items() if k not in names | {"format", "version"}}
        cfg = cls(**known, extra=extra)
        if cfg.pooling not in POOLINGS:
            raise DataFormatError(f"pooling {cfg.pooling!r} is not one of {', '.join(POOLINGS)}",
                                  path=path)
        bad = [i for i in cfg.inputs if i not in KNOWN_INPUTS]
        if bad or "input_ids" not in cfg.inputs:
            raise DataFormatError(f"inputs {list(cfg.inputs)}: need input_ids, may use only "
                                  f"{', '.join(KNOWN_INPUTS)}", path=path)
        if cfg.dim < 1 or cfg.max_length < 1:
            raise DataFormatError(f"dim {cfg.dim} and max_length {cfg.max_length} must be >= 1",
                                  path=path)
        return cfg


def read_encoder_config(folder) -> EncoderConfig:
    """Check that ``folder`` is a complete encoder folder and return its config.

    Raises DataFormatError naming every missing file, or the JSON problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError("not an encoder folder (no such directory); build one with "
                              "`l3ae export-encoder SRC --out DIR`", path=folder)
    missing = [f for f in ENCODER_FILES if not (folder / f).is_file()]
    if missing:
        raise DataFormatError(f"incomplete encoder folder: missing {', '.join(missing)} "
                              f"(an encoder folder holds {', '.join(ENCODER_FILES)})", path=folder)
    path = folder / CONFIG_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"bad JSON: {exc}", path=path) from None
    if not isinstance(d, dict):
        raise DataFormatError("bad JSON: expected an object", path=path)
    return EncoderConfig.from_dict(d, path=path)


_FINGERPRINTS: dict = {}


def fingerprint(folder) -> str:
    """sha256 over model.onnx (and its external data) and tokenizer.json: the encoder's identity.

    Whole files are hashed (~0.15 s for MiniLM's 90 MB): a fine-tune that leaves the first
    megabytes alone must still change the fingerprint. Memoized per process on (size, mtime).
    """
    folder = Path(folder).resolve()
    files = [folder / MODEL_FILE, *sorted(folder.glob(MODEL_FILE + ".data*")),
             folder / TOKENIZER_FILE]
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.name}:{f.stat().st_size}\n".encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
        _FINGERPRINTS[key] = "sha256:" + h.hexdigest()
    return _FINGERPRINTS[key]


def default_threads() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pool(h: np.ndarray, mask: np.ndarray, pooling: str, normalize: bool) -> np.ndarray:
    """Pool token states h (b, s, d) float32 over mask (b, s) {0,1} into (b, d) float32.

    mean: masked average; cls: the first token; last: the last unmasked token (right padding).
    Rows with no tokens come out as zeros, also after normalization.
    """
    counts = mask.sum(axis=1)
    if pooling == "mean":
        # einsum keeps float32 and never materializes a (b, s, d) mask
        v = np.einsum("bsd,bs->bd", h, mask.astype(np.float32))
        v /= np.maximum(counts, 1).astype(np.float32)[:, None]
    elif pooling == "cls":
        v = h[:, 0, :].copy()
    elif pooling == "last":
        v = h[np.arange(len(h)), np.maximum(counts - 1, 0), :].copy()
        v[counts == 0] = 0
    else:
        raise ValueError(f"unknown pooling {pooling!r}")
    if normalize:
        v /= np.maximum(np.linalg.norm(v, axis=1), np.float32(1e-12))[:, None]
    return v


class Encoder:
    """Texts -> (n, dim) float32 embeddings with an encoder folder.

    threads : intra-op threads of onnxruntime; default: the cores this process may use.
    """

    def __init__(self, folder, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.config = read_encoder_config(self.folder)
        try:
            tok = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        except Exception as exc:  # the Rust side raises a bare Exception on bad files
            raise DataFormatError(f"cannot load tokenizer: {exc}",
                                  path=self.folder / TOKENIZER_FILE) from None
        # Padding happens per batch in encode() (after sorting by length), not in the tokenizer.
        tok.no_padding()
        tok.enable_truncation(self.config.max_length)
        self.tokenizer = tok

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # ORT's warnings about unused initializers are noise here
        try:
            self.session = ort.InferenceSession(str(self.folder / MODEL_FILE), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types are not public API
            raise DataFormatError(f"cannot load ONNX model: {exc}",
                                  path=self.folder / MODEL_FILE) from None
        declared = {i.name: i.type for i in self.session.get_inputs()}
        unknown = sorted(set(declared) - set(KNOWN_INPUTS))
        if unknown or "input_ids" not in declared:
            raise DataFormatError(f"graph inputs {sorted(declared)}: need input_ids, may use only "
                                  f"{', '.join(KNOWN_INPUTS)}", path=self.folder / MODEL_FILE)
        # feed what the graph declares, in the integer width it declares
        self._inputs = {n: (np.int32 if t == "tensor(int32)" else np.int64)
                        for n, t in declared.items()}
        outputs = [o.name for o in self.session.get_outputs()]
        if self.config.output not in outputs:
            raise DataFormatError(f"graph has no output {self.config.output!r} (outputs: "
                                  f"{', '.join(outputs)})", path=self.folder / MODEL_FILE)

    @property
    def dim(self) -> int:
        return self.config.dim

    def encode(self, texts, batch_size: int = 64, progress=None, return_truncated: bool = False):
        """Embed ``texts`` (sequence of str) into E: (n, dim) float32, row i for texts[i].

        progress : optional callable, called with the number of texts finished after each batch.
        return_truncated : also return a (n,) bool array, True where the text was cut to
        max_length tokens.
        """
        texts = list(texts)
        n, d = len(texts), self.config.dim
        E = np.empty((n, d), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for lo in range(0, n, _CHUNK):
            enc = self.tokenizer.encode_batch(texts[lo:lo + _CHUNK])
            lengths = np.fromiter((len(e.ids) for e in enc), dtype=np.int64, count=len(enc))
            truncated[lo:lo + len(enc)] = [bool(e.overflowing) for e in enc]
            order = np.argsort(lengths, kind="stable")
            for b in range(0, len(order), batch_size):
                rows = order[b:b + batch_size]
                E[lo + rows] = self._run([enc[i] for i in rows], int(lengths[rows].max()))
                if progress is not None:
                    progress(len(rows))
        return (E, truncated) if return_truncated else E

    def _run(self, encodings, width) -> np.ndarray:
        """One padded batch through the graph; returns pooled (b, dim) float32."""
        b, width = len(encodings), max(width, 1)  # a zero-width tensor would break some graphs
        ids = np.full((b, width), self.config.pad_id, dtype=np.int64)
        mask = np.zeros((b, width), dtype=np.int64)
        types = np.zeros((b, width), dtype=np.int64)
        for r, e in enumerate(encodings):
            k = len(e.ids)
            ids[r, :k], types[r, :k], mask[r, :k] = e.ids, e.type_ids, 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feed = {name: arrays[name].astype(t, copy=False) for name, t in self._inputs.items()}
        (h,) = self.session.run([self.config.output], feed)
        if h.ndim != 3 or h.shape[2] != self.config.dim:
            raise DataFormatError(f"output {self.config.output!r} has shape {h.shape}, expected "
                                  f"(batch, seq, {self.config.dim})", path=self.folder / MODEL_FILE)
        return pool(np.asarray(h, dtype=np.float32), mask, self.config.pooling,
                    self.config.normalize)
