"""Write the ONNX graph of a BERT-family encoder from ``config.json`` + safetensors, without torch.

Graph (opset 17, float32), for input_ids/attention_mask/token_type_ids: (batch, seq) int64:

    x = LayerNorm(word[input_ids] + pos[0:seq] + type[token_type_ids])       (batch, seq, H)
    mask = (1 - attention_mask) * -10000, shaped (batch, 1, 1, seq)
    per layer:  q, k, v = x Wqᵀ + bq, ...  split into h heads of H/h
                a = Softmax(q kᵀ / √(H/h) + mask) v                           (batch, h, seq, H/h)
                x = LayerNorm(x + concat(a) Woᵀ + bo)
                x = LayerNorm(x + GELU(x W1ᵀ + b1) W2ᵀ + b2)     GELU(z) = z/2 · (1 + erf(z/√2))
    output last_hidden_state = x                                   (batch, seq, H) float32

Standard ops only (MatMul, Add, Softmax, LayerNormalization, Erf, ...), in the order torch.onnx
writes them for Hugging Face's BertModel; onnxruntime's optimizer then fuses bias+GELU
(BiasGelu) and the scaled q·kᵀ (FusedMatMul). RoBERTa / XLM-R differ only in the position ids
(padding_idx + 1 + rank among non-pad tokens) and a single token type. Padded keys get -10000
before the softmax: its exp underflows to exactly 0 in float32, so padding never leaks into real
tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from l3ae.embed.safetensors import load_safetensors
from l3ae.errors import ConfigError, DataFormatError

#: model_type values this module can write; everything else goes through the torch exporter.
BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "camembert")
OPSET = 17
IR_VERSION = 8  # the oldest IR that carries opset 17: readable by every onnxruntime >= 1.14
MASK_VALUE = -10000.0
_PROTOBUF_LIMIT = 1_900_000_000  # bytes; beyond it weights go to an external data file
_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")


@dataclass(frozen=True)
class BertConfig:
    """The hyperparameters the graph needs, read from a Hugging Face ``config.json``."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    hidden_act: str
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    pad_token_id: int

    @property
    def roberta_positions(self) -> bool:
        """RoBERTa-style position ids: padding_idx + 1 + rank among non-pad tokens."""
        return self.model_type != "bert"

    @property
    def max_tokens(self) -> int:
        """The longest input the position table allows."""
        offset = self.pad_token_id + 1 if self.roberta_positions else 0
        return self.max_position_embeddings - offset

    @classmethod
    def from_json(cls, path) -> "BertConfig":
        path = Path(path)
        try:
            c = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFormatError(f"cannot read config: {exc}", path=path) from None
        mt = c.get("model_type")
        if mt not in BERT_FAMILY:
            raise ConfigError(f"{path}: model_type {mt!r} is not one of {', '.join(BERT_FAMILY)}")
        if c.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{path}: position_embedding_type "
                              f"{c['position_embedding_type']!r} is not supported (absolute only)")
        act = c.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise ConfigError(f"{path}: hidden_act {act!r} is not supported "
                              f"({', '.join(_ACTIVATIONS)})")
        try:
            cfg = cls(
                model_type=mt, hidden_size=int(c["hidden_size"]),
                num_layers=int(c["num_hidden_layers"]), num_heads=int(c["num_attention_heads"]),
                intermediate_size=int(c["intermediate_size"]),
                layer_norm_eps=float(c.get("layer_norm_eps", 1e-12)), hidden_act=act,
                vocab_size=int(c["vocab_size"]),
                max_position_embeddings=int(c["max_position_embeddings"]),
                type_vocab_size=int(c.get("type_vocab_size", 2)),
                pad_token_id=int(c.get("pad_token_id", 1 if mt != "bert" else 0)))
        except KeyError as exc:
            raise DataFormatError(f"config lacks {exc.args[0]!r}", path=path) from None
        if cfg.hidden_size % cfg.num_heads:
            raise DataFormatError(f"hidden_size {cfg.hidden_size} is not a multiple of "
                                  f"num_attention_heads {cfg.num_heads}", path=path)
        return cfg


