# Turnstile: `make run` starts the daemon, `make test` runs every test.
# Both install what a fresh Debian machine lacks (libuv, socat) and need no input.

SWIFT      ?= swift
TEST_TIMEOUT ?= 1800
APT_PACKAGES := libuv1-dev socat

.PHONY: deps build release test run clean

# Installs libuv and socat only when missing; never fails when they are there already.
deps:
	@missing=""; \
	pkg-config --exists libuv || missing="$$missing libuv1-dev"; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$sudo apt-get install -y -qq $$missing </dev/null >/dev/null 2>&1 || \
		{ $$sudo apt-get update -qq </dev/null >/dev/null && $$sudo apt-get install -y -qq $$missing </dev/null; }; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Builds everything (the integration tests start the real binaries), then runs every test.
test: deps
	$(SWIFT) build --build-tests
	timeout $(TEST_TIMEOUT) $(SWIFT) test --skip-build

# Starts the daemon in the foreground with its embedded defaults (Ctrl-C stops it).
run: release
	.build/release/turnstiled

clean:
	rm -rf .build
