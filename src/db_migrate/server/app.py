"""The MCP server: five tools, two prompts, five resources over one project.

A thin adapter.  Each tool validates its typed arguments, runs the service
function through :func:`db_migrate.sandbox.run_in_scope` (progress is
forwarded as ``notifications/progress``; cancelling the call kills its
workers) and returns the verdict as structured content (the same JSON the CLI
prints under ``--format json``) with a short text beside it.  A
:class:`~db_migrate.errors.DbMigrateError` becomes a tool error whose text is
the error JSON; the server keeps answering.

``classify_escalation`` asks the human through elicitation when the verdict
is ``escalate`` and the client can be asked; it uses the resolver form
(``Annotated[ElicitationResult[T], Resolve(fn)]``), which works on both the
2025-11-25 and the 2026-07-28 protocol.  Without elicitation it fails closed:
the verdict stays ``escalate``.

No ``from __future__ import annotations`` here: the SDK reads the tools'
annotations at registration, and the output models are chosen at run time.
"""

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import AcceptedElicitation, Context, DeclinedElicitation, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, TextContent, Tool as MCPTool, ToolAnnotations
from pydantic import BeforeValidator, Field, ValidationError

from db_migrate import __version__
from db_migrate.policy.model import POLICY_URI, ApprovalQuestion, ClassifyResult, HumanApproval
from db_migrate.tools import TOOLS, call, result_model
from db_migrate.tools.render import brief
from db_migrate.tools.workflow import review_pending_prompt, workflow_prompt
from db_migrate.errors import DbMigrateError, InternalError, UsageError
from db_migrate.project import Project, load_project
from db_migrate.verdict import Verdict

log = logging.getLogger("db_migrate.server")

INSTRUCTIONS = """\
db-migrate makes Alembic schema changes safe for agents. Every tool returns a verdict with `decision`:
proceed (go on), revise (fix `findings` - each has file:line and a `fix` - and call again) or escalate
(STOP and ask the user, showing `escalation.triggers` with their evidence; never work around it).
Workflow for a model change: check_heads -> edit models -> generate_migration -> review_migration (repeat
until not revise) -> test_roundtrip -> classify_escalation -> proceed, or stop and ask.
The tools never touch a database except a scratch one they create (or database_url for read-only checks).
The prompt `db-migrate` walks the workflow; resource db-migrate://skill has the full guide,
db-migrate://schema documents every field of the results.
"""

# --- descriptions (Claude Code truncates at 2 KB) -------------------------------------------------

def _id_text(value: Any) -> Any:
    """A revision id that a client sent as a JSON number (``9692``) is still that id."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


_REVISION = Field(description="Revision id, unique prefix, 'head', or a revision file path inside the project.")
Revision = Annotated[str, BeforeValidator(_id_text), _REVISION]
OptionalRevision = Annotated[str | None, BeforeValidator(_id_text)]
_DB_URL_READ = Field(description="Optional SQLAlchemy URL of a database to read (never written).")
_DB_URL_SCRATCH = Field(
    description="Optional SQLAlchemy URL of a server where a throwaway database may be created; default: embedded PostgreSQL for a PostgreSQL project, else a temporary SQLite file."
)
_DB_URL_COMPARE = Field(
    description="Optional: compare the models with this database as it is (read-only) instead of a scratch database at head. "
    "Usually leave it unset."
)

D_REVIEW = """\
Lint a migration before anything runs it: locks, table rewrites, data loss, missing or lossy downgrades,
unsafe raw SQL, application imports. Static and fast (no database); call it after every edit of a revision.
It applies the same escalation policy as classify_escalation, minus what needs a database.
With database_url (read-only) it also checks each change against the data (NULLs, duplicates, orphans, CHECK
violations, values a new type cannot hold, rows a DELETE removes, lock time): see `preflight`.
decision: proceed -> go on to test_roundtrip; revise -> apply each error finding's `fix` at its file:line
and call again; escalate -> stop and ask the user. `unchecked` lists what could not be verified."""

D_CLASSIFY = """\
Apply the escalation policy to a revision: drops with data, primary key changes, large data migrations,
production targets, protected (ACGME) and audit tables, unclear rollback. Pass database_url (read-only) for
row counts and a preflight of each change against the data, and environment (e.g. 'production') when known. Call it last, before reporting a migration ready.
decision: proceed -> the change is in the agent-safe classes; escalate -> STOP and show the user every
trigger with its evidence. When the client supports it, the user is asked here and the answer is recorded
in `human_approval`; only an explicit approval turns escalate into proceed, and it is appended to the
repository's approval record (approvals/<revision>.toml), which later calls and CI honour until the file changes."""

