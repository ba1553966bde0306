# webswitch: two commands do everything on a fresh machine (as root):
#   make demo   build, bring up the test network, show the switch working
#   make test   unit tests, fuzz seed corpora, and the end-to-end tests
# Both first install the Debian packages they need that are missing
# (dist/deps.sh, the list in dist/deps/debian.txt); without root they only
# name them (the end-to-end tests skip without root anyway).
SHELL   := /bin/bash
GO      ?= go
BIN     := bin
FUZZTIME ?= 30s

# Packages whose tests bring up whole test networks: they run one at a time,
# after the unit tests.
E2E_PKGS := ./bench/e2e/ ./bench/scenario/ ./bench/pktrate/

.PHONY: all build deps demo test unit e2e bench vet fuzz clean install

# make install: binaries to $(DESTDIR)$(PREFIX)/bin, example configurations to
# $(DESTDIR)/etc/webswitch (an existing configuration file is kept: the new
# example goes next to it as FILE.example), systemd units and the sysusers.d
# entry of the daemons' user (docs/operations.md).
PREFIX      ?= /usr/local
DESTDIR     ?=
CONFDIR     := $(DESTDIR)/etc/webswitch
UNITDIR     := $(DESTDIR)/lib/systemd/system
SYSUSERSDIR := $(DESTDIR)/usr/lib/sysusers.d

all: build

# The build's version: webswitch -version, its GET /version and
# webswitch ctl upgrade show it.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/ ./cmd/...

deps:
	@dist/deps.sh

demo: deps build
	$(BIN)/wsbench demo -bin $(BIN)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# Unit tests (no root needed) run every fuzz target on its committed seed
# corpus; the end-to-end tests need root and skip without it. They run after
# the unit tests, alone, so that no other test competes for the 2 CPUs while
# they count retransmissions.
test: deps vet unit e2e

unit: deps
	$(GO) test -count=1 -timeout 5m $$($(GO) list ./... | grep -v -e /bench/e2e -e /bench/scenario -e /bench/pktrate)

e2e: deps
	$(GO) test -p 1 -count=1 -v -timeout 15m $(E2E_PKGS) 2>&1 | grep -v '^            {'; exit $${PIPESTATUS[0]}

# The bench harness, quick: every set-up and size in under 3 minutes; the
# report goes to bench-out/ (wsbench run -h for the full run's flags).
bench: deps build
	$(BIN)/wsbench run -bin $(BIN) -out bench-out -quick

# Run every fuzz target for FUZZTIME each (not in CI).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg || exit 1; \
	  done; \
	done

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(CONFDIR) $(UNITDIR) $(SYSUSERSDIR)
	install -m 0755 $(BIN)/webswitch $(BIN)/handoffd $(BIN)/wsbench $(DESTDIR)$(PREFIX)/bin/
	@for f in switch.toml agent.toml; do \
	  if [ -e $(CONFDIR)/$$f ]; then \
	    install -m 0644 conf/testdata/$$f $(CONFDIR)/$$f.example && \
	    echo "kept $(CONFDIR)/$$f; the new example is $(CONFDIR)/$$f.example"; \
	  else \
	    install -m 0644 conf/testdata/$$f $(CONFDIR)/$$f; \
	  fi || exit 1; \
	done
	for u in webswitch handoffd; do \
	  sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' dist/systemd/$$u.service >$(UNITDIR)/$$u.service && \
	  chmod 0644 $(UNITDIR)/$$u.service || exit 1; \
	done
	install -m 0644 dist/sysusers.d/webswitch.conf $(SYSUSERSDIR)/
	@# Into the live system: create the user, and tell a running systemd.
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/webswitch.conf; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf $(BIN)
