#!/usr/bin/env bash
# run.sh: three turnstiled daemons on one machine sharing a model limit of 3 through a 3-member
# etcd, and a fleet of fake agents spread over them; prints each host's use and the fleet's
# every couple of seconds, then stops everything.
#
#   swift build && examples/cluster/run.sh
#
# Everything runs on loopback in a temporary directory (removed at the end, unless KEEP=1):
# etcd from Tests/cluster/etcd-cluster.sh, daemons h1 h2 h3 with examples/cluster/turnstile.toml,
# agents from Tests/cluster/fleet.py (each one loops: acquire "fake/opus" with a wait, work a
# while, release). At the end the agents' own records go through Tests/cluster/checker.py,
# which says whether more than 3 ever held the model at once.
#
# Environment:
#   TURNSTILED   the daemon (default: .build/debug/turnstiled, else .build/release/turnstiled)
#   ETCD ETCDCTL etcd and etcdctl (default: on PATH; Debian's etcd-server and etcd-client)
#   SECONDS_RUN  how long the agents run (default 20)
#   AGENTS       how many agents, spread over the three hosts (default 9)
#   WORK_MS      how long an agent holds the model, MIN:MAX ms (default 300:1500)
#   CONFIG       the config template (default: turnstile.toml beside this script)
#   KEEP=1       keep the temporary directory (logs, configs, the agents' records)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cluster_tests="$repo/Tests/cluster"
seconds_run="${SECONDS_RUN:-20}"
agents="${AGENTS:-9}"
work_ms="${WORK_MS:-300:1500}"
hosts=(h1 h2 h3)

turnstiled="${TURNSTILED:-}"
if [ -z "$turnstiled" ]; then
    for candidate in "$repo/.build/debug/turnstiled" "$repo/.build/release/turnstiled"; do
        [ -x "$candidate" ] && { turnstiled="$candidate"; break; }
    done
fi
[ -n "$turnstiled" ] && [ -x "$turnstiled" ] || { echo "run.sh: no turnstiled: run swift build (or set TURNSTILED)" >&2; exit 1; }
command -v "${ETCD:-etcd}" >/dev/null && command -v "${ETCDCTL:-etcdctl}" >/dev/null ||
    { echo "run.sh: etcd and etcdctl are needed (apt-get install etcd-server etcd-client, or set ETCD/ETCDCTL)" >&2; exit 1; }

dir="$(mktemp -d /tmp/turnstile-cluster.XXXXXX)"   # short: socket paths are limited to ~100 bytes
pids=()
fleet_pid=""
cleanup() {
    set +e
    [ -n "$fleet_pid" ] && kill -- "-$fleet_pid" 2>/dev/null   # the agents run in a session of their own
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    bash "$cluster_tests/etcd-cluster.sh" stop "$dir/etcd"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls "$@" every 100 ms until it succeeds, for at most $1 seconds.
wait_for() {
    local seconds="$1"; shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

echo "== etcd: 3 members on loopback"
endpoints="$(bash "$cluster_tests/etcd-cluster.sh" start "$dir/etcd" | tail -n 1)"
echo "   $endpoints"
quoted="$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$endpoints")"
prefix="/turnstile/example-$(basename "$dir" | tr -cd 'A-Za-z0-9')/"

echo "== daemons: ${hosts[*]} (a shared limit of 3 on fake/opus; prefix $prefix)"
for host in "${hosts[@]}"; do
    mkdir -p "$dir/$host"
    sed -e "s|@ENDPOINTS@|$quoted|" -e "s|@PREFIX@|$prefix|" -e "s|@HOST@|$host|" \
        "${CONFIG:-$here/turnstile.toml}" >"$dir/$host/turnstile.toml"
    "$turnstiled" --socket "$dir/$host/s" --state-dir "$dir/$host/state" --config "$dir/$host/turnstile.toml" \
        </dev/null >"$dir/$host/log" 2>&1 &
    pids+=($!)
done
for i in "${!hosts[@]}"; do
    host="${hosts[$i]}"
    if ! wait_for 30 grep -q "turnstiled ready" "$dir/$host/log" || ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "run.sh: $host did not start; its log:" >&2
        cat "$dir/$host/log" >&2
        exit 1
    fi
done

# Each daemon's status answer, and a line of what it says: per host, then the fleet.
show_use() {
    python3 - "$dir" "${hosts[@]}" <<'EOF'
import json, os, socket, sys, time
directory, hosts = sys.argv[1], sys.argv[2:]

def status(host):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(os.path.join(directory, host, "s"))
        s.sendall(b'{"id":1,"op":"status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return json.loads(data)

parts, fleet_held, fleet_waiting, limit, etcd_view = [], 0, 0, None, None
for host in hosts:
    try:
        answer = status(host)
    except (OSError, ValueError) as error:
        parts.append(f"{host}: ({error.__class__.__name__})")
        continue
    model = (answer.get("models") or {}).get("fake/opus") or {}
    held = model.get("in_use", 0)
    limit = model.get("limit", limit)
    waiting = sum(1 for w in answer.get("waiting", []) if w.get("model") == "fake/opus")
    cluster = answer.get("cluster") or {}
    reach = "" if "reachable" not in cluster else (" etcd ok" if cluster["reachable"] else " etcd LOST")
    parts.append(f"{host}: {held} held {waiting} waiting{reach}")
    if etcd_view is None and "use" in cluster:  # the slots in etcd per host, as this daemon last polled them
        etcd_view = (cluster["use"].get("fake/opus") or {})
    fleet_held += held
    fleet_waiting += waiting
print(f"{time.strftime('%H:%M:%S')}  " + " | ".join(parts)
      + f" || fleet: {fleet_held}/{limit if limit is not None else '?'} held, {fleet_waiting} waiting"
      + ("" if etcd_view is None else " (etcd slots: " + (", ".join(f"{h} {n}" for h, n in sorted(etcd_view.items())) or "none") + ")"),
      flush=True)
EOF
}

echo "== $agents agents for ${seconds_run} s, each looping: acquire fake/opus (wait), work ${work_ms} ms, release"
sockets=()
for host in "${hosts[@]}"; do sockets+=(--socket "$host=$dir/$host/s"); done
# In a session of its own (the agents are its child processes), so that a stop reaches them all.
python3 -c 'import os, sys
try:
    os.setsid()
except OSError:
    pass  # a process group leader already (job control on)
os.execvp(sys.argv[1], sys.argv[1:])' python3 "$cluster_tests/fleet.py" "${sockets[@]}" --workers "$agents" --duration "$seconds_run" \
    --model fake/opus --hold-ms "$work_ms" --wait-ms 5000 --ttl-ms 6000 --name agent --out "$dir/records" \
    </dev/null >"$dir/fleet.json" 2>"$dir/fleet.log" &
fleet_pid=$!
while kill -0 "$fleet_pid" 2>/dev/null; do
    show_use
    sleep 2   # the report's period, not a synchronisation
done
wait "$fleet_pid" || true
fleet_pid=""

echo "== the agents' counts"
python3 -c '
import json, sys
total = json.load(open(sys.argv[1]))["total"]
print("   " + ", ".join(f"{k} {v}" for k, v in total.items() if k != "error_codes"))' "$dir/fleet.json" ||
    cat "$dir/fleet.log"
echo "== the checker over the agents' records (never more than 3 holding fake/opus at once?)"
python3 "$cluster_tests/checker.py" --limit 3 --resource fake/opus "$dir/records" | grep -v '^note:' | sed 's/^/   /'
