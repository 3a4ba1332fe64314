# nsbox: one executable, built with bun build --compile.
#   make build   -> dist/nsbox (the static shim is built first and embedded)
#   make test    -> unit + integration tests (as root, against the real kernel)
#   make bench   -> speed and memory against crun, runc and bwrap
#   make rootfs  -> dist/rootfs/busybox, the default rootfs
#   make install -> $(DESTDIR)$(PREFIX)/bin/nsbox
SHELL := /bin/bash
BUN ?= bun
PREFIX ?= /usr/local
DESTDIR ?=
ARCH := $(shell uname -m)
CC ?= gcc

SRC := $(shell find src -name '*.ts') $(wildcard csrc/*.c) package.json
SHIM_CFLAGS := -DNSB_SHIM -static -nostdlib -ffreestanding -Os -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-pie -no-pie -fno-builtin -Wall -Wextra -Wno-unused-function -Wl,--gc-sections -Wl,--build-id=none -s

.PHONY: all build shim demo test test-unit test-integration test-cgroup2 bench rootfs install clean check lint typecheck deps

all: build

deps: node_modules/.installed
node_modules/.installed: package.json
	$(BUN) install --frozen-lockfile 2>/dev/null || $(BUN) install
	@touch $@

# The shim (init, pause, monitor) is built here, with gcc, and embedded in nsbox:
# the server that runs nsbox needs no compiler for it.
build/nsbox-shim: csrc/arch_$(ARCH).c csrc/lib.c csrc/shim.c
	@mkdir -p build
	cat csrc/arch_$(ARCH).c csrc/lib.c csrc/shim.c | $(CC) -x c $(SHIM_CFLAGS) -o $@ -
shim: build/nsbox-shim

dist/nsbox: $(SRC) build/nsbox-shim node_modules/.installed
	@mkdir -p dist
	$(BUN) build --compile --bytecode --no-compile-autoload-dotenv --no-compile-autoload-bunfig --minify --sourcemap=none src/main.ts --outfile $@
build: dist/nsbox

# The README's first command ends here: a shell as PID 1 in the bundled busybox
# rootfs (interactive when run from a terminal, a short tour otherwise).
demo: build rootfs
	@if [ -t 0 ]; then ./dist/nsbox run -it dist/rootfs/busybox /bin/sh; \
	else ./dist/nsbox run dist/rootfs/busybox /bin/sh -c 'echo "PID $$$$ on $$(hostname), as $$(id -un)"; ls /; cat /proc/self/cgroup | head -3'; fi

rootfs: dist/rootfs/busybox
dist/rootfs/busybox: dist/nsbox
	rm -rf $@.tmp && ./dist/nsbox rootfs busybox $@.tmp && mv $@.tmp $@

# Unit tests, then the integration suites against the real kernel (as root).
test: build
	$(BUN) test --timeout 120000 test/unit
	$(BUN) test --timeout 120000 test/integration

test-unit: build/nsbox-shim node_modules/.installed
	$(BUN) test test/unit

test-integration: build
	$(BUN) test --timeout 120000 test/integration

test-cgroup2: build
	test/vm/run.sh

bench: build
	$(BUN) bench/run.ts

install: build
	install -D -m 0755 dist/nsbox $(DESTDIR)$(PREFIX)/bin/nsbox

typecheck: node_modules/.installed
	./node_modules/.bin/tsc -p .
lint: node_modules/.installed
	./node_modules/.bin/biome check src test bench
check: typecheck lint

clean:
	rm -rf dist build
