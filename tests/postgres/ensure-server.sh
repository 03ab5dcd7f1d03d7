#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist so the store tests also run on PostgreSQL.
# The tests themselves start a throwaway server on loopback (tests/conftest.py); this script
# only installs Debian's package when no server binary is found. Never fails the build: without
# a server the PostgreSQL tests are reported as skipped with the reason.
set -u
have_server() {
  command -v postgres >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1
}
if have_server; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL server from Debian's packages..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: could not install postgresql; PostgreSQL tests will be skipped"
else
  echo "note: no PostgreSQL server and no root apt-get; PostgreSQL tests will be skipped"
fi
exit 0
