#!/bin/bash
# Build the bgpd .deb in a clean copy of this tree, install it with apt and
# Debian's own python3 (no virtualenv, pyenv or /usr/local on the path), run
# the autopkgtests of debian/tests/control against the installed package,
# upgrade it (the config and the state store are kept), remove it, purge it,
# and show nothing is left: no user or group bgpd, nothing under /etc/bgpd,
# /var/lib/bgpd or /run/bgpd, no route of protocol 186, no plugin in
# twistd's cache.  Needs root (apt, users, network namespaces).
#
#   debian/test-package.sh [WORKDIR]
#   debian/test-package.sh --prebuilt DEB DEB2 [WORKDIR]
#
# The first form also runs debian/test-systemd.sh, which boots a Debian 12
# container with systemd as its PID 1 and runs the second form in it: the
# same install, autopkgtests, upgrade, remove and purge of the .debs just
# built (DEB2 the upgrade), through systemctl instead of the emulation.
#
# Exits non-zero on any failure; the last line says PASS or FAIL and where.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME BGPD_PURE_PYTHON
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
exec </dev/null

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREBUILT=
if [ "${1:-}" = --prebuilt ]; then
    PREBUILT=1
    DEB=$(realpath "$2")
    DEB2=$(realpath "$3")
    shift 3
fi
STEP=start
START=$(date +%s)
NS=
summary() {
    local rc=$1 took=$(( $(date +%s) - START ))
    if [ "$rc" -eq 0 ] && [ -n "$PREBUILT" ]; then
        echo "test-package: PASS (prebuilt, $MODE: install, autopkgtests: $TESTS, upgrade, remove, purge) in ${took}s"
    elif [ "$rc" -eq 0 ]; then
        echo "test-package: PASS (build, lintian, $SYSTEMD_RESULT, install, autopkgtests: $TESTS, upgrade, remove, purge) in ${took}s"
    else
        echo "test-package: FAIL at step '$STEP' (exit $rc) after ${took}s"
    fi
}
on_exit() {
    local rc=$?
    if declare -F stop_bgpd >/dev/null; then stop_bgpd || true; fi
    route_lab_down
    [ -z "$NS" ] || ip netns del "$NS" 2>/dev/null || true
    summary $rc
}
trap on_exit EXIT
step() { STEP=$1; echo "=== $1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
COMPLETION=/usr/share/bash-completion/completions/bgpctl
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold)
TESTS=
SYSTEMD_RESULT="no systemd run"
MODE="no systemd as PID 1, the unit emulated"
if [ "$(ps -p 1 -o comm=)" = systemd ] && [ -d /run/systemd/system ]; then MODE="systemd as PID 1"; fi

