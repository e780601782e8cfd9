# mxwatch - build, dependencies, demo run, tests and benchmarks.
#   make          build ./mxwatch and the key-log shim build/mxwatch-keylog.so
#   make deps     install the Debian packages that are missing
#   make run      deps-demo (libraries, no server) + build + analyse the bundled captures
#   make test     deps + build + unit, capture and sanitizer tests
#   make fuzz     deps + every libFuzzer target for FUZZ_SECONDS (600) each
#   make bench    deps + build + throughput against a bare libpcap loop
#   make install  binary to $(PREFIX)/bin, appliance files to /etc (kept if present)

PKGS      := libpcap libndpi openssl sqlite3 libunbound libcurl zlib
CC        ?= gcc
CFLAGS    ?= -O2 -g
WARN      := -pthread -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
DEFS      := -D_DEFAULT_SOURCE -D_GNU_SOURCE
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread
INC       := -I. -Isensor
BUILD     := build
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_FLAGS := -O1 -g -fsanitize=thread

# Debian packages: what building and the demo need (libraries only: the
# demo installs no server), then what the tests add (tshark, nsd, nginx,
# Postfix, rsyslog, ...; their services are configured by the tests alone).
DEMO_PKGS := build-essential pkg-config libpcap-dev libndpi-dev libssl-dev libsqlite3-dev \
             libunbound-dev libevent-dev libcurl4-openssl-dev zlib1g-dev dns-root-data ca-certificates
DEB_PKGS  := build-essential pkg-config libpcap-dev libndpi-dev libssl-dev libsqlite3-dev \
             libcmocka-dev tshark python3 openssl libunbound-dev libevent-dev \
             libcurl4-openssl-dev zlib1g-dev dns-root-data sqlite3 nsd ldnsutils nginx unbound-host \
             bind9-dnsutils curl rsyslog rsyslog-relp util-linux tcpreplay iproute2 postfix swaks \
             libnet-ssleay-perl libprotobuf-c1 libpython3.11 python3-aiodns python3-aiohttp tcpdump \
             python3-yaml python3-aiosqlite python3-aioredis clang libclang-rt-14-dev valgrind
# Servers the judge test runs from their unpacked packages, never installed
# (installing them would start system services): downloaded into build/debs.
UNPACKED_DEBS := unbound postfix-mta-sts-resolver

# Sources are found by folder; the folders follow the data flow (README: Architecture).
SRC_DIRS  := sensor/util sensor/capture sensor/stream decoder rules db/sql db/policy db/refresh \
             sensor/run sensor/sinks sensor/ingest
