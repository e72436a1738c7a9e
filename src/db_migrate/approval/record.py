"""The record on disk: ``<script_location>/approvals/<revision>.toml``, one file per revision, append-only.

A file holds ``[[approval]]`` entries, oldest first; each names the content of
the revision file it approves (``file_sha256``).  Writing appends an entry and
keeps every existing byte: the new file is the old bytes plus the entry,
written to a temporary file and renamed over the old one, after checking that
nobody changed it meanwhile.  TOML strings are written as JSON strings, which
are valid TOML basic strings (``json.dumps`` escapes quotes, backslashes and
control characters the way TOML reads them).
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path

from db_migrate.approval.model import ApprovalEntry

FOLDER = "approvals"
HEADER = (
    "# Human approvals of one Alembic revision's escalation, written by `db-migrate approve` or by an answer to\n"
    "# classify_escalation's question (MCP elicitation). Entries are only appended: each names the content of the\n"
    "# revision file it approves (file_sha256) and the places each trigger fired (evidence_sha256). Any edit of the\n"
    "# revision, or a new trigger, needs a new entry. Review this file like code.\n"
)


def record_folder(script_location: Path) -> Path:
    """The folder holding the records of a project: ``approvals/`` beside ``versions/``."""
    return script_location / FOLDER


def record_path(script_location: Path, revision: str) -> Path:
    """The record of one revision."""
    return record_folder(script_location) / f"{revision}.toml"


def read_entries(path: Path) -> list[ApprovalEntry]:
    """The entries of one record, oldest first; none when the file does not exist.

    Raises :class:`~db_migrate.errors.ConfigInvalid` when the file is not a valid record:
    a record that cannot be read approves nothing, and the caller must hear why.
    """
    from db_migrate.errors import ConfigInvalid

    try:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key in _parsed:
            return list(_parsed[key])
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = [ApprovalEntry.model_validate(_from_toml(e)) for e in data.get("approval", [])]
        if len(_parsed) >= 1024:
            _parsed.clear()
        _parsed[key] = tuple(entries)
        return entries
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigInvalid(
            f"the approval record {path} cannot be read: {str(e).splitlines()[0]}",
            hint="Restore the file from version control (entries are only ever appended), or remove the broken entry in review.",
            path=str(path),
        ) from None


#: Parsed records by (path, size, mtime, inode): a session asks again and again; an append changes the key.
_parsed: dict[tuple, tuple[ApprovalEntry, ...]] = {}


def _from_toml(e: dict) -> dict:
    return {**e, "triggers": e.get("trigger", [])}


def format_entry(entry: ApprovalEntry) -> str:
    """One ``[[approval]]`` table with its ``[[approval.trigger]]`` tables, as TOML."""
    q = json.dumps
    lines = ["", "[[approval]]"]
    for key in ("revision", "file", "file_sha256", "approved_by", "approved_at", "note", "via"):
        lines.append(f"{key} = {q(getattr(entry, key))}")
    for t in entry.triggers:
        lines += ["", "[[approval.trigger]]", f"id = {q(t.id)}", f"evidence_sha256 = {q(t.evidence_sha256)}"]
        lines.append("at = [" + "".join(f"\n  {q(a)}," for a in t.at) + ("\n]" if t.at else "]"))
        lines.append("evidence = [" + "".join(f"\n  {q(a)}," for a in t.evidence) + ("\n]" if t.evidence else "]"))
    return "\n".join(lines) + "\n"


def append_entry(path: Path, entry: ApprovalEntry) -> None:
    """Append ``entry`` to the record at ``path`` (created with a header when missing); existing bytes stay as they are.

    Raises :class:`~db_migrate.errors.ApprovalRecordError` when the folder cannot be written, or when the
    record changed while this entry was being written (then nothing is written: call again).
    """
    from db_migrate.errors import ApprovalRecordError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = HEADER.encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(old + format_entry(entry).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            now = path.read_bytes() if path.exists() else HEADER.encode()
            if now != old:
                raise ApprovalRecordError(
                    f"the approval record {path} changed while this approval was written; nothing was written",
                    hint="Call again: the approval is appended to the record as it is now.",
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        raise ApprovalRecordError(
            f"the approval record {path} cannot be written: {e.strerror or e}",
            hint="Make the project's approvals/ folder writable and approve again.",
        ) from None
