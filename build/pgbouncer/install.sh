#!/usr/bin/env bash
# Installs the Debian pgbouncer package (1.18 on bookworm) when it is absent, for the isolation suite's
# pooling tests, which start their own pgbouncer on loopback. Only the binary is needed: no service is
# configured or started.
#
# Usage: build/pgbouncer/install.sh    (installing needs root; non-interactive; quiet unless it fails)
set -euo pipefail

log=$(mktemp "${TMPDIR:-/tmp}/tenantseal-pgbouncer.XXXXXX")
trap 'rm -f "$log"' EXIT
quiet() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "install.sh: failed: $*" >&2
		return 1
	fi
}

find_bin() { command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true; }

bin=$(find_bin)
if [ -z "$bin" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install.sh: pgbouncer is missing and installing it needs root: apt-get install pgbouncer" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	install=(apt-get install -y -q --no-install-recommends
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold pgbouncer)
	if ! "${install[@]}" >"$log" 2>&1; then
		# Package lists missing or stale: update once, then retry.
		quiet apt-get update -q
		quiet "${install[@]}"
	fi
	# Where an init system runs, the package starts a pgbouncer on :6432; the tests start their own.
	if command -v service >/dev/null; then service pgbouncer stop >/dev/null 2>&1 || true; fi
	bin=$(find_bin)
fi
[ -n "$bin" ] || { echo "install.sh: pgbouncer not found after install" >&2; exit 1; }
echo "pgbouncer: $("$bin" --version | head -n 1)"
