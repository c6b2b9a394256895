# tlspeek — a TLS-intercepting debugging proxy.
#
#   make          build ./tlspeek (installs missing Debian packages when run as root)
#   make run      build and start the proxy on 127.0.0.1:8080 (explicit mode)
#   make test     unit tests (cmocka) and end-to-end tests (pytest)
#   make asan     the same suites, built with -fsanitize=address,undefined
#   make screenshots  the flow browser test, saving its screenshots to filters/web/screenshots
#   make bench    throughput benchmark (reverse mode vs. direct)
#   make format   apply .clang-format
#
# SANITIZER=address,undefined builds an instrumented binary into build/<name>/.

# The one list of Debian packages the project needs, in one place.
# BUILD_DEBS are needed to compile and run; TEST_DEBS to run the suites and the
# examples they run; BENCH_DEBS for make bench; FUZZ_DEBS for make fuzz.
# Every program that tests/, examples/ and tests/bench/ run must come from one
# of them: `make test` checks that first (tests/check_debs.py).
BUILD_DEBS := build-essential pkg-config libssl-dev libuv1-dev libhttp-parser-dev \
              libnghttp2-dev libcjson-dev zlib1g-dev libbrotli-dev libzstd-dev openssl \
              libpcap-dev \
              libpcre2-dev libc-ares-dev
TEST_DEBS  := libcmocka-dev python3 python3-pytest curl procps python3-jsonschema tshark nginx \
              iproute2 iptables xxd \
              wget git nodejs default-jdk-headless libnss3-tools firefox-esr ca-certificates \
              python3-requests python3-httpx golang-go chromium python3-websocket
BENCH_DEBS := wrk nginx haproxy sslsplit mitmproxy openssl procps
FUZZ_DEBS  := clang libclang-rt-14-dev

PKGS := openssl libuv libcjson zlib libbrotlidec libzstd libnghttp2 libpcap libpcre2-8 libcares

comma := ,
SANITIZER ?=
ifeq ($(SANITIZER),)
  BUILD := build
  BIN   := tlspeek
else
  BUILD := build/$(subst $(comma),-,$(SANITIZER))
  BIN   := $(BUILD)/tlspeek
endif

CC      ?= cc
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
           -Wwrite-strings
ifneq ($(CI)$(WERROR),)
  WARN  += -Werror
endif
OPT     ?= -O2 -g
SANFLAGS := $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all,)

# Deferred (=) so pkg-config runs only after the dependency check below.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lpthread
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -I. $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

# Sources are found in every subfolder (filters/tls/, proxy/codec/, ...);
# README.md "Layout" and each folder's README.md say what lives where.
CA_SRC      := $(sort $(shell find ca -name '*.c'))
FILTERS_SRC := $(sort $(shell find filters -name '*.c'))
PROXY_SRC   := $(filter-out proxy/cli/main.c,$(sort $(shell find proxy -name '*.c')))
LIB_SRC     := $(CA_SRC) $(FILTERS_SRC) $(PROXY_SRC)
LIB_OBJ     := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ    := $(BUILD)/proxy/cli/main.o
HEADERS     := $(sort $(shell find ca filters proxy -name '*.h'))

# Unit tests mirror the source tree: tests/unit/filters/tls/test_tlsparse.c
# tests filters/tls/ and builds to $(BUILD)/tests/filters/tls/test_tlsparse.
# Every test_NAME.c must have a NAME of its own, so a binary's name alone says
# which test ran.
UNIT_SRC    := $(sort $(shell find tests/unit -name 'test_*.c'))
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ifneq ($(words $(notdir $(UNIT_SRC))),$(words $(sort $(notdir $(UNIT_SRC)))))
  $(error two unit tests share a file name: $(UNIT_SRC))
endif

DEPS_OK := build/.deps-ok

.PHONY: all run test unit e2e screenshots asan bench bench-quick deps test-deps check-debs check-calls format \
        clean fuzz \
        examples
all: $(BIN)

# ---- dependencies ---------------------------------------------------------
# Checks with dpkg-query; installs with apt-get when root, otherwise prints
# the exact command and stops.
define ensure_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "tlspeek: installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "tlspeek: missing packages. Install them with:"; \
	    echo "  sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

deps: $(DEPS_OK)
$(DEPS_OK): Makefile
	$(call ensure_debs,$(BUILD_DEBS))
	@mkdir -p build && touch $@

test-deps: deps
	$(call ensure_debs,$(TEST_DEBS))

# Fails, naming the package and the list it belongs in, when a program that the
# tests, the examples or the bench run comes from a package not in the lists.
check-debs: test-deps
	@/usr/bin/python3 tests/check_debs.py

# ---- build ----------------------------------------------------------------
$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libtlspeek.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# -rdynamic: plugins (--load) call back into tlspeek (flt_flow_tag, ...).
$(BIN): $(MAIN_OBJ) $(BUILD)/libtlspeek.a
	$(CC) $(ALL_LDFLAGS) -rdynamic -o $@ $(MAIN_OBJ) -Wl,--whole-archive $(BUILD)/libtlspeek.a -Wl,--no-whole-archive $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libtlspeek.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