# The upgrade and the remove under systemd: the service, moved into the
# network namespace $NS by a runtime drop-in (NetworkNamespacePath=), peers
# with BIRD in $NS_BIRD across a veth pair and installs BIRD's routes in
# $NS's kernel table, which the remove must take away (the stop withdraws
# them).  Nothing touches the machine's own network.  192.0.2.0/24 on the
# link, 198.51.100.0/25 and 198.51.100.128/25 announced (RFC 5737).
NS_BIRD=
BIRD_PID=
DROPIN=/run/systemd/system/bgpd.service.d/test-package-netns.conf
route_lab_up() {
    local tag=$$-$RANDOM dir=$1
    NS=debpkg-sd-$tag
    NS_BIRD=debpkg-sdbird-$tag
    ip netns add "$NS"
    ip netns add "$NS_BIRD"
    ip -n "$NS" link add eth0 type veth peer name eth0 netns "$NS_BIRD"
    ip -n "$NS" addr add 192.0.2.1/24 dev eth0
    ip -n "$NS_BIRD" addr add 192.0.2.2/24 dev eth0
    for ns in "$NS" "$NS_BIRD"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    done
    mkdir -p "$dir"
    cat >"$dir/bird.conf" <<BIRD
router id 192.0.2.2;
protocol device { }
protocol static announced {
    ipv4;
    route 198.51.100.0/25 blackhole;
    route 198.51.100.128/25 blackhole;
}
protocol bgp to_bgpd {
    local 192.0.2.2 as 64497;
    neighbor 192.0.2.1 as 64496;
    hold time 9;
    ipv4 { import none; export all; };
}
BIRD
    ip netns exec "$NS_BIRD" bird -f -c "$dir/bird.conf" -s "$dir/bird.ctl" -P "$dir/bird.pid" \
        >"$dir/bird.log" 2>&1 &
    BIRD_PID=$!
    mkdir -p "$(dirname "$DROPIN")"
    printf '[Service]\nNetworkNamespacePath=/run/netns/%s\n' "$NS" >"$DROPIN"
    systemctl daemon-reload
}
route_lab_down() {
    [ -z "$BIRD_PID" ] || { kill "$BIRD_PID" 2>/dev/null || true; wait "$BIRD_PID" 2>/dev/null || true; }
    BIRD_PID=
    if [ -e "$DROPIN" ]; then
        rm -rf "$(dirname "$DROPIN")"
        systemctl daemon-reload || true
    fi
    [ -z "$NS_BIRD" ] || ip netns del "$NS_BIRD" 2>/dev/null || true
    NS_BIRD=
}
# Wait (bounded) until $NS's kernel table has both of BIRD's routes as protocol 186.
wait_kernel_routes() {
    local kernel=
    for _ in $(seq 120); do
        kernel=$(ip -n "$NS" route show proto 186)
        [[ "$kernel" == *"198.51.100.0/25 via 192.0.2.2"* && "$kernel" == *"198.51.100.128/25 via 192.0.2.2"* ]] \
            && { echo "$kernel"; return 0; }
        sleep 0.5
    done
    journalctl -u bgpd -n 50 --no-pager >&2 || true
    fail "bgpd.service did not install BIRD's routes in $NS: '$kernel'"
}

[ "$(id -u)" = 0 ] || fail "needs root"
# One run at a time on this machine: the package and its user are global.
mkdir -p /run/lock
exec 9>/run/lock/bgpd-test-package.lock
flock -w 1800 9 || fail "another test-package run holds the lock"

WORK=${1:-$(mktemp -d /tmp/bgpd-package.XXXXXX)}
mkdir -p "$WORK"
if [ -n "$PREBUILT" ]; then
    VERSION=$(dpkg-deb -f "$DEB" Version)
    [ "$(dpkg-deb -f "$DEB2" Version)" = "$VERSION+upgrade1" ] || fail "$DEB2 is not the upgrade of $DEB"
else
    VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
fi

step "clean slate"
if dpkg-query -W -f='${Status}' bgpd 2>/dev/null | grep -q "installed\|config-files"; then
    "${APT[@]}" purge bgpd >/dev/null
fi

if [ -z "$PREBUILT" ]; then
step "copy the tree"
# What git tracks plus new files not ignored (no .venv, build/, _gen/);
# a tree that is not a git checkout is copied without those.
TREE="$WORK/bgpd-$VERSION"
rm -rf "$TREE"
mkdir -p "$TREE"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z -co --exclude-standard | (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$TREE"
else
    tar -C "$SRC" --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude=bgpd/api/_gen --exclude=__pycache__ --exclude=.git -cf - . | tar -xf - -C "$TREE"
fi
[ ! -e "$TREE/.venv" ] && [ ! -e "$TREE/bgpd/api/_gen" ] || fail "the copy is not clean"

step "build"
# The build's own environment: nothing of the caller's Python.
(cd "$TREE" && env -i PATH="$PATH" HOME="$WORK" LC_ALL=C.UTF-8 dpkg-buildpackage -us -uc) \
    >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; fail "dpkg-buildpackage"; }