D_HEADS = """\
Check the revision graph (exactly one head, no cycles, dangling or duplicate revisions), model drift
(models vs. head) and, with database_url, where that database stands (`current`, `pending`). Call it before
changing models and before merging branches. decision: proceed -> go on; revise -> fix the findings; several
heads -> call again with create_merge=true (writes a merge revision) only when the user agrees."""

D_GENERATE = """\
Autogenerate a new revision from the models on a scratch database (never the user's), write it to the
versions directory and review it. Call after editing the models. Read the file and `findings`/`unchecked`:
it also writes enum values, server defaults and named CHECK constraints (autogenerate misses them); a
probable rename written as drop+add is an error: call again with rewrite_renames=true (it replaces its own
unapplied revision). decision: proceed -> call
review_migration and test_roundtrip on the new revision; revise -> edit the file as the findings say;
no changes detected -> check that env.py imports the models."""

D_ROUNDTRIP = """\
Prove a revision reverses: on a throwaway database, upgrade to the revision's parent, seed rows, upgrade,
downgrade, upgrade again, and compare schemas and data. Catches downgrades that fail, forget a change or lose
rows. Call after review_migration says proceed. decision: proceed (passed) -> go on to classify_escalation;
revise (failed) -> fix the step named in the findings and run again; escalate -> the policy needs a human
(same triggers as review, they outrank a failed step; `status` says whether the roundtrip passed). Takes seconds; reports progress."""


