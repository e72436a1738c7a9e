"""Benchmark check_heads (static part, drift off) against alembic on generated histories.

    .venv/bin/python bench/bench_heads.py [--sizes 300 2000] [--repeat 5]

For each size, in one run, side by side (best of ``--repeat`` wall times):

- ``first``:   check_heads(drift=False) in a fresh interpreter, timed inside it
               (imports excluded, header cache empty in memory and on disk: a project seen for the first time);
- ``repeat``:  the second call in that same interpreter (unchanged tree, headers cached);
- ``cli``:     ``db-migrate heads --config ... --format json --no-drift`` as a subprocess (headers kept on disk);
- ``alembic``: ``alembic -c alembic.ini heads`` as a subprocess;
- ``scriptdir``: ``ScriptDirectory.from_config(cfg).get_heads()`` in a fresh interpreter.

The fixture project is measured too (first row, ``fixtures``).
Targets: first <= 150 ms and repeat <= 20 ms at 2,000 revisions; cli <= alembic / 2
on the fixtures and at 300 and 2,000 revisions (issue 11), in wall time and in CPU time (``cpu``
columns: user + system of the process, steady on a loaded machine), on an alembic.ini that names its
versions folder in ``version_locations`` (issue 16; ``--plain-ini`` leaves it out).

With ``--drift`` (the default of ``db-migrate heads``: model drift on), on PostgreSQL-dialect histories,
so the drift check runs on the embedded PostgreSQL server (started before timing, in a private cache):

- ``first``:   ``db-migrate heads --format json`` as a subprocess, template cache empty (replay + template);
- ``repeat``:  the same again (best of ``--repeat``): the kept drift answer (heads/drift_cache.py);
- ``edit``:    the same after an edit of models.py (best of ``--repeat``): a template copy and an autogenerate;
- ``new rev``: the same after a new revision on top and its model (best of ``--repeat``): the new head's
               template built from the old head's (one upgrade), then an autogenerate;
- ``alembic``: ``alembic -c alembic.ini heads`` as a subprocess (best of ``--repeat``).

Each size runs twice: with models, and with an env.py that gives no ``target_metadata`` (``models``
column ``none``: answered without building the schema at head, and kept).
Targets: first within the 60 s timeout at 2,000 revisions; repeat < 0.6 x alembic, both ways (issue 16).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_history import make_history  # noqa: E402

BIN = Path(sys.executable).parent

IN_PROCESS = """
import json, sys, time
from db_migrate.project import load_project
from db_migrate.heads import check_heads
p = load_project(sys.argv[1])
t = time.perf_counter(); r = check_heads(p, drift=False); first = time.perf_counter() - t
t = time.perf_counter(); check_heads(p, drift=False); repeat = time.perf_counter() - t
assert len(r.heads) == 1, r.heads
print(json.dumps({"first": first, "repeat": repeat}))
"""

SCRIPTDIR = """
import json, sys, time
from alembic.config import Config
from alembic.script import ScriptDirectory
cfg = Config(sys.argv[1])
t = time.perf_counter(); heads = ScriptDirectory.from_config(cfg).get_heads(); d = time.perf_counter() - t
assert len(heads) == 1
print(json.dumps({"scriptdir": d}))
"""


def _wall(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _cpu(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of ``cmd`` and the children it waited for: steady on a loaded machine."""
    import os

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return usage.ru_utime + usage.ru_stime


