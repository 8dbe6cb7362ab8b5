# haproxy-systemd-wrapper — build, run, test, bench, install.
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/haproxy-systemd-wrapper
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO      ?= go
BIN     := build/haproxy-systemd-wrapper
RUN_DIR := $(CURDIR)/build/run
UNITS   := haproxy.service haproxy.socket haproxy@.service haproxy-forking.service haproxy-legacy.service haproxy.service.d.conf haproxy-reload.path haproxy-reload.service haproxy-notify-reload.service
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps run test matrix unit-test lint fuzz storm soak bench units install uninstall deb clean

all: build

# A static binary (no cgo): it runs on any distribution release, and only
# without cgo can it block signals on every thread over an upgrade's exec.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION) $(LDFLAGS_EXTRA)" -o $(BIN) ./wrapper

# deps installs what the wrapper and its tests need from Debian's packages
# when it is missing: haproxy (its install script must not start a haproxy of
# its own, hence the temporary policy-rc.d), systemd (for the real-systemd
# tests), man-db (the man page's check), python3-prometheus-client (a real
# parser for the metrics' tests), lintian (the package's check) and
# mmdebstrap (the Debian roots of make matrix).
deps:
	@if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ] || [ ! -x /lib/systemd/systemd ] || ! command -v man >/dev/null 2>&1 \
		|| [ ! -d /usr/lib/python3/dist-packages/prometheus_client ] || ! command -v lintian >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then \
		echo "installing haproxy, systemd, man-db, python3-prometheus-client, lintian and mmdebstrap with apt-get"; \
		set -e; made=0; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy systemd man-db python3-prometheus-client lintian mmdebstrap >/dev/null; \
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
	$(MAKE) matrix

# matrix: the unit tests under other Debian releases' own systemd and haproxy
# (trixie: systemd 257, haproxy 3.0; sid: systemd 262, haproxy 3.2), booted
# from minimal roots that mmdebstrap builds from the mirror in the machine's
# apt sources, cached in HSW_ROOTS_DIR (default /var/cache/hsw-roots) for a
# week. One line of figures per release; the full log in build/matrix-*.log.
# Debian 12 (bookworm, the host's release) gets only the package's install
# test: the rest runs under the host's own systemd in make test.
MATRIX_SUITES ?= trixie sid
MATRIX_DEB_SUITES ?= bookworm
MATRIX_TESTS  := ^(TestDebInstallsInRoot|TestNotifyReloadUnit|TestStart|TestStartBrokenConfig|TestReloadUnderLoad|TestReloadBrokenConfig|TestStop|TestRestartAfterHAProxyKilled|TestTemplateInstancesUnderLoad|TestReloadOnConfigChangePath|TestStatusTextShowsLiveFigures|TestForkingUnitShowsLiveStatus|TestWrapperBinaryIsStatic|TestBareCommandsFindTheService|TestCommandsFindTemplateInstances|TestStockConfigReloadsKeepSockets|TestRestartsLoseNothing|TestCrashesRefuseNothing|TestSocketActivation)$$
matrix: deps
	@mkdir -p build; set -e; for s in $(MATRIX_SUITES); do \
		log=build/matrix-$$s.log; \
		if ! HSW_SUITE=$$s $(GO) test -count=1 -timeout 20m -run '$(MATRIX_TESTS)' -v ./wrapper/systemdtest > $$log 2>&1; then \
			grep -E -- '--- FAIL|_test.go:[0-9]+:' $$log | head -40; echo "matrix $$s: FAILED (full log: $$log)"; exit 1; fi; \
		hv=$$(grep -o -m1 'haproxy-systemd-wrapper: haproxy [^ ]* (' $$log | cut -d' ' -f3); \
		sv=$$(grep -o -m1 'systemd [0-9][0-9]* ([^)]*)' $$log || true); \
		pass=$$(grep -c -- '^    --- PASS\|^--- PASS' $$log); \
		load=$$(grep -o 'load[^:]*: [0-9]* ok, [0-9]* failed' $$log | awk '{ok+=$$(NF-3); f+=$$(NF-1)} END {printf "%d requests, %d failed", ok+f, f}'); \
		echo "matrix $$s: haproxy $$hv, $${sv:-systemd ?}: $$pass tests and subtests passed; under load during reloads: $$load"; \
	done; \
	for s in $(MATRIX_DEB_SUITES); do \
		log=build/matrix-$$s.log; \
		if ! HSW_SUITE=$$s $(GO) test -count=1 -timeout 20m -run '^TestDebInstallsInRoot$$' -v ./wrapper/systemdtest > $$log 2>&1; then \
			grep -E -- '--- FAIL|_test.go:[0-9]+:' $$log | head -40; echo "matrix $$s: FAILED (full log: $$log)"; exit 1; fi; \
		echo "matrix $$s: $$(grep -o -m1 'systemd [0-9][0-9]* ([^)]*)' $$log): make deb's package installs with dpkg beside the haproxy package, switches its haproxy.service to the wrapper, starts, reloads, stops, removes"; \
	done

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