LIB_SRC   := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
MAIN_SRC  := $(wildcard sensor/cli/*.c)
HDRS      := $(foreach d,$(SRC_DIRS) sensor/cli,$(wildcard $(d)/*.h))
UNIT_TESTS := test_packet test_certcache test_reasm test_flow test_jsonw test_smtp test_tls test_mutate test_mtasts test_policyfile test_verify test_dns test_siphash test_rules test_keylog test_observed

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(MAIN_SRC:%.c=$(BUILD)/%.o)
SAN_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/san/%.o)
SAN_MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/san/%.o)

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS  := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/fuzz/%.o)
FUZZ_BINS   := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/bin/%)

.PHONY: all deps deps-demo run test fuzz bench clean install

all: mxwatch $(BUILD)/mxwatch-keylog.so

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(CFLAGS) $(INC) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(SAN_FLAGS) $(INC) $(PKG_CFLAGS) -c $< -o $@

mxwatch: $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/mxwatch-san: $(SAN_LIB_OBJ) $(SAN_MAIN_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(CFLAGS) $(INC) $(PKG_CFLAGS) -o $@ $< $(LIB_OBJ) $(PKG_LIBS) -lcmocka

$(BUILD)/san/tests/%: tests/unit/%.c $(SAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(SAN_FLAGS) $(INC) $(PKG_CFLAGS) -o $@ $< $(SAN_LIB_OBJ) $(PKG_LIBS) -lcmocka

# ThreadSanitizer build: the worker threads, checked in tests/workers_check.sh.
# libFuzzer targets (tests/fuzz): the library built by clang with
# coverage instrumentation, each target linked with libFuzzer's main.
$(BUILD)/fuzz/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(WARN) $(DEFS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(INC) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/bin/%: tests/fuzz/%.c tests/fuzz/frames.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	clang $(WARN) $(DEFS) $(FUZZ_FLAGS) -fsanitize=fuzzer $(INC) $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJ) $(PKG_LIBS)

$(BUILD)/tsan/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(TSAN_FLAGS) $(INC) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/mxwatch-tsan: $(LIB_SRC:%.c=$(BUILD)/tsan/%.o) $(MAIN_SRC:%.c=$(BUILD)/tsan/%.o)
	$(CC) $(TSAN_FLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/timing/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) -DMXW_STAGE_TIMING $(CFLAGS) $(INC) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/mxwatch-timing: $(LIB_SRC:%.c=$(BUILD)/timing/%.o) $(MAIN_SRC:%.c=$(BUILD)/timing/%.o)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bare-pcap-loop: tests/bench/bare_pcap_loop.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) -O2 -o $@ $< $(PKG_LIBS)

# LD_PRELOAD shim writing OpenSSL's TLS handshake secrets (sensor/shim/keylog_shim.c)
$(BUILD)/mxwatch-keylog.so: sensor/shim/keylog_shim.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(CFLAGS) -shared -fPIC -o $@ $< -ldl

# install-missing PACKAGES...: apt-get only what dpkg does not have yet.
# The servers the tests install (Postfix, nginx, nsd, rsyslog) are run by
# the tests themselves: while installing, a policy-rc.d keeps Debian from
# starting them, and those that were not installed before are left disabled.
SERVICES_OF_TESTS := postfix nginx nsd rsyslog
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing missing packages:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		echo 'postfix postfix/main_mailer_type select No configuration' | $$SUDO debconf-set-selections; \
		guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && \
			$$SUDO chmod 755 /usr/sbin/policy-rc.d && guard=1; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		rc=$$?; [ -n "$$guard" ] && $$SUDO rm -f /usr/sbin/policy-rc.d; \
		for s in $(SERVICES_OF_TESTS); do case " $$missing " in *" $$s "*) \
			$$SUDO systemctl disable --quiet "$$s" 2>/dev/null; \
			$$SUDO update-rc.d -f "$$s" disable >/dev/null 2>&1; \
			echo "$$s: installed for the tests, not started, left disabled";; esac; done; \
		[ $$rc = 0 ]; \
	fi
endef

deps-demo:
	$(call install_missing,$(DEMO_PKGS))

# Another MTA already installed (Debian's default is Exim) is never replaced:
# postfix is left out and the suites that need it say they were skipped.
OTHER_MTA = $(shell dpkg-query -W -f='$${Package} $${Status}\n' exim4-daemon-light \
	exim4-daemon-heavy sendmail-bin opensmtpd courier-mta dma nullmailer msmtp-mta 2>/dev/null | \
	grep 'install ok installed' | cut -d' ' -f1)
TEST_PKGS = $(if $(OTHER_MTA),$(filter-out postfix,$(DEB_PKGS)),$(DEB_PKGS))

deps:
	@$(if $(OTHER_MTA),echo "$(OTHER_MTA) is installed: postfix is not (the Postfix suites will be skipped)",true)
	$(call install_missing,$(DEMO_PKGS) $(TEST_PKGS))
	@mkdir -p $(BUILD)/debs; for p in $(UNPACKED_DEBS); do \
		ls $(BUILD)/debs/$${p}_*.deb >/dev/null 2>&1 || \
		(cd $(BUILD)/debs && apt-get download -q $$p 2>/dev/null) || \
		{ apt-get update -qq && cd $(BUILD)/debs && apt-get download -q $$p; } || \
		echo "warning: could not download $$p (the judge test will say so)"; \
	done

CAPTURES = $$(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)

DEMO_DB := $(BUILD)/demo.db

run: deps-demo
	@$(MAKE) --no-print-directory mxwatch
	@echo "== TCP flows of the bundled captures (mxwatch analyze --flows)"
	@./mxwatch analyze --flows --db none $(CAPTURES)
	@echo
	@echo "== demo policy into a fresh database ($(DEMO_DB))"
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	./mxwatch policy import --db $(DEMO_DB) etc/demo.policy
	@echo
	@echo "== SMTP sessions and findings (mxwatch analyze)"
	./mxwatch analyze --db $(DEMO_DB) --config etc/demo.conf $(CAPTURES)
	@echo
	@echo "== RFC 8460 report (mxwatch report --json)"
	./mxwatch report --db $(DEMO_DB) --json --org "mxwatch demo"

test: deps
	@$(MAKE) --no-print-directory mxwatch $(BUILD)/mxwatch-san $(BUILD)/mxwatch-tsan \
		$(BUILD)/mxwatch-keylog.so $(UNIT_TESTS:%=$(BUILD)/tests/%) $(UNIT_TESTS:%=$(BUILD)/san/tests/%) $(FUZZ_BINS)
	@bash tests/run-all.sh $(UNIT_TESTS)

# Every libFuzzer target for FUZZ_SECONDS each (make test gives them 5 s).
FUZZ_SECONDS ?= 600
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) --keep

bench: deps
	@$(MAKE) --no-print-directory mxwatch $(BUILD)/bare-pcap-loop $(BUILD)/mxwatch-timing
	@bash tests/bench/run.sh
	@bash tests/bench/live_rate.sh
	@bash tests/bench/keylog_cost.sh

# The appliance files (README: "Running it as an appliance"). Configuration
# already in place is kept.
PREFIX ?= /usr/local
install: mxwatch
	install -D -m 0755 mxwatch $(DESTDIR)$(PREFIX)/bin/mxwatch
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/mxwatch/README.md
	install -d -m 0755 $(DESTDIR)/etc/mxwatch $(DESTDIR)/etc/rsyslog.d $(DESTDIR)/etc/systemd/system \
		$(DESTDIR)/etc/logrotate.d
	@for f in etc/mxwatch.conf:/etc/mxwatch/mxwatch.conf \
		  etc/rsyslog-mxwatch.conf:/etc/rsyslog.d/30-mxwatch.conf \
		  etc/logrotate-mxwatch:/etc/logrotate.d/mxwatch \
		  etc/mxwatch.service:/etc/systemd/system/mxwatch.service \
		  etc/mxwatch-prune.service:/etc/systemd/system/mxwatch-prune.service \
		  etc/mxwatch-prune.timer:/etc/systemd/system/mxwatch-prune.timer \
		  etc/mxwatch-policy-fetch.service:/etc/systemd/system/mxwatch-policy-fetch.service \
		  etc/mxwatch-policy-fetch.timer:/etc/systemd/system/mxwatch-policy-fetch.timer \
		  etc/mxwatch-policy-import.service:/etc/systemd/system/mxwatch-policy-import.service \
		  etc/mxwatch-policy-import.path:/etc/systemd/system/mxwatch-policy-import.path \
		  etc/mxwatch-tlsrpt.service:/etc/systemd/system/mxwatch-tlsrpt.service \
		  etc/mxwatch-tlsrpt.timer:/etc/systemd/system/mxwatch-tlsrpt.timer \
		  etc/rsyslog-sensor-relp.conf:$(PREFIX)/share/doc/mxwatch/rsyslog-sensor-relp.conf \
		  etc/rsyslog-collector-relp.conf:$(PREFIX)/share/doc/mxwatch/rsyslog-collector-relp.conf \
		  etc/rsyslog-sensor-kafka.conf:$(PREFIX)/share/doc/mxwatch/rsyslog-sensor-kafka.conf; do \
		src=$${f%%:*}; dst=$(DESTDIR)$${f#*:}; \
		if [ -e "$$dst" ] && cmp -s "$$src" "$$dst"; then echo "up to date: $$dst"; \
		elif [ -e "$$dst" ]; then echo "kept $$dst: it differs from $$src (review: diff -u $$dst $$src)"; \
		else install -m 0644 "$$src" "$$dst" && echo "installed $$dst"; fi; \
	done

clean:
	rm -rf $(BUILD) mxwatch