def _json(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict:
    return json.loads(subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout)


def measure(root: Path, repeat: int) -> dict[str, float]:
    ini = str(root / "alembic.ini")
    rows: dict[str, list[float]] = {k: [] for k in ("first", "repeat", "cli", "alembic", "scriptdir", "cli_cpu", "alembic_cpu")}
    for _ in range(repeat):
        import os

        with tempfile.TemporaryDirectory(prefix="bench_heads_nocache_") as empty:  # no headers kept on disk
            d = _json([sys.executable, "-c", IN_PROCESS, ini], root, {**os.environ, "XDG_CACHE_HOME": empty})
        rows["first"].append(d["first"])
        rows["repeat"].append(d["repeat"])
        rows["scriptdir"].append(_json([sys.executable, "-c", SCRIPTDIR, ini], root)["scriptdir"])
        cli = shutil.which("db-migrate", path=str(BIN))
        if cli:
            rows["cli"].append(_wall([cli, "heads", "--config", ini, "--format", "json", "--no-drift"], root))
            rows["cli_cpu"].append(_cpu([cli, "heads", "--config", ini, "--format", "json", "--no-drift"], root))
        rows["alembic"].append(_wall([str(BIN / "alembic"), "-c", ini, "heads"], root))
        rows["alembic_cpu"].append(_cpu([str(BIN / "alembic"), "-c", ini, "heads"], root))
    return {k: min(v) if v else float("nan") for k, v in rows.items()}


def measure_drift(root: Path, repeat: int, env: dict[str, str], no_models: bool = False) -> dict[str, float]:
    ini = str(root / "alembic.ini")
    cmd = [str(BIN / "db-migrate"), "heads", "--config", ini, "--format", "json"]

    def call() -> float:
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        verdict = json.loads(done.stdout)
        if no_models:  # nothing to compare: answered (and kept) without building the schema at head
            assert [u["what"] for u in verdict["unchecked"]] == ["model drift"], verdict
        else:
            assert verdict.get("engine", {}).get("embedded") and not verdict["unchecked"], verdict
        return seconds

    first = call()
    repeated = min(call() for _ in range(repeat))
    alembic = min(_wall([str(BIN / "alembic"), "-c", ini, "heads"], root) for _ in range(repeat))
    repeat_cpu = min(_cpu(cmd, root, env) for _ in range(repeat))  # a kept answer: no job, so all CPU is the CLI's
    alembic_cpu = min(_cpu([str(BIN / "alembic"), "-c", ini, "heads"], root) for _ in range(repeat))
    if no_models:
        return {"first": first, "repeat": repeated, "alembic": alembic, "repeat_cpu": repeat_cpu, "alembic_cpu": alembic_cpu}

    def edited() -> float:  # a model edit that changes nothing: the kept answer is void, the template is not
        with (root / "models.py").open("a") as f:
            f.write("# edited\n")
        return call()

    edit = min(edited() for _ in range(repeat))

    def grown(k: int) -> float:  # a new revision on top (and its model): its template extends the old head's
        head = json.loads(subprocess.run(cmd + ["--no-drift"], cwd=root, env=env, capture_output=True, text=True).stdout)["heads"][0]
        rev = f"b{k:011d}"
        (root / "alembic" / "versions" / f"{rev}_bench_added.py").write_text(
            f"from alembic import op\nimport sqlalchemy as sa\nrevision = '{rev}'\ndown_revision = '{head}'\n"
            "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
            f"    op.create_table('bench_added_{k}', sa.Column('id', sa.Integer(), nullable=False),"
            f" sa.PrimaryKeyConstraint('id', name='pk_bench_added_{k}'))\n\n\n"
            f"def downgrade():\n    op.drop_table('bench_added_{k}')\n")
        with (root / "models.py").open("a") as f:
            f.write(f"sa.Table('bench_added_{k}', target_metadata, sa.Column('id', sa.Integer(), nullable=False),"
                    f" sa.PrimaryKeyConstraint('id', name='pk_bench_added_{k}'))\n")
        return call()

    new_revision = min(grown(k) for k in range(repeat))
    return {"first": first, "repeat": repeated, "alembic": alembic, "edit": edit, "new_revision": new_revision,
            "repeat_cpu": repeat_cpu, "alembic_cpu": alembic_cpu}


def main_drift(sizes: list[int], repeat: int, version_locations: bool) -> int:
    import os

    cache = tempfile.mkdtemp(prefix="bench_heads_cache_")
    os.chmod(cache, 0o755)  # the embedded server's system user must reach it when we run as root
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    stop = [str(BIN / "db-migrate"), "scratch", "stop"]
    print(f"{'revisions':>9} {'models':>6} {'first s':>8} {'repeat ms':>10} {'edit ms':>8} {'new rev ms':>11} {'alembic ms':>11} "
          f"{'repeat/alembic':>15} {'cpu repeat/alembic':>19}")
    try:
        subprocess.run([sys.executable, "-c", "from db_migrate.scratch.embedded import ensure_running; ensure_running()"],
                       env=env, check=True)
        with tempfile.TemporaryDirectory(prefix="bench_heads_") as tmp:
            for n in sizes:
                for models in (True, False):
                    root = make_history(Path(tmp) / f"h{n}{'' if models else '_nomodels'}", n, models=models,
                                        dialect_url="postgresql+psycopg://app@localhost/app", version_locations=version_locations)
                    r = measure_drift(root, repeat, env, no_models=not models)
                    edit = f"{r['edit'] * 1e3:>8.0f} {r['new_revision'] * 1e3:>11.0f}" if models else f"{'-':>8} {'-':>11}"
                    print(f"{n:>9} {'yes' if models else 'none':>6} {r['first']:>8.1f} {r['repeat'] * 1e3:>10.0f} {edit} {r['alembic'] * 1e3:>11.0f} "
                          f"{r['repeat'] / r['alembic']:>15.2f} {r['repeat_cpu'] / r['alembic_cpu']:>19.2f}")
    finally:
        subprocess.run(stop, env=env, capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 2000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--drift", action="store_true", help="check_heads with drift on (embedded PostgreSQL) vs alembic heads")
    ap.add_argument("--plain-ini", action="store_true", help="alembic.ini without version_locations (it names them by default)")
    args = ap.parse_args()
    from common import compile_package

    compile_package()
    if args.drift:
        return main_drift(args.sizes, args.repeat, not args.plain_ini)
    print(f"{'revisions':>9} {'first ms':>9} {'repeat ms':>10} {'cli ms':>8} {'alembic ms':>11} {'scriptdir ms':>13} {'cli/alembic':>12} "
          f"{'cli cpu ms':>11} {'alembic cpu ms':>15} {'cpu cli/alembic':>16}")
    with tempfile.TemporaryDirectory(prefix="bench_heads_") as tmp:
        fixture = Path(tmp) / "residency"
        shutil.copytree(HERE.parent / "fixtures" / "residency", fixture)
        for n, root in [("fixtures", fixture)] + [(n, None) for n in args.sizes]:
            root = root or make_history(Path(tmp) / f"h{n}", n, version_locations=not args.plain_ini)
            r = measure(root, args.repeat)
            print(
                f"{n:>9} {r['first'] * 1e3:>9.1f} {r['repeat'] * 1e3:>10.2f} {r['cli'] * 1e3:>8.0f} "
                f"{r['alembic'] * 1e3:>11.0f} {r['scriptdir'] * 1e3:>13.0f} {r['cli'] / r['alembic']:>12.2f} "
                f"{r['cli_cpu'] * 1e3:>11.0f} {r['alembic_cpu'] * 1e3:>15.0f} {r['cli_cpu'] / r['alembic_cpu']:>16.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
