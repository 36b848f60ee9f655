#!/bin/sh
# with-permit.sh [-p PROJECT] [-m MODE] [-t TTL_MS] [-w WAIT_MS] [-h HOLDER] -- COMMAND [ARGS...]
#
# Runs COMMAND holding a Turnstile permit, for shells without the `turnstile` CLI: acquires a
# detached lease bound to this script's pid (so it is released at once if the script dies),
# heartbeats it every third of its ttl while COMMAND runs, releases it when COMMAND ends, and
# exits with COMMAND's status. Exits 75 if no permit came within WAIT_MS (default: 0, at once),
# 69 if no daemon answers.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/turnstile.sh"

project=__global__ mode=any ttl_ms=30000 wait_ms=0 holder=with-permit
while [ $# -gt 0 ]; do
    case $1 in
        -p) project=$2; shift 2 ;;
        -m) mode=$2; shift 2 ;;
        -t) ttl_ms=$2; shift 2 ;;
        -w) wait_ms=$2; shift 2 ;;
        -h) holder=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "usage: $0 [-p PROJECT] [-m MODE] [-t TTL_MS] [-w WAIT_MS] [-h HOLDER] -- COMMAND..." >&2; exit 64 ;;
    esac
done
[ $# -gt 0 ] || { echo "with-permit.sh: no command given" >&2; exit 64; }

token=$(ts_acquire "\"project\":\"$project\",\"mode\":\"$mode\",\"ttl_ms\":$ttl_ms,\"wait_ms\":$wait_ms,\"holder\":\"$holder\",\"pid\":$$") || exit $?

# Heartbeat in the background at a third of the ttl (in seconds with milliseconds: GNU and
# busybox sleep take fractions); stop when the lease is gone.
third=$(( ttl_ms / 3 ))
interval=$(( third / 1000 )).$(printf '%03d' $(( third % 1000 )))
( while sleep "$interval"; do ts_heartbeat "$token" || exit 0; done ) &
beats=$!
trap 'kill "$beats" 2>/dev/null; ts_release "$token"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$@"
status=$?
exit "$status"
