"""Split and classify raw SQL for MySQL/MariaDB, SQLite and other non-PostgreSQL dialects with sqlglot.

sqlglot's tokenizer splits the text at semicolons outside literals and
comments, so each statement keeps its own text as the author wrote it; each
piece is then parsed in the project's dialect.  sqlglot keeps statements it has
no grammar for (``CREATE TRIGGER``, ``RENAME TABLE``) as a generic command:
parsed, with the kind named by the leading keywords.
"""

from __future__ import annotations

import logging
from typing import Any

from db_migrate.capture.statement import SqlStatement, keyword_statement

SQLGLOT_DIALECTS = {"mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite", "mssql": "tsql", "oracle": "oracle"}

_STATEMENTS: tuple[type, ...] | None = None

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every statement it keeps as a command


def _statement_classes() -> tuple[type, ...]:
    from sqlglot import exp

    names = ("Query", "DML", "DDL", "Alter", "Create", "Drop", "Block", "Command", "Set", "Transaction", "Commit", "Rollback", "Pragma", "Use", "Grant", "Analyze", "Copy", "TruncateTable")
    return tuple(getattr(exp, n) for n in names if hasattr(exp, n))


def _pieces(text: str, read: str) -> list[str]:
    from sqlglot.tokens import TokenType
    from sqlglot.dialects.dialect import Dialect

    tokens = Dialect.get_or_raise(read).tokenize(text)
    out, start, depth = [], 0, 0
    for i, tok in enumerate(tokens):
        # a trigger or procedure body (BEGIN ... END) and CASE ... END hold semicolons of their own
        if tok.token_type == TokenType.CASE or (
            tok.token_type == TokenType.BEGIN and i + 1 < len(tokens) and tokens[i + 1].token_type != TokenType.SEMICOLON
        ):
            depth += 1
        elif tok.token_type == TokenType.END and depth:
            depth -= 1
        elif tok.token_type == TokenType.SEMICOLON and not depth:
            out.append(text[start : tok.start])
            start = tok.end + 1
    out.append(text[start:])
    return [p.strip() for p in out if p.strip()]


def parse_other(text: str, dialect: str) -> list[SqlStatement]:
    """Statements of ``text`` in ``dialect``; never raises (unparsable ones carry ``parse_error``)."""
    import sqlglot
    from sqlglot.errors import SqlglotError


    global _STATEMENTS
    if _STATEMENTS is None:
        _STATEMENTS = _statement_classes()
    read = SQLGLOT_DIALECTS.get(dialect, dialect)
    try:
        pieces = _pieces(text, read)
    except (SqlglotError, ValueError) as e:  # an unterminated literal, an unknown dialect
        return [keyword_statement(text.strip(), parse_error=str(e).splitlines()[0])]
    out = []
    for piece in pieces:
        try:
            tree = sqlglot.parse_one(piece, read=read)
        except (SqlglotError, ValueError) as e:
            out.append(keyword_statement(piece, parse_error=str(e).splitlines()[0][:300]))
            continue
        if not isinstance(tree, _STATEMENTS):  # "SELEC x" reads as an expression, not a statement
            out.append(keyword_statement(piece, parse_error=f"not a {read} statement"))
            continue
        out.append(_statement(piece, tree))
    return out


def _statement(text: str, tree: Any) -> SqlStatement:
    from sqlglot import exp


    base = keyword_statement(text)
    kind, tables = base.kind, base.tables
    if isinstance(tree, exp.Alter) and isinstance(tree.this, exp.Table):
        kind, tables = f"ALTER {(tree.args.get('kind') or 'TABLE').upper()}", [tree.this.name]
    elif isinstance(tree, exp.Drop):
        kind = f"DROP {(tree.args.get('kind') or '').upper()}".strip()
        tables = [t.name for t in tree.args.get("tables") or ()] if kind == "DROP TABLE" else []
    elif isinstance(tree, exp.Create):
        ckind = (tree.args.get("kind") or "").upper()
        kind = "CREATE UNIQUE INDEX" if ckind == "INDEX" and tree.args.get("unique") else f"CREATE {ckind}".strip()
        target = tree.this.args.get("table") if isinstance(tree.this, exp.Index) else tree.find(exp.Table)
        tables = [target.name] if target is not None else []
    elif isinstance(tree, (exp.Update, exp.Delete, exp.Insert)):
        first = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        tables = list(dict.fromkeys([first.name] if first is not None else [])) + [
            t.name for t in tree.find_all(exp.Table) if first is None or t.name != first.name
        ]
        tables = list(dict.fromkeys(tables))
    elif isinstance(tree, exp.TruncateTable):
        kind, tables = "TRUNCATE", [t.name for t in tree.expressions]
    has_where = tree.args.get("where") is not None if isinstance(tree, (exp.Update, exp.Delete)) else None
    return SqlStatement(text=text, kind=kind, tables=tables, has_where=has_where, parsed=tree)
