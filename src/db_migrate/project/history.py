"""The revision graph, built from statically parsed headers.

:func:`load_history` scans the version locations the way alembic does (``*.py``
files, recursively when configured) and caches each file's header by
``(mtime_ns, size)``, so a repeat call on an unchanged tree costs one ``stat``
per file.  Graph *diagnostics* (cycles, dangling parents...) live in
:mod:`db_migrate.heads`; this module only answers "which revisions exist, how
are they linked, and which one does the user mean".
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from db_migrate.errors import AmbiguousRevision, MultipleHeadsError, RevisionNotFound
from db_migrate.project.config import Project
from db_migrate.project.headers import HeaderSyntaxError, RevisionHeader, parse_header

_cache: dict[str, tuple[int, int, RevisionHeader | HeaderSyntaxError]] = {}
_cache_lock = threading.Lock()


@dataclass
class History:
    """All revision files of a project and the links between them."""

    project: Project
    headers: list[RevisionHeader]
    broken: list[HeaderSyntaxError] = field(default_factory=list)
    """Files that are not valid Python (their revision id is unknown)."""

    def __post_init__(self) -> None:
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
        """A content hash of the history (or of ``upto`` and its ancestors): a cache key."""
        ids = sorted(self.by_id) if upto is None else sorted(self.ancestors(upto, include_self=True))
        md = hashlib.sha256()
        for rid in ids:
            md.update(rid.encode())
            md.update(self.by_id[rid].path.read_bytes())
        return md.hexdigest()

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

    def _parents(self, rid: str) -> tuple[str, ...]:
        h = self.by_id.get(rid)
        return (*h.down_revisions, *h.depends_on) if h else ()

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
            p = Path(ref)
            if not p.is_absolute():
                # relative to the working directory when it exists there, else to the project root
                p = Path.cwd() / p if (Path.cwd() / p).exists() else self.project.root / p
            path = self.project.require_inside(p)
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
    """Parse every revision header of ``project`` (cached per file by mtime and size)."""
    headers: list[RevisionHeader] = []
    broken: list[HeaderSyntaxError] = []
    for name in _list_files(project):
        st = os.stat(name)
        with _cache_lock:
            hit = _cache.get(name)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            item = hit[2]
        else:
            path = Path(name)
            try:
                item = parse_header(path)
            except HeaderSyntaxError as e:
                item = e
            except OSError as e:
                item = HeaderSyntaxError(path, f"cannot read: {e}", None)
            with _cache_lock:
                _cache[name] = (st.st_mtime_ns, st.st_size, item)
        if isinstance(item, HeaderSyntaxError):
            broken.append(item)
        else:
            headers.append(item)
    return History(project=project, headers=headers, broken=broken)