class ProjectRef:
    """The one project this server serves, re-read when its config files change."""

    def __init__(self, root: Path, config: str | None = None, timeout: float | None = None, section: str = "alembic") -> None:
        self.root = root.resolve()
        self.config = config
        self.section = section
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cached: tuple[tuple[Any, ...], Project] | None = None

    def _stamp(self) -> tuple[Any, ...]:
        out = []
        for name in ("alembic.ini", "pyproject.toml", self.config or ""):
            p = self.root / name if name else None
            try:
                st = p.stat() if p else None
                out.append((st.st_mtime_ns, st.st_size) if st else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def get(self) -> Project:
        stamp = self._stamp()
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
        project = load_project(self.config, cwd=self.root, section=self.section)
        with self._lock:
            self._cached = (stamp, project)
        return project


def error_result(e: BaseException) -> CallToolResult:
    """A tool error (``isError``) whose text is the error JSON, never a traceback.

    Returned rather than raised: a raised ``ToolError`` gets an "Error executing
    tool" prefix, and agents should be able to parse the text as JSON.
    """
    if not isinstance(e, DbMigrateError):
        log.error("internal error in a tool", exc_info=e)
        first = (str(e).splitlines() or [""])[0]
        e = InternalError(f"internal error: {type(e).__name__}" + (f": {first}" if first else ""))
    return CallToolResult(content=[TextContent(type="text", text=e.to_json("mcp"))], is_error=True)


class DbMigrateServer(MCPServer):
    """MCPServer whose argument errors come back like every other error: ``{"error": {code, message, hint}}``.

    The SDK ignores arguments a tool does not declare and reports validation
    errors as plain text; a misspelt ``database_ulr`` must be refused, not
    silently dropped, and an agent should parse every failure the same way.
    """

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        from db_migrate.tools.limits import check_arguments

        try:
            check_arguments(name, arguments)  # before anything reads them: a 1 MB revision is refused at once
        except DbMigrateError as e:
            return error_result(e)
        known = await self._argument_names(name)
        if known is not None:
            unknown = sorted(set(arguments) - known)
            if unknown:
                return error_result(UsageError(
                    f"{name} has no argument {', '.join(repr(u) for u in unknown)}"
                    + "".join(_did_you_mean(u, known) for u in unknown) + ".",
                    hint=f"{name} takes: {', '.join(sorted(known))} (see its inputSchema in tools/list).",
                ))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            if not isinstance(e.__cause__, ValidationError):
                raise
            return error_result(UsageError(
                f"Invalid arguments for {name}: "
                + "; ".join(_argument_problem(err) for err in e.__cause__.errors()) + ".",
                hint=f"Fix these arguments of {name} (see its inputSchema in tools/list) and call again.",
            ))

    async def list_tools(self) -> list[MCPTool]:
        """The tools with compact schemas: ``tools/list`` is read into an agent's context every session.

        The SDK derives each outputSchema from the result model with every description and
        nested model in full (92,600 characters for five tools); :mod:`db_migrate.tools.schema`
        keeps the structure an agent acts on, and the resource ``db-migrate://schema`` has the
        documented schemas.  Results are still validated against the full models (the SDK does
        that with the pydantic model, not with the advertised schema).
        """
        from db_migrate.tools import TOOLS
        from db_migrate.tools.schema import compact_input_schema, output_schema

        return [
            t.model_copy(update={
                "input_schema": compact_input_schema(t.input_schema),
                **({"output_schema": output_schema(t.name)} if t.name in TOOLS else {}),
            })
            for t in await super().list_tools()
        ]

    async def _argument_names(self, name: str) -> set[str] | None:
        """The argument names ``name`` declares (None for an unknown tool: the SDK reports that)."""
        for tool in await self.list_tools():
            if tool.name == name:
                return set((tool.input_schema or {}).get("properties") or {})
        return None


def _did_you_mean(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _argument_problem(err: Any) -> str:
    """One pydantic error as ``argument rows: Input should be a valid integer (got str)``; never echoes the value."""
    where = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
    got = "" if err.get("type") == "missing" else f" (got {type(err.get('input')).__name__})"
    return f"argument {where}: {err.get('msg')}{got}"


def _as_call_result(result: Verdict | CallToolResult) -> CallToolResult:
    if isinstance(result, CallToolResult):
        return result
    from db_migrate.tools.limits import bounded

    result = bounded(result)
    return CallToolResult(
        content=[TextContent(type="text", text=brief(result))],
        structured_content=result.model_dump(mode="json"),
    )


def build_server(project_dir: str | os.PathLike[str] | None = None, *, config: str | None = None, timeout: float | None = None,
                 section: str = "alembic") -> MCPServer:
    """The db-migrate MCP server for the project at ``project_dir`` (default: the working directory).

    ``section``: the alembic.ini section to use (alembic's ``-n/--name``; a multi-database ini has several).
    """
    ref = ProjectRef(Path(project_dir or os.getcwd()), config, timeout, section)
    server = DbMigrateServer(
        "db-migrate",
        title="db-migrate",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )

    async def run(ctx: Context | None, tool: str, **kwargs: Any) -> Verdict | CallToolResult:
        """Run ``tool``'s service for this project in a worker thread: its verdict, or an error result."""
        from db_migrate.sandbox import run_in_scope

        steps = 0

        async def on_progress(message: str, progress: float | None, total: float | None) -> None:
            nonlocal steps
            steps += 1
            if ctx is not None:
                await ctx.report_progress(progress if progress is not None else steps, total, message)

        def in_thread(**arguments: Any) -> Verdict:
            return call(tool, ref.get(), **arguments)  # reading the project's config too: never on the event loop

        try:
            # paths outside the project are refused where revisions are resolved (History.resolve)
            return await run_in_scope(in_thread, on_progress=on_progress, timeout=ref.timeout, **kwargs)
        except Exception as e:  # CancelledError is a BaseException: it propagates and kills the workers
            return error_result(e)

    review_model = result_model("review_migration")
    heads_model = result_model("check_heads")
    generate_model = result_model("generate_migration")
    roundtrip_model = result_model("test_roundtrip")
    classify_model = result_model("classify_escalation")

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

    @server.tool(title="Review a migration", description=D_REVIEW, annotations=read_only)
    async def review_migration(
        ctx: Context,
        revision: Revision = "head",
        dialect: Annotated[
            str | None, Field(description="SQL dialect to check for (postgresql, mysql, sqlite...); default: from the project URL.")
        ] = None,
        all_revisions: Annotated[bool, Field(description="Review every revision of the project (ignores revision).")] = False,
        database_url: Annotated[str | None, _DB_URL_READ] = None,
    ) -> Annotated[CallToolResult, review_model]:
        return _as_call_result(await run(
            ctx, "review_migration", revision=revision, dialect=dialect, all_revisions=all_revisions, database_url=database_url
        ))

    @server.tool(
        title="Check heads, drift and database state",
        description=D_HEADS,
        # create_merge writes a file, so "read-only" describes the default call; it never destroys anything.
        annotations=read_only,
    )
    async def check_heads(
        ctx: Context,
        database_url: Annotated[str | None, _DB_URL_READ] = None,
        scratch_url: Annotated[str | None, _DB_URL_SCRATCH] = None,
        create_merge: Annotated[bool, Field(description="Write a merge revision when there are several heads.")] = False,
        merge_message: Annotated[str | None, Field(description="Message of the merge revision.")] = None,
    ) -> Annotated[CallToolResult, heads_model]:
        return _as_call_result(
            await run(
                ctx, "check_heads", database_url=database_url, scratch_url=scratch_url,
                create_merge=create_merge, merge_message=merge_message,
            )
        )

    @server.tool(
        title="Generate a migration",
        description=D_GENERATE,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False),
    )
    async def generate_migration(
        ctx: Context,
        message: Annotated[str, Field(description="Revision message, e.g. 'add middle_name to persons'.", min_length=1)],
        scratch_url: Annotated[str | None, _DB_URL_SCRATCH] = None,
        database_url: Annotated[str | None, _DB_URL_COMPARE] = None,
        rewrite_renames: Annotated[bool, Field(description="Turn a drop+add pair that looks like a rename into alter_column.")] = False,
    ) -> Annotated[CallToolResult, generate_model]:
        return _as_call_result(
            await run(
                ctx, "generate_migration", message=message, scratch_url=scratch_url, database_url=database_url,
                rewrite_renames=rewrite_renames,
            )
        )

    @server.tool(
        title="Roundtrip-test a migration",
        description=D_ROUNDTRIP,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
    )
    async def test_roundtrip(
        ctx: Context,
        revision: Revision = "head",
        database_url: Annotated[str | None, _DB_URL_SCRATCH] = None,
        rows: Annotated[int, Field(description="Rows to seed per table before the upgrade.", ge=0, le=10_000)] = 20,
        from_revision: Annotated[OptionalRevision, Field(description="First revision of a range (with to_revision).")] = None,
        to_revision: Annotated[OptionalRevision, Field(description="Last revision of a range (with from_revision).")] = None,
        all_revisions: Annotated[bool, Field(description="Test every revision from base to head.")] = False,
    ) -> Annotated[CallToolResult, roundtrip_model]:
        return _as_call_result(
            await run(
                ctx, "test_roundtrip", revision=revision, database_url=database_url, rows=rows,
                from_revision=from_revision, to_revision=to_revision, all_revisions=all_revisions,
            )
        )

    # --- classify_escalation, with the human in the loop --------------------------------------

    async def classified(
        ctx: Context, revision: str, database_url: str | None, environment: str | None
    ) -> Verdict | CallToolResult:
        return await run(ctx, "classify_escalation", revision=revision, database_url=database_url, environment=environment)

    async def ask_human(
        ctx: Context, verdict: Annotated[Verdict | CallToolResult, Resolve(classified)]
    ) -> Elicit[ApprovalQuestion] | None:
        if not isinstance(verdict, Verdict) or verdict.decision != "escalate" or not _can_elicit(ctx):
            return None  # nothing to ask, or nobody to ask: fail closed in the tool body
        return Elicit(_question(verdict), ApprovalQuestion)

    @server.tool(title="Classify escalation", description=D_CLASSIFY, annotations=read_only)
    async def classify_escalation(
        verdict: Annotated[Verdict | CallToolResult, Resolve(classified)],
        answer: Annotated[ElicitationResult[ApprovalQuestion], Resolve(ask_human)],
        revision: Revision = "head",
        database_url: Annotated[str | None, _DB_URL_READ] = None,
        environment: Annotated[
            str | None, Field(description="Target environment, e.g. 'staging' or 'production' (production escalates).")
        ] = None,
    ) -> Annotated[CallToolResult, classify_model]:
        if isinstance(verdict, CallToolResult):
            return verdict  # the classification failed: its error result
        approval = _approval(verdict, answer)
        if not isinstance(verdict, ClassifyResult) or approval is None:
            return _as_call_result(verdict)
        if approval.answer != "approved":
            return _as_call_result(verdict.answered(approval))
        return _as_call_result(_recorded(ref.get(), verdict, approval))

    # --- prompts ------------------------------------------------------------------------------

    @server.prompt(name="db-migrate", title="Change the schema safely", description="Walk the safe-migration workflow for a model change.")
    def db_migrate_prompt(
        change: Annotated[str, Field(description="The model change, e.g. 'add an optional middle_name to Person'.")],
    ) -> str:
        return workflow_prompt(change)

    @server.prompt(name="review-pending", title="Review pending migrations", description="Review every revision not yet applied.")
    def review_pending(
        database_url: Annotated[str | None, Field(description="Database whose pending revisions to review (read-only).")] = None,
    ) -> str:
        return review_pending_prompt(database_url)

    # --- resources ----------------------------------------------------------------------------

    @server.resource("db-migrate://skill", name="skill", title="db-migrate skill (SKILL.md)", mime_type="text/markdown",
                     description="How an agent should use these tools: workflow, decisions, escalation rules, safe patterns.")
    def skill() -> str:
        return skill_text()

    @server.resource("db-migrate://rules", name="rules", title="Review rule catalogue", mime_type="application/json",
                     description="Every review rule: id, severity, why it is dangerous, the safe fix, examples.")
    def rules() -> str:
        from db_migrate.rules import catalogue

        return json.dumps([r.model_dump(mode="json") for r in catalogue()], indent=1)

    @server.resource(POLICY_URI, name="policy", title="Escalation policy in effect", mime_type="application/json",
                     description="The project's [tool.db-migrate] policy over the defaults.")
    def policy() -> str:
        try:
            from db_migrate.policy import load_policy

            return load_policy(ref.get()).model_dump_json(indent=1)
        except DbMigrateError as e:
            raise ResourceError(e.to_json("mcp")) from None

    @server.resource("db-migrate://schema", name="schema", title="Tool result schemas, documented", mime_type="application/json",
                     description="JSON schema of every tool's structuredContent with each field's description (tools/list has a compact form).")
    def schema() -> str:
        from db_migrate.tools.schema import documented_schemas

        return json.dumps(documented_schemas(), indent=1)

    @server.resource("db-migrate://history", name="history", title="Revision heads and history", mime_type="application/json",
                     description="The project's revisions (read statically, no code runs): heads, bases, parents, messages, files.")
    def history() -> str:
        try:
            return json.dumps(history_summary(ref.get()), indent=1)
        except DbMigrateError as e:
            raise ResourceError(e.to_json("mcp")) from None

    return server


def _can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare ``elicitation: {}`` counts)."""
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _question(verdict: Verdict) -> str:
    """The elicitation message: what would happen, and every trigger with its evidence."""
    lines = [f"db-migrate: {verdict.summary}", "", "This schema change needs your approval:"]
    for t in verdict.escalation.triggers if verdict.escalation else []:
        lines.append(f"- {t.trigger}: {t.reason}")
        lines.extend(f"    {ev}" for ev in t.evidence[:5])
    lines += ["", "Approve it? (Reject, decline or cancel keeps it blocked.)"]
    return "\n".join(lines)[:4000]


def _approval(verdict: Verdict, answer: Any) -> HumanApproval | None:
    """Map the elicitation outcome to the recorded answer (None when nothing needed asking)."""
    if verdict.decision != "escalate":
        return None
    if isinstance(answer, AcceptedElicitation):
        if answer.data is None:
            return HumanApproval(asked=False, answer="not-asked", note="The client cannot ask the user (no elicitation): ask them yourself.")
        return HumanApproval(
            asked=True, answer="approved" if answer.data.approve else "rejected", note=answer.data.note, name=answer.data.name
        )
    return HumanApproval(asked=True, answer="declined" if isinstance(answer, DeclinedElicitation) else "cancelled")


def _recorded(project: Project, verdict: ClassifyResult, approval: HumanApproval) -> ClassifyResult:
    """The verdict answered with a human's approval, appended to the record (only an elicitation answer gets here).

    When the record cannot be written the approval still holds for this call, and ``unchecked`` says that
    CI and later calls will ask again.
    """
    from db_migrate.approval import record_approval
    from db_migrate.approval.record import record_folder
    from db_migrate.verdict import Unchecked

    name = approval.name.strip() or "an MCP user (no name given)"
    try:
        entry = record_approval(
            project, verdict, verdict.revisions[0], by=name, note=approval.note, via="mcp-elicitation"
        )
    except DbMigrateError as e:
        answered = verdict.answered(approval)
        answered.unchecked.append(Unchecked(what="approval record", reason=f"{e.message}: CI and later calls will ask again"))
        return answered
    return verdict.answered(approval, entry, project.relpath(record_folder(project.script_location)))


def skill_text() -> str:
    """SKILL.md (shared with ``db-migrate init``, which installs it for Claude Code)."""
    from db_migrate.tools.workflow import skill_text as packaged

    try:
        return packaged()
    except FileNotFoundError as e:
        raise ResourceError(str(e)) from None


def history_summary(project: Project) -> dict[str, Any]:
    """Heads, bases and every revision's header, as JSON-ready data."""
    from db_migrate.project import load_history

    h = load_history(project)
    return {
        "heads": h.heads,
        "bases": h.bases,
        "revisions": [
            {
                "revision": r.revision,
                "down_revisions": list(r.down_revisions),
                "branch_labels": list(r.branch_labels),
                "depends_on": list(r.depends_on),
                "message": r.message,
                "path": project.relpath(r.path),
            }
            for r in h.headers
        ],
        "unreadable": [{"path": project.relpath(b.path), "error": b.message, "line": b.line} for b in h.broken],
    }


