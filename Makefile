# haproxy-systemd-wrapper — build, run, test, bench, install.
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= /lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/haproxy-systemd-wrapper
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO      ?= go
BIN     := build/haproxy-systemd-wrapper
RUN_DIR := $(CURDIR)/build/run
UNITS   := haproxy.service haproxy@.service haproxy-forking.service haproxy-legacy.service
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps run test unit-test lint fuzz storm soak bench units install clean

all: build

# A static binary (no cgo): it runs on any distribution release, and only
# without cgo can it block signals on every thread over an upgrade's exec.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./wrapper

# deps installs what the wrapper and its tests need from Debian's packages
# when it is missing: haproxy (its install script must not start a haproxy of
# its own, hence the temporary policy-rc.d), systemd (for the real-systemd
# tests) and man-db (the man page's check).
deps:
	@if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ] || [ ! -x /lib/systemd/systemd ] || ! command -v man >/dev/null 2>&1; then \
		echo "installing haproxy, systemd and man-db with apt-get"; \
		set -e; made=0; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy systemd man-db >/dev/null; \
		if [ $$made = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	fi
	@/usr/sbin/haproxy -v | head -1

# run: the wrapper in the foreground on the demo config (127.0.0.1:8080).
# curl 127.0.0.1:8080; kill -USR2 <pid> or "make reload" reloads; Ctrl-C stops.
run: deps build
	@mkdir -p $(RUN_DIR)
	@echo "demo: curl http://127.0.0.1:8080/  ·  reload: kill -USR2 <wrapper pid> or 'make reload'  ·  stop: Ctrl-C"
	HSW_RUN=$(RUN_DIR) CONFIG=$(CURDIR)/testdata/demo.cfg PIDFILE=$(RUN_DIR)/haproxy.pid \
	HAPROXY_STATS_SOCKET=$(RUN_DIR)/admin.sock HAPROXY_WRAPPER_CONTROL_SOCKET=$(RUN_DIR)/control.sock \
	HAPROXY_WRAPPER_RUNTIME_DIR=$(RUN_DIR)/gen HAPROXY_WRAPPER_PIDFILE=$(RUN_DIR)/wrapper.pid \
	exec $(BIN)

reload status:
	HAPROXY_WRAPPER_CONTROL_SOCKET=$(RUN_DIR)/control.sock $(BIN) $@

# test: every test, against the real haproxy and a real systemd.
test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# unit-test: the packages' own tests only (no haproxy, no systemd needed).
unit-test:
	$(GO) test -race -count=1 ./wrapper/internal/...

lint:
	@test -z "$$(gofmt -l wrapper)" || { gofmt -l wrapper; echo "gofmt: run gofmt -w wrapper"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) ./...

fuzz:
	$(GO) test ./wrapper/internal/haproxy -run '^$$' -fuzz '^FuzzParseShowInfo$$' -fuzztime 15s
	$(GO) test ./wrapper/internal/proc -run '^$$' -fuzz '^FuzzParsePIDs$$' -fuzztime 15s
	$(GO) test ./wrapper/internal/handoff -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 15s

# storm: stop signals at random moments, 600 tries of each signal and moment,
# built like the release (no -race, no cgo); make test runs 40 of each.
storm:
	HSW_STOP_TRIES=$${HSW_STOP_TRIES:-600} CGO_ENABLED=0 $(GO) test -count=1 -timeout 90m -run '^TestStopSignalsAtRandomMoments$$' -v ./wrapper

# soak: 3000 reloads under load with connections dropped at random moments
# (TestSoakRandomDrain; several minutes, not part of make test).
soak: deps
	HSW_SOAK_RELOADS=$${HSW_SOAK_RELOADS:-3000} $(GO) test -count=1 -timeout 60m -run '^TestSoakRandomDrain$$' -v ./wrapper

# bench: BENCH_SIZES=0,1000 selects the configuration sizes (default
# 0,1000,10000,50000,map); BENCH_FLAGS passes more flags (see -h).
bench: deps build
	$(GO) run ./wrapper/bench -wrapper $(BIN) $(if $(BENCH_SIZES),-sizes $(BENCH_SIZES)) $(BENCH_FLAGS)

# units are rendered every time: SBINDIR may differ from the last run.
units:
	@mkdir -p build
	for u in $(UNITS); do sed -e 's:@SBINDIR@:$(SBINDIR):g' -e '/^@HARDENING@$$/{r contrib/systemd/hardening.inc' -e 'd;}' contrib/systemd/$$u.in > build/$$u; done

# install: the wrapper, haproxy.service (Type=notify, recommended) as the
# unit; the forking and legacy units and the drop-in example as documentation
# (each is meant to be installed as haproxy.service instead).
install: build units
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/haproxy-systemd-wrapper
	install -D -m 0644 build/haproxy.service $(DESTDIR)$(UNITDIR)/haproxy.service
	install -D -m 0644 build/haproxy@.service $(DESTDIR)$(UNITDIR)/haproxy@.service
	install -D -m 0644 doc/haproxy-systemd-wrapper.8 $(DESTDIR)$(MANDIR)/man8/haproxy-systemd-wrapper.8
	install -d $(DESTDIR)$(DOCDIR)/systemd
	install -m 0644 build/haproxy-forking.service build/haproxy-legacy.service contrib/systemd/overwrite.conf $(DESTDIR)$(DOCDIR)/systemd/

clean:
	rm -rf build
