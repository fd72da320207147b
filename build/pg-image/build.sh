#!/usr/bin/env bash
# Builds a local PostgreSQL 15 Docker image FROM scratch out of the host's
# Debian postgresql-15 installation (no container registry needed).
#
# Usage: build/pg-image/build.sh [IMAGE_TAG]
#   tag: $1, else $TENANTSEAL_LOCAL_PG_IMAGE, else tenantseal/postgres:15-local
# Idempotent: skips the build when the image exists with a matching content
# hash label (build.sh + docker-entrypoint.sh + the sources of the C verifier
# in ext/tenantseal_verify + `postgres --version`).
# Installs postgresql-15, busybox-static, postgresql-server-dev-15 (of the same
# version as the server) and a C toolchain with apt-get when missing (root).
# Quiet unless something fails; prints one line at the end.
#
# The image carries the extension tenantseal_verify (the tenant context
# verifier in C), compiled here with PGXS and installed into the rootfs: the
# migrations install it in every database and select it over the plpgsql one.
#
# The image follows the official postgres image's contract (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, extra `-c k=v`
# args), runs as uid 999, and shuts down fast on SIGINT and SIGTERM.
# Left out to keep it small: LLVM JIT (jit is silently unavailable), man pages.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tag=${1:-${TENANTSEAL_LOCAL_PG_IMAGE:-tenantseal/postgres:15-local}}
entrypoint=$here/docker-entrypoint.sh
ext=$(cd "$here/../../ext/tenantseal_verify" && pwd)
pgbin=/usr/lib/postgresql/15/bin
pglib=/usr/lib/postgresql/15/lib
pgshare=/usr/share/postgresql/15
label=org.tenantseal.pg-image.hash

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenantseal-pg-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log

die() { echo "build.sh: $*" >&2; exit 1; }
# quiet CMD...: run CMD, show its output only if it fails.
quiet() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "build.sh: failed: $*" >&2
		return 1
	fi
}

pkg_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# --- 0. host packages ---------------------------------------------------------
missing=()
pkg_installed postgresql-15 && [ -x "$pgbin/postgres" ] || missing+=(postgresql-15)
pkg_installed busybox-static && [ -x /bin/busybox ] || missing+=(busybox-static)
command -v make >/dev/null || missing+=(make)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if ! pkg_installed postgresql-server-dev-15 || [ ! -x "$pgbin/pg_config" ]; then
	# The headers must match the server the extension loads into: the installed server's version when
	# the archive still has it (otherwise the newest, which upgrades the server with it).
	v=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
	if [ -n "$v" ] && apt-cache show "postgresql-server-dev-15=$v" >/dev/null 2>&1; then
		missing+=("postgresql-server-dev-15=$v")
	else
		missing+=(postgresql-server-dev-15)
	fi
