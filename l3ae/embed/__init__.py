"""Text encoder: an ONNX graph + tokenizer + pooling in one folder, the packaged default
(all-MiniLM-L6-v2, built torch-free on first use), export of Hugging Face folders, and the
item-texts -> embeddings-file pipeline.

    from l3ae.embed import Encoder, resolve_encoder, embed_items, render_texts
    E = Encoder(resolve_encoder(None)).encode(["Toy Story (1995)"])   # (1, 384) float32
"""

from l3ae.embed.encoder import Encoder, EncoderConfig, fingerprint, read_encoder_config
from l3ae.embed.export import export_encoder
from l3ae.embed.packaged import l3ae_home, resolve_encoder
from l3ae.embed.pipeline import embed_items, ensure_dataset_embeddings, render_texts

__all__ = ["Encoder", "EncoderConfig", "embed_items", "ensure_dataset_embeddings",
           "export_encoder", "fingerprint", "l3ae_home", "read_encoder_config", "render_texts",
           "resolve_encoder"]
