# Turnstile: `make run` starts the daemon, `make test` runs every test.
# Every target installs what a fresh Debian machine lacks and needs no input.

SHELL         := /bin/bash
SWIFT         ?= swift
TEST_TIMEOUT  ?= 2400
FUZZ_SECONDS  ?= 600
FUZZ_SHORT    ?= 45
SOAK_MINUTES  ?= 30
APT_PACKAGES  := libuv1-dev socat python3
PREFIX        ?= /usr/local
DESTDIR       ?=
STATIC_BUILD  := .build-static
STATIC_CLI_BUILD := .build-static-cli
BENCH_PACKAGES := redis-server gnuplot-nox
# The 3-member etcd cluster the cluster tests start (Tests/cluster/etcd-cluster.sh; openssl makes
# the certificates of its TLS variant).
TEST_PACKAGES := etcd-server etcd-client openssl
# Only to regenerate TurnstileCluster's code from etcd's protos (make etcd-protos).
PROTO_PACKAGES := golang-etcd-server-dev protobuf-compiler

.PHONY: deps bench-deps test-deps etcd-protos build release static install uninstall test test-unit test-install fuzz fuzz-short fuzz-build \
	test-asan run bench bench-cluster soak clean test-python

# Installs what is missing, and only that; never fails when everything is there already.
define install_missing
	@missing=""; \
	for package in $(1); do dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$sudo apt-get install -y -qq $$missing </dev/null >/dev/null 2>&1 || \
		{ $$sudo apt-get update -qq </dev/null >/dev/null && $$sudo apt-get install -y -qq $$missing </dev/null; }; \
	fi
endef

deps:
	$(call install_missing,$(APT_PACKAGES))

# etcd (TEST_PACKAGES) for the cluster part; without it that part says so and is skipped.
bench-deps: deps
	$(call install_missing,$(BENCH_PACKAGES) $(TEST_PACKAGES))

test-deps: deps
	$(call install_missing,$(TEST_PACKAGES))

# Regenerates Sources/TurnstileCluster/Generated/ from etcd's protos (see its README.md); no
# build needs it, the generated code is committed.
etcd-protos:
	$(call install_missing,$(PROTO_PACKAGES))
	bash Sources/TurnstileCluster/Generated/regenerate.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Both executables run on a host without a Swift toolchain. turnstiled has the Swift runtime and
# Foundation linked in and needs libuv and the C and C++ runtimes. turnstile, started once per
# agent launch, is a fully static executable (glibc and libstdc++ too): no dynamic loader, no
# relocations against shared libraries, 40% fewer page faults (README, "Performance"). It
# calls no libuv function (CLibUV gives it header-only helpers), but the module links -luv, which
# a static link must find as an archive: Debian's is libuv_a.a, linked as libuv.a from a
# directory of its own. -Xswiftc sets the link mode of every module, so the CLI is built in a
# scratch path of its own, not rebuilding the daemon's modules at each turn. Plus the man page
# generator.
static: deps
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path $(STATIC_BUILD) --product turnstiled
	mkdir -p $(STATIC_CLI_BUILD)/static-libs
	ln -sf "$$(dpkg -L libuv1-dev | grep '/libuv_a\.a$$')" $(STATIC_CLI_BUILD)/static-libs/libuv.a
	$(SWIFT) build -c release --scratch-path $(STATIC_CLI_BUILD) --product turnstile -Xswiftc -static-executable \
		-Xlinker -L$(CURDIR)/$(STATIC_CLI_BUILD)/static-libs
	$(SWIFT) build -c release --scratch-path $(STATIC_BUILD) --product generate-manual

# Installs under $(DESTDIR)$(PREFIX): the binaries, turnstile(1), turnstiled(8), turnstile.toml(5),
# bash, zsh and fish completions, and the systemd user units (ExecStart= set to the binary here).
install: static
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d \
		$(DESTDIR)$(PREFIX)/lib/systemd/user
	install -m 0755 -s $(STATIC_BUILD)/release/turnstiled $(STATIC_CLI_BUILD)/release/turnstile $(DESTDIR)$(PREFIX)/bin/
	$(STATIC_BUILD)/release/generate-manual $(STATIC_CLI_BUILD)/release/turnstile --section 1 -o $(DESTDIR)$(PREFIX)/share/man/man1
	$(STATIC_BUILD)/release/generate-manual $(STATIC_BUILD)/release/turnstiled --section 8 -o $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 Sources/turnstiled/man/turnstile.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	for binary in $(STATIC_CLI_BUILD)/release/turnstile $(STATIC_BUILD)/release/turnstiled; do \
		tool=$$(basename $$binary); \
		$$binary --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$tool && \
		$$binary --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$tool && \
		$$binary --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$tool.fish \
		|| exit 1; \
	done
	sed 's|%h/.local/bin/turnstiled|$(PREFIX)/bin/turnstiled|' examples/systemd/turnstile.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/user/turnstile.service
	install -m 0644 examples/systemd/turnstile.socket $(DESTDIR)$(PREFIX)/lib/systemd/user/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/turnstiled $(DESTDIR)$(PREFIX)/bin/turnstile \
		$(DESTDIR)$(PREFIX)/share/man/man1/turnstile*.1 $(DESTDIR)$(PREFIX)/share/man/man8/turnstiled.8 \
		$(DESTDIR)$(PREFIX)/share/man/man5/turnstile.toml.5 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/turnstile $(DESTDIR)$(PREFIX)/share/bash-completion/completions/turnstiled \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_turnstile $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_turnstiled \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/turnstile.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/turnstiled.fish \
		$(DESTDIR)$(PREFIX)/lib/systemd/user/turnstile.service $(DESTDIR)$(PREFIX)/lib/systemd/user/turnstile.socket

