"""The package's import graph has no circles: every import counted, at module level and inside
functions (an import inside a function still ties the two modules together)."""

import ast
from pathlib import Path

import l3ae

ROOT = Path(l3ae.__file__).parent


def modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name, path, known):
    """The package's modules that module ``name`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def package_graph():
    known = modules()
    # a package's __init__ importing its own submodules is how a package shows its face, and
    # importing a submodule runs its package's __init__ first: those arrows are not circles
    return {m: {t for t in imports(m, p, known) if not m.startswith(t + ".")}
            for m, p in known.items()}


def test_the_walker_sees_imports_inside_functions_and_finds_a_circle(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from pkg import b\n")
    (tmp_path / "b.py").write_text("import pkg.a\n")
    known = {"pkg.a": a, "pkg.b": tmp_path / "b.py"}
    graph = {m: imports(m, p, known) for m, p in known.items()}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_package_has_no_import_circles():
    graph = package_graph()
    assert len(graph) > 50 and graph["l3ae.engine.solve"]  # the walk found the package
    assert cycles(graph) == []


def test_io_never_imports_the_engine_and_format_modules_ignore_each_other():
    graph = package_graph()
    io = {m: t for m, t in graph.items() if m.startswith("l3ae.io")}
    assert not [(m, t) for m, ts in io.items() for t in ts if t.startswith("l3ae.engine")]
    formats = {"l3ae.io.delimited", "l3ae.io.parquet", "l3ae.io.vectors", "l3ae.io.embeddings"}
    assert {(m, t) for m in formats for t in graph[m] & formats} == set()


def test_the_command_line_parses_without_numba_h5py_or_the_optional_extras():
    import subprocess
    import sys

    heavy = ["numba", "h5py", "dask", "distributed", "pyarrow", "onnxruntime", "tokenizers",
             "l3ae.api", "l3ae.engine.solve"]
    code = ("import sys, l3ae.cli\n"
            "from click.testing import CliRunner\n"
            "for cmd in ([], ['build'], ['recommend'], ['info'], ['tune'], ['embed']):\n"
            "    assert CliRunner().invoke(l3ae.cli.cli, cmd + ['--help']).exit_code == 0\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_info_loads_no_numba_and_recommend_no_optional_extra_nor_encoder(tmp_path):
    import subprocess
    import sys

    from conftest import random_problem, write_ratings

    from l3ae.engine.models import Config
    from l3ae.model import Recommender

    X, _ = random_problem(m=60, n=20)
    Recommender(Config.from_preset("ease", reg_x=10.0)).fit(
        X, item_ids=[f"i{k}" for k in range(20)]).save(tmp_path / "m.h5")
    write_ratings(tmp_path / "r.csv", users=30, items=20, per_user=4)
    extras = ["dask", "distributed", "pyarrow", "onnxruntime", "tokenizers", "onnx"]
    for argv, heavy in ((["info", "m.h5"], ["numba", "l3ae.engine.solve", *extras]),
                        (["recommend", "m.h5", "--interactions", "r.csv", "--all", "--out",
                          "top.csv"], extras)):
        code = ("import sys, l3ae.cli\n"
                f"try:\n    l3ae.cli.cli.main({argv!r}, prog_name='l3ae')\n"
                "except SystemExit as e:\n    assert not e.code, e.code\n"
                f"print([m for m in {heavy!r} if m in sys.modules], file=sys.stderr)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stderr.strip().splitlines()[-1] == "[]", (argv, out.stderr)
    assert (tmp_path / "top.csv").read_text().startswith("user_id,item_id,rank")
