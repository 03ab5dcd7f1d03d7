#!/usr/bin/env bash
# Programs the tests drive that come from Debian's packages rather than PyPI: the PostgreSQL
# server (store tests start a throwaway one on loopback), promtool (Debian's prometheus package:
# alert-rule unit tests), systemd-analyze (systemd: verifying the unit) and kubectl (`kubectl
# kustomize` renders the Kubernetes manifests; part of this machine image) and chromium
# (headless: the HTML report's charts are rendered and screenshotted). Installs what is
# missing when run as root with apt-get; otherwise the tests that need a program say so.
set -u
missing=()
have_postgres() { command -v postgres >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }
have_postgres || missing+=(postgresql)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing from Debian's packages: ${missing[*]}"
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null || echo "warning: could not install ${missing[*]}"
  # Debian's prometheus package starts its server; the tests need only promtool.
  pkill -x prometheus >/dev/null 2>&1 || true
else
  echo "note: missing ${missing[*]} and no root apt-get; the tests needing them will fail"
fi
exit 0