def load_weights(folder) -> dict[str, np.ndarray]:
    """All float32 tensors of a Hugging Face folder: ``model.safetensors`` or its shards."""
    folder = Path(folder)
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_safetensors(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        weights = {}
        for shard in shards:
            weights.update(load_safetensors(folder / shard))
        return weights
    raise DataFormatError(
        "no model.safetensors (torch-free export reads safetensors only; "
        "convert pytorch_model.bin with the 'export' extra)", path=folder)


class _Weights:
    """Name lookup that tolerates the prefixes and legacy names of HF checkpoints."""

    _PREFIXES = ("", "bert.", "roberta.", "model.", "encoder.")

    def __init__(self, tensors, origin):
        self.t, self.origin = tensors, origin

    def __call__(self, name) -> np.ndarray:
        alts = [name]
        if name.endswith("LayerNorm.weight"):
            alts.append(name[:-len("weight")] + "gamma")  # TF-era checkpoints
        elif name.endswith("LayerNorm.bias"):
            alts.append(name[:-len("bias")] + "beta")
        for a in alts:
            for p in self._PREFIXES:
                if p + a in self.t:
                    return np.ascontiguousarray(self.t[p + a], dtype=np.float32)
        raise DataFormatError(f"weights lack tensor {name!r}", path=self.origin)


class _Graph:
    """Accumulates nodes and initializers; each helper returns its output name."""

    def __init__(self):
        self.nodes, self.inits, self._n, self._scalars = [], [], 0, set()

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, name, value):
        """A float32 scalar initializer, added on first use (unused ones make ORT warn)."""
        if name not in self._scalars:
            self._scalars.add(name)
            self.const(name, np.array(value, dtype=np.float32))
        return name

    def op(self, op_type, inputs, name=None, **attrs):
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=f"{op_type}_{self._n}", **attrs))
        return out

    def linear(self, x, w, b, prefix):
        """x Wᵀ + b with HF's (out, in) weight stored transposed, as torch exports it."""
        y = self.op("MatMul", [x, self.const(prefix + ".weight", w.T.copy())])
        return self.op("Add", [y, self.const(prefix + ".bias", b)])

    def layer_norm(self, x, gamma, beta, eps, prefix):
        gamma, beta = self.const(prefix + ".weight", gamma), self.const(prefix + ".bias", beta)
        return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)


def _activation(g: _Graph, x, act):
    one, half = g.scalar("one", 1.0), g.scalar("half", 0.5)
    if act == "relu":
        return g.op("Relu", [x])
    if act == "gelu":  # exact form: z/2 (1 + erf(z/√2))
        e = g.op("Erf", [g.op("Div", [x, g.scalar("sqrt2", np.sqrt(2.0))])])
        return g.op("Mul", [g.op("Mul", [x, g.op("Add", [e, one])]), half])
    # tanh approximation: z/2 (1 + tanh(√(2/π) (z + 0.044715 z³)))
    cube = g.op("Pow", [x, g.scalar("three", 3.0)])
    inner = g.op("Add", [x, g.op("Mul", [cube, g.scalar("gelu_c", 0.044715)])])
    t = g.op("Tanh", [g.op("Mul", [inner, g.scalar("sqrt_2_over_pi", np.sqrt(2.0 / np.pi))])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [t, one])]), half])


def _heads(g: _Graph, W: _Weights, x, prefix, perm):
    """Project x (batch, seq, H) and split it into heads, transposed by ``perm``."""
    y = g.linear(x, W(prefix + ".weight"), W(prefix + ".bias"), prefix)
    return g.op("Transpose", [g.op("Reshape", [y, "heads_shape"])], perm=perm)


def _embeddings(g: _Graph, W: _Weights, cfg: BertConfig, origin):
    """LayerNorm(word + position + token type) -> (batch, seq, H)."""
    word_table = W("embeddings.word_embeddings.weight")
    if word_table.shape != (cfg.vocab_size, cfg.hidden_size):
        raise DataFormatError(f"word embeddings are {word_table.shape}, config says "
                              f"({cfg.vocab_size}, {cfg.hidden_size})", path=origin)
    word = g.const("embeddings.word_embeddings.weight", word_table)
    x = g.op("Gather", [word, "input_ids"], axis=0)
    pos = g.const("embeddings.position_embeddings.weight",
                  W("embeddings.position_embeddings.weight"))
    if cfg.roberta_positions:
        # HF create_position_ids_from_input_ids: cumsum over non-pad tokens, offset by padding_idx
        pad = g.const("pad_id", np.array(cfg.pad_token_id, dtype=np.int64))
        notpad = g.op("Cast", [g.op("Not", [g.op("Equal", ["input_ids", pad])])],
                      to=TensorProto.INT64)
        axis1 = g.const("axis1", np.array(1, dtype=np.int64))
        ranks = g.op("Mul", [g.op("CumSum", [notpad, axis1]), notpad])
        x = g.op("Add", [x, g.op("Gather", [pos, g.op("Add", [ranks, pad])], axis=0)])
    else:  # positions 0..seq-1: the first seq rows of the table
        seq = g.op("Shape", ["input_ids"], start=1, end=2)
        zero = g.const("zero_1d", np.array([0], dtype=np.int64))
        x = g.op("Add", [x, g.op("Slice", [pos, zero, seq, zero])])
    types = W("embeddings.token_type_embeddings.weight")
    if cfg.type_vocab_size > 1:
        tt = g.const("embeddings.token_type_embeddings.weight", types)
        x = g.op("Add", [x, g.op("Gather", [tt, "token_type_ids"], axis=0)])
    else:  # one type (RoBERTa): a constant row, and no token_type_ids input to feed
        x = g.op("Add", [x, g.const("embeddings.token_type_row", types[0])])
    return g.layer_norm(x, W("embeddings.LayerNorm.weight"), W("embeddings.LayerNorm.bias"),
                        cfg.layer_norm_eps, "embeddings.LayerNorm")