fi
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	install=(apt-get install -y -q --no-install-recommends
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
	if ! "${install[@]}" >"$log" 2>&1; then
		# Package lists missing or stale: update once, then retry.
		quiet apt-get update -q
		quiet "${install[@]}"
	fi
	if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && command -v pg_ctlcluster >/dev/null; then
		# The Debian package creates and starts cluster "15 main" on :5432;
		# we only want the binaries.
		pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
		if [ -f /etc/postgresql/15/main/start.conf ]; then
			echo manual >/etc/postgresql/15/main/start.conf
		fi
	fi
fi
[ -x "$pgbin/postgres" ] || die "$pgbin/postgres not found"
[ -x /bin/busybox ] || die "/bin/busybox not found"
/bin/busybox true 2>/dev/null || die "/bin/busybox does not run"
[ -f "$entrypoint" ] || die "$entrypoint not found"
[ -x "$pgbin/pg_config" ] || die "$pgbin/pg_config not found (postgresql-server-dev-15)"
[ -f "$ext/Makefile" ] || die "$ext/Makefile not found"
command -v docker >/dev/null || die "docker not found"

# --- 1. up to date? -------------------------------------------------------------
pgversion=$("$pgbin/postgres" --version)
# The extension's sources by name and content, in a fixed order.
ext_sources=$(cd "$ext" && find . -type f \( -name '*.c' -o -name '*.h' -o -name '*.sql' -o -name '*.control' -o -name Makefile \) | LC_ALL=C sort)
hash=$(cat "$here/build.sh" "$entrypoint" <(printf '%s\n' "$pgversion") \
	<(cd "$ext" && for f in $ext_sources; do printf '%s\n' "$f"; cat "$f"; done) | sha256sum | cut -c1-64)
current=$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$tag" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
	echo "image $tag up to date ($pgversion)"
	exit 0
fi

# --- 2. root filesystem -----------------------------------------------------------
ctx=$tmp/ctx
root=$ctx/rootfs
mkdir -p "$root"

# Same merged-/usr layout as the host (/lib -> usr/lib, ...), so every path
# ldd prints and every ld.so.cache entry resolves in the image too.
for d in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$d" ]; then
		ln -s "$(readlink "/$d")" "$root/$d"
	fi
done
mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc" "$root/var/run" \
	"$root/usr/local/bin" "$root/usr/lib/postgresql" "$root/usr/share/postgresql" \
	"$root/root" "$root/dev" "$root/proc" "$root/sys"
# (directories that a symlink above may already cover are created through it)
mkdir -p "$root/bin"
install -d -m 1777 "$root/tmp"

# copy_path P: copy P into the rootfs at the same path, following a symlink
# chain and copying every link name and the final target.
copy_path() {
	local p=$1 dir canon t
	while :; do
		dir=$(readlink -f "$(dirname "$p")")
		canon=$dir/$(basename "$p")
		if [ -e "$root$canon" ] || [ -L "$root$canon" ]; then
			return 0
		fi
		mkdir -p "$root$dir"
		cp -a "$canon" "$root$canon"
		[ -L "$canon" ] || return 0
		t=$(readlink "$canon")
		case $t in /*) p=$t ;; *) p=$dir/$t ;; esac
	done
}

is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
rm -rf "$root$pglib/bitcode" "$root$pglib"/llvmjit* "$root$pglib/pgxs"
cp -a "$pgshare" "$root/usr/share/postgresql/"
rm -rf "$root$pgshare/man" "$root$pgshare/doc" "$root$pgshare/docs"

# The C verifier, built out of tree (nothing built lands in the repository) and installed into the rootfs.
mkdir -p "$tmp/ext"
(cd "$ext" && cp $ext_sources "$tmp/ext/")
pgxs=(PG_CONFIG="$pgbin/pg_config" with_llvm=no COPT=-Werror)
quiet make -C "$tmp/ext" "${pgxs[@]}"
quiet make -C "$tmp/ext" "${pgxs[@]}" install DESTDIR="$root"
[ -f "$root$pglib/tenantseal_verify.so" ] || die "tenantseal_verify.so not installed into the image"
if [ -d /usr/share/zoneinfo ]; then
	mkdir -p "$root/usr/share"
	cp -a /usr/share/zoneinfo "$root/usr/share/"
	ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
fi

# Shared libraries of every ELF we ship (JIT provider left out: libLLVM is ~110 MB).
libs=$tmp/libs
: >"$libs"
for f in "$root$pgbin"/* "$root$pglib"/*.so; do
	f=${f#"$root"}
	is_elf "$f" || continue
	out=$(ldd "$f" 2>&1) || { [[ $out == *"not a dynamic executable"* ]] && continue; die "ldd $f: $out"; }
	if grep -q 'not found' <<<"$out"; then die "ldd $f: missing libraries:"$'\n'"$out"; fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' <<<"$out" >>"$libs"
done
echo /lib64/ld-linux-x86-64.so.2 >>"$libs"
while read -r l; do copy_path "$l"; done < <(sort -u "$libs")
cp /etc/ld.so.cache "$root/etc/ld.so.cache"

# Static busybox plus a symlink per applet (sh, id, ps, sed, mktemp, ...).
copy_path /bin/busybox
bbdir=$(readlink -f /bin)
while read -r a; do
	[ -e "$root$bbdir/$a" ] || ln -s busybox "$root$bbdir/$a"
done < <(/bin/busybox --list)
# initdb runs `locale -a` to fill pg_collation; the image has C, POSIX and
# (from libc-bin, 400 kB) C.utf8, like Debian's own minimal setup.
if [ -d /usr/lib/locale/C.utf8 ]; then
	mkdir -p "$root/usr/lib/locale"
	cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
fi
cat >"$root$bbdir/locale" <<'EOF'
#!/bin/sh
# Minimal stand-in for glibc's locale(1).
if [ "${1:-}" = -a ]; then
	echo C; echo POSIX
	for d in /usr/lib/locale/*/; do [ -d "$d" ] && basename "$d"; done
else
	echo "LANG=${LANG:-C}"
fi
EOF
chmod 0755 "$root$bbdir/locale"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
postgres:x:999:
nogroup:x:65534:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
install -m 0755 "$entrypoint" "$root/usr/local/bin/docker-entrypoint.sh"

# Directories owned by postgres: plain COPY makes everything root-owned, so
# they go in with separate COPY --chown steps (no shell/RUN needed).
install -d -m 0755 "$ctx/pghome"
install -d -m 0700 "$ctx/pghome/data"
install -d -m 2775 "$ctx/pgrun"

cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=999:999 pghome/ /var/lib/postgresql/
COPY --chown=999:999 pgrun/ /var/run/postgresql/
ENV PATH=/usr/lib/postgresql/15/bin:/bin PGDATA=/var/lib/postgresql/data LANG=C
LABEL $label="$hash" org.tenantseal.pg-image.postgres="$pgversion" org.tenantseal.pg-image.extensions="tenantseal_verify"
USER 999:999
WORKDIR /var/lib/postgresql
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
EOF

# --- 3. build -------------------------------------------------------------------
old_id=$(docker image inspect -f '{{ .Id }}' "$tag" 2>/dev/null || true)
quiet docker build --pull=false -t "$tag" "$ctx"
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{ .Id }}' "$tag")" ]; then
	# Drop the superseded image unless a container still uses it.
	docker image rm "$old_id" >/dev/null 2>&1 || true
fi
size=$(docker image inspect -f '{{ .Size }}' "$tag")
echo "image $tag built ($pgversion, $((size / 1000000)) MB)"
