"""Throwaway databases on the test servers, each named with a unique hex so parallel runs never meet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def throwaway_database(server_url: str, setup: list[str], prefix: str = "dbm_test") -> Iterator[str]:
    """Create a database on the server, run ``setup`` in it, yield its URL, drop it (generator for fixtures)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(server_url).set(database=name)
    eng = create_engine(url)
    try:
        with eng.begin() as c:
            for stmt in setup:
                c.execute(text(stmt))
        eng.dispose()
        yield url.render_as_string(hide_password=False)
    finally:
        eng.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if url.get_backend_name() == "postgresql" else "")))
        admin.dispose()


def sqlite_database(path, setup: list[str]) -> str:
    """Create the SQLite file ``path``, run ``setup`` in it, return its URL."""
    import sqlite3

    con = sqlite3.connect(path)
    for stmt in setup:
        con.execute(stmt)
    con.commit()
    con.close()
    return f"sqlite:///{path}"