ARCH=$(dpkg --print-architecture)
DEB="$WORK/bgpd_${VERSION}_${ARCH}.deb"
[ -f "$DEB" ] || fail "no $DEB"
# (Whole outputs to files: grep -q closing a pipe early fails it under pipefail.)
dpkg-deb -c "$DEB" >"$WORK/contents.txt"
grep -q "dist-packages/bgpd/api/_gen/bgpd/v1/routes_pb2_grpc.py" "$WORK/contents.txt" \
    || fail "the generated gRPC code is not in the package"
dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./usr/lib/python3/dist-packages/bgpd/api/_gen/bgpd/v1/routes_pb2.py \
    >"$WORK/routes_pb2.py"
# Architecture: any: the mypyc-compiled hot path, its build manifest, and
# the pure-Python source of every compiled module beside it (the fallback).
for m in nlri attributes update message; do
    grep -q "dist-packages/bgpd/wire/$m\.cpython-.*\.so$" "$WORK/contents.txt" || fail "no compiled bgpd.wire.$m"
    grep -q "dist-packages/bgpd/wire/$m\.py$" "$WORK/contents.txt" || fail "no pure bgpd/wire/$m.py"
done
grep -q "dist-packages/bgpd/_hotpath_build.json$" "$WORK/contents.txt" || fail "no hot path build manifest"
grep -q "\.$COMPLETION$" "$WORK/contents.txt" || fail "no bash completion for bgpctl"
if grep -q runtime_version "$WORK/routes_pb2.py"; then
    fail "the package's protobuf code was generated by grpc_tools, not Debian's protoc"
fi

step "lintian"
CHANGES="$WORK/bgpd_${VERSION}_${ARCH}.changes"
lintian --pedantic -I --fail-on error "$CHANGES" 2>&1 | tee "$WORK/lintian.log" \
    || fail "lintian reports errors"
echo "lintian: $(grep -c '^E:' "$WORK/lintian.log" || true) errors," \
    "$(grep -c '^W:' "$WORK/lintian.log" || true) warnings"

step "build the upgrade (version ${VERSION}+upgrade1)"
UP="$WORK/upgrade/bgpd-$VERSION"
rm -rf "$WORK/upgrade"
mkdir -p "$UP"
cp -a "$TREE/." "$UP/"
sed -i "1s/($VERSION)/($VERSION+upgrade1)/" "$UP/debian/changelog"
(cd "$UP" && env -i PATH="$PATH" HOME="$WORK" LC_ALL=C.UTF-8 dpkg-buildpackage -us -uc -b) \
    >"$WORK/build-upgrade.log" 2>&1 || { tail -n 40 "$WORK/build-upgrade.log"; fail "upgrade build"; }
DEB2="$WORK/upgrade/bgpd_${VERSION}+upgrade1_${ARCH}.deb"

step "under systemd as PID 1 (debian/test-systemd.sh)"
"$SRC/debian/test-systemd.sh" "$DEB" "$DEB2" "$WORK/systemd" | tee "$WORK/systemd.log" \
    || fail "debian/test-systemd.sh"
SYSTEMD_RESULT="under systemd: PASS"
else
    TREE=$SRC
fi

step "install"
"${APT[@]}" install "$DEB"
[ "$(dpkg-query -W -f='${Version}' bgpd)" = "$VERSION" ] || fail "bgpd $VERSION is not installed"
head -n 1 /usr/bin/bgpctl | grep -qx '#!/usr/bin/python3' || fail "bgpctl does not run Debian's python3"
grep -q "bgpd" /usr/lib/python3/dist-packages/twisted/plugins/dropin.cache \
    || fail "twistd's plugin cache does not list bgpd"
if [ "$MODE" = "systemd as PID 1" ]; then
    # The postinst (deb-systemd-helper, deb-systemd-invoke) enabled and started it.
    systemctl is-enabled -q bgpd || fail "the install did not enable bgpd.service"
    systemctl is-active -q bgpd || fail "the install did not start bgpd.service"
