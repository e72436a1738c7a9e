"""The worker pool: user code cannot take the caller down."""

from __future__ import annotations


import anyio
import pytest
from polling import wait_until

from db_migrate.errors import MigrationCrashed, MigrationTimeout, ProjectCodeError
from db_migrate.sandbox import progress, run_in_scope, run_job

JOBS = '''
import os, sys, time
from db_migrate.sandbox import report_progress
def double(x): return x * 2
def hang():
    while True: time.sleep(0.05)
def exits(): sys.exit(4)
def dies(): os._exit(9)
def raises(): raise ValueError("boom")
def prints():
    print("this must not reach stdout")
    return "ok"
def configures_logging(ini):
    import logging, logging.config
    logging.config.fileConfig(ini)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b")
    return "ok"
def reports():
    for i in range(3): report_progress(f"step {i}", i, 3)
    return "done"
'''


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("jobs")
    (d / "sandbox_jobs.py").write_text(JOBS)
    return str(d)


def call(jobs: str, name: str, **kw):
    return run_job(f"sandbox_jobs:{name}", cwd=jobs, timeout=kw.pop("timeout", 10), **kw)


def test_result_comes_back(jobs: str) -> None:
    assert call(jobs, "double", x=21) == 42


def test_hang_times_out_and_next_call_works(jobs: str) -> None:
    # the timeout error itself proves the deadline held (how fast is a benchmark, not a test, on a shared machine)
    with pytest.raises(MigrationTimeout, match="did not finish within 0.5 s"):
        call(jobs, "hang", timeout=0.5)
    assert call(jobs, "double", x=1) == 2


def test_sys_exit_and_hard_crash_are_structured(jobs: str) -> None:
    with pytest.raises(MigrationCrashed, match=r"sys.exit\(4\)"):
        call(jobs, "exits")
    with pytest.raises(MigrationCrashed, match="killed its process before answering"):
        call(jobs, "dies")
    with pytest.raises(ProjectCodeError, match="ValueError: boom"):
        call(jobs, "raises")
    assert call(jobs, "double", x=3) == 6


def test_a_call_cancelled_while_its_job_is_forked_stops_that_job(jobs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM that lands while a job is being forked (its fork server still starting, on a busy machine) must
    stop that job too: otherwise it runs on for its whole timeout and the server waits for it to stop."""
    from db_migrate.sandbox import parent

    fork, forked = parent.ForkServer.fork, []

    def cancelled_meanwhile(self, request, fds):
        forked.append(fork(self, request, fds))
        parent._local.scope.cancel()  # what the server's SIGTERM handler does, before the job is the call's
        return forked[-1]

    monkeypatch.setattr(parent.ForkServer, "fork", cancelled_meanwhile)
    with parent.reporting_to(lambda *a: None), pytest.raises(MigrationCrashed, match="cancelled"):
        call(jobs, "hang", timeout=20)  # unfixed: a MigrationTimeout after 20 s
    assert forked and wait_until(lambda: not _running(forked[0]), 30), "the cancelled call's job still runs"


def _running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_user_prints_never_reach_stdout(jobs: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert call(jobs, "prints") == "ok"
    out, _ = capfd.readouterr()
    assert "must not reach stdout" not in out


def test_progress_and_cancellation_in_scope(jobs: str) -> None:
    seen: list[str] = []
    cleaned: list[bool] = []

    def service() -> str:
        progress("parent step", 0, 1)
        r = call(jobs, "reports")
        try:
            call(jobs, "hang", timeout=30)
        finally:
            cleaned.append(True)
        return r

    async def main() -> None:
        async def on_progress(message: str, p, total) -> None:
            seen.append(message)

        with anyio.move_on_after(2):
            await run_in_scope(service, on_progress=on_progress)
        for _ in range(50):
            if cleaned:
                break
            await anyio.sleep(0.05)

    anyio.run(main)  # returning at all shows the cancellation reached the job (pytest-timeout guards a hang)
    assert seen[:4] == ["parent step", "step 0", "step 1", "step 2"]
    assert cleaned == [True], "the service's finally block must run when the call is cancelled"


def test_project_logging_config_does_not_flood_stderr(jobs: str, tmp_path, capfd: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys = root,alembic\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n"
        "[logger_alembic]\nlevel = INFO\nhandlers =\nqualname = alembic\n"
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n"
        "[formatter_generic]\nformat = %(levelname)-5.5s [%(name)s] %(message)s\n"
    )
    assert call(jobs, "configures_logging", ini=str(ini)) == "ok"
    _, err = capfd.readouterr()
    assert "Running upgrade" not in err


def test_a_private_folder_on_the_way_to_the_interpreter_is_covered_not_a_reason_to_stay_root(tmp_path):
    """``python -m pytest`` in a checkout made by ``mktemp -d`` (0700) puts that checkout on sys.path, and the
    virtualenv lies inside it: the job's mount namespace covers the folder (only the virtualenv bound back), so it
    does not keep the job from running as nobody. A folder that holds nothing the job needs is still a reason."""
    from db_migrate.sandbox.isolation import _covered

    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "lib").mkdir(parents=True)
    checkout.chmod(0o700)
    paths = [str(checkout), str(checkout / ".venv" / "lib")]
    assert _covered(str(checkout), paths)
    assert not _covered(str(checkout), [str(checkout)])  # nothing below it: not covered
    checkout.chmod(0o711)  # passable but not listable: no tmpfs goes there
    assert not _covered(str(checkout), paths)
