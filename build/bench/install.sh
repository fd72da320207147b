#!/usr/bin/env bash
# Installs what `make bench` measures with when it is absent: pgbench (Debian's postgresql-client-15), for
# the server-only variants, and valgrind, whose callgrind counts the instructions per statement (perf
# stat would too, but virtual machines like ours expose no hardware counters). Without root, or without
# the package archive, it says what is missing and the benchmark goes on without it.
#
# Usage: build/bench/install.sh    (non-interactive; quiet unless it fails)
set -uo pipefail

log=$(mktemp "${TMPDIR:-/tmp}/tenantseal-bench-tools.XXXXXX")
trap 'rm -f "$log"' EXIT

missing=()
command -v pgbench >/dev/null || [ -x /usr/lib/postgresql/15/bin/pgbench ] || missing+=(postgresql-client-15)
[ -x /usr/bin/valgrind.bin ] || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install.sh: missing ${missing[*]} (installing needs root): the benchmark goes on without them" >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	install=(apt-get install -y -q --no-install-recommends
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
	if ! "${install[@]}" >"$log" 2>&1; then
		# Package lists missing or stale: update once, then retry.
		apt-get update -q >"$log" 2>&1 && "${install[@]}" >"$log" 2>&1 ||
			{ cat "$log" >&2; echo "install.sh: could not install ${missing[*]}: the benchmark goes on without them" >&2; }
	fi
fi
echo "bench tools: pgbench $(command -v pgbench >/dev/null && pgbench --version | awk '{print $3}' || echo missing), valgrind $([ -x /usr/bin/valgrind.bin ] && valgrind --version || echo missing)"
