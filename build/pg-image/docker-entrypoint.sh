#!/bin/sh
# Entrypoint of the locally built tenantseal/postgres image (busybox sh).
# Follows the official postgres image's contract: POSTGRES_USER (default
# postgres), POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_DB (default $POSTGRES_USER), POSTGRES_INITDB_ARGS, *_FILE variants;
# arguments starting with "-" are passed to postgres (e.g. -c fsync=off).
# Runs as the non-root postgres user (uid 999). SIGTERM and SIGINT both
# trigger a fast shutdown.
# TLS: TENANTSEAL_SSL_CERT and TENANTSEAL_SSL_KEY name PEM files (any owner,
# readable by uid 999), TENANTSEAL_SSL_CA optionally the CA whose client
# certificates the server accepts. They are copied into PGDATA with the owner
# and mode PostgreSQL demands of a key, and the server runs with ssl=on.
# TENANTSEAL_SSL_HOSTSSL=1 (at initialisation) makes logins from outside the
# container need TLS (hostssl); without it they may use either.
set -eu

log() { echo "docker-entrypoint: $*" >&2; }

# file_env VAR [default]: VAR or VAR_FILE (docker secrets), like the official image.
file_env() {
	_var=$1 _def=${2:-}
	eval "_val=\${$_var:-}" "_fval=\${${_var}_FILE:-}"
	if [ -n "$_val" ] && [ -n "$_fval" ]; then
		log "both $_var and ${_var}_FILE are set (but are exclusive)"; exit 1
	fi
	if [ -n "$_fval" ]; then _val=$(cat "$_fval"); elif [ -z "$_val" ]; then _val=$_def; fi
	eval "$_var=\$_val"
	export "$_var"
	unset "${_var}_FILE" || true
}

if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
	log "refusing to run as root (this image runs as uid 999)"; exit 1
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-}

mkdir -p "$PGDATA"
chmod 0700 "$PGDATA" 2>/dev/null || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		log "Database is uninitialized and superuser password is not specified."
		log "  Set POSTGRES_PASSWORD to a non-empty value, or POSTGRES_HOST_AUTH_METHOD=trust."
		exit 1
	fi
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

	pwfile=
	if [ -n "$POSTGRES_PASSWORD" ]; then
		pwfile=$(mktemp /tmp/pgpw.XXXXXX)
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	fi
	rc=0
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is word-split on purpose
	initdb $POSTGRES_INITDB_ARGS --no-instructions --no-locale -E UTF8 \
		--username="$POSTGRES_USER" --auth-local=trust --auth-host="$auth" \
		${pwfile:+"--pwfile=$pwfile"} >&2 || rc=$?
	if [ -n "$pwfile" ]; then rm -f "$pwfile"; fi
	[ "$rc" -eq 0 ] || { log "initdb failed"; exit "$rc"; }

	hba=host
	if [ "${TENANTSEAL_SSL_HOSTSSL:-}" = 1 ]; then
		[ -n "${TENANTSEAL_SSL_CERT:-}" ] || { log "TENANTSEAL_SSL_HOSTSSL=1 needs TENANTSEAL_SSL_CERT and TENANTSEAL_SSL_KEY"; exit 1; }
		hba=hostssl
	fi
	printf '\n# docker: allow password logins from anywhere\n%s all all all %s\n' "$hba" "$auth" \
		>>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	if [ "$POSTGRES_DB" != postgres ]; then
		# Single-user mode: no socket, no TCP listener, no "ready" log line.
		dbq=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
		errf=$(mktemp /tmp/pgsingle.XXXXXX)
		rc=0
		printf 'CREATE DATABASE "%s"\n' "$dbq" |
			postgres --single -D "$PGDATA" postgres >/dev/null 2>"$errf" || rc=$?
		if [ "$rc" -ne 0 ] || grep -qE '(ERROR|FATAL|PANIC):' "$errf"; then
			cat "$errf" >&2; rm -f "$errf"
			log "could not create database \"$POSTGRES_DB\""; exit 1
		fi
		rm -f "$errf"
	fi
	log "PostgreSQL init process complete; ready for start up."
fi
unset POSTGRES_PASSWORD

if [ -n "${TENANTSEAL_SSL_CERT:-}${TENANTSEAL_SSL_KEY:-}" ]; then
	if [ -z "${TENANTSEAL_SSL_CERT:-}" ] || [ -z "${TENANTSEAL_SSL_KEY:-}" ]; then
		log "set both TENANTSEAL_SSL_CERT and TENANTSEAL_SSL_KEY, or neither"; exit 1
	fi
	# Copies owned by uid 999, the key 0600: PostgreSQL refuses a key that others can read.
	tls=$PGDATA/tls
	mkdir -p "$tls"
	cp "$TENANTSEAL_SSL_CERT" "$tls/server.crt"
	(umask 077 && cat "$TENANTSEAL_SSL_KEY" >"$tls/server.key.new")
	chmod 0600 "$tls/server.key.new"
	mv "$tls/server.key.new" "$tls/server.key"
	set -- -c ssl=on -c "ssl_cert_file=$tls/server.crt" -c "ssl_key_file=$tls/server.key" "$@"
	if [ -n "${TENANTSEAL_SSL_CA:-}" ]; then
		cp "$TENANTSEAL_SSL_CA" "$tls/ca.crt"
		set -- -c "ssl_ca_file=$tls/ca.crt" "$@"
	fi
fi

# A killed server leaves its socket lock files behind, outside PGDATA. One container runs one
# postmaster: a lock file left at start is stale, but its PID may name a live process of the new
# container (PIDs start over), and postgres would then refuse to start.
rm -f /var/run/postgresql/.s.PGSQL.*.lock
# The same holds for PGDATA's postmaster.pid after a kill: the PID it names is of the old container, and
# in this one the same number may be any process (the shell's commands above, a `docker exec`), which
# postgres would take for a live postmaster. Removed unless that PID is a postgres of this container.
if [ -f "$PGDATA/postmaster.pid" ]; then
	old=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
	case $old in
	'' | *[!0-9]*) rm -f "$PGDATA/postmaster.pid" ;;
	*) [ "$(cat "/proc/$old/comm" 2>/dev/null || true)" = postgres ] || rm -f "$PGDATA/postmaster.pid" ;;
	esac
fi

# postgres runs as a child so that SIGTERM (docker's default, e.g. from
# `docker kill -s TERM` or an orchestrator) also means a fast shutdown
# (postgres itself treats SIGTERM as "smart": wait for clients to leave).
postgres "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
trap 'kill -QUIT "$pid" 2>/dev/null || true' QUIT
trap 'kill -HUP "$pid" 2>/dev/null || true' HUP
status=0
while :; do
	status=0
	wait "$pid" || status=$?
	# wait returns early (>128) when a trapped signal arrives; keep waiting
	# until the child has really gone (kill -0 fails once it is reaped).
	kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
