"""Property-based: the readers either return consistent data or raise DataFormatError."""

import string

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l3ae.errors import DataFormatError
from l3ae.io.readers import read_interactions, read_items

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_never_crash(tmp_path, data):
    p = tmp_path / "r.csv"
    p.write_bytes(data)
    for reader in (read_interactions, read_items):
        try:
            reader(p)
        except DataFormatError as exc:
            assert str(exc).startswith(str(p))


ids = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=4)


@SETTINGS
@given(rows=st.lists(st.tuples(ids, ids), min_size=1, max_size=40))
def test_well_formed_tables_round_trip(tmp_path, rows):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows))
    it = read_interactions(p)
    pairs = {(it.user_ids[u], it.item_ids[i]) for u, i in zip(it.users, it.items)}
    assert pairs == set(rows) and len(it.users) == len(pairs)  # duplicates collapsed
    X = it.matrix()
    assert X.nnz == len(pairs) and np.all(X.data == 1)