fi
# The completion debian/rules generated answers like `bgpctl completion bash`.
[ -f "$COMPLETION" ] || fail "$COMPLETION is not installed"
words=$(bash -c '. "$1" && COMP_WORDS=(bgpctl show su) COMP_CWORD=2 && _bgpctl && echo "${COMPREPLY[*]}"' \
    _ "$COMPLETION")
[ "$words" = summary ] || fail "bash completion of 'bgpctl show su' gave '$words', not 'summary'"

step "autopkgtests"
# Every test of debian/tests/control, with the packages it depends on.
deps=$(sed -n 's/^Depends://p' "$TREE/debian/tests/control" | tr ',' '\n' | sed 's/ //g' \
    | grep -v '^@$' | grep -v '^$' | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086
[ -z "$deps" ] || "${APT[@]}" --no-install-recommends install $deps >/dev/null
for t in $(sed -n 's/^Tests://p' "$TREE/debian/tests/control"); do
    echo "--- autopkgtest $t"
    tmp=$(mktemp -d "$WORK/autopkgtest-$t.XXXXXX")
    (cd "$TREE" && AUTOPKGTEST_TMP="$tmp" "debian/tests/$t") || fail "autopkgtest $t"
    TESTS="$TESTS $t"
done
TESTS=${TESTS# }

step "upgrade keeps the config and the state store"
AUTOPKGTEST_TMP=$(mktemp -d "$WORK/upgrade-test.XXXXXX")
# shellcheck source=debian/tests/lib.sh
. "$TREE/debian/tests/lib.sh"
if have_systemd; then
    # The package's own restart: the unit runs before and after the upgrade,
    # in the route lab's namespace, with BIRD's routes in its kernel table.
    route_lab_up "$AUTOPKGTEST_TMP/bird"
    cat >>/etc/bgpd/config.toml <<TOML

[kernel]
table = 254
protocol = 186

[[neighbors]]
address = "192.0.2.2"
remote_as = 64497
hold_time = 9
connect_retry_time = 2
import_policy = ["accept-all"]
export_policy = ["reject-all"]
TOML
    echo "# a local change, kept across the upgrade" >>/etc/bgpd/config.toml
    systemctl restart bgpd
    bgpctl neighbor add 192.0.2.9 --remote-as 64499 --disabled --description kept-across-upgrade
    wait_kernel_routes
    before=$(systemctl show -P ExecMainStartTimestampMonotonic bgpd)
    "${APT[@]}" install "$DEB2"
    systemctl is-active -q bgpd || fail "bgpd is not running after the upgrade"
    [ "$(systemctl show -P ExecMainStartTimestampMonotonic bgpd)" != "$before" ] \
        || fail "the upgrade did not restart bgpd"
    log "the upgraded service learns BIRD's routes again"
    wait_kernel_routes
else
    echo "# a local change, kept across the upgrade" >>/etc/bgpd/config.toml
    # No systemd: deb-systemd-invoke does nothing, so the daemon is run as
    # the unit would, before and after the upgrade.
    NS=debpkg-up-$$-$RANDOM
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    start_like_unit "$NS" "$AUTOPKGTEST_TMP/up1.log"
    wait_ready "$AUTOPKGTEST_TMP/up1.log"
    bgpctl neighbor add 192.0.2.9 --remote-as 64499 --disabled --description kept-across-upgrade
    stop_bgpd
    "${APT[@]}" install "$DEB2"
    start_like_unit "$NS" "$AUTOPKGTEST_TMP/up2.log"
    wait_ready "$AUTOPKGTEST_TMP/up2.log"
fi
[ "$(dpkg-query -W -f='${Version}' bgpd)" = "$VERSION+upgrade1" ] || fail "the upgrade is not installed"
tail -n 1 /etc/bgpd/config.toml | grep -q "kept across the upgrade" || fail "the upgrade replaced the changed config"
[ "$(stat -c %U:%G:%a /etc/bgpd/config.toml)" = root:bgpd:640 ] || fail "config.toml lost its mode"
bgpctl show summary | tee "$AUTOPKGTEST_TMP/up2.summary"
grep -q "192.0.2.9.*kept-across-upgrade" "$AUTOPKGTEST_TMP/up2.summary" \
    || fail "the API's neighbor (the state store) did not survive the upgrade"
if ! have_systemd; then
    stop_bgpd
    ip netns del "$NS"
    NS=
fi

step "remove (the config stays, the code goes)"
"${APT[@]}" remove bgpd
if have_systemd; then
    systemctl is-active -q bgpd && fail "remove did not stop bgpd"
    # Its clean stop withdrew them; the prerm's flush (the machine's own
    # table) never saw this namespace.
    left=$(ip -n "$NS" route show proto 186)
    [ -z "$left" ] || fail "remove left bgpd's kernel routes: $left"
    route_lab_down
    [ "$(systemctl show -P LoadState bgpd)" = not-found ] || fail "bgpd.service is still loaded after remove"
    ip netns del "$NS"
    NS=
fi
[ -f /etc/bgpd/config.toml ] || fail "remove took the conffile"
[ ! -e /usr/lib/python3/dist-packages/bgpd ] || fail "remove left the code"
[ ! -e /usr/bin/bgpctl ] || fail "remove left bgpctl"
[ ! -e "$COMPLETION" ] || fail "remove left $COMPLETION"
! grep -q "bgpd" /usr/lib/python3/dist-packages/twisted/plugins/dropin.cache \
    || fail "twistd's plugin cache still lists bgpd"
twistd3 --help >"$WORK/twistd-help.txt" 2>&1 || true
! grep -q "^ *bgpd " "$WORK/twistd-help.txt" || fail "twistd3 still offers bgpd"

if have_systemd; then
    # Every start, reload, kill, upgrade and stop above: none left a traceback.
    journalctl -u bgpd -o cat --no-pager >"$WORK/bgpd-journal.txt"
    echo "bgpd's journal: $(wc -l <"$WORK/bgpd-journal.txt") lines; its errors and warnings:"
    grep -A2 -E '#(error|warn)\]' "$WORK/bgpd-journal.txt" || true
    grep -q Traceback "$WORK/bgpd-journal.txt" && { grep -B5 -A20 Traceback "$WORK/bgpd-journal.txt" >&2; fail "a traceback in bgpd's journal"; }
fi

step "purge leaves nothing"
"${APT[@]}" purge bgpd
left=
getent passwd bgpd >/dev/null && left="$left user-bgpd"
getent group bgpd >/dev/null && left="$left group-bgpd"
for d in /etc/bgpd /var/lib/bgpd /run/bgpd /var/log/bgpd /usr/libexec/bgpd /usr/share/doc/bgpd "$COMPLETION"; do
    [ ! -e "$d" ] || left="$left $d"
done
dpkg-statoverride --list /etc/bgpd/config.toml >/dev/null 2>&1 && left="$left statoverride"
dpkg-query -W bgpd >/dev/null 2>&1 && left="$left dpkg-status"
# What deb-systemd-helper enabled (the wants/ link and its state files).
for f in /etc/systemd/system/multi-user.target.wants/bgpd.service /var/lib/systemd/deb-systemd-helper-enabled/bgpd.service \
         /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/bgpd.service; do
    [ ! -e "$f" ] || left="$left $f"
done
routes=$(ip route show proto 186 table all; ip -6 route show proto 186 table all)
[ -z "$routes" ] || left="$left routes-proto-186"
for ns in $(ip netns list | awk '{print $1}'); do
    case $ns in debpkg-*) left="$left netns-$ns" ;; esac
done
[ -z "$left" ] || fail "purge left:$left"
echo "nothing left: no user or group bgpd, no /etc/bgpd, /var/lib/bgpd, /run/bgpd, no proto 186 routes"
[ -n "$PREBUILT" ] || rm -rf "$WORK/upgrade" "$TREE"
