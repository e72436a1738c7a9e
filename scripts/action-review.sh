#!/usr/bin/env bash
# The review step of action.yml, as a script so that it can be tested without GitHub:
# runs `db-migrate review --format sarif` with the action's inputs (DBM_* variables), writes
# the SARIF log, and records exit-code and sarif-file in $GITHUB_OUTPUT (or prints them).
# Inputs arrive as environment variables, never spliced into the command line as code.
set -uo pipefail

args=(review --format sarif --fail-on "${DBM_FAIL_ON:-error}")
[ -n "${DBM_CONFIG:-}" ] && args+=(--config "$DBM_CONFIG")
if [ "${DBM_ALL:-false}" = "true" ]; then
  args+=(--all)
elif [ -n "${DBM_CHANGED_SINCE:-}" ]; then
  args+=(--changed-since "$DBM_CHANGED_SINCE")
elif [ -n "${DBM_REVISIONS:-}" ]; then
  read -r -a revs <<< "$DBM_REVISIONS"
  args+=("${revs[@]}")
fi
sarif="${DBM_SARIF:-db-migrate.sarif}"

db-migrate "${args[@]}" > "$sarif"
code=$?
out="${GITHUB_OUTPUT:-/dev/stdout}"
{
  echo "exit-code=$code"
  # an input or usage error (2) writes no SARIF: leave nothing to upload
  if [ "$code" != 2 ] && [ -s "$sarif" ]; then echo "sarif-file=$sarif"; else echo "sarif-file="; fi
} >> "$out"
exit 0
