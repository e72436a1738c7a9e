"""The project's conventions: read from the history, stated in verdicts, honoured by rules and the policy."""

from __future__ import annotations

from pathlib import Path

from projectfactory import make_project

from db_migrate.heads import check_heads
from db_migrate.project import load_history, load_project


def _label_from_constant(root: Path, rev: str, constant: str) -> None:
    """Make revision ``rev`` take its branch label from a constant of the project's own package."""
    f = next((root / "migrations" / "versions").glob(f"{rev}_*.py"))
    text = f.read_text().replace("branch_labels = None", f"from shop.migration import cli\nbranch_labels = (cli.{constant},)")
    f.write_text(text)


def _expand_contract(tmp_path: Path) -> Path:
    root = make_project(tmp_path, [
        {"id": "base00000001"},
        {"id": "expa00000001", "down": "base00000001"},
        {"id": "expa00000002", "down": "expa00000001"},
        {"id": "cont00000001", "down": "base00000001", "depends_on": "expa00000001"},
    ])
    pkg = root / "shop" / "migration"
    pkg.mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import os\n\nEXPAND_BRANCH = 'expand'\nCONTRACT_BRANCH = 'contract'\n")
    _label_from_constant(root, "expa00000001", "EXPAND_BRANCH")
    _label_from_constant(root, "cont00000001", "CONTRACT_BRANCH")
    return root


def test_branch_labels_from_a_constant_are_read_without_running_anything(tmp_path):
    root = _expand_contract(tmp_path)
    labels = {h.revision: h.branch_labels for h in load_history(load_project(root)).headers}
    assert labels["expa00000001"] == ("expand",) and labels["cont00000001"] == ("contract",)


def test_expand_and_contract_heads_are_not_a_multiple_heads_error(tmp_path):
    r = check_heads(load_project(_expand_contract(tmp_path)), drift=False)
    assert r.decision == "proceed"
    (f,) = [f for f in r.findings if f.rule == "multiple-heads"]
    assert f.severity == "info" and "expand" in f.message and "contract" in f.message
    assert not [f for f in r.findings if f.rule == "malformed-header"]


def test_two_heads_on_the_same_labelled_branch_still_need_a_merge(tmp_path):
    root = _expand_contract(tmp_path)
    (root / "migrations" / "versions" / "expa00000003_rev.py").write_text(
        (root / "migrations" / "versions" / "expa00000002_rev.py").read_text().replace("expa00000002", "expa00000003")
    )
    r = check_heads(load_project(root), drift=False)
    (f,) = [f for f in r.findings if f.rule == "multiple-heads"]
    assert f.severity == "error" and r.decision == "revise"
