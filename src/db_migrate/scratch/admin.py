"""One cached AUTOCOMMIT engine per scratch server: what CREATE/DROP DATABASE and role changes run on.

Its own module so that every part of :mod:`db_migrate.scratch` (the embedded server included) shares the
engines without importing the package that imports them.
"""

from __future__ import annotations

import threading

_engines: dict[str, object] = {}
_engines_lock = threading.Lock()


def admin_engine(server_url: str):
    """A cached AUTOCOMMIT engine on the server (for CREATE/DROP DATABASE)."""
    from sqlalchemy import create_engine

    with _engines_lock:
        eng = _engines.get(server_url)
        if eng is None:
            eng = create_engine(server_url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=4, pool_pre_ping=True)
            _engines[server_url] = eng
        return eng
