# Build and test tooling. A machine with Go, make, git and apt is enough:
# every other tool is installed here, under .cache/ (git-ignored).
#
#   make test        vet + unit + yaegi-test + e2e + soak-short + bench-smoke, stopping at the first failure
#   make demo        the plugin in a local Traefik against a dev tenant (or a real one)
#   make tools       Yaegi and Traefik, built once and cached

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go

MODULE          := github.com/tfa-plugin/entraauth
YAEGI_VERSION   := v0.16.1
TRAEFIK_VERSION := v3.6.12

CACHE        := $(CURDIR)/.cache
BIN          := $(CACHE)/bin
YAEGI        := $(BIN)/yaegi
TRAEFIK      := $(CACHE)/traefik-$(TRAEFIK_VERSION)/traefik
YAEGI_GOPATH := $(CACHE)/gopath
CHROMIUM     := /usr/bin/chromium

# apt-get needs root; use sudo when not root and it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

E2E_TIMEOUT ?= 30m
# E2E_RUN selects e2e tests by regexp, e.g. make e2e E2E_RUN=Browser
E2E_RUN ?= .

.PHONY: tools chromium vet unit yaegi-test e2e test demo clean

tools: $(YAEGI) $(TRAEFIK)

$(YAEGI):
	GOBIN=$(BIN) $(GO) install github.com/traefik/yaegi/cmd/yaegi@$(YAEGI_VERSION)

# `go install` refuses Traefik (its go.mod has replace directives): build it
# inside its module directory. The module cache is read-only, hence -o to an
# absolute path; its go.sum is complete, so the default -mod=readonly works.
# A cold build takes ~6 minutes; the binary is cached.
$(TRAEFIK):
	dir=$$($(GO) mod download -json github.com/traefik/traefik/v3@$(TRAEFIK_VERSION) \
		| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$$/\1/p'); \
	test -n "$$dir" || { echo "cannot find the Traefik $(TRAEFIK_VERSION) module directory" >&2; exit 1; }; \
	mkdir -p $(@D); \
	cd "$$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false $(GO) build -trimpath -o $@.tmp ./cmd/traefik; \
	mv $@.tmp $@; \
	$@ version

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium from Debian"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

vet:
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	@files=$$(git ls-files -co --exclude-standard -- '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'); \
	unformatted=$$(if [ -n "$$files" ]; then gofmt -l $$files; fi); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:" >&2; echo "$$unformatted" >&2; exit 1; fi

unit:
	$(GO) test -race -count=1 ./...

# Every package of the root module with tests runs under Yaegi, the way
# Traefik runs the plugin. Yaegi resolves imports through GOPATH, so a GOPATH
# whose src/$(MODULE) is this repository; `yaegi test ./pkg` does not work,
# the import path does.
#
# `yaegi test` shows what `go test` hides for a passing package: the
# plugin's own log lines ("entraauth[...]: sign-in refused ...", from tests
# of refusals) and a line "<file>:<line>:<col>: panic: ..." for every
# interpreted frame a panic unwinds, even when the code recovers it, as the
# tests of recovery make it do on purpose. Both are kept out of the output
# (counted, and kept with the rest in $(YAEGI_LOGS)), so that a passing run
# does not read as a crash; a failing package says where its whole output
# is.
YAEGI_LOGS  := $(CACHE)/yaegi-test
YAEGI_QUIET := '^entraauth\[|^[^ ]+\.go:[0-9]+:[0-9]+: panic: '

yaegi-test: $(YAEGI)
	@mkdir -p $(YAEGI_GOPATH)/src/$(dir $(MODULE)) $(YAEGI_LOGS)
	@ln -sfn $(CURDIR) $(YAEGI_GOPATH)/src/$(MODULE)
	@pkgs=$$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); \
	test -n "$$pkgs" || { echo "yaegi-test: no package with tests found" >&2; exit 1; }; \
	failed=""; \
	for p in $$pkgs; do \
		echo "=== yaegi test $$p"; \
		log=$(YAEGI_LOGS)/$$(echo "$$p" | tr / _).log; \
		GOPATH=$(YAEGI_GOPATH) timeout 15m $(YAEGI) test $$p 2>&1 | tee "$$log" | { grep --line-buffered -v -E $(YAEGI_QUIET) || true; } \
			|| failed="$$failed $$p"; \
		n=$$(grep -c -E $(YAEGI_QUIET) "$$log" || true); \
		if [ "$$n" != 0 ]; then echo "    ($$n lines left out: the plugin's log and Yaegi's trace of recovered panics, which tests provoke on purpose; all in $$log)"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "FAIL: yaegi test:$$failed (whole output, panic traces included, in $(YAEGI_LOGS)/)" >&2; exit 1; fi; \
	echo "yaegi-test: all packages pass under Yaegi $(YAEGI_VERSION)"

# The end-to-end suite: a separate module, so `go test ./...` at the root
# does not run it. It needs the Traefik binary and Chromium.
e2e: tools chromium
	cd e2e && TRAEFIK_BIN=$(TRAEFIK) CHROMIUM_BIN=$(CHROMIUM) $(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) -run '$(E2E_RUN)' ./...

test:
	$(MAKE) vet
	$(MAKE) unit
	$(MAKE) yaegi-test
	$(MAKE) e2e
	$(MAKE) soak-short
	$(MAKE) bench-smoke

