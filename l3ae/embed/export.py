"""A local Hugging Face model folder -> an l3ae encoder folder (see :mod:`l3ae.embed.encoder`).

BERT-family models (``model_type`` bert, roberta, xlm-roberta, camembert) are written by
:mod:`l3ae.embed.bert_onnx` from safetensors with NumPy and ``onnx`` alone. Anything else (decoder
embedders, MPNet, ...) goes through ``torch.onnx.export(..., dynamo=True)``, which needs the
optional extra ``pip install 'l3ae[export]'``; torch and transformers are imported only there.

Pooling, normalization and max_length come from the sentence-transformers files when present
(``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``); options override.
Normalization defaults to on: L3AE's λ_F is set for unit-norm embeddings.

The folder is built in a temporary sibling and renamed into place, so a reader never sees a
half-written encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from l3ae.embed.encoder import (CONFIG_FILE, MODEL_FILE, POOLINGS, TOKENIZER_FILE, Encoder,
                                EncoderConfig)
from l3ae.errors import ConfigError, DataFormatError, L3AEError

#: Bump when the graph writer changes its output: cached packaged encoders are then rebuilt.
BUILDER_VERSION = 1
_ST_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
               "pooling_mode_lasttoken": "last"}
_ST_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")
EXPORT_HINT = "pip install 'l3ae[export]'"


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"bad JSON: {exc}", path=path) from None


def sentence_transformers_settings(src) -> dict:
    """{pooling, normalize, max_length} declared by a sentence-transformers folder (subset).

    Raises ConfigError when a module would change the vectors in a way l3ae does not reproduce
    (Dense layers, max pooling, ...): silently dropping it would give wrong embeddings.
    """
    src, out = Path(src), {}
    modules = src / "modules.json"
    if modules.is_file():
        mods = _read_json(modules)
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in mods]
        odd = [k for k in kinds if k not in _ST_KNOWN_MODULES]
        if odd:
            raise ConfigError(f"{modules}: sentence-transformers module(s) {', '.join(odd)} "
                              "are not supported (only Transformer, Pooling, Normalize)")
        out["normalize"] = "Normalize" in kinds
        for m, kind in zip(mods, kinds):
            if kind == "Pooling" and (src / m.get("path", "") / "config.json").is_file():
                pc = _read_json(src / m["path"] / "config.json")
                modes = [v for k, v in _ST_POOLING.items() if pc.get(k)]
                others = [k for k, v in pc.items() if k.startswith("pooling_mode_") and v
                          and k not in _ST_POOLING]
                if others or len(modes) != 1:
                    raise ConfigError(f"{src / m['path'] / 'config.json'}: pooling "
                                      f"{', '.join(others) or modes or 'none'} is not supported; "
                                      f"pass --pooling ({'|'.join(POOLINGS)}) to override")
                out["pooling"] = modes[0]
    sb = src / "sentence_bert_config.json"
    if sb.is_file() and _read_json(sb).get("max_seq_length"):
        out["max_length"] = int(_read_json(sb)["max_seq_length"])
    return out


def _tokenizer(src: Path, model_type: str, dest: Path):
    """Copy ``tokenizer.json``; a BERT folder with only ``vocab.txt`` gets a WordPiece one."""
    from tokenizers import Tokenizer

    if (src / TOKENIZER_FILE).is_file():
        shutil.copyfile(src / TOKENIZER_FILE, dest)
    elif model_type == "bert" and (src / "vocab.txt").is_file():
        from tokenizers.implementations import BertWordPieceTokenizer

        tc_path = src / "tokenizer_config.json"
        tc = _read_json(tc_path) if tc_path.is_file() else {}
        BertWordPieceTokenizer(str(src / "vocab.txt"), lowercase=tc.get("do_lower_case", True),
                               strip_accents=tc.get("strip_accents")).save(str(dest))
    else:
        raise DataFormatError(f"no {TOKENIZER_FILE} (a fast tokenizer file is required)", path=src)
    return Tokenizer.from_file(str(dest))


def _is_decoder(model_cfg: dict) -> bool:
    """Causal LMs used as embedders (Qwen3-Embedding, e5-mistral, ...) pool the last token."""
    archs = model_cfg.get("architectures") or []
    return bool(model_cfg.get("is_decoder")) or any(a.endswith("ForCausalLM") for a in archs) \
        or model_cfg.get("model_type") in ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma",
                                           "gemma2", "gemma3_text", "phi3")


def _pad_id(tok, model_cfg: dict) -> int:
    if tok.padding and tok.padding.get("pad_id") is not None:
        return int(tok.padding["pad_id"])
    if model_cfg.get("pad_token_id") is not None:
        return int(model_cfg["pad_token_id"])
    for t in ("[PAD]", "<pad>", "<|endoftext|>"):
        if tok.token_to_id(t) is not None:
            return tok.token_to_id(t)
    return 0


def build_encoder_folder(src, dest, *, name=None, source=None, pooling=None, normalize=None,
                         max_length=None, extra=None) -> EncoderConfig:
    """Write model.onnx, tokenizer.json, l3ae_encoder.json for HF folder ``src`` into ``dest``.

    ``dest`` must exist and be empty (callers pass a temporary folder and rename it).
    Options left None come from the sentence-transformers files, else defaults
    (mean pooling for encoders, last-token for decoders; normalize on; max_length: the declared
    max_seq_length, at most 512 and the position table).
    """
    src, dest = Path(src), Path(dest)
    if not (src / "config.json").is_file():
        raise DataFormatError("not a Hugging Face model folder: no config.json", path=src)
    model_cfg = _read_json(src / "config.json")
    model_type = model_cfg.get("model_type", "")
    st = sentence_transformers_settings(src)
    pooling = pooling or st.get("pooling", "last" if _is_decoder(model_cfg) else "mean")
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    tok = _tokenizer(src, model_type, dest / TOKENIZER_FILE)
    from l3ae.embed import bert_onnx  # imports onnx: only when building

    if model_type in bert_onnx.BERT_FAMILY:
        cfg, inputs = bert_onnx.build_bert_onnx(src, dest / MODEL_FILE)
        dim, limit, exporter = cfg.hidden_size, cfg.max_tokens, "l3ae.embed.bert_onnx"
    else:
        dim, inputs, limit = _export_with_torch(src, dest / MODEL_FILE, tok)
        exporter = "torch.onnx.export(dynamo=True)"
    # default at most 512 tokens even for long-context models: item texts rarely need more and
    # attention cost grows with the square of the length; --max-length overrides
    max_length = int(max_length or min(st.get("max_length", 512), 512, limit))
    if max_length > limit:
        raise ConfigError(f"max_length {max_length} exceeds the model's {limit} positions")
    from l3ae import __version__

    config = EncoderConfig(
        name=name or src.resolve().name, dim=dim, pooling=pooling,
        normalize=True if normalize is None else bool(normalize), max_length=max_length,
        output="last_hidden_state", inputs=tuple(inputs), pad_id=_pad_id(tok, model_cfg),
        source=source or str(src.resolve()),
        extra={"model_type": model_type, "exporter": exporter, "builder": BUILDER_VERSION,
               "l3ae_version": __version__, **(extra or {})})
    (dest / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    # the folder must load and give (1, dim) vectors before anyone can see it
    Encoder(dest, threads=1).encode(["l3ae export check"])
    return config


def publish_folder(tmp: Path, out: Path, overwrite: bool = False) -> None:
    """Rename the finished folder ``tmp`` to ``out`` (atomic on one filesystem).

    An existing ``out`` is an error unless ``overwrite``; then it is moved aside first, so a
    reader sees the old folder or the new one, each complete.
    """
    try:
        os.rename(tmp, out)  # also fails (ENOTEMPTY/EEXIST) when out exists with content
        return
    except OSError:
        if not out.exists():
            raise
        if not overwrite:
            raise ConfigError(f"{out} already exists; pass --force to replace it") from None
    trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(out, trash)
    except FileNotFoundError:  # a concurrent publisher moved it already
        pass
    os.rename(tmp, out)
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)


def export_encoder(src, out, *, pooling=None, normalize=None, max_length=None, name=None,
                   overwrite=False) -> EncoderConfig:
    """Convert the local Hugging Face folder ``src`` into the encoder folder ``out``.

    Returns the written config. Raises ConfigError if ``out`` exists (unless overwrite) or the
    model needs the torch exporter and torch is missing.
    """
    src, out = Path(src), Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        config = build_encoder_folder(src, tmp, name=name, pooling=pooling, normalize=normalize,
                                      max_length=max_length)
        publish_folder(tmp, out, overwrite=overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return config


def _export_with_torch(src: Path, onnx_path: Path, tok) -> tuple[int, list, int]:
    """torch.onnx.export (dynamo) of AutoModel's last_hidden_state; returns (dim, inputs, limit).

    The export is checked against torch's own forward on two sentences before it is accepted:
    the legacy exporter is known to produce wrong graphs with current transformers.
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError(f"{src}: model_type {_model_type(src)!r} needs the torch exporter "
                          f"({exc.name} is not installed): {EXPORT_HINT}") from None
    import numpy as np
    import onnxruntime as ort

    # .float(): checkpoints stored in bf16/fp16 would otherwise export in that precision
    model = transformers.AutoModel.from_pretrained(str(src), local_files_only=True).float().eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    wrapped = LastHidden(model)
    tok.no_padding()
    samples = ["A short sentence.", "A somewhat longer sentence, to exercise padding and masks."]
    enc = tok.encode_batch(samples)
    width = max(len(e.ids) for e in enc)
    ids = torch.full((len(enc), width), _pad_id(tok, model.config.to_dict()), dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, :len(e.ids)], mask[r, :len(e.ids)] = torch.tensor(e.ids), 1
    dyn = getattr(torch.export.Dim, "DYNAMIC", None) or torch.export.Dim("batch")
    seq = getattr(torch.export.Dim, "DYNAMIC", None) or torch.export.Dim("sequence")
    torch.onnx.export(wrapped, (ids, mask), str(onnx_path), dynamo=True,
                      input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state"],
                      dynamic_shapes={"input_ids": {0: dyn, 1: seq},
                                      "attention_mask": {0: dyn, 1: seq}})
    with torch.no_grad():
        want = wrapped(ids, mask).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["last_hidden_state"],
                   {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    m = mask.numpy().astype(bool)
    err = float(np.abs(got[m] - want[m]).max())
    if not err <= 1e-3 * max(1.0, float(np.abs(want[m]).max())):
        raise L3AEError(f"{src}: the ONNX export disagrees with torch (max abs diff {err:.3g}); "
                        "not publishing it")
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 8192)
    return int(want.shape[-1]), ["input_ids", "attention_mask"], limit


def _model_type(src: Path) -> str:
    try:
        return _read_json(src / "config.json").get("model_type", "")
    except (OSError, DataFormatError):
        return ""
