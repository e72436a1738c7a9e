"""The package's layers go one way, and no import makes a circle: read from the syntax tree of src/db_migrate.

Every import statement counts, at module level or inside a function (a lazy import is still a dependency).
An import names the deepest module it reaches: ``from db_migrate.sandbox import shared`` depends on
``db_migrate.sandbox.shared``; ``from db_migrate.sandbox import run_job`` on the package ``db_migrate.sandbox``.
A package's ``__init__`` runs before its submodules, but a submodule does not depend on it unless it imports
a name from it. ARCHITECTURE.md draws the same layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A module may import its own layer (without a circle) and the layers below, never above.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"db_migrate", "verdict", "errors", "urls", "cache", "project", "approval"}),
    ("decision", {"capture", "rules", "policy"}),
    ("engines", {"sandbox", "scratch", "runtime", "readonly", "preflight"}),
    ("services", {"review", "classify", "heads", "generate", "roundtrip", "fixes"}),
    ("adapters", {"tools", "cli", "server"}),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "db_migrate").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports() -> dict[str, set[str]]:
    modules = _modules()

    def deepest(name: str | None) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [deepest(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [deepest(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else deepest(base) for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t and t.startswith("db_migrate") and t != name)
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles: the strongly connected components (the revision graph's own cycle finder)."""
    from db_migrate.heads.graph import strongly_connected

    return strongly_connected({k: sorted(v) for k, v in graph.items()})


def test_every_package_has_a_layer() -> None:
    named = set().union(*(packages for _, packages in LAYERS))
    assert {_package(m) for m in _modules()} <= named


def test_no_module_imports_a_layer_above_its_own() -> None:
    rank = {p: i for i, (_, packages) in enumerate(LAYERS) for p in packages}
    upward = [f"{a} -> {b}" for a, bs in _imports().items() for b in bs if rank[_package(b)] > rank[_package(a)]]
    assert upward == []


def test_no_import_circle_between_modules() -> None:
    assert _cycles(_imports()) == []


def test_no_import_circle_between_packages() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for a, bs in _imports().items():
        packages[_package(a)].update(_package(b) for b in bs if _package(b) != _package(a))
    assert _cycles(packages) == []


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    # the checks above are only worth something if they can fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = _imports()
    assert "db_migrate.sandbox.shared" in graph["db_migrate.sandbox.parent"]  # a lazy import is seen
    assert "db_migrate.review" in graph["db_migrate.fixes"]  # a service above reads one below


def test_one_module_parses_urls() -> None:
    # urls.py owns URLs (parse, build, redact, hosts, dialect, the read-only form): nothing else calls SQLAlchemy's parser
    parsers = sorted(
        str(path.relative_to(SRC)) for path in (SRC / "db_migrate").rglob("*.py")
        if path.name != "urls.py" and ("make_url" in path.read_text(encoding="utf-8") or "engine.url import" in path.read_text(encoding="utf-8"))
    )
    assert parsers == []


def test_a_static_heads_imports_neither_alembic_sqlalchemy_nor_the_job_machinery(tmp_path: Path) -> None:
    # what `db-migrate heads --no-drift` costs is mostly imports: it needs none of these (issue 16)
    import json
    import subprocess
    import sys

    from projectfactory import make_project

    root = make_project(tmp_path, [{"id": "aa01", "down": None}, {"id": "bb02", "down": "aa01"}])
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nversion_locations = %(here)s/migrations/versions\n", 1))
    code = ("import json, sys\nfrom db_migrate.cli import main\ncode = main(['heads', '--no-drift', '--format', 'json'])\n"
            "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    verdict = json.loads(done.stdout)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert loaded["code"] == 0 and verdict["heads"] == ["bb02"]
    heavy = [m for m in loaded["modules"] if m.split(".")[0] in ("alembic", "sqlalchemy")
             or m in ("db_migrate.sandbox.parent", "db_migrate.sandbox.shared", "db_migrate.sandbox.forkserver")]
    assert heavy == []