# PACKAGED_UNIT is the haproxy.service a distribution package owns here
# (Debian's haproxy package; empty when none): then install never writes a
# unit named haproxy.service but switches the packaged one to the wrapper by a
# drop-in of its own, UNITDIR/haproxy.service.d/50-haproxy-systemd-wrapper.conf.
PACKAGED_UNIT ?= $(shell for f in /lib/systemd/system/haproxy.service /usr/lib/systemd/system/haproxy.service; do \
	if [ -f $$f ] && { dpkg -S $$f || rpm -qf $$f; } >/dev/null 2>&1; then echo $$f; break; fi; done)
# MANIFEST lists what install wrote (paths without DESTDIR), for uninstall.
MANIFEST = $(DOCDIR)/installed-files

# install: the wrapper, the man page, haproxy@.service, and haproxy.service
# (Type=notify, recommended) or, where a package owns haproxy.service, the
# drop-in that switches it to the wrapper; the forking and legacy units and
# the overwrite.conf example as documentation. Never a file a package owns.
install: build units
	@set -e; m="$(DESTDIR)$(MANIFEST)"; mkdir -p "$$(dirname "$$m")"; : > "$$m.new"; \
	put() { install -D -m "$$1" "$$2" "$(DESTDIR)$$3"; echo "$$3" >> "$$m.new"; echo "installed $(DESTDIR)$$3"; }; \
	put 0755 $(BIN) $(SBINDIR)/haproxy-systemd-wrapper; \
	put 0644 contrib/haproxy-systemd-wrapper.8 $(MANDIR)/man8/haproxy-systemd-wrapper.8; \
	put 0644 build/haproxy@.service $(UNITDIR)/haproxy@.service; \
	put 0644 build/haproxy-reload.path $(UNITDIR)/haproxy-reload.path; \
	put 0644 build/haproxy-reload.service $(UNITDIR)/haproxy-reload.service; \
	if [ -n "$(PACKAGED_UNIT)" ]; then \
		echo "$(PACKAGED_UNIT) belongs to a package: switching it to the wrapper with a drop-in"; \
		put 0644 build/haproxy.service.d.conf $(UNITDIR)/haproxy.service.d/50-haproxy-systemd-wrapper.conf; \
	else \
		put 0644 build/haproxy.service $(UNITDIR)/haproxy.service; \
	fi; \
	for f in haproxy-forking.service haproxy-legacy.service haproxy-notify-reload.service haproxy.socket; do put 0644 build/$$f $(DOCDIR)/systemd/$$f; done; \
	put 0644 contrib/systemd/overwrite.conf $(DOCDIR)/systemd/overwrite.conf; \
	echo "$(MANIFEST)" >> "$$m.new"; mv "$$m.new" "$$m"; \
	echo "then: systemctl daemon-reload && systemctl enable --now haproxy"

