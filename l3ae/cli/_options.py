"""Option bundles shared by commands: data source, model hyperparameters."""

import functools
import re
from dataclasses import fields

import click

from l3ae.engine.models import CATALOGS, KNOBS, LEGACY_DEFAULTS, PRESETS, Config
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.config_file import read_config
from l3ae.io.datasets import DATASETS
from l3ae.io.interactions import FORMATS


class TopK(click.ParamType):
    """--topk: an integer >= 0, or auto."""

    name = "K|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            k = int(value)
        except ValueError:
            k = -1
        if k < 0:
            self.fail(f"{value!r} is not an integer >= 0 or 'auto'", param, ctx)
        return k


TOPK = TopK()


def data_options(f):
    """--interactions / --dataset and the column options."""
    opts = [
        click.option("--interactions", "interactions", type=click.Path(exists=True, dir_okay=False),
                     help="Interactions CSV/TSV with a header, a RecBole .inter file, or "
                     "Parquet (.parquet; same columns)."),
        click.option("--dataset", type=click.Choice(sorted(DATASETS)),
                     help="A packaged dataset (MovieLens: rating >= 4 counts as an interaction)."),
        click.option("--dataset-dir", type=click.Path(exists=True, file_okay=False),
                     help="A folder with interactions.tsv + items.tsv, or trn/val/tst_mat.npz + "
                     "diverse_item_profile_0.json (item texts embedded on first use)."),
        click.option("--user-col", default="user_id", show_default=True),
        click.option("--item-col", default="item_id", show_default=True),
        click.option("--rating-col", default="rating", show_default=True),
        click.option("--min-rating", type=float,
                     help="Keep interactions with rating >= this (implicit feedback)."),
        click.option("--sep", help="Delimiter (default: from the file name or the header)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                     show_default=True, help="--interactions layout: a table with a header, or "
                     "sequences (FAERec/SASRec: 'user item item ...' per line, time order)."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)


def model_options(f):
    """--model and every hyperparameter; unset ones take the preset's default. A knob that
    does not enter the chosen model (--xi of text, --alpha outside the fusions) is refused."""
    opts = [
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     help="A config file (JSON, from `l3ae tune`); flags given beside it win."),
        click.option("--model", "model", type=click.Choice(list(PRESETS)),
                     help="Preset: defaults for the knobs below. Default: the --config's, "
                     "else l3ae."),
        click.option("--reg-x", type=float, help="λ_X, the ridge on B (L3AE: may be negative)."),
        click.option("--reg-e", type=float, help="λ_E, the pull of B towards the texts' C (l3ae; with "
                     "another preset it adds that pull and needs --embeddings)."),
        click.option("--reg-f", type=float, help="λ_F, the ridge of phase 1, the semantic C (models that "
                     "use C: l3ae, text, additive, or any with --reg-e)."),
        click.option("--dropout", type=float, help="p of DLAE/EDLAE/RDLAE: Λ += p/(1−p)·diag(G)."),
        click.option("--xi", type=float,
                     help="ξ: diag(B) = 0 when ξ = 0, else diag(B) <= ξ (relaxed, RLAE)."),
        click.option("--pull", type=click.Choice(["uniform", "adaptive"]),
                     help="w: uniform, or adaptive (tail items lean more on text)."),
        click.option("--pull-power", type=float, help="Exponent of the adaptive pull (with --pull adaptive)."),
        click.option("--alpha", type=float, help="α of the collective/additive fusion baselines; "
                     "of slist, the weight of the similarity side α||X − XB||² against the "
                     "transitions' (1−α)||T − SB||² (1: SLIS, 0: SLIT)."),
        click.option("--window", type=click.IntRange(min=1), help="slist: a prefix holds its "
                     "last W events (and --targets following the next W)."),
        click.option("--decay", type=float, help="slist: an event k steps before the end of "
                     "its prefix (or the k-th after it, in T) weighs decay^k."),
        click.option("--targets", type=click.Choice(["next", "following"]), help="slist: what "
                     "a prefix predicts: the next event, or the following --window events."),
        click.option("--topk", type=TOPK, help="Keep about k weights per item (0: a dense B). "
                     "Default auto: 500, or a dense B for catalogs under 4,000 items, where "
                     "pruning would not make the model 4× smaller."),
        click.option("--prune", type=click.Choice(["global", "row"]), help="Which "
                     "topk·n weights a pruned B keeps. global (default): the largest |B_ij| "
                     "of the whole B, at most 2·topk per item (the weights whose loss costs "
                     "the most score error per weight read). row: topk per item, or as "
                     "--budget shares them out (bench/results/compact.md)."),
        click.option("--budget", type=float, help="With --prune row, how --topk is shared out: "
                     "item i keeps about topk·n·(1+c_i)^budget/Σ(1+c)^budget weights (c: train "
                     "counts). Default 0: topk each."),
        click.option("--catalog", type=click.Choice(CATALOGS), help="The items of a "
                     "text-aware model: both (default) the interactions' and the embeddings' "
                     "(items without interactions are recommended from their text alone), "
                     "embeddings (those with a vector; interactions on others are left out) "
                     "or interactions. Evaluate and tune rank only items with interactions."),
        click.option("--dtype", type=click.Choice(["float32", "float64"])),
        click.option("--recency", type=float, help="Scoring: a history item of age t (0 = the "
                     "latest) weighs recency^t; needs ordered histories (--format sequences). "
                     "Default 1: all alike."),
        click.option("--debias", type=float, help="Popularity compensation β: column j of B "
                     "times (1 + count_j)^-β, lifting tail items. Default 0."),
        click.option("--embeddings", type=click.Path(exists=True, dir_okay=False),
                     help="Item vectors for text-aware models: HDF5 from `l3ae embed`, or from "
                     "any model as HDF5 (datasets ids, embeddings), .npz (arrays ids, "
                     "embeddings) or Parquet (columns item_id, embedding)."),
        click.option("--embedding-id-col", help="Id column of a Parquet --embeddings (default "
                     "item_id), or dataset/array of an HDF5/.npz one (default ids)."),
        click.option("--embedding-col", help="Vector column of a Parquet --embeddings (default "
                     "embedding: a list of floats per row), or dataset/array (embeddings)."),
        click.option("--encoder", help="Encoder for --dataset without --embeddings "
                     "(default: packaged all-MiniLM-L6-v2)."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)


def config_from(kw):
    """Pop the model options out of a command's kwargs into a Config: the preset's defaults,
    then the --config file's values, then every flag given (refused where it does not enter
    the model's closed form)."""
    flags = {k: kw.pop(k) for k in [*KNOBS, "topk", "dtype", "recency", "debias"]}
    path, model = kw.pop("config_file"), kw.pop("model")
    values = read_config(path, [f.name for f in fields(Config)]) if path else {}
    model = model or values.pop("model", None) or "l3ae"
    values.pop("model", None)
    values = {k: v for k, v in values.items() if v is not None}
    # the file alone must be consistent (an older file's record of a knob that did not enter
    # is reset, not refused); flags are laid over it, and refused where they do not enter
    strict = {k for k, v in values.items() if LEGACY_DEFAULTS.get(k, ...) != v}
    try:
        base = Config.from_preset(model, strict=strict, **values)
    except ConfigError as exc:  # name the file's key, not a flag
        key = re.sub(r"^--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), str(exc))
        raise DataFormatError(key, path=path) from None
    return base.override(**flags)


def data_from(kw):
    """Pop the data options (and --embeddings/--encoder) out of a command's kwargs."""
    names = ["interactions", "dataset", "dataset_dir", "user_col", "item_col", "rating_col",
             "min_rating", "sep", "fmt", "embeddings", "embedding_id_col", "embedding_col",
             "encoder"]
    from l3ae.api import Data

    return Data(**{k: kw.pop(k) for k in names})


def regime_from(kw):
    """Pop --protocol, --seed, --train-fraction, --cold-items."""
    return {k: kw.pop(k) for k in ("protocol", "seed", "train_fraction", "cold_items")}


def cluster_options(f):
    """--cluster and --tile of build, evaluate and tune: where the exact solve runs."""
    opts = [
        click.option("--cluster", metavar="ADDRESS",
                     help="Run the exact solve as tasks on Dask distributed: the address of a "
                     "running scheduler (tcp://host:8786, see `dask scheduler` / `dask worker`), "
                     "or local:N for N worker processes on this machine. Needs the extra: "
                     'pip install "l3ae[cluster]". Default: this process.'),
        click.option("--tile", type=click.IntRange(min=32), metavar="T",
                     help="Tile size of a tiled solve (on --cluster, or out of core). Default: "
                     "chosen from the workers' memory (cluster) or --max-memory."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)


def cluster_from(kw):
    """Pop --cluster and --tile."""
    return {"cluster": kw.pop("cluster"), "tile": kw.pop("tile")}


def regime_options(f):
    """--protocol, --seed, --train-fraction, --cold-items of evaluate and tune."""
    opts = [
        click.option("--protocol", type=click.Choice(["random", "loo"]), default="random",
                     show_default=True, help="random: per-user random 8:1:1, Recall/NDCG@10/20/"
                     "50. loo: leave-one-out of sequences (--format sequences; last item = test, "
                     "second-to-last = validation), HR/NDCG@5/10/20 as FAERec/SASRec."),
        click.option("--seed", default=0, show_default=True, help="Seed of the split and regimes."),
        click.option("--train-fraction", default=1.0, show_default=True, type=float,
                     help="Keep this random fraction of each user's train interactions."),
        click.option("--cold-items", default=0.0, show_default=True, type=float,
                     help="Remove this random fraction of items from train entirely; their "
                     "held-out interactions are scored as group 'cold' (text-only)."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)
