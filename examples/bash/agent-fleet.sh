#!/usr/bin/env bash
# agent-fleet.sh: ten fake agents, two projects, two modes, one daemon with `global = 3`.
#
# Every agent is wrapped in `turnstile run`, which waits for a permit, runs the agent with
# TURNSTILE_LEASE / TURNSTILE_FENCE / TURNSTILE_MODEL / TURNSTILE_ROUTE in its environment,
# heartbeats the lease while it runs and releases it when it ends. The script starts all ten at
# once as background jobs, waits for them, and prints:
#   - one line per agent (project, mode, model, route, fence), in agent order;
#   - the grant order: agents sorted by fence (fences rise with every grant), which shows the
#     round-robin policy rotating across modes, and across projects within a mode;
#   - the most agents that ever ran at once, computed from a shared log of start/end markers;
#   - a summary line.
# It exits 0 if every agent exited 0 and no more than $GLOBAL ran at once, 1 otherwise.
#
# The daemon's config (see README.md):
#
#   [limits]
#   global = 3
#
# Environment:
#   TURNSTILE         the turnstile CLI (default: `turnstile` on PATH)
#   TURNSTILE_SOCKET  the daemon's socket (default: the daemon's own default)
#   GLOBAL            the daemon's global limit, for the check (default 3)
#   WORK              seconds each agent works (default 0.3)
#   FLEET_LOG         the start/end marker log (default: a temporary file, removed at the end)
set -u

TURNSTILE=${TURNSTILE:-turnstile}
GLOBAL=${GLOBAL:-3}
WORK=${WORK:-0.3}
AGENTS=10

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/agent-fleet.XXXXXX") || exit 1
keep_log=${FLEET_LOG:+yes}
FLEET_LOG=${FLEET_LOG:-$work_dir/fleet.log}
: > "$FLEET_LOG"
cleanup() {
    rm -rf "$work_dir"
    [ -n "$keep_log" ] || rm -f "$FLEET_LOG"
}
trap cleanup EXIT
export FLEET_LOG WORK

# What each agent does under its permit. Its project and mode come from AGENT_PROJECT and
# AGENT_MODE (turnstile run does not export them); the rest from TURNSTILE_*.
agent_body='
echo "start $AGENT_NAME" >> "$FLEET_LOG"
echo "$AGENT_NAME project=$AGENT_PROJECT mode=$AGENT_MODE model=${TURNSTILE_MODEL:--} route=${TURNSTILE_ROUTE:--} fence=$TURNSTILE_FENCE"
sleep "$WORK"
echo "end $AGENT_NAME" >> "$FLEET_LOG"
'

pids=()
for i in $(seq 1 "$AGENTS"); do
    name=$(printf 'agent-%02d' "$i")
    if [ $((i % 2)) -eq 1 ]; then project=alpha; model=anthropic/claude-sonnet-4
    else project=beta; model=zai/glm-4.7; fi
    if [ $(((i - 1) / 2 % 2)) -eq 0 ]; then mode=time; else mode=issue; fi
    AGENT_NAME=$name AGENT_PROJECT=$project AGENT_MODE=$mode \
        "$TURNSTILE" run --project "$project" --mode "$mode" --model "$model" --holder "$name" \
            --ttl 10s --wait 60s -- sh -c "$agent_body" > "$work_dir/$name.out" 2>&1 &
    pids+=("$!")
done

failed=0
for i in "${!pids[@]}"; do
    name=$(printf 'agent-%02d' $((i + 1)))
    if wait "${pids[$i]}"; then :; else
        status=$?
        echo "$name exited $status" >&2
        failed=$((failed + 1))
    fi
done

# One line per agent, in agent order (turnstile's own messages, if any, go to stderr).
for i in $(seq 1 "$AGENTS"); do
    name=$(printf 'agent-%02d' "$i")
    grep "^$name " "$work_dir/$name.out" || sed "s/^/$name: /" "$work_dir/$name.out" >&2
done

# Grant order: fences rise with every grant, so sorting by fence gives the order of the grants.
echo "grant order (fence project/mode agent):"
cat "$work_dir"/agent-*.out \
    | sed -n 's/^\(agent-[0-9]*\) project=\([^ ]*\) mode=\([^ ]*\) .* fence=\([0-9]*\)$/  \4 \2\/\3 \1/p' \
    | sort -n

# The most agents running at once, from the start/end markers.
max=$(awk '$1 == "start" { n++; if (n > max) max = n } $1 == "end" { n-- } END { print max + 0 }' "$FLEET_LOG")
echo "max concurrent: $max (global $GLOBAL)"

echo "fleet: $AGENTS agents, $((AGENTS - failed)) ok, $failed failed"
[ "$failed" -eq 0 ] && [ "$max" -le "$GLOBAL" ]
