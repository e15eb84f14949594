"""`l3ae recommend`: top-N lists from a model for the users of an interactions file."""

import click

from l3ae import api
from l3ae.cli._app import cli
from l3ae.errors import DataFormatError
from l3ae.io.readers import first_bad_line


def _read_users(path):
    try:
        with open(path, encoding="utf-8-sig") as fh:
            users = [line.strip() for line in fh if line.strip()]
    except UnicodeDecodeError:
        raise first_bad_line(path) from None
    if users and users[0] == "user_id":
        users = users[1:]
    if not users:
        raise DataFormatError("no user ids", path=path)
    return users


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--interactions", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Histories: CSV/TSV with a header or a RecBole .inter file.")
@click.option("--user-col", default="user_id", show_default=True)
@click.option("--item-col", default="item_id", show_default=True)
@click.option("--sep", help="Delimiter (default: from the file name or the header).")
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False),
              help="Only these users (one id per line).")
@click.option("-n", "N", default=20, show_default=True, type=click.IntRange(1),
              help="List length.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Output file (default: stdout).")
def recommend(model, interactions, user_col, item_col, sep, users_file, N, fmt, out):
    """Recommend the top-N unseen items for each user of --interactions.

    Rows are user_id,item_id,rank,score,fallback (rank from 1). Items the model does not know
    are skipped (counted on stderr); a user with no known item gets the most popular items,
    with fallback=1.

    \b
    Example:
      l3ae recommend model.h5 --interactions ratings.csv -n 20 --out recs.csv
    """
    from l3ae.io.readers import read_interactions

    hist = read_interactions(interactions, user_col, item_col, sep=sep)
    users = _read_users(users_file) if users_file else None
    count = api.recommend(model, hist, users, N, fmt, out,
                          warn=lambda m: click.echo(m, err=True))
    click.echo(f"wrote top-{N} lists for {count} users" + (f" to {out}" if out else ""), err=True)
