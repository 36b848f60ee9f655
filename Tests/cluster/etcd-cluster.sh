#!/usr/bin/env bash
# A 3-member etcd cluster on loopback for TurnstileCluster's tests and the etcd-recipe benchmark.
#
#   etcd-cluster.sh start DIR        3 members on free 127.0.0.1 ports; waits until all are healthy
#   etcd-cluster.sh stop DIR         stops every member (SIGKILL) and removes the data
#   etcd-cluster.sh kill DIR N       SIGKILLs member N (1..3) and waits until it is gone
#   etcd-cluster.sh restart DIR N    starts member N again (it rejoins: --initial-cluster-state
#                                    existing, same data) and waits until it is healthy
#   etcd-cluster.sh pause DIR N      SIGSTOPs member N;   resume DIR N: SIGCONTs it
#   etcd-cluster.sh leader DIR       prints the number of the member that leads (waits for one)
#   etcd-cluster.sh wait-healthy DIR waits until every running member is healthy
#
# With ETCD_TLS=1 at start, the members' client URLs are https:// and they require a client
# certificate: DIR/tls gets a CA (ca.pem), the members' certificate for 127.0.0.1
# (server.pem, server-key.pem) and a client's (client.pem, client-key.pem), made with openssl;
# the other commands see DIR/tls and speak TLS too.
#
# DIR gets `endpoints` (the client URLs, comma-separated, member order) and, per member, mN/pid,
# mN/client_port, mN/peer_port, mN/log. etcd's data directories go on tmpfs (/dev/shm) when it
# is writable, so fsync costs nothing and the figures measure the round trips, not the disk;
# DIR/data names where they are. Timings: --heartbeat-interval 100 --election-timeout 1000
# --pre-vote. Every wait polls with a deadline (WAIT_SECONDS, 30 by default); none is a fixed
# sleep. Needs etcd and etcdctl (Debian's etcd-server and etcd-client) and python3.
set -euo pipefail

members=3
etcd="${ETCD:-etcd}"
etcdctl="${ETCDCTL:-etcdctl}"

usage() { sed -n '4,12p' "$0" >&2; exit 2; }
die() { echo "etcd-cluster.sh: $*" >&2; exit 1; }

# Polls "$@" every 50 ms until it succeeds or the deadline passes.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + ${WAIT_SECONDS:-30}))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "etcd-cluster.sh: timed out waiting for $what" >&2; return 1; }
        sleep 0.05
    done
}

member_url() {
    local scheme=http
    [ "$2" = client ] && [ -d "$dir/tls" ] && scheme=https
    echo "$scheme://127.0.0.1:$(cat "$dir/m$1/$2_port")"
}
# etcdctl's TLS flags when the cluster speaks TLS.
ctl_tls() { [ -d "$dir/tls" ] && echo "--cacert=$dir/tls/ca.pem --cert=$dir/tls/client.pem --key=$dir/tls/client-key.pem" || true; }
# The members' TLS flags when the cluster speaks TLS.
member_tls() {
    [ -d "$dir/tls" ] && echo "--cert-file=$dir/tls/server.pem --key-file=$dir/tls/server-key.pem --trusted-ca-file=$dir/tls/ca.pem --client-cert-auth" || true
}

# A CA, a certificate for the members (127.0.0.1) and one for clients, all signed by the CA.
make_tls() {
    local tls="$dir/tls"
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=turnstile test CA" 2>/dev/null
        local name
        for name in server client; do
            openssl req -newkey rsa:2048 -nodes -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=turnstile test $name" 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$name.ext"
            openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out "$name.pem" -days 2 \
                -extfile "$name.ext" 2>/dev/null
        done
    ) || die "openssl could not make the test certificates"
}
member_pid() { cat "$dir/m$1/pid" 2>/dev/null || true; }
# A process that exists and is not a zombie (a killed member may wait to be reaped).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) [ZX] ' "/proc/$1/stat"; }
gone() { ! alive "$1"; }
# shellcheck disable=SC2046 # the TLS flags split into words on purpose
healthy() { "$etcdctl" --endpoints="$(member_url "$1" client)" $(ctl_tls) --dial-timeout=1s --command-timeout=1s endpoint health; }

initial_cluster() {
    local n out=""
    for n in $(seq 1 $members); do out="$out${out:+,}m$n=$(member_url "$n" peer)"; done
    echo "$out"
}

# Starts member $1 in the background, in a session of its own, its output in mN/log. It keeps
# no other descriptor of ours: a caller reading our output through a pipe (the Swift fixture)
# would otherwise wait for an end-of-file that only the member's death brings.
launch() {
    local n="$1" state="$2"
    (
        for fd in /proc/self/fd/*; do fd="${fd##*/}"; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
        exec setsid "$etcd" --name "m$n" --data-dir "$(cat "$dir/data")/m$n" \
            --listen-client-urls "$(member_url "$n" client)" --advertise-client-urls "$(member_url "$n" client)" \
            --listen-peer-urls "$(member_url "$n" peer)" --initial-advertise-peer-urls "$(member_url "$n" peer)" \
            --initial-cluster "$(initial_cluster)" --initial-cluster-token "turnstile-$(basename "$dir")" \
            --initial-cluster-state "$state" --heartbeat-interval 100 --election-timeout 1000 --pre-vote $(member_tls) \
            --logger zap --log-outputs stderr
    ) </dev/null >>"$dir/m$n/log" 2>&1 &
    echo $! >"$dir/m$n/pid"
}

