#!/bin/bash
# Run the package's tests under a real systemd: boot a Debian 12 container
# (systemd-nspawn, systemd as its PID 1, a private network with only
# loopback) and run `debian/test-package.sh --prebuilt DEB DEB2` in it, so
# that the install starts bgpd.service through deb-systemd-invoke,
# `systemctl start` waits for READY=1, the unit's sandbox is in force,
# `systemctl reload`, Restart=on-failure after kill -9, the restart on
# upgrade and the stop on remove are real.  Needs root, systemd-nspawn
# (systemd-container) and debootstrap.
#
#   debian/test-systemd.sh DEB DEB2 [WORKDIR]
#
# The container's root file system (debootstrap --variant=minbase, plus the
# packages DEB and the autopkgtests depend on, from the mirror apt uses) is
# built once and kept under /var/cache/bgpd-test-systemd, keyed by that
# list; the container boots it with --volatile=overlay, so a run changes
# nothing in the cache.  Only the build reaches the network; the container
# has none.  The last line says PASS or FAIL.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
exec </dev/null

SRC=$(cd "$(dirname "$0")/.." && pwd)
STEP=start
START=$(date +%s)
NSPAWN_PID=
CPID=
summary() {
    local rc=$1 took=$(( $(date +%s) - START ))
    if [ "$rc" -eq 0 ]; then
        echo "test-systemd: PASS (systemd $SYSTEMD_VERSION as PID 1: $INNER) in ${took}s"
    else
        echo "test-systemd: FAIL at step '$STEP' (exit $rc) after ${took}s"
    fi
}
halt_container() {
    [ -n "$NSPAWN_PID" ] || return 0
    # SIGTERM: nspawn asks the container's systemd to power off.
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
        echo "the container did not halt within 30 s: killed" >&2
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    wait "$NSPAWN_PID" 2>/dev/null || true
    NSPAWN_PID=
    # nspawn leaves its (empty) propagation directory when /run is no tmpfs.
    rmdir "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null || true
}

# Run a command in the container, with a clean environment (like a login).
in_container() {
    nsenter --target "$CPID" --all -- env -i PATH="$PATH" LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive HOME=/root TERM=dumb "$@"
}

