import json

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.api import full_matrix, load_split
from l3ae.errors import DataFormatError
from l3ae.io.dataset_dir import load_dataset_dir


def test_split_layout(tmp_path):
    rng = np.random.default_rng(0)
    mats = [sp.random(20, 6, density=d, random_state=rng, format="csr") for d in (0.4, .1, .1)]
    for m, name in zip(mats, ("trn_mat.npz", "val_mat.npz", "tst_mat.npz")):
        m.data[:] = 1
        sp.save_npz(tmp_path / name, m)
    with open(tmp_path / "diverse_item_profile_0.json", "w") as fh:
        for i in range(6):
            fh.write(json.dumps({"item_id": i, "profile": f"item {i}"}) + "\n")
    ds = load_dataset_dir(tmp_path)
    assert ds.item_ids == [str(i) for i in range(6)] and ds.texts[3] == "item 3"
    split = load_split(ds)  # the folder's own split is kept as is
    assert (split.train != mats[0]).nnz == 0 and (split.test != mats[2]).nnz == 0
    X, _ = full_matrix(ds)
    assert X.nnz == (mats[0] + mats[1] + mats[2]).nnz and X.max() == 1


def test_table_layout_and_errors(tmp_path):
    (tmp_path / "items.tsv").write_text("item_id\tasin\ttitle\n0\tA\tZelda\n1\tB\tMario\n")
    (tmp_path / "interactions.tsv").write_text("user_id\titem_id\n0\t1\n1\t0\n1\t1\n")
    ds = load_dataset_dir(tmp_path)
    assert ds.texts == ["Zelda", "Mario"]
    X, ids = full_matrix(ds)
    np.testing.assert_array_equal(X.toarray(), [[0, 1], [1, 1]])
    (tmp_path / "interactions.tsv").write_text("user_id\titem_id\n0\t7\n")
    with pytest.raises(DataFormatError, match="1 interaction items have no row"):
        load_dataset_dir(tmp_path)
    with pytest.raises(DataFormatError, match="expected trn_mat.npz"):
        load_dataset_dir(tmp_path / ".." / tmp_path.name / "..")