# The plugin in a local Traefik: https://app.localhost:8443 and, with an
# allowedGroups rule, https://admin.localhost:8443 with the dev tenant, or the
# real tenant of ENTRA_TENANT_ID/ENTRA_CLIENT_ID/ENTRA_CLIENT_SECRET
# (ENTRA_ADMIN_GROUP for the admin router).
demo: tools
	TRAEFIK_BIN=$(TRAEFIK) ./scripts/demo.sh

clean:
	rm -rf $(CACHE)/demo $(YAEGI_GOPATH) $(YAEGI_LOGS) out

# Hardening. Fuzzing: every Fuzz target of the module, FUZZTIME each, one
# after another (plain go test, hence make test, replays the committed
# seeds). Soak: signed-in requests mixed with sign-ins and sign-outs through
# the real Traefik for SOAK_DURATION, checking answers, goroutines and
# memory; soak-short is the 10 s version make test runs.
FUZZTIME            ?= 60s
SOAK_DURATION       ?= 60s
SOAK_SHORT_DURATION ?= 10s

.PHONY: fuzz soak soak-short

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# soak_run runs TestSoak for $(1) with go test's timeout $(2). go test
# exits 0 when -run matches no test: the soak must be seen to pass, or a
# renamed test would turn it into a silent no-op.
soak_run = cd e2e && log=$$(mktemp) && trap 'rm -f "$$log"' EXIT && \
	TRAEFIK_BIN=$(TRAEFIK) SOAK_DURATION=$(1) $(GO) test -count=1 -v -timeout $(2) -run '^TestSoak$$' . 2>&1 | tee "$$log" && \
	{ grep -q '^--- PASS: TestSoak ' "$$log" || { echo "soak: TestSoak did not run and pass" >&2; exit 1; }; }

soak: tools
	$(call soak_run,$(SOAK_DURATION),30m)

soak-short: tools
	$(call soak_run,$(SOAK_SHORT_DURATION),10m)

# Performance. bench: Traefik alone, Traefik with a do-nothing Yaegi plugin
# (bench/noop), Traefik with the plugin and Traefik's forwardAuth to
# oauth2-proxy, each on its own HTTPS entry point on 127.0.0.1, loaded in
# turn by wrk with a browser's requests (bench/main.go says why wrk), then
# the HTTP/2 set loaded by h2load (each route with the cookies a browser
# sends it; users in 2, 50 and 200 groups), the plugin's cookie sizes, the
# memory check (10k and 100k sessions) and the cost of a sign-in;
# BENCH_FLAGS adds flags, e.g.
# BENCH_FLAGS='-duration 20s -rounds 5 -markdown out/bench.md'. bench-smoke
# is the short run make test does: it checks that the benchmark works and
# that every configuration behaves (the upstream's view of each request),
# not how fast. bench-go: the Go benchmarks of the signed-in request and of
# ID token verification, compiled and under Yaegi, and the plugin under
# Yaegi as Traefik loads it next to the do-nothing plugin (bench/interp).
OAUTH2_PROXY_VERSION := v7.15.6
OAUTH2_PROXY         := $(BIN)/oauth2-proxy
BENCH                := $(BIN)/entraauth-bench
BENCH_FLAGS          ?=

.PHONY: bench bench-smoke bench-go bench-build wrk h2load

$(OAUTH2_PROXY):
	GOBIN=$(BIN) $(GO) install github.com/oauth2-proxy/oauth2-proxy/v7@$(OAUTH2_PROXY_VERSION)

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk from Debian"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y wrk; }

# h2load (nghttp2's) loads the HTTP/2 set as wrk loads the HTTP/1.1 one.
h2load:
	@command -v h2load >/dev/null 2>&1 || { \
		echo "installing h2load (nghttp2-client) from Debian"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y nghttp2-client; }

# The bench module is separate (like e2e), so go test ./... does not run it.
bench-build:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./... && $(GO) build -o $(BENCH) .

bench: tools wrk h2load $(OAUTH2_PROXY) bench-build
	$(BENCH) -repo $(CURDIR) -traefik $(TRAEFIK) -oauth2-proxy $(OAUTH2_PROXY) $(BENCH_FLAGS)

# Every configuration, oauth2-proxy's included, everywhere: a smoke run
# that passed without one would read as a check it did not make. (The
# bench binary's -oauth2-proxy none still leaves it out by hand, never
# with CI=true.)
bench-smoke: tools wrk h2load $(OAUTH2_PROXY) bench-build
	$(BENCH) -smoke -repo $(CURDIR) -traefik $(TRAEFIK) -oauth2-proxy $(OAUTH2_PROXY)

bench-go: $(YAEGI)
	$(GO) test -run '^$$' -bench . -benchmem . ./entraid
	mkdir -p $(YAEGI_GOPATH)/src/$(dir $(MODULE))
	ln -sfn $(CURDIR) $(YAEGI_GOPATH)/src/$(MODULE)
	GOPATH=$(YAEGI_GOPATH) $(YAEGI) test -run '^$$' -bench . -benchmem $(MODULE)
	GOPATH=$(YAEGI_GOPATH) $(YAEGI) test -run '^$$' -bench . -benchmem $(MODULE)/entraid
	cd bench && $(GO) run ./interp -repo $(CURDIR)