on_exit() {
    local rc=$?
    # The container's journal goes with it (a volatile root): keep it to read.
    if [ "$rc" -ne 0 ] && [ -n "$NSPAWN_PID" ] && [ -n "$CPID" ]; then
        in_container journalctl --no-pager >"$WORK/journal.txt" 2>&1 || true
        echo "the container's journal: $WORK/journal.txt"
    fi
    halt_container
    summary $rc
}
trap on_exit EXIT
step() { STEP=$1; echo "=== test-systemd: $1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
SYSTEMD_VERSION=unknown
INNER=

[ "$(id -u)" = 0 ] || fail "needs root"
[ $# -ge 2 ] || fail "usage: $0 DEB DEB2 [WORKDIR]"
DEB=$(realpath "$1")
DEB2=$(realpath "$2")
WORK=${3:-$(mktemp -d /tmp/bgpd-systemd.XXXXXX)}
mkdir -p "$WORK"
for tool in systemd-nspawn debootstrap nsenter; do
    command -v "$tool" >/dev/null || fail "no $tool (apt-get install systemd-container debootstrap)"
done

SUITE=bookworm
MIRROR=${BGPD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=/var/cache/bgpd-test-systemd
# Bump when the recipe below changes: the cached root is rebuilt.
RECIPE=1

step "the container's root file system"
# What the package and its autopkgtests need, so that apt in the container
# (no network) finds every dependency installed.  flock, nsenter, setpriv:
# util-linux; dpkg-deb: dpkg.
deps=$(dpkg-deb -f "$DEB" Depends)
tdeps=$(sed -n 's/^Depends://p' "$SRC/debian/tests/control" | tr ',' '\n' | sed 's/ //g' \
    | grep -v '^@$' | grep -v '^$' | sort -u | paste -sd, -)
want="systemd, systemd-sysv, dbus, util-linux, iproute2, procps, $deps, $tdeps"
key=$(printf '%s\n' "$RECIPE" "$SUITE" "$MIRROR" "$want" | sha256sum | cut -c1-16)
ROOTFS=$CACHE/rootfs-$key
mkdir -p "$CACHE"
exec 8>"$CACHE/lock"
flock -w 1200 8 || fail "another run holds $CACHE/lock"
if [ -f "$ROOTFS/.bgpd-test-complete" ]; then
    echo "cached: $ROOTFS"
else
    # Other keys' roots are stale (another package version's dependencies).
    rm -rf "$CACHE"/rootfs-* "$CACHE"/build-*
    build=$CACHE/build-$key
    t0=$(date +%s)
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$SUITE" "$build" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log"; fail "debootstrap"; }
    # Not booted: the machine's network, for apt.  satisfy takes the
    # Depends field as it is (versions, alternatives, :any).
    # shellcheck disable=SC2016 # $1 is the inner shell's
    systemd-nspawn -q -D "$build" --register=no --keep-unit \
        env -i PATH="$PATH" DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
        sh -c 'apt-get update -q && apt-get satisfy -y -q --no-install-recommends "$1" && apt-get clean' \
        _ "$want" >"$WORK/rootfs-apt.log" 2>&1 || { tail -n 30 "$WORK/rootfs-apt.log"; fail "apt in the root"; }
    # bird2's own service would start at boot; the tests start their BIRDs.
    systemctl --root="$build" disable bird.service >/dev/null 2>&1 || true
    rm -rf "$build"/var/log/journal/* "$build"/etc/machine-id
    : >"$build/etc/machine-id"
    touch "$build/.bgpd-test-complete"
    mv "$build" "$ROOTFS"
    echo "built $ROOTFS in $(( $(date +%s) - t0 ))s: $(du -sh "$ROOTFS" | cut -f1)"
fi

step "boot"
MACHINE=bgpd-test-$$
mkdir -p "$WORK/debs"
cp "$DEB" "$DEB2" "$WORK/debs/"
# --keep-unit --register=no: the machine's PID 1 may not be systemd (no
# scope, no machined).  The overlay keeps the cached root unchanged.
systemd-nspawn -D "$ROOTFS" --machine="$MACHINE" --register=no --keep-unit \
    --private-network --volatile=overlay --console=pipe \
    --bind-ro="$WORK/debs:/srv/debs" --bind-ro="$SRC:/srv/bgpd" \
    --boot >"$WORK/nspawn.log" 2>&1 &
NSPAWN_PID=$!

for _ in $(seq 100); do
    CPID=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
    [ -n "$CPID" ] && [ "$(cat /proc/"$CPID"/comm 2>/dev/null)" = systemd ] && break
    CPID=
    kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$WORK/nspawn.log"; fail "systemd-nspawn exited"; }
    sleep 0.2
done
[ -n "$CPID" ] || { cat "$WORK/nspawn.log"; fail "no systemd in the container within 20 s"; }
# systemctl needs PID 1's socket, which comes a moment after exec.
for _ in $(seq 100); do
    in_container test -S /run/systemd/private && break
    sleep 0.2
done
state=$(in_container timeout 120 systemctl is-system-running --wait || true)
echo "the container's systemd: $state (PID 1 there is host PID $CPID)"
if [ "$state" != running ]; then
    in_container systemctl --failed --no-pager || true
    fail "the container's systemd is '$state', not running"
fi
SYSTEMD_VERSION=$(in_container systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
[ "$(in_container ps -p 1 -o comm=)" = systemd ] || fail "PID 1 in the container is not systemd"
# The network rules: the container has loopback only.
links=$(in_container ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || fail "the container has links besides loopback: $links"

step "test-package.sh --prebuilt, under systemd"
in_container /srv/bgpd/debian/test-package.sh --prebuilt "/srv/debs/$(basename "$DEB")" \
    "/srv/debs/$(basename "$DEB2")" /root/test-package | tee "$WORK/inner.log"
last=$(grep "^test-package: " "$WORK/inner.log" | tail -n 1)
[[ "$last" == "test-package: PASS (prebuilt, systemd as PID 1:"* ]] || fail "in the container: $last"
INNER=${last#test-package: PASS (prebuilt, systemd as PID 1: }
INNER=${INNER%)*}

step "halt"
halt_container
