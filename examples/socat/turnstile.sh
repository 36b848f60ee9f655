#!/bin/sh
# Turnstile from any POSIX shell with nothing but socat: source this file, then
#
#   token=$(ts_acquire '"project":"alpha","mode":"issue"') || exit $?
#   ts_heartbeat "$token"
#   ts_release "$token"
#
# Every request is one line of JSON on the daemon's Unix socket; every answer one line back.
# The socket is $TURNSTILE_SOCKET, else $XDG_RUNTIME_DIR/turnstile.sock, else
# /tmp/turnstile-$(id -u)/turnstile.sock (the daemon's own defaults).

ts_socket() {
    if [ -n "${TURNSTILE_SOCKET:-}" ]; then echo "$TURNSTILE_SOCKET"
    elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then echo "$XDG_RUNTIME_DIR/turnstile.sock"
    else echo "/tmp/turnstile-$(id -u)/turnstile.sock"
    fi
}

# ts_request JSON [SECONDS]: sends one request, prints the daemon's answer line. SECONDS is
# how long to wait for it (a waiting acquire needs its wait_ms plus a margin).
ts_request() {
    printf '%s\n' "$1" | socat -t "${2:-5}" - "UNIX-CONNECT:$(ts_socket)"
}

# ts_field NAME: prints the value of a top-level string or number field of the answer on stdin.
ts_field() {
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" | head -n 1
}

# ts_acquire [FIELDS]: takes a detached lease (it outlives this shell's socat connection and
# lives on heartbeats) and prints its token; otherwise prints why to stderr and fails with the
# CLI's codes: 75 no permit (now, or within wait_ms), 69 no daemon, 1 any other refusal.
# FIELDS are extra JSON members, e.g. '"project":"alpha","wait_ms":60000,"pid":'$$
ts_acquire() {
    fields=${1:+,$1}
    wait_ms=$(printf '%s' "$fields" | sed -n 's/.*"wait_ms":\([0-9]*\).*/\1/p')
    answer=$(ts_request "{\"op\":\"acquire\",\"detach\":true$fields}" $(( ${wait_ms:-0} / 1000 + 5 )) 2>/dev/null)
    case $answer in
        *'"ok":true'*) printf '%s\n' "$answer" | ts_field lease ;;
        '') printf 'turnstile: no answer (is turnstiled running on %s?)\n' "$(ts_socket)" >&2; return 69 ;;
        *'"error":"unavailable"'*|*'"error":"timeout"'*) printf 'turnstile: %s\n' "$answer" >&2; return 75 ;;
        *) printf 'turnstile: %s\n' "$answer" >&2; return 1 ;;
    esac
}

# ts_heartbeat TOKEN: extends the lease by its ttl; fails if it is gone.
ts_heartbeat() {
    case $(ts_request "{\"op\":\"heartbeat\",\"lease\":\"$1\"}") in
        *'"ok":true'*) return 0 ;;
        *) return 1 ;;
    esac
}

# ts_release TOKEN: gives the permit back.
ts_release() {
    case $(ts_request "{\"op\":\"release\",\"lease\":\"$1\"}") in
        *'"ok":true'*) return 0 ;;
        *) return 1 ;;
    esac
}
