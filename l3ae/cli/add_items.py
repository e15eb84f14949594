"""`l3ae add-items`: fold new items (text, no interactions) into a model built with --foldable."""

import click

from l3ae.cli._app import cli, progress_printer


@cli.command("add-items")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--items", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Item table of the NEW items (CSV/TSV with a header, or a RecBole .item "
                   "file); only its id column is read.")
@click.option("--id-col", help="Id column of --items (default: item_id if present, else the "
                               "first column).")
@click.option("--sep", help="Delimiter of --items (default: from the file name or the header).")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False),
              help="Vectors of every new item, made as the model's were: from `l3ae embed` "
                   "(same encoder), or HDF5/.npz/Parquet from another model. Not needed by "
                   "text-free models (ease, lae, ...).")
@click.option("--embedding-id-col", help="Id column of a Parquet --embeddings (default "
              "item_id), or dataset/array of an HDF5/.npz one (default ids).")
@click.option("--embedding-col", help="Vector column of a Parquet --embeddings (default "
              "embedding), or dataset/array of an HDF5/.npz one (default embeddings).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (may be MODEL itself; written atomically).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def add_items(model, items, id_col, sep, embeddings, embedding_id_col, embedding_col, out,
              quiet):
    """Add new items to a built model without a rebuild.

    New items have no interactions yet: the model places them by their text. Their weights
    (to and from every item) are those a full rebuild would give; the weights among the old
    items stay as built (a rebuild would shift them slightly through the text factors; they
    are exact for text-free models, whose new items get zero weights). The model must have
    been built with `l3ae build --foldable`; the result stays foldable, so additions chain.
    O(n·d) per new item: seconds for 100 items in a 20k-item model.

    \b
    Example:
      l3ae build --interactions ratings.csv --embeddings emb.h5 --foldable --out model.h5
      l3ae embed --items new_items.csv --template "{title}. {category}" --out new_emb.h5
      l3ae add-items model.h5 --items new_items.csv --embeddings new_emb.h5 --out model2.h5
      l3ae recommend model2.h5 --interactions ratings.csv -n 20
    """
    from l3ae import api

    rec, n_new = api.add_items(model, items, out, embeddings, id_col, sep,
                               progress=progress_printer(quiet),
                               warn=lambda m: click.echo(m, err=True),
                               embedding_id_col=embedding_id_col, embedding_col=embedding_col)
    click.echo(f"{rec.config_.model}: added {n_new} items -> {out} ({len(rec.item_ids_)} items) "
               f"in {rec.timings_['add-items']:.2f} s", err=True)
