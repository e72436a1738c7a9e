#!/usr/bin/env bash
# Set up (.venv, the package with [all,test], the MCP Inspector CLI from npm) and
# run the whole test suite. Extra arguments go to pytest.
source "$(dirname "$0")/_setup.sh"

INSPECTOR_VERSION="2.12.0"
if [ ! -x .tools/node_modules/.bin/mcp-inspector ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION into .tools (Node 22 wanted; Node 20 works with a warning)" >&2
    npm install --no-audit --no-fund --loglevel=error --prefix .tools "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
  else
    echo "==> npm not found: the MCP Inspector tests will be skipped (they fail under CI=true)" >&2
  fi
fi
export MCP_CATALOG_PATH="${MCP_CATALOG_PATH:-$(mktemp -d)}"

set +e
# two workers (pytest-xdist): most tests wait on subprocesses and database servers, so two halve the run
# even on two loaded cores; `-n 0` (or DB_MIGRATE_TEST_WORKERS=0) runs in one process
.venv/bin/python -m pytest -n "${DB_MIGRATE_TEST_WORKERS:-2}" "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$code"
