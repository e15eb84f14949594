"""`l3ae recommend`: top-N lists from a model for the users of an interactions file."""

import click

from l3ae.cli._app import cli, progress_printer
from l3ae.io.interactions import FORMATS


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--interactions", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Histories: CSV/TSV with a header, a RecBole .inter file, Parquet "
              "(.parquet), or a sequence file (--format sequences).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="--interactions layout: a table with a header, or sequences (FAERec/SASRec: "
              "'user item item ...' per line).")
@click.option("--user-col", default="user_id", show_default=True)
@click.option("--item-col", default="item_id", show_default=True)
@click.option("--sep", help="Delimiter (default: from the file name or the header).")
@click.option("--all", "all_users", is_flag=True,
              help="Every user of --interactions, in file order (the default without --users).")
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False),
              help="Only these users, in this order (one id per line, optional header user_id).")
@click.option("-n", "N", default=20, show_default=True, type=click.IntRange(1),
              help="List length.")
@click.option("--exclude", type=click.Path(exists=True, dir_okay=False),
              help="Items never to recommend (one id per line, optional header item_id).")
@click.option("--candidates", type=click.Path(exists=True, dir_okay=False),
              help="Only these items may be recommended (same layout as --exclude).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Output file, written atomically: it appears complete or not at all. "
              "Default: stdout, streamed.")
@click.option("--out-format", type=click.Choice(["csv", "jsonl", "parquet"]),
              help="Output format. Default: jsonl when --out ends in .jsonl or .json, parquet "
              "when it ends in .parquet (the CSV's columns; needs pyarrow), else csv.")
@click.option("--chunk", default=8192, show_default=True, type=click.IntRange(1),
              help="Users scored and written at a time.")
@click.option("--progress", "force_progress", is_flag=True,
              help="Show progress on stderr even when it is not a terminal.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def recommend(model, interactions, fmt, user_col, item_col, sep, all_users, users_file, N,
              exclude, candidates, out, out_format, chunk, force_progress, quiet):
    """Recommend the top-N unseen items for each user of --interactions.

    CSV rows are user_id,item_id,rank,score,fallback (rank from 1), Parquet rows the same
    columns (string, string, int32, float32, bool); JSONL lines are
    {"user_id", "items", "scores", "fallback"}. Items the model does not know are skipped
    (counted on stderr); a user with no known item gets the most popular allowed items, with
    fallback=1. --exclude and --candidates act inside the ranking: lists stay N long while
    enough allowed items are left. A model built with --recency weighs the items of a sequence
    file by recency^age (0 = the latest).

    Users are scored and written in chunks, so memory stays flat in the number of users when
    each user's rows of --interactions are contiguous (files grouped or sorted by user, as
    exports usually are; a sequence file always is; Parquet is read in batches of 256k rows). Otherwise
    (or with --users, quoted CSV fields or other rows the fast scanner leaves to the general
    reader) the file is read whole, and stderr says why.

    \b
    Examples:
      l3ae recommend model.h5 --interactions ratings.csv --all -n 20 --out recs.csv
      l3ae recommend model.h5 --interactions seqs.txt --format sequences \\
                     --exclude sold_out.txt --out recs.jsonl
      l3ae recommend model.h5 --interactions ratings.csv --users vip.txt \\
                     --candidates on_sale.txt --out-format jsonl | head
    """
    from l3ae import api

    if all_users and users_file:
        raise click.UsageError("give --all or --users FILE, not both")
    count = api.recommend(model, interactions, users_file, N, out, out_format=out_format,
                          fmt=fmt, user_col=user_col, item_col=item_col, sep=sep,
                          exclude=exclude, candidates=candidates, chunk=chunk,
                          progress=progress_printer(quiet, force_progress),
                          warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote top-{N} lists for {count} users" + (f" to {out}" if out else ""), err=True)