def serve(
    project_dir: str | os.PathLike[str] | None = None,
    *,
    config: str | None = None,
    section: str = "alembic",
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    timeout: float | None = None,
    token_file: str | os.PathLike[str] | None = None,
    allowed_hosts: list[str] | tuple[str, ...] = (),
) -> None:
    """Run the server over stdio (default) or streamable HTTP until the client goes away.

    HTTP on a host other than loopback needs a bearer token (:func:`http_token`) and accepts
    only the ``Host`` values ``allowed_hosts`` names, besides the address it is bound to.
    """
    root = Path(project_dir or os.getcwd()).resolve()
    token = http_token(token_file, required=not is_loopback(host)) if http else None
    os.environ.pop(TOKEN_ENV, None)  # the fork server copies our environment: project code must not see it
    if not root.is_dir():
        from db_migrate.errors import ConfigNotFound

        raise ConfigNotFound(f"Project directory {root} does not exist.")
    # Relative revision paths mean "inside the project", whatever directory the client started us in.
    os.chdir(root)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="db-migrate: %(levelname)s %(message)s")
    server = build_server(root, config=config, timeout=timeout, section=section)
    from db_migrate.scratch.embedded import hold_for_session

    hold_for_session()  # an embedded PostgreSQL server started by a call stays up until this session ends

    threading.Thread(target=_warm, daemon=True, name="db-migrate-warm").start()  # the first tool call finds it warm
    if http:
        _serve_http(server, host, port, token=token, allowed_hosts=list(allowed_hosts))
    else:
        _stop_on_sigterm()
        server.run("stdio")


