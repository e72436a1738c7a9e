#!/usr/bin/env bash
# The main job on the embedded default (PostgreSQL: the fixture is a PostgreSQL project), over a copy of fixtures/residency:
# heads, review of every revision, classify head, roundtrip head - the verdicts a
# user would see. Exits 0 whatever the verdicts say (it is a demo); fails only
# when the set-up or the tool itself breaks (exit code 2).
source "$(dirname "$0")/_setup.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r fixtures/residency "$work/residency"
cd "$work/residency"

status=0
step() {
  echo
  echo "\$ db-migrate $*"
  set +e
  db-migrate "$@"
  code=$?
  set -e
  echo "(exit $code: $(case $code in 0) echo proceed;; 1) echo revise;; 3) echo escalate;; *) echo error;; esac))"
  if [ "$code" = 2 ]; then status=1; fi
}

step heads
step review --all
step classify head
step roundtrip head
exit $status
