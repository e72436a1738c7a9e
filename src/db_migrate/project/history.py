"""The revision graph, built from statically parsed headers.

:func:`load_history` scans the version locations the way alembic does (``*.py``
files, recursively when configured) and caches each file's header by
``(mtime_ns, size)``, so a repeat call on an unchanged tree costs one ``stat``
per file.  The cache is also kept on disk (``<cache>/parsed/<project tag>.json``),
so a new process (each CLI call) does not parse 2,000 files again: that
parse was most of the cost of ``db-migrate heads``.  Graph *diagnostics* (cycles, dangling parents...) live in
:mod:`db_migrate.heads`; this module only answers "which revisions exist, how
are they linked, and which one does the user mean".
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from db_migrate.errors import AmbiguousRevision, MultipleHeadsError, RevisionNotFound
from db_migrate.project.config import Project
from db_migrate.project.headers import HeaderSyntaxError, RevisionHeader, parse_header, parse_module

BodyError = tuple[str, "int | None"]
_Entry = tuple[int, int, "RevisionHeader | HeaderSyntaxError", "BodyError | None"]
_cache: dict[str, _Entry] = {}
"""By file: mtime_ns, size, its header (or why it has none), why its whole body is not valid Python (or None)."""
_cache_lock = threading.Lock()
RACY_NS = 2_000_000_000
"""A file modified less than this long ago is parsed again next time, whatever its mtime and size say."""
_from_disk: set[str] = set()
"""Names of the disk cache files (one per project) this process has read."""


@dataclass
class History:
    """All revision files of a project and the links between them."""

    project: Project
    headers: list[RevisionHeader]
    broken: list[HeaderSyntaxError] = field(default_factory=list)
    """Files that are not valid Python (their revision id is unknown)."""
    body_errors: dict[Path, BodyError] = field(default_factory=dict)
    """Files whose header was read but whose whole body is not valid Python: (message, line)."""

    def __post_init__(self) -> None:
        self._digests: dict[str | None, str] = {}
        self.by_id: dict[str, RevisionHeader] = {}
        self.duplicates: dict[str, list[RevisionHeader]] = {}
        for h in self.headers:
            if h.revision is None:
                continue
            if h.revision in self.by_id:
                self.duplicates.setdefault(h.revision, [self.by_id[h.revision]]).append(h)
            else:
                self.by_id[h.revision] = h
        self.children: dict[str, list[str]] = {rid: [] for rid in self.by_id}
        for h in self.by_id.values():
            for parent in h.down_revisions:
                if parent in self.children:
                    self.children[parent].append(h.revision)  # type: ignore[arg-type]

    @property
    def heads(self) -> list[str]:
        """Revisions nothing revises, sorted."""
        return sorted(rid for rid, kids in self.children.items() if not kids)

    @property
    def bases(self) -> list[str]:
        return sorted(rid for rid, h in self.by_id.items() if not h.down_revisions)

    def by_path(self, path: Path) -> RevisionHeader | None:
        p = path.resolve()
        for h in self.headers:
            if h.path == p:
                return h
        return None

    def digest(self, upto: str | None = None) -> str:
        """A content hash of the history (or of ``upto`` and its ancestors): a cache key.

        Computed once per History (a call's own view of the files): the drift check's and the
        template's keys both need it, and each reads every revision file.
        """
        if upto in self._digests:
            return self._digests[upto]
        ids = sorted(self.by_id) if upto is None else sorted(self.ancestors(upto, include_self=True))
        md = hashlib.sha256()
        for rid in ids:
            md.update(rid.encode())
            md.update(self.by_id[rid].path.read_bytes())
        self._digests[upto] = md.hexdigest()
        return self._digests[upto]

    def ancestors(self, rid: str, *, include_self: bool = False) -> set[str]:
        seen: set[str] = set()
        stack = [rid] if include_self else list(self._parents(rid))
        while stack:
            r = stack.pop()
            if r in seen or r not in self.by_id:
                continue
            seen.add(r)
            stack.extend(self._parents(r))
        return seen

    def in_order(self, headers: Iterable[RevisionHeader]) -> list[RevisionHeader]:
        """``headers`` in history order, base to head: a revision after every revision it revises or depends on.

        Revisions at the same depth (branches) keep a stable order by file path; a cycle or an
        unknown parent counts as a base (check_heads reports those).
        """
        depth: dict[str, int] = {}

        def level(rid: str) -> int:
            # iterative depth-first walk: a long linear history would exceed Python's recursion limit
            if rid in depth:
                return depth[rid]
            stack, on_path = [(rid, iter(self._parents(rid)))], {rid}
            while stack:
                r, parents = stack[-1]
                for p in parents:
                    if p in self.by_id and p not in depth and p not in on_path:  # a parent on the path is a cycle
                        on_path.add(p)
                        stack.append((p, iter(self._parents(p))))
                        break
                else:
                    depth[r] = 1 + max((depth[p] for p in self._parents(r) if p in depth), default=-1)
                    on_path.discard(r)
                    stack.pop()
            return depth[rid]

        return sorted(headers, key=lambda h: (level(h.revision) if h.revision in self.by_id else 1 << 30, str(h.path)))

    def _parents(self, rid: str) -> tuple[str, ...]:
        h = self.by_id.get(rid)
        return (*h.down_revisions, *h.depends_on) if h else ()

    def _revision_path(self, ref: str) -> Path:
        """The file a path reference names, inside the project; a path the system cannot look up is a usage error."""
        try:
            p = Path(ref)
            if not p.is_absolute():
                # relative to the working directory when it exists there, else to the project root
                p = Path.cwd() / p if (Path.cwd() / p).exists() else self.project.root / p
            return self.project.require_inside(p)
        except (OSError, ValueError) as e:  # ENAMETOOLONG ("File name too long"), ELOOP, a NUL byte
            from db_migrate.errors import InvalidArgument

            why = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
            shown = ref if len(ref) <= 120 else f"{ref[:60]}...{ref[-40:]} ({len(ref)} characters)"
            raise InvalidArgument(
                f"Cannot look up the revision path {shown!r}: {why}.",
                hint="Name a revision by its id, a unique prefix, 'head', or the path of a revision file inside the project.",
            ) from None

    def resolve(self, ref: str | None) -> RevisionHeader:
        """The revision named by an id, a unique id prefix, ``head``, or a file path."""
        ref = (ref or "head").strip()
        if ref == "head":
            heads = self.heads
            if not heads:
                raise RevisionNotFound(
                    f"The project at {self.project.root} has no revisions yet.",
                    hint="Create one with {tool:generate_migration}.",
                )
            if len(heads) > 1:
                raise MultipleHeadsError(
                    f"The history has {len(heads)} heads ({', '.join(heads)}); 'head' is ambiguous.",
                    hint="Name one revision, or merge the heads: alembic merge -m 'merge heads' heads.",
                    heads=", ".join(heads),
                )
            return self.by_id[heads[0]]
        if ref in self.by_id:
            return self.by_id[ref]
        if ref.endswith(".py") or os.sep in ref or "/" in ref:
            path = self._revision_path(ref)
            h = self.by_path(path)
            if h is None:
                for b in self.broken:
                    if b.path == path:
                        from db_migrate.errors import MigrationLoadError

                        raise MigrationLoadError(
                            f"{self.project.relpath(path)} is not valid Python: {b.message}",
                            hint="Fix the syntax error and call again.",
                            path=self.project.relpath(path),
                            line=b.line,
                        )
                raise RevisionNotFound(
                    f"{ref} is not a revision file of this project (version locations: "
                    f"{', '.join(self.project.relpath(v) for v in self.project.version_locations)}).",
                )
            if h.revision is None:
                from db_migrate.errors import MigrationLoadError

                raise MigrationLoadError(
                    f"{self.project.relpath(path)} is not an Alembic revision: {'; '.join(h.problems)}.",
                    hint="Name a revision file (it sets `revision = ...` and `down_revision = ...`).",
                    path=self.project.relpath(path),
                )
            return h
        matches = sorted(rid for rid in self.by_id if rid.startswith(ref))
        if len(matches) == 1:
            return self.by_id[matches[0]]
        if len(matches) > 1:
            raise AmbiguousRevision(
                f"'{ref}' matches {len(matches)} revisions: {', '.join(matches[:10])}.",
                hint="Give more characters of the revision id.",
            )
        raise RevisionNotFound(
            f"No revision '{ref}' in {self.project.relpath(self.project.script_location)}.",
            hint="Use a revision id, a unique prefix, 'head', or the path of a revision file. "
            f"Heads: {', '.join(self.heads) or 'none'}.",
        )


def _list_files(project: Project) -> list[str]:
    """Absolute paths (strings: cheaper than Path objects at 2,000 files) of the revision files, sorted.

    The version locations are already resolved; only symlinked files need resolving.
    """
    files: list[str] = []
    for loc in project.version_locations:
        if not loc.is_dir():
            continue
        if project.recursive_versions:
            for dirpath, dirnames, filenames in os.walk(loc):
                dirnames[:] = [d for d in dirnames if d != "__pycache__"]
                files.extend(os.path.realpath(os.path.join(dirpath, f)) for f in filenames if f.endswith(".py") and not f.startswith("__init__"))
        else:
            with os.scandir(loc) as it:
                files.extend(
                    os.path.realpath(e.path) if e.is_symlink() else e.path
                    for e in it
                    if e.name.endswith(".py") and e.name != "__init__.py" and e.is_file()
                )
    return sorted(files)


def load_history(project: Project) -> History:
    """Parse every revision header of ``project`` (cached per file by mtime and size, in memory and on disk)."""
    headers: list[RevisionHeader] = []
    broken: list[HeaderSyntaxError] = []
    body_errors: dict[Path, BodyError] = {}
    _read_disk_cache(project)
    names = _list_files(project)
    parsed = False
    for name in names:
        st = os.stat(name)
        with _cache_lock:
            hit = _cache.get(name)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            item, body = hit[2], hit[3]
        else:
            item, body = _parse(Path(name))
            parsed = True
            # a file written this very moment may be written again within the same mtime tick and
            # size: such an entry is used for this call only (git's "racy" entries, the same way)
            mtime = st.st_mtime_ns if time.time_ns() - st.st_mtime_ns > RACY_NS else -1
            with _cache_lock:
                _cache[name] = (mtime, st.st_size, item, body)
        if isinstance(item, HeaderSyntaxError):
            broken.append(item)
        else:
            headers.append(item)
            if body is not None:
                body_errors[item.path] = body
    if parsed:
        _write_disk_cache(project, names)
    return History(project=project, headers=headers, broken=broken, body_errors=body_errors)


def _parse(path: Path) -> tuple[RevisionHeader | HeaderSyntaxError, BodyError | None]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return HeaderSyntaxError(path, f"cannot read: {e}", None), None
    tree, body = parse_module(data, str(path))  # once, for the header and the body alike
    try:
        header = parse_header(path, data.decode("utf-8", errors="replace"), tree=tree)
    except HeaderSyntaxError as e:
        return e, None
    return header, body


# --------------------------------------------------------------------------- the cache on disk


#: The disk cache's layout; entries of another layout are parsed again (3: bodies, labels from constants).
_FORMAT = 3


def _disk_cache_file(project: Project) -> Path:
    from db_migrate.cache import cache_dir, project_tag

    return cache_dir() / "parsed" / f"{project_tag(project)}.json"


def _read_disk_cache(project: Project) -> None:
    """Fill the in-memory cache from the project's file, once per process (any damage: parse again)."""
    from db_migrate.cache import read_json

    path = _disk_cache_file(project)
    if path.name in _from_disk:
        return
    _from_disk.add(path.name)
    data = read_json(path)
    try:
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return
        entries = {name: (e[0], e[1], _decode(name, e[2]), tuple(e[3]) if e[3] else None) for name, e in data["files"].items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return
    with _cache_lock:
        for name, entry in entries.items():
            _cache.setdefault(name, entry)


def _write_disk_cache(project: Project, names: list[str]) -> None:
    from db_migrate.cache import write_json

    with _cache_lock:
        files = {n: [e[0], e[1], _encode(e[2]), list(e[3]) if e[3] else None] for n in names if (e := _cache.get(n))}
    write_json(_disk_cache_file(project), {"format": _FORMAT, "files": files})


def _encode(item: RevisionHeader | HeaderSyntaxError) -> dict:
    if isinstance(item, HeaderSyntaxError):
        return {"error": item.message, "line": item.line}
    return {"revision": item.revision, "down": list(item.down_revisions), "labels": list(item.branch_labels),
            "depends": list(item.depends_on), "message": item.message, "problems": list(item.problems), "lines": item.lines,
            "bodies": [item.upgrade, item.downgrade, item.downgrade_reason]}


def _decode(name: str, d: dict) -> RevisionHeader | HeaderSyntaxError:
    if "error" in d:
        return HeaderSyntaxError(Path(name), d["error"], d["line"])
    return RevisionHeader(
        path=Path(name), revision=d["revision"], down_revisions=tuple(d["down"]), branch_labels=tuple(d["labels"]),
        depends_on=tuple(d["depends"]), message=d["message"], problems=tuple(d["problems"]),
        lines={str(k): int(v) for k, v in d["lines"].items()},
        upgrade=d["bodies"][0], downgrade=d["bodies"][1], downgrade_reason=d["bodies"][2],
    )
