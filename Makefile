# webswitch: two commands do everything on a fresh machine (as root):
#   make demo   build, bring up the test network, show the switch working
#   make test   unit tests, fuzz seed corpora, and the end-to-end tests
SHELL   := /bin/bash
GO      ?= go
BIN     := bin
FUZZTIME ?= 30s

# Packages whose tests bring up whole test networks: they run one at a time,
# after the unit tests.
E2E_PKGS := ./bench/e2e/ ./bench/scenario/ ./bench/pktrate/

.PHONY: all build demo test unit e2e bench vet fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

demo: build
	$(BIN)/wsbench demo -bin $(BIN)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# Unit tests (no root needed) run every fuzz target on its committed seed
# corpus; the end-to-end tests need root and skip without it. They run after
# the unit tests, alone, so that no other test competes for the 2 CPUs while
# they count retransmissions.
test: vet unit e2e

unit:
	$(GO) test -count=1 -timeout 5m $$($(GO) list ./... | grep -v -e /bench/e2e -e /bench/scenario -e /bench/pktrate)

e2e:
	$(GO) test -p 1 -count=1 -v -timeout 15m $(E2E_PKGS) 2>&1 | grep -v '^            {'; exit $${PIPESTATUS[0]}

# The bench harness, quick: every set-up and size in under 3 minutes; the
# report goes to bench-out/ (wsbench run -h for the full run's flags).
bench: build
	$(BIN)/wsbench run -bin $(BIN) -out bench-out -quick

# Run every fuzz target for FUZZTIME each (not in CI).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