#: What the first tool call of a session would import in this process (the services, SQLAlchemy and the
#: scratch servers' drivers: a third of a cold check_heads), imported while the client does its handshake.
WARM_MODULES = ("sqlalchemy", "sqlalchemy.dialects.postgresql", "psycopg", *(package for package, _, _ in TOOLS.values()))


def _warm() -> None:
    """Start the fork server, then import :data:`WARM_MODULES` (best effort: the call imports what is missing)."""
    import importlib

    from db_migrate.sandbox import prewarm

    try:
        prewarm()
        for module in WARM_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # a driver not installed: the call says so, if it needs it
    except Exception:
        log.debug("warming up failed", exc_info=True)


STOP_SECONDS = 15.0
"""On SIGTERM, how long the calls in progress get to clean up (their jobs are killed at once)."""


def _stop_on_sigterm() -> None:
    """SIGTERM (how MCP clients end a server) cancels the calls in progress, then exits.

    Python's default would end the process at once: the jobs die with it, but the scratch
    databases of the calls in progress stay until a later run sweeps them.  Once the calls have
    cleaned up, the process leaves at once: a normal exit would wait for the thread reading
    stdin, which the client may keep open.
    """
    import signal

    from db_migrate.sandbox import shutdown
    from db_migrate.sandbox.parent import cancel_all_calls

    def stop(signum: int, frame: Any) -> None:
        cancel_all_calls(wait=STOP_SECONDS)
        shutdown()  # the fork server, and any job left
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


