# Shared set-up for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates .venv with Python >= 3.11 when missing and installs the package with
# its extras; re-installs only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  if [ -z "$PY" ]; then echo "db-migrate needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2; exit 2; fi
  echo "==> creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
VENV_PY="$PWD/.venv/bin/python"
stamp=".venv/.db-migrate-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/db-migrate ]; then
  echo "==> installing db-migrate[all,test] into .venv" >&2
  "$VENV_PY" -m pip install --quiet --upgrade pip >&2
  "$VENV_PY" -m pip install --quiet -e ".[all,test]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