run: $(BIN)
	./$(BIN)

# ---- tests ----------------------------------------------------------------
unit: test-deps
	@$(MAKE) --no-print-directory $(UNIT_BIN) $(BIN)
	@set -e; fail=0; for t in $(UNIT_BIN); do \
	  echo "== $$t"; ./$$t || fail=1; \
	done; exit $$fail

e2e: test-deps
	@$(MAKE) --no-print-directory $(BIN) examples
	cd tests/e2e && TLSPEEK_BIN=$(abspath $(BIN)) TLSPEEK_ASAN=$(if $(SANITIZER),1,) \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The flow browser's screenshots for README.md, taken by its browser test
# (tests/e2e/test_web_browser.py) in headless Chromium.
screenshots: test-deps
	@$(MAKE) --no-print-directory $(BIN)
	cd tests/e2e && TLSPEEK_BIN=$(abspath $(BIN)) TLSPEEK_SCREENSHOTS=$(abspath filters/web/screenshots) \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider test_web_browser.py

# Fails, naming each, on two proxy/ files that call each other both ways, a .c
# over 800 lines or a function over 80 (tests/check_calls.py; the findings still
# to fix are listed in tests/check_calls_allowed.txt, which may only shrink).
check-calls: $(BIN)
	@/usr/bin/python3 tests/check_calls.py --build $(BUILD) --allow tests/check_calls_allowed.txt

test: check-debs
	@$(MAKE) --no-print-directory check-calls
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

asan:
	@$(MAKE) --no-print-directory test SANITIZER=address,undefined OPT="-O1 -g"

# bench: tlspeek next to nginx direct, haproxy, sslsplit and mitmdump, every column,
# and each transcript sink alone (about 9-11 minutes; table also in tests/bench/out/latest.md).
# bench-quick: tlspeek -q
# and direct only, 3 s per measurement (about 1 minute). BENCH_ARGS passes options to
# tests/bench/bench.py, e.g. BENCH_ARGS="--only haproxy,tlspeek --seconds 5".
# hsload: the full-handshake load generator (tests/bench/hsload.c), against the system OpenSSL.
HSLOAD := build/bench/hsload
$(HSLOAD): tests/bench/hsload.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) $(shell pkg-config --cflags openssl) -o $@ $< \
	  $(shell pkg-config --libs openssl)

bench: test-deps
	$(call ensure_debs,$(BENCH_DEBS))
	@$(MAKE) --no-print-directory $(BIN) $(HSLOAD)
	/usr/bin/python3 tests/bench/bench.py --bin $(abspath $(BIN)) --hsload $(abspath $(HSLOAD)) $(BENCH_ARGS)

bench-quick: test-deps
	$(call ensure_debs,$(BENCH_DEBS))
	@$(MAKE) --no-print-directory $(BIN) $(HSLOAD)
	/usr/bin/python3 tests/bench/bench.py --quick --bin $(abspath $(BIN)) --hsload $(abspath $(HSLOAD)) $(BENCH_ARGS)

# ---- example plugins ----------------------------------------------------------
EXAMPLE_SRC := $(wildcard examples/filters/*.c)
EXAMPLE_SO  := $(EXAMPLE_SRC:examples/filters/%.c=build/examples/%.so)
examples: $(EXAMPLE_SO)
build/examples/%.so: examples/filters/%.c filters/filter.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -I. -shared -fPIC -o $@ $< -lpthread

# ---- fuzzing ----------------------------------------------------------------
# Every tests/fuzz/fuzz_NAME.c is a libFuzzer target; `make fuzz` runs each for
# FUZZ_SECONDS (default 60) under ASan+UBSan, seeded from tests/fuzz/corpus/NAME.
FUZZ_SECONDS ?= 60
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_FLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -I. $(PKG_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=all
build/fuzz/lib/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -MMD -MP -c $< -o $@
build/fuzz/libtlspeek.a: $(LIB_SRC:%.c=build/fuzz/lib/%.o)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libtlspeek.a
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer $< build/fuzz/libtlspeek.a -o $@ $(PKG_LIBS)

fuzz: deps
	$(call ensure_debs,$(FUZZ_DEBS))
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
	  name=$${f#build/fuzz/fuzz_}; work=build/fuzz/corpus-$$name; mkdir -p $$work; \
	  echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$work tests/fuzz/corpus/$$name \
	    > $$work.log 2>&1 || { tail -40 $$work.log; echo "fuzz_$$name FAILED"; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done" $$work.log; \
	done

format:
	clang-format -i $(LIB_SRC) proxy/cli/main.c $(HEADERS) $(UNIT_SRC)

clean:
	rm -rf build tlspeek

-include $(shell find build -name '*.d' 2>/dev/null)