TOKEN_ENV = "DB_MIGRATE_HTTP_TOKEN"
"""The environment variable holding the bearer token of ``serve --http`` (never a command-line value: argv is public)."""
MIN_TOKEN_LENGTH = 16
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    import ipaddress

    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def http_token(token_file: str | os.PathLike[str] | None, *, required: bool) -> str | None:
    """The bearer token HTTP requests must carry: ``--token-file``'s content, else ``$DB_MIGRATE_HTTP_TOKEN``.

    ``required`` (a host other than loopback): no token is a usage error, so the server never
    starts open to the network.  The file must not be readable by other users.
    """
    from db_migrate.errors import UsageError

    token = None
    if token_file is not None:
        path = Path(token_file)
        try:
            mode = path.stat().st_mode
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"Cannot read the token file {path}: {getattr(e, 'strerror', None) or e}.",
                             hint="Give --token-file a readable file holding the token on one line.") from None
        if mode & 0o077:
            raise UsageError(f"The token file {path} is readable by other users (mode {mode & 0o777:o}).",
                             hint=f"chmod 600 {path}") from None
    elif os.environ.get(TOKEN_ENV, "").strip():
        token = os.environ[TOKEN_ENV].strip()
    if token is None:
        if required:
            raise UsageError(
                "serve --http on a host other than loopback needs a bearer token: without one, anyone who can reach "
                "the port could run the project's migrations.",
                hint=f"Set {TOKEN_ENV} (at least {MIN_TOKEN_LENGTH} characters, e.g. `openssl rand -hex 32`) or give "
                "--token-file PATH (mode 600); clients send `Authorization: Bearer <token>`. Or bind 127.0.0.1.",
            )
        return None
    if len(token) < MIN_TOKEN_LENGTH or any(ch.isspace() for ch in token):
        raise UsageError(f"The HTTP token must be at least {MIN_TOKEN_LENGTH} characters, without spaces.",
                         hint="Generate one with `openssl rand -hex 32`.")
    return token


