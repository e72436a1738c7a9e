"""Static health checks of the revision graph (no user code runs).

:func:`analyse` turns a :class:`~db_migrate.project.History` (headers parsed
from the syntax tree, cached by mtime) into findings: files that are not
Python, malformed headers, duplicate ids, dangling parents, missing
``depends_on`` targets, cycles, several heads and merge points.  Everything
here is linear in the number of revisions, so a 2,000-revision history costs a
few milliseconds on top of reading the headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from db_migrate.project import History, RevisionHeader
from db_migrate.verdict import Finding

#: Rules whose presence means alembic itself cannot walk the history, so
#: nothing that needs alembic (drift, merge, database comparison) can run.
BLOCKING_RULES = frozenset(
    {"unparseable-revision", "duplicate-revision-id", "dangling-down-revision", "missing-dependency", "revision-cycle"}
)


@dataclass
class GraphReport:
    """What :func:`analyse` found."""

    heads: list[str]
    bases: list[str]
    merge_points: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def walkable(self) -> bool:
        """True when alembic can load and walk this history (no blocking finding)."""
        return not any(f.rule in BLOCKING_RULES for f in self.findings)


def analyse(history: History) -> GraphReport:
    """Diagnose the graph of ``history``; see the module docstring for the rules."""
    rel = history.project.relpath
    findings: list[Finding] = []

    for broken in history.broken:
        findings.append(
            Finding(
                rule="unparseable-revision", severity="error", phase="history",
                message=f"{rel(broken.path)} is not valid Python ({broken.message}); alembic cannot load the history.",
                path=rel(broken.path), line=broken.line,
                fix="Fix the syntax error, or move the file out of the versions folder if it is not a revision.",
            )
        )

    for h in history.headers:
        for problem in h.problems:
            key = problem.split(" ", 1)[0]
            findings.append(
                Finding(
                    rule="malformed-header",
                    # a bad branch label is a wart; a bad id or parent breaks the graph
                    severity="warning" if key == "branch_labels" else "error",
                    phase="history",
                    message=f"{rel(h.path)}: {problem}.",
                    revision=h.revision, path=rel(h.path), line=h.lines.get(key, 1),
                    fix=_header_fix(key),
                )
            )

    for rid, copies in sorted(history.duplicates.items()):
        paths = [rel(c.path) for c in copies]
        for c in copies:
            findings.append(
                Finding(
                    rule="duplicate-revision-id", severity="error", phase="history",
                    message=f"Revision id {rid} is declared by {len(copies)} files ({', '.join(paths)}); "
                    "alembic silently keeps one of them.",
                    revision=rid, path=rel(c.path), line=c.lines.get("revision"),
                    fix="Give all but one of these files a new revision id (and update any down_revision that meant it).",
                )
            )

    labels = {label for h in history.by_id.values() for label in h.branch_labels}
    for h in history.by_id.values():
        for parent in h.down_revisions:
            if parent not in history.by_id:
                findings.append(
                    Finding(
                        rule="dangling-down-revision", severity="error", phase="history",
                        message=f"Revision {h.revision} revises {parent}, which is not in the history "
                        "(deleted, renamed, or never committed).",
                        revision=h.revision, path=rel(h.path), line=h.lines.get("down_revision"),
                        fix=_suggest_parent(history, h, parent),
                    )
                )
        for dep in h.depends_on:
            if dep not in history.by_id and dep not in labels:
                findings.append(
                    Finding(
                        rule="missing-dependency", severity="error", phase="history",
                        message=f"Revision {h.revision} depends on {dep}, which is neither a revision nor a branch label here.",
                        revision=h.revision, path=rel(h.path), line=h.lines.get("depends_on"),
                        fix="Point depends_on at an existing revision id or branch label, or remove it.",
                    )
                )

    for cycle in _cycles(history):
        first = history.by_id[cycle[0]]
        chain = " -> ".join([*cycle, cycle[0]])
        findings.append(
            Finding(
                rule="revision-cycle", severity="error", phase="history",
                message=f"The history has a cycle: {chain} (each revises the next). Alembic cannot order these revisions.",
                revision=cycle[0], path=rel(first.path), line=first.lines.get("down_revision"),
                fix="Break the cycle: one of these revisions must revise an older revision instead.",
            )
        )

    heads, bases = history.heads, history.bases
    if len(heads) > 1:
        findings.append(_multiple_heads(history, heads))
    merge_points = sorted(rid for rid, h in history.by_id.items() if h.is_merge)
    for rid in merge_points:
        h = history.by_id[rid]
        findings.append(
            Finding(
                rule="merge-point", severity="info", phase="history",
                message=f"Revision {rid} merges {', '.join(h.down_revisions)}.",
                revision=rid, path=rel(h.path), line=h.lines.get("down_revision"),
            )
        )
    return GraphReport(heads=heads, bases=bases, merge_points=merge_points, findings=findings)


def _header_fix(key: str) -> str:
    if key == "branch_labels":
        return "Write `branch_labels = None` (the value, not the string), or a tuple of label strings."
    if key in ("down_revision", "depends_on"):
        return f"Write `{key} = None` for none, or the parent revision id(s) as literal strings."
    return "Give the file module-level literal `revision = '...'` and `down_revision = ...` assignments."


def _suggest_parent(history: History, h: RevisionHeader, parent: str) -> str:
    close = sorted(rid for rid in history.by_id if rid.startswith(parent[:4]) and rid != h.revision)
    if close:
        return f"Did you mean {', '.join(close[:3])}? Set down_revision to the revision this one follows."
    return "Set down_revision to the revision this one follows (see `db-migrate heads` for the current heads)."


def _multiple_heads(history: History, heads: list[str]) -> Finding:
    branch_points = _branch_points(history, heads)
    if branch_points:
        where = f"the history forks at {', '.join(branch_points)}"
    else:
        where = "the heads share no ancestor (independent bases)"
    first = history.by_id[heads[0]]
    lineages = [_lineage_labels(history, h) for h in heads]
    labelled = all(lineages)
    if labelled and branch_points and len(set(lineages)) == len(heads):
        # expand/contract (or any) branches forked on purpose, each head on its own label: alembic is meant to
        # be run with `upgrade heads` (or `upgrade expand@head`); nothing to merge
        return Finding(
            rule="multiple-heads", severity="info", phase="history",
            message=f"The history has {len(heads)} heads on labelled branches ("
            + ", ".join(f"{h}: {'/'.join(sorted(ls))}" for h, ls in zip(heads, lineages))
            + f") forked at {', '.join(branch_points)}: a deliberate branch layout (expand/contract); "
            "run `alembic upgrade heads` or a branch label.",
            revision=heads[0], path=history.project.relpath(first.path),
        )
    if not branch_points and labelled:
        # deliberate independent branches (alembic "multiple bases" setups): upgrade `heads`, not `head`
        return Finding(
            rule="multiple-heads", severity="warning", phase="history",
            message=f"The history has {len(heads)} heads ({', '.join(heads)}) on separately labelled branches; "
            "`alembic upgrade head` fails, use `alembic upgrade heads` or a branch label.",
            revision=heads[0], path=history.project.relpath(first.path),
        )
    return Finding(
        rule="multiple-heads", severity="error", phase="history",
        message=f"The history has {len(heads)} heads ({', '.join(heads)}); {where}. "
        "`alembic upgrade head` fails until they are merged.",
        revision=heads[0], path=history.project.relpath(first.path),
        fix=f"Merge them: `alembic merge -m \"merge heads\" {' '.join(heads)}`, or call check_heads with "
        "create_merge=true (CLI: `db-migrate heads --create-merge`). Review the merge if both branches touch the same tables.",
    )


def _lineage_labels(history: History, rid: str) -> frozenset[str]:
    """The branch labels of ``rid`` and its down_revision ancestors: which labelled branch a head is on
    (``depends_on`` links between branches, as expand/contract histories have, do not make it the other's)."""
    return frozenset(lb for a in _down_ancestors(history, rid) for lb in history.by_id[a].branch_labels)


def _down_ancestors(history: History, rid: str) -> set[str]:
    """``rid`` and every revision reachable through down_revision links."""
    seen: set[str] = set()
    stack = [rid]
    while stack:
        r = stack.pop()
        if r in seen or r not in history.by_id:
            continue
        seen.add(r)
        stack.extend(history.by_id[r].down_revisions)
    return seen


def _branch_points(history: History, heads: list[str]) -> list[str]:
    """The newest revisions every head descends from (where the history forks)."""
    common: set[str] | None = None
    for h in heads:
        anc = _down_ancestors(history, h)
        common = anc if common is None else common & anc
    if not common:
        return []
    # a common ancestor is a branch point when none of its children is also common
    return sorted(c for c in common if not any(k in common for k in history.children.get(c, ())))


def _cycles(history: History) -> list[list[str]]:
    """Cycles among down_revision/depends_on links, each as a path."""
    graph = {rid: [p for p in (*h.down_revisions, *h.depends_on) if p in history.by_id] for rid, h in history.by_id.items()}
    return [_cycle_path(graph, set(comp)) for comp in strongly_connected(graph)]


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """The circles of a directed graph: its strongly connected components of two or more nodes, or one node
    that links to itself (Tarjan's algorithm, iterative: a history of thousands of revisions is deep).
    ``graph`` maps each node to the nodes it links to; a node named only as a target has no links."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    out.append(sorted(comp))
    return out


def _cycle_path(graph: dict[str, list[str]], comp: set[str]) -> list[str]:
    """One concrete cycle through the strongly connected component ``comp``, from its smallest id."""
    start = min(comp)
    path, seen, node = [start], {start}, start
    while True:
        nxt = next((p for p in graph[node] if p in comp), None)
        if nxt is None or nxt == start:
            return path
        if nxt in seen:  # a smaller loop inside the component: report from where it closes
            return path[path.index(nxt):]
        path.append(nxt)
        seen.add(nxt)
        node = nxt