# uninstall: removes exactly what install wrote (its manifest), then the
# folders of its own that are left empty (never a system folder).
uninstall:
	@set -e; m="$(DESTDIR)$(MANIFEST)"; \
	if [ ! -f "$$m" ]; then echo "nothing to uninstall: no $$m"; exit 0; fi; \
	while read -r f; do [ -n "$$f" ] || continue; rm -f "$(DESTDIR)$$f"; echo "removed $(DESTDIR)$$f"; done < "$$m"; \
	for d in $(UNITDIR)/haproxy.service.d $(DOCDIR)/systemd $(DOCDIR); do \
		[ ! -d "$(DESTDIR)$$d" ] || rmdir --ignore-fail-on-non-empty "$(DESTDIR)$$d"; done

# deb: a Debian package built with dpkg-deb from this tree (no network):
# the wrapper in /usr/sbin, the drop-in that switches Debian's haproxy.service
# to it, haproxy@.service, haproxy-reload.path/.service, the man page; the
# forking and legacy units and overwrite.conf as examples. Version from git
# (0~gitDATE.HASH), Depends: haproxy. "lintian build/*.deb" checks it.
DEB_MAINTAINER ?= haproxy-systemd-wrapper developers <haproxy-systemd-wrapper@users.noreply.github.com>
DEB_VERSION    ?= 0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0).$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
DEB_ARCH       := $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB            := build/haproxy-systemd-wrapper_$(DEB_VERSION)_$(DEB_ARCH).deb
deb:
	$(MAKE) build units SBINDIR=/usr/sbin LDFLAGS_EXTRA="-s -w"
	@set -e; r=build/deb; rm -rf $$r; doc=$$r/usr/share/doc/haproxy-systemd-wrapper; u=$$r/usr/lib/systemd/system; \
	install -D -m 0755 $(BIN) $$r/usr/sbin/haproxy-systemd-wrapper; \
	install -D -m 0644 build/haproxy.service.d.conf $$u/haproxy.service.d/50-haproxy-systemd-wrapper.conf; \
	for f in haproxy@.service haproxy-reload.path haproxy-reload.service; do install -D -m 0644 build/$$f $$u/$$f; done; \
	install -d $$r/usr/share/man/man8; gzip -9n < contrib/haproxy-systemd-wrapper.8 > $$r/usr/share/man/man8/haproxy-systemd-wrapper.8.gz; \
	install -D -m 0644 contrib/debian/copyright $$doc/copyright; \
	install -D -m 0644 contrib/debian/lintian-overrides $$r/usr/share/lintian/overrides/haproxy-systemd-wrapper; \
	for f in haproxy-forking.service haproxy-legacy.service haproxy-notify-reload.service haproxy.socket; do install -D -m 0644 build/$$f $$doc/examples/$$f; done; \
	install -m 0644 contrib/systemd/overwrite.conf $$doc/examples/overwrite.conf; \
	sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' -e "s|@COMMIT@|$$(git rev-parse HEAD 2>/dev/null || echo unknown)|" \
		-e "s|@DATE@|$$(git log -1 --format=%cD 2>/dev/null || date -R)|" contrib/debian/changelog.in | gzip -9n > $$doc/changelog.gz; \
	chmod 0644 $$doc/changelog.gz $$r/usr/share/man/man8/haproxy-systemd-wrapper.8.gz; \
	install -d $$r/DEBIAN; install -m 0755 contrib/debian/postinst contrib/debian/postrm $$r/DEBIAN/; \
	(cd $$r && find usr -type f | sort | xargs md5sum) > $$r/DEBIAN/md5sums; chmod 0644 $$r/DEBIAN/md5sums; \
	sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
		-e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $$r | cut -f1)|" contrib/debian/control.in > $$r/DEBIAN/control; \
	find $$r -type d -exec chmod 0755 {} +; \
	dpkg-deb --root-owner-group -Zxz --build $$r $(DEB) >/dev/null; echo "built $(DEB)"

clean:
	rm -rf build
