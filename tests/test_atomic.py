import os

import pytest

from l3ae.io.atomic import atomic_open


def test_atomic_open_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left behind
    with atomic_open(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~mask
