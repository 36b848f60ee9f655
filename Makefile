# Turnstile: `make run` starts the daemon, `make test` runs every test.
# Every target installs what a fresh Debian machine lacks and needs no input.

SHELL         := /bin/bash
SWIFT         ?= swift
TEST_TIMEOUT  ?= 2400
FUZZ_SECONDS  ?= 600
FUZZ_SHORT    ?= 45
SOAK_MINUTES  ?= 30
APT_PACKAGES  := libuv1-dev socat python3
BENCH_PACKAGES := redis-server gnuplot-nox

.PHONY: deps bench-deps build release test test-unit fuzz fuzz-short fuzz-build test-asan run bench soak clean

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

bench-deps: deps
	$(call install_missing,$(BENCH_PACKAGES))

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Every test: unit, protocol, integration (real binaries, real sockets, real processes), then
# a short libFuzzer run seeded from protocol/vectors.
test: test-unit fuzz-short

test-unit: deps
	$(SWIFT) build --build-tests
	timeout $(TEST_TIMEOUT) $(SWIFT) test --skip-build

# Starts the daemon in the foreground with its embedded defaults (Ctrl-C stops it).
run: release
	.build/release/turnstiled

# The benchmark suite against the C floor and Redis (not part of `make test`); `swift build`
# builds every target, turnstile-load (the C ping-pong client) and turnstile-floor with them.
bench: bench-deps
	$(SWIFT) build -c release
	.build/release/turnstile-bench suite --output bench-results

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
	rm -rf .build .build-fuzz .build-asan .build-prof bench-results
