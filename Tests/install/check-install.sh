#!/usr/bin/env bash
# `make install` into a temporary DESTDIR, then checks what a packager and a user rely on: every
# file is installed; the binaries need nothing of the Swift toolchain (they run in a mount
# namespace where the toolchain's directory is an empty tmpfs); they answer --version and talk
# to each other; the man pages render; the completions load; the units name the installed binary.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d /tmp/turnstile-install-XXXXXX)
daemon=""
cleanup() {
    if [ -n "$daemon" ]; then kill -KILL "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@" >"$work/last.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what"
        sed 's/^/    /' "$work/last.log"
    fi
}

make --no-print-directory install DESTDIR="$work/dest" PREFIX=/usr/local >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    echo "install: 0 passed, 1 failed"
    exit 1
}
prefix="$work/dest/usr/local"

for file in bin/turnstiled bin/turnstile share/man/man1/turnstile.1 share/man/man8/turnstiled.8 \
    share/man/man5/turnstile.toml.5 share/bash-completion/completions/turnstile \
    share/bash-completion/completions/turnstiled share/zsh/site-functions/_turnstile \
    share/zsh/site-functions/_turnstiled share/fish/vendor_completions.d/turnstile.fish \
    share/fish/vendor_completions.d/turnstiled.fish lib/systemd/user/turnstile.service \
    lib/systemd/user/turnstile.socket; do
    check "installed $file" test -s "$prefix/$file"
done

# The toolchain's directory (/opt/swift/usr here), hidden under an empty tmpfs for the binaries.
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")
hidden() {
    exec unshare --mount --propagation private sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$toolchain" "$@"
}
check "the toolchain is really hidden in the namespace" \
    sh -c "! unshare --mount --propagation private sh -c 'mount -t tmpfs none \"\$0\" && test -e \"\$0/bin/swiftc\"' '$toolchain'"
check "no Swift runtime library is linked dynamically" \
    sh -c "! ldd '$prefix/bin/turnstiled' '$prefix/bin/turnstile' | grep -E 'libswift|libFoundation|libdispatch|$toolchain'"
# turnstile starts once per agent launch: a static executable has no dynamic loader to run first.
check "turnstile is a static executable" sh -c "LC_ALL=C ldd '$prefix/bin/turnstile' 2>&1 | grep -q 'not a dynamic executable'"
for tool in turnstiled turnstile; do
    check "$tool --version without the toolchain" sh -c "$(declare -f hidden); toolchain='$toolchain'; hidden '$prefix/bin/$tool' --version | grep -qx '[0-9][0-9.]*'"
done

socket="$work/t.sock"
# In a background subshell that `hidden` replaces by exec: $! is the daemon itself.
# Its log goes through a pipe the check reads until the daemon says it is ready (at most 10 s),
# then a reader keeps draining into daemon.log.
mkfifo "$work/daemon.pipe"
(hidden "$prefix/bin/turnstiled" --socket "$socket" --state-dir "$work/state" 2>"$work/daemon.pipe") &
daemon=$!
exec 3<"$work/daemon.pipe"
while IFS= read -r -t 10 line <&3; do
    echo "$line" >> "$work/daemon.log"
    case $line in *"turnstiled ready"*) break ;; esac
done
cat <&3 >> "$work/daemon.log" &
exec 3<&-
check "the installed turnstile runs a command under the installed daemon" \
    sh -c "$(declare -f hidden); toolchain='$toolchain'; hidden '$prefix/bin/turnstile' --socket '$socket' run -- sh -c 'test -n \"\$TURNSTILE_LEASE\"'"
check "and reads its status" \
    sh -c "$(declare -f hidden); toolchain='$toolchain'; hidden '$prefix/bin/turnstile' --socket '$socket' status --json | grep -q '\"global\"'"
kill -TERM "$daemon"
check "the daemon stops cleanly" wait "$daemon"
daemon=""

check "turnstile(1) renders" sh -c "man -l '$prefix/share/man/man1/turnstile.1' | grep -q 'conflict-exit-code'"
check "turnstiled(8) renders" sh -c "man -l '$prefix/share/man/man8/turnstiled.8' | grep -q 'check-config'"
check "turnstile.toml(5) renders" sh -c "man -l '$prefix/share/man/man5/turnstile.toml.5' | grep -q 'max_leases_per_connection'"
check "the bash completion loads" \
    bash -c "source '$prefix/share/bash-completion/completions/turnstile' && complete -p turnstile"
check "the service runs the installed binary" grep -qx 'ExecStart=/usr/local/bin/turnstiled --log-level info' \
    "$prefix/lib/systemd/user/turnstile.service"

make --no-print-directory uninstall DESTDIR="$work/dest" PREFIX=/usr/local >/dev/null
check "uninstall removes every file" sh -c "test -z \"\$(find '$work/dest' -type f)\""

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
