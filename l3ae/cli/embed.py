"""`l3ae embed` (item texts -> embeddings.h5) and `l3ae export-encoder` (HF folder -> encoder)."""

import click

from l3ae.cli._app import cli
from l3ae.io.datasets import DATASETS

_ENCODER_HELP = ("Encoder folder (from `l3ae export-encoder`), or 'minilm' for the packaged "
                 "all-MiniLM-L6-v2 (built once into $L3AE_HOME/encoders).")


@cli.command()
@click.option("--items", type=click.Path(exists=True, dir_okay=False),
              help="Item table: CSV/TSV with a header, a RecBole .item file, or Parquet.")
@click.option("--dataset", type=click.Choice(sorted(DATASETS)),
              help="A packaged dataset instead of --items.")
@click.option("--import", "import_file", type=click.Path(exists=True, dir_okay=False),
              help="Vectors made by another model, instead of texts: HDF5 (datasets ids, "
              "embeddings), .npz (arrays ids, embeddings) or Parquet (columns item_id, "
              "embedding), written to --out in l3ae's layout.")
@click.option("--id-col", help="Id column of --items (default: item_id if present, else the "
              "first column), or of an --import file (default: item_id for Parquet, ids).")
@click.option("--embedding-col", help="Vector column of an --import file (default: embedding "
              "for Parquet, embeddings).")
@click.option("--sep", help="Delimiter of --items (default: from the file name or the header).")
@click.option("--template", help="Text of an item, with {column} fields, e.g. "
              "\"{title} ({year}). Genres: {genre}\". Default: every column but the id, joined "
              "by '. ' (for --dataset: the dataset's template).")
@click.option("--encoder", default="minilm", show_default=True, help=_ENCODER_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Texts per model call (texts are sorted by length first).")
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads (default: all "
              "cores this process may use).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Embeddings file to write (HDF5). If it exists and was made by the same "
              "encoder, only new or changed texts are embedded.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary on stderr.")
def embed(items, dataset, import_file, id_col, embedding_col, sep, template, encoder,
          batch_size, threads, out, quiet):
    """Embed item texts into an embeddings file for text-aware models (l3ae, ...).

    \b
    Examples:
      l3ae embed --dataset ml-1m --out ml1m-emb.h5
      l3ae embed --items items.csv --id-col item_id \\
                 --template "{title}. {category}. {description}" --out emb.h5
      l3ae embed --items items.csv --encoder ./my-encoder --out emb.h5
      l3ae embed --import llm_vectors.parquet --out emb.h5

    Re-running on an edited catalog embeds only the new and changed texts. Items whose text is
    empty get an all-zero vector. A summary goes to stderr.

    --import converts vectors from any model (every row checked) into the same layout; a
    re-import rewrites the file only when the vectors changed. The two kinds never mix: an
    existing --out of imported vectors is not overwritten by embedded texts, nor one of
    embedded texts by an import.
    """
    from l3ae import api

    if import_file is not None:
        ctx = click.get_current_context()
        given = [f"--{n.replace('_', '-')}" for n in ("template", "encoder", "batch_size",
                                                        "threads", "sep")
                 if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)}: for texts, not with --import")
    elif embedding_col is not None:
        raise click.UsageError("--embedding-col goes with --import")
    s = api.embed(out, items, dataset, id_col, sep, template, encoder, batch_size, threads,
                  progress=not quiet, import_file=import_file, embedding_col=embedding_col)
    if not quiet and import_file is not None:
        click.echo(f"{s['vectors']} vectors ({s['dim']}-d) from {import_file}: {s['imported']} "
                   f"imported, {s['reused']} unchanged in {s['seconds']:.1f} s -> {out}"
                   + ("" if s["written"] else " (already up to date)"), err=True)
    elif not quiet:
        rate = f", {s['texts_per_s']:.0f} texts/s" if s["encoded"] else ""
        click.echo(f"{s['texts']} texts: {s['embedded']} embedded, {s['reused']} reused, "
                   f"{s['empty']} empty, {s['truncated']} truncated"
                   + (f", {s['replaced']} with undecodable bytes" if s["replaced"] else "")
                   + f" in {s['seconds']:.1f} s{rate} -> {out}"
                   + ("" if s["written"] else " (already up to date)"), err=True)


@cli.command("export-encoder")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Encoder folder to create (model.onnx, tokenizer.json, l3ae_encoder.json).")
@click.option("--pooling", type=click.Choice(["mean", "cls", "last"]),
              help="Default: from the sentence-transformers config; else mean (encoders) or "
              "last (decoders).")
@click.option("--normalize/--no-normalize", default=None,
              help="L2-normalize embeddings [default: normalize].")
@click.option("--max-length", type=click.IntRange(min=1),
              help="Tokens per text (default: the model's max_seq_length, at most 512).")
@click.option("--name", help="Encoder name (default: SRC's folder name).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export_encoder(src, out, pooling, normalize, max_length, name, force):
    """Convert a local Hugging Face model folder into an l3ae encoder folder.

    BERT-family models (bert, roberta, xlm-roberta) are converted without torch, from
    model.safetensors. Other architectures need the optional extra:
    pip install 'l3ae[export]'.

    \b
    Example:
      l3ae export-encoder ./bge-small-en-v1.5 --out ./enc-bge-small
      l3ae embed --items items.csv --encoder ./enc-bge-small --out emb.h5
    """
    from l3ae.embed.export import export_encoder as _export

    cfg = _export(src, out, pooling=pooling, normalize=normalize, max_length=max_length,
                  name=name, overwrite=force)
    click.echo(f"{cfg.name}: {cfg.dim}-d, {cfg.pooling} pooling"
               f"{', normalized' if cfg.normalize else ''}, max_length {cfg.max_length} -> {out}",
               err=True)