def _layer(g: _Graph, W: _Weights, cfg: BertConfig, x, mask, p):
    """One transformer layer ``p`` (post-LayerNorm, as BERT): (batch, seq, H) -> same."""
    hd = cfg.hidden_size // cfg.num_heads
    # keys are transposed to (batch, heads, H/h, seq) so that q k is a plain MatMul
    q, k, v = (_heads(g, W, x, f"{p}.attention.self.{name}", perm)
               for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]),
                                  ("value", [0, 2, 1, 3])))
    scores = g.op("Div", [g.op("MatMul", [q, k]), g.scalar("head_scale", np.sqrt(hd))])
    a = g.op("MatMul", [g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1), v])
    a = g.op("Reshape", [g.op("Transpose", [a], perm=[0, 2, 1, 3]), "merge_shape"])
    a = g.linear(a, W(f"{p}.attention.output.dense.weight"),
                 W(f"{p}.attention.output.dense.bias"), f"{p}.attention.output.dense")
    ln = f"{p}.attention.output.LayerNorm"
    x = g.layer_norm(g.op("Add", [a, x]), W(ln + ".weight"), W(ln + ".bias"),
                     cfg.layer_norm_eps, ln)
    f = g.linear(x, W(f"{p}.intermediate.dense.weight"), W(f"{p}.intermediate.dense.bias"),
                 f"{p}.intermediate.dense")
    f = g.linear(_activation(g, f, cfg.hidden_act), W(f"{p}.output.dense.weight"),
                 W(f"{p}.output.dense.bias"), f"{p}.output.dense")
    ln = f"{p}.output.LayerNorm"
    return g.layer_norm(g.op("Add", [f, x]), W(ln + ".weight"), W(ln + ".bias"),
                        cfg.layer_norm_eps, ln)


def bert_graph(cfg: BertConfig, tensors: dict, origin="<weights>") -> onnx.ModelProto:
    """The ONNX model of ``cfg`` with weights ``tensors`` (HF names, float32 arrays)."""
    W = _Weights(tensors, origin)
    H, nh = cfg.hidden_size, cfg.num_heads
    g = _Graph()
    g.const("heads_shape", np.array([0, 0, nh, H // nh], dtype=np.int64))
    g.const("merge_shape", np.array([0, 0, H], dtype=np.int64))
    x = _embeddings(g, W, cfg, origin)
    m = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const("axes12", np.array([1, 2]))])],
             to=TensorProto.FLOAT)
    # additive mask (batch, 1, 1, seq): 0 on real keys, -10000 on padded ones
    mask = g.op("Mul", [g.op("Sub", [g.scalar("one", 1.0), m]), g.scalar("mask_value", MASK_VALUE)])
    for i in range(cfg.num_layers):
        x = _layer(g, W, cfg, x, mask, f"encoder.layer.{i}")
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    inputs = ("input_ids", "attention_mask") + (("token_type_ids",) if cfg.type_vocab_size > 1
                                                else ())
    ids_info = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
                for n in inputs]
    out_info = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                             ["batch", "sequence", H])
    graph = helper.make_graph(g.nodes, f"{cfg.model_type}_encoder", ids_info, [out_info], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="l3ae.embed.bert_onnx", ir_version=IR_VERSION)


def build_bert_onnx(src, out_path) -> tuple[BertConfig, list[str]]:
    """Write ``out_path`` (model.onnx) from the HF folder ``src``; return (config, input names).

    Models over ~1.9 GB of weights keep them in ``model.onnx.data`` next to the graph (protobuf
    cannot hold more than 2 GB in one message).
    """
    src, out_path = Path(src), Path(out_path)
    cfg = BertConfig.from_json(src / "config.json")
    model = bert_graph(cfg, load_weights(src), origin=src)
    big = sum(t.ByteSize() for t in model.graph.initializer) > _PROTOBUF_LIMIT
    if not big:  # the checker serializes the model: it cannot take > 2 GB in memory
        onnx.checker.check_model(model)
    onnx.save_model(model, str(out_path), save_as_external_data=big,
                    all_tensors_to_one_file=True, location=out_path.name + ".data")
    return cfg, [i.name for i in model.graph.input]