def transport_security(host: str, allowed_hosts: list[str]) -> Any:
    """The SDK's DNS-rebinding protection (``Host`` and ``Origin`` checked) for a server bound to ``host``.

    Loopback: the loopback names, as the SDK's own default.  Another host: the names the operator
    allowed (``--allowed-host``, with or without a port) and the bound address itself (for a wildcard
    bind, the loopback names instead: the machine's own clients), each on any port.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    names = ["127.0.0.1", "localhost", "[::1]"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::", ""):
        names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    hosts: list[str] = []
    for name in [*allowed_hosts, *names]:
        name = name.strip()
        with_port = name.count(":") == 1 or (name.startswith("[") and "]:" in name)
        for value in ([name] if with_port else [name, f"{name}:*"]):  # a bare name: on any port
            if value and value not in hosts:
                hosts.append(value)
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def require_bearer(app: Any, token: str) -> Any:
    """``app`` behind a bearer token: an HTTP request without ``Authorization: Bearer <token>`` gets 401.

    A plain ASGI wrapper: the SDK's own auth (``AuthSettings``) is an OAuth resource server that needs
    an authorization server to issue tokens; one shared secret needs only a constant-time comparison.
    """
    import hmac

    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
            if not hmac.compare_digest(given, expected):
                body = b'{"error":"unauthorized","message":"Send Authorization: Bearer <token>."}'
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="db-migrate"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def _serve_http(server: MCPServer, host: str, port: int, *, token: str | None = None, allowed_hosts: list[str] = []) -> None:
    """``MCPServer.run("streamable-http")``, with a uvicorn that cancels the calls in progress on its way out.

    uvicorn's own graceful shutdown waits for every request to answer: a call stuck in a
    migration's endless loop would keep the server alive until its timeout.  ``Host`` and
    ``Origin`` are checked in every mode (:func:`transport_security`); with ``token``, every
    request needs it (:func:`require_bearer`).
    """
    import anyio
    import uvicorn

    from db_migrate.sandbox.parent import cancel_all_calls

    class Uvicorn(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            cancel_all_calls()  # the calls answer (cancelled) at once; uvicorn then waits for them as usual
            super().handle_exit(sig, frame)

    app = server.streamable_http_app(host=host, transport_security=transport_security(host, allowed_hosts))
    if token is not None:
        app = require_bearer(app, token)
    config = uvicorn.Config(app, host=host, port=port, log_level=server.settings.log_level.lower())
    anyio.run(Uvicorn(config).serve)