# Every test: unit, protocol, integration (real binaries, real sockets, real processes), the
# Python package's tests against the daemon just built, an install into a temporary DESTDIR
# checked file by file with the toolchain out of reach, then a short libFuzzer run seeded from
# protocol/vectors.
test: test-unit test-python test-install fuzz-short

test-install:
	bash Tests/install/check-install.sh

# The etcd client's own tests run in a process of their own: its calls run as tasks on Swift's
# cooperative pool (one thread per core here), which the integration tests' blocking waits on
# daemons would otherwise starve into timeouts.
test-unit: test-deps
	$(SWIFT) build --build-tests
	timeout $(TEST_TIMEOUT) $(SWIFT) test --skip-build --filter TurnstileClusterTests
	timeout $(TEST_TIMEOUT) $(SWIFT) test --skip-build --skip TurnstileClusterTests

# The Python client package (examples/python) in a venv of its own, tested against the debug daemon.
PYTHON_VENV := .build-python/venv
test-python: build
	python3 -m venv $(PYTHON_VENV)
	$(PYTHON_VENV)/bin/python -m pip install --quiet --disable-pip-version-check ./examples/python pytest </dev/null
	TURNSTILED=$(CURDIR)/.build/debug/turnstiled $(PYTHON_VENV)/bin/python -m pytest -q examples/python/tests Tests/cluster </dev/null

# The fleet fault test of protocol/CLUSTER.md §7 for CHAOS_SECONDS (10 minutes): a 3-member etcd,
# three daemons sharing a model limit of 3, holders on every host, and etcd members killed, paused
# and restarted (leader included, quorum lost), daemons SIGKILLed and SIGSTOPped past their lease
# ttl, while the holders record; then Tests/cluster/checker.py judges the records (not part of
# `make test`, which runs one round of each fault through Tests/cluster/test_fleet_faults.py).
CHAOS_SECONDS ?= 600
.PHONY: cluster-chaos
cluster-chaos: build test-deps
	TURNSTILED=$(CURDIR)/.build/debug/turnstiled python3 Tests/cluster/fleet_faults.py --duration $(CHAOS_SECONDS) </dev/null

# Starts the daemon in the foreground with its embedded defaults (Ctrl-C stops it).
run: release
	.build/release/turnstiled

# The benchmark suite against the C floor and Redis (not part of `make test`); `swift build`
# builds every target, turnstile-load (the C ping-pong client) and turnstile-floor with them.
# Then its cluster part: three daemons sharing a model through a 3-member etcd on loopback
# against the plain etcd semaphore recipe (bench-results/cluster.json; skipped without etcd).
bench: bench-deps
	$(SWIFT) build -c release
	.build/release/turnstile-bench suite --output bench-results
	.build/release/turnstile-bench cluster-suite --output bench-results

# The cluster part alone.
bench-cluster: bench-deps
	$(SWIFT) build -c release
	.build/release/turnstile-bench cluster-suite --output bench-results

# libFuzzer over the framer, parser and request decoder, seeded from protocol/vectors.
fuzz-build: deps
	set -o pipefail; $(SWIFT) build -c release --product turnstile-fuzz --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | { grep -v "Cannot export local symbol" || true; }
	@mkdir -p .build-fuzz/seeds .build-fuzz/corpus
	@for file in protocol/vectors/*.ndjson; do \
		n=0; grep -E '^[A-Z]*>' $$file | sed 's/^[A-Z]*> //' | while IFS= read -r line; do \
			n=$$((n + 1)); printf '\020%s\n' "$$line" > .build-fuzz/seeds/$$(basename $$file .ndjson)-$$n; done; \
	done

fuzz: fuzz-build
	.build-fuzz/release/turnstile-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -print_final_stats=1 \
		.build-fuzz/corpus .build-fuzz/seeds

fuzz-short: fuzz-build
	.build-fuzz/release/turnstile-fuzz -max_total_time=$(FUZZ_SHORT) -max_len=70000 -print_final_stats=1 \
		.build-fuzz/corpus .build-fuzz/seeds

# The integration tests against binaries built with AddressSanitizer.
test-asan: deps
	$(SWIFT) build --build-tests --scratch-path .build-asan -Xswiftc -sanitize=address
	TURNSTILE_TEST_SANITIZED=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt timeout $(TEST_TIMEOUT) $(SWIFT) test --skip-build --scratch-path .build-asan \
		--no-parallel --filter TurnstileIntegrationTests

# Minutes of contention plus thousands of idle leases; RSS and descriptors must not grow.
soak: bench-deps
	$(SWIFT) build -c release
	.build/release/turnstile-bench soak --minutes $(SOAK_MINUTES) --connections 5000

clean:
	rm -rf .build .build-fuzz .build-asan .build-prof .build-static .build-static-cli bench-results