# 2 free loopback ports per member, all held open at once so that they differ.
free_ports() {
    python3 -c '
import socket
socks = [socket.socket() for _ in range(int(__import__("sys").argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' $((2 * members))
}

start() {
    mkdir -p "$dir"
    [ -e "$dir/data" ] && die "$dir holds a cluster already (stop it first)"
    local data
    if [ -w /dev/shm ]; then data="$(mktemp -d /dev/shm/turnstile-etcd.XXXXXX)"; else data="$dir/etcd-data"; mkdir -p "$data"; fi
    echo "$data" >"$dir/data"
    [ "${ETCD_TLS:-0}" = 1 ] && make_tls
    # A port taken between free_ports and etcd's bind makes the start fail; it is tried again.
    local attempt n ports
    for attempt in 1 2 3; do
        read -r -a ports <<<"$(free_ports)"
        for n in $(seq 1 $members); do
            mkdir -p "$dir/m$n"
            echo "${ports[$((2 * n - 2))]}" >"$dir/m$n/client_port"
            echo "${ports[$((2 * n - 1))]}" >"$dir/m$n/peer_port"
        done
        for n in $(seq 1 $members); do launch "$n" new; done
        if wait_healthy; then
            local urls=""
            for n in $(seq 1 $members); do urls="$urls${urls:+,}$(member_url "$n" client)"; done
            echo "$urls" >"$dir/endpoints"
            echo "$urls"
            return 0
        fi
        echo "etcd-cluster.sh: start attempt $attempt failed; member logs:" >&2
        tail -n 5 "$dir"/m*/log >&2 || true
        stop_members
        rm -rf "${data:?}"/m*
    done
    stop
    die "could not start the cluster"
}

wait_healthy() {
    local n
    for n in $(seq 1 $members); do
        alive "$(member_pid "$n")" || continue
        wait_for "member $n to be healthy" healthy "$n" || return 1
    done
}

# SIGKILL, not SIGTERM: a leader that is asked to stop first hands its leadership over, and with
# its peers stopping too it waits etcd's request timeout (7 s here) for that. The data goes anyway.
stop_members() {
    local n pid
    for n in $(seq 1 $members); do
        pid="$(member_pid "$n")"
        alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    done
    for n in $(seq 1 $members); do
        pid="$(member_pid "$n")"
        wait_for "member $n to stop" gone "$pid" || true
        rm -f "$dir/m$n/pid"
    done
}

stop() {
    [ -d "$dir" ] || return 0
    stop_members
    if [ -f "$dir/data" ]; then
        local data; data="$(cat "$dir/data")"
        case "$data" in /dev/shm/turnstile-etcd.*|"$dir"/etcd-data) rm -rf "$data" ;; esac
        rm -f "$dir/data"
    fi
}

member_arg() {
    [[ "${1:-}" =~ ^[1-9]$ ]] && [ "$1" -le $members ] || die "member number 1..$members expected, got '${1:-}'"
}

kill_member() {
    local pid; pid="$(member_pid "$1")"
    alive "$pid" || die "member $1 is not running"
    kill -KILL "$pid"
    wait_for "member $1 to die" gone "$pid"
}

restart_member() {
    alive "$(member_pid "$1")" && die "member $1 is running"
    launch "$1" existing
    wait_for "member $1 to rejoin" healthy "$1"
}

leader() {
    wait_for "a leader" leader_now
    leader_now
}

# The member whose status says it is the leader (among the running, unpaused ones).
leader_now() {
    local n urls=""
    for n in $(seq 1 $members); do
        local pid; pid="$(member_pid "$n")"
        alive "$pid" && ! grep -q '^[0-9]* (.*) T ' "/proc/$pid/stat" && urls="$urls${urls:+,}$(member_url "$n" client)"
    done
    [ -n "$urls" ] || return 1
    # shellcheck disable=SC2046
    "$etcdctl" --endpoints="$urls" $(ctl_tls) --dial-timeout=1s --command-timeout=1s endpoint status -w json 2>/dev/null |
        python3 -c '
import json, sys
urls = sys.argv[1].split(",")
for entry in json.load(sys.stdin):
    status = entry["Status"]
    if status.get("leader") and status["leader"] == status["header"]["member_id"]:
        print(urls.index(entry["Endpoint"]) + 1); sys.exit(0)
sys.exit(1)' "$(cat "$dir/endpoints")"
}

command="${1:-}"
[ -n "$command" ] && [ -n "${2:-}" ] || usage
dir="$(realpath -m "$2")"
case "$command" in
    start) start ;;
    stop) stop ;;
    kill) member_arg "${3:-}"; kill_member "$3" ;;
    restart) member_arg "${3:-}"; restart_member "$3" ;;
    pause) member_arg "${3:-}"; kill -STOP "$(member_pid "$3")" ;;
    resume) member_arg "${3:-}"; kill -CONT "$(member_pid "$3")" ;;
    leader) leader ;;
    wait-healthy) wait_healthy ;;
    *) usage ;;
esac
