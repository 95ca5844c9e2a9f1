# shellcheck shell=bash
# Shared by the autopkgtests of bgpd (sourced, not a test itself).
#
# Where systemd is PID 1, the service is started with systemctl.  Where it
# is not (a container, a CI runner, a Firecracker VM), the daemon is run
# the way bgpd.service runs it: its ExecStart, as its User and Group, with
# only its AmbientCapabilities/CapabilityBoundingSet (setpriv), under
# NoNewPrivileges and its UMask, in the RuntimeDirectory and StateDirectory
# it names, and with a NOTIFY_SOCKET that must receive READY=1 (Type=notify).
# Every wait is bounded; everything started is stopped by its PID.

UNIT=/lib/systemd/system/bgpd.service
# Debian's own tools only: no virtualenv, pyenv or /usr/local on the path.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME BGPD_PURE_PYTHON
: "${AUTOPKGTEST_TMP:=$(mktemp -d)}"
# Out of the source tree (autopkgtest starts there): python3 must import
# the installed bgpd, not ./bgpd.
cd "$AUTOPKGTEST_TMP" || exit 1
BGPD_PID=
NOTIFY_PID=
NOTIFY_DIR=

log() { echo "[$(date +%T)] $*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# The unit's value of KEY (the last one given).
unit_value() {
    sed -n "s/^$1=//p" "$UNIT" | tail -n 1
}

have_systemd() {
    [ -d /run/systemd/system ] && [ "$(ps -p 1 -o comm=)" = systemd ]
}

# setpriv's capability list ("+net_bind_service,+net_admin") from the unit's.
unit_caps() {
    local caps out=
    caps=$(unit_value AmbientCapabilities)
    for c in $caps; do
        c=${c#CAP_}
        out="$out,+$(echo "$c" | tr '[:upper:]' '[:lower:]')"
    done
    echo "${out#,}"
}

# Run the unit's ExecStart as the unit does (see above).  $1: a network
# namespace to run it in ("" for none), $2: the log file.  Sets BGPD_PID.
start_like_unit() {
    local ns=$1 logfile=$2 user group caps umask exec notify workdir
    user=$(unit_value User)
    group=$(unit_value Group)
    caps=$(unit_caps)
    umask=$(unit_value UMask)
    exec=$(unit_value ExecStart)
    # systemd's default for a system unit: /
    workdir=$(unit_value WorkingDirectory)
    [ -n "$user" ] && [ -n "$caps" ] && [ -n "$exec" ] || fail "cannot read $UNIT"
    [ "$(unit_value NoNewPrivileges)" = yes ] || fail "the unit lacks NoNewPrivileges=yes"
    # RuntimeDirectory= and StateDirectory= with their modes, as systemd makes them.
    install -d -o "$user" -g "$group" -m "$(unit_value RuntimeDirectoryMode)" \
        "/run/$(unit_value RuntimeDirectory)"
    install -d -o "$user" -g "$group" -m "$(unit_value StateDirectoryMode)" \
        "/var/lib/$(unit_value StateDirectory)"
    # Where the unit's user can reach it (AUTOPKGTEST_TMP may be 0700 root).
    NOTIFY_DIR=$(mktemp -d /run/bgpd-notify.XXXXXX)
    chmod 0755 "$NOTIFY_DIR"
    notify="$NOTIFY_DIR/notify.sock"
    rm -f "$AUTOPKGTEST_TMP/notify.out"
    # The notify socket: what systemd would read; records every datagram.
    python3 - "$notify" "$AUTOPKGTEST_TMP/notify.out" "$user" <<'EOF' &
import os, pwd, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chown(sys.argv[1], pwd.getpwnam(sys.argv[3]).pw_uid, -1)
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    for _ in range(10):
        try:
            data = s.recv(4096)
        except TimeoutError:
            break
        out.write(data.decode() + "\n")
        out.flush()
EOF
    NOTIFY_PID=$!
    for _ in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done
    [ -S "$notify" ] || fail "notify socket not made"
    local prefix=()
    [ -n "$ns" ] && prefix=(ip netns exec "$ns")
    # shellcheck disable=SC2086
    "${prefix[@]}" env -i PATH=/usr/bin:/bin NOTIFY_SOCKET="$notify" \
        setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
        --inh-caps=-all,"$caps" --ambient-caps=-all,"$caps" --bounding-set=-all,"$caps" \
        sh -c "cd ${workdir:-/} && umask $umask && exec $exec" >"$logfile" 2>&1 &
    BGPD_PID=$!
    log "started bgpd as $user with $caps (pid $BGPD_PID)"
}

# Wait (bounded) until bgpd said READY=1 on the notify socket, as
# `systemctl start` waits for a Type=notify unit.
wait_ready() {
    local logfile=$1
    for _ in $(seq 300); do
        if grep -qx "READY=1" "$AUTOPKGTEST_TMP/notify.out" 2>/dev/null; then
            log "bgpd sent READY=1"
            return 0
        fi
        kill -0 "$BGPD_PID" 2>/dev/null || { cat "$logfile" >&2; fail "bgpd exited before READY=1"; }
        sleep 0.2
    done
    cat "$logfile" >&2
    fail "no READY=1 from bgpd within 60 s"
}

# SIGTERM (what systemctl stop sends), a bounded wait, then SIGKILL.
stop_bgpd() {
    [ -n "$BGPD_PID" ] || return 0
    kill -TERM "$BGPD_PID" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$BGPD_PID" 2>/dev/null || break
        sleep 0.2
    done
    local status=0
    if kill -0 "$BGPD_PID" 2>/dev/null; then
        kill -KILL "$BGPD_PID" 2>/dev/null || true
        log "bgpd did not stop within 30 s: killed"
        status=1
    fi
    wait "$BGPD_PID" 2>/dev/null || true
    BGPD_PID=
    [ -z "$NOTIFY_PID" ] || kill "$NOTIFY_PID" 2>/dev/null || true
    NOTIFY_PID=
    [ -z "$NOTIFY_DIR" ] || rm -rf "$NOTIFY_DIR"
    NOTIFY_DIR=
    return $status
}

# A user in the group bgpd (and nothing else), to run bgpctl as an admin would.
make_admin() {
    local name=$1
    getent passwd "$name" >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin \
        --groups bgpd "$name"
}

as_user() {
    local name=$1
    shift
    env -i PATH=/usr/bin:/bin setpriv --reuid="$name" --regid="$(id -g "$name")" --init-groups \
        --inh-caps=-all --bounding-set=-all "$@"
}

# (systemd as PID 1) Wait, bounded, for a line of bgpd's journal since $1
# that contains $2.
wait_journal() {
    local since=$1 text=$2
    for _ in $(seq 100); do
        journalctl -u bgpd --since "$since" -o cat 2>/dev/null | grep -qF "$text" && return 0
        sleep 0.2
    done
    journalctl -u bgpd --since "$since" -o cat >&2 || true
    return 1
}

# (systemd as PID 1) The unit's sandbox took effect on the running process
# $1: its user, its two capabilities and no more, no new privileges, the
# seccomp filter, and in its own mount namespace a read-only /usr and /etc
# (ProtectSystem=strict), a writable /var/lib/bgpd, a private /tmp.
check_unit_sandbox() {
    local pid=$1 status
    status=$(cat /proc/"$pid"/status)
    [ "$(stat -c %U /proc/"$pid")" = bgpd ] || fail "bgpd does not run as the user bgpd"
    grep -q "^CapEff:.*0000000000001400$" <<<"$status" || fail "capabilities are not the unit's: $(grep CapEff <<<"$status")"
    grep -q "^CapBnd:.*0000000000001400$" <<<"$status" || fail "the bounding set is not the unit's"
    grep -q "^NoNewPrivs:.*1$" <<<"$status" || fail "NoNewPrivileges did not take effect"
    grep -q "^Seccomp:.*2$" <<<"$status" || fail "no seccomp filter (SystemCallFilter=)"
    [ "$(readlink /proc/"$pid"/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] || fail "bgpd shares PID 1's mount namespace"
    local in=(nsenter --target "$pid" --mount)
    "${in[@]}" findmnt -n -o OPTIONS -T /usr | grep -q '^ro' || fail "/usr is writable for bgpd"
    "${in[@]}" findmnt -n -o OPTIONS -T /etc | grep -q '^ro' || fail "/etc is writable for bgpd"
    "${in[@]}" findmnt -n -o OPTIONS -T /var/lib/bgpd | grep -q '^rw' || fail "/var/lib/bgpd is not writable for bgpd"
    "${in[@]}" findmnt -n -o FSROOT -T /tmp | grep -q "systemd-private-.*-bgpd.service-" \
        || fail "bgpd's /tmp is not its own (PrivateTmp=)"
    log "the sandbox holds: user bgpd, CapEff 0x1400, NoNewPrivs, seccomp, read-only /usr and /etc, private /tmp"
}
