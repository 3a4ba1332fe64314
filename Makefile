# nsbox: one executable, built with bun build --compile.
#   make build   -> dist/nsbox (the static shim is built first and embedded)
#   make test    -> unit + integration tests (as root, against the real kernel)
#   make test-oci -> nsbox under podman and containerd, and the OCI runtime-tools suite
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
# The JIT's tier-up thresholds start 10x higher: a start's run-once code stays in the
# interpreter (-4 ms of CPU, -3.5 MiB of RSS for run /bin/true; see src/jit.ts).
# --splitting: each command's modules are a chunk of their own, read and linked only when
# that command runs (the main chunk is 28 KB of 400, with node:fs and node:path alone; run's chunks 132 KB); every chunk still gets its bytecode
# (the binary grows by the same 2.8 MB with --bytecode as without --splitting).
BUNFLAGS := --compile --bytecode --splitting --format=esm --compile-jit-policy=10 --no-compile-autoload-dotenv --no-compile-autoload-bunfig --minify --sourcemap=none
# The bytecode of the functions that run, limits and exec execute, laid out first in
# the embedded payload, in that order (bench/record-bytecode-order.sh; `make
# bytecode-order` records them again): a start maps fewer of the payload's pages.
# Not in BUNFLAGS: bench/hello.ts builds its hello world with BUNFLAGS.
ORDER_FILES := $(wildcard bytecode-order/run.txt bytecode-order/limits.txt bytecode-order/exec.txt)
ORDERFLAGS := $(addprefix --bytecode-order=,$(ORDER_FILES))
# the helper, concatenated in this order after arch_<arch>.c and lib.c into one unit:
# the protocol's Bun side (the container's processes run in the shim, below)
HELPER_FILES := csrc/sync_socket.c csrc/helper.c csrc/fg_forward.c csrc/write_away.c csrc/exit_teardown.c csrc/host_calls.c csrc/napi.c
# the shim: the program interpreter (W's and C's: its nsbox-spawn role
# runs it), the common part and the dispatch, then one file per larger role
SHIM_FILES := csrc/sync_socket.c csrc/helper.c csrc/child_mounts.c csrc/child_identity.c csrc/child_security.c csrc/child_interp.c csrc/shim.c csrc/shim_fg.c
SHIM_CFLAGS := -DNSB_SHIM -static -nostdlib -ffreestanding -Os -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-pie -no-pie -fno-builtin -Wall -Wextra -Wno-unused-function -Wl,--gc-sections -Wl,--build-id=none -s
# The helper is a shared object with no library dependency, a Node-API addon whose one
# exported symbol is napi_register_module_v1 (see csrc/lib.c, csrc/napi.c); nsbox
# loads it with process.dlopen (src/native/addon.ts). It was written for
# TinyCC, which does not reason from aliasing rules: -fno-strict-aliasing keeps gcc
# from doing so either. -z now: nothing is bound lazily in a cloned child.
HELPER_CFLAGS := -DNSB_HELPER -shared -fPIC -nostdlib -ffreestanding -Os -fno-strict-aliasing -fno-stack-protector \
	-fno-asynchronous-unwind-tables -fno-builtin -Wall -Wextra -Wno-unused-function \
	-Wl,--gc-sections -Wl,--build-id=none -Wl,-z,now -Wl,-z,noexecstack -Wl,--hash-style=gnu -s

.PHONY: all build build-arm64 bytecode-order shim helper demo test test-unit test-integration test-chaos test-cgroup2 test-arm64 test-oci bench rootfs install clean check check-arch check-start lint typecheck deps

all: build

deps: node_modules/.installed
node_modules/.installed: package.json
	$(BUN) install --frozen-lockfile 2>/dev/null || $(BUN) install
	@touch $@

# The shim (init, pause, monitor) is built here, with gcc, and embedded in nsbox:
# the server that runs nsbox needs no compiler for it.
build/nsbox-shim: csrc/arch_$(ARCH).c csrc/lib.c $(SHIM_FILES)
	@mkdir -p build
	cat csrc/arch_$(ARCH).c csrc/lib.c $(SHIM_FILES) | $(CC) -x c $(SHIM_CFLAGS) -o $@ -
shim: build/nsbox-shim
helper: build/nsbox-helper.so

# nsbox embeds both as hex in a generated module (src/native/embedded.ts): a
# string constant of the compiled code. (An embedded file would need node:fs to be
# read; a `with { type: "text" }` import is a require() of one at run time. Hex,
# not base64: Uint8Array.fromHex decodes the 40 KB in 0.01 ms, fromBase64 in 0.4.)
build/%.hex.ts: build/%
	{ printf 'export default "'; od -An -v -tx1 $< | tr -d ' \n'; printf '";\nexport const sha256 = "%s";\n' "$$(sha256sum $< | cut -c1-64)"; } > $@.tmp && mv $@.tmp $@
EMBEDDED := build/nsbox-shim.hex.ts build/nsbox-helper.so.hex.ts

# The helper (csrc/helper.c and the files it includes by concatenation), likewise
# built here and embedded: nsbox compiles nothing at run time.
build/nsbox-helper.so: csrc/arch_$(ARCH).c csrc/lib.c $(HELPER_FILES)
	@mkdir -p build
	cat csrc/arch_$(ARCH).c csrc/lib.c $(HELPER_FILES) | $(CC) -x c $(HELPER_CFLAGS) -o $@ -

# arm64 (experimental): the shim and the helper are cross-built, Bun's arm64 runtime
# is fetched by bun build --target. src/native/embedded.ts embeds
# ../../build/nsbox-shim.hex.ts and nsbox-helper.so.hex.ts, so the arm64 build runs from a staged
# copy of the tree whose build/ holds the arm64 ones.
AARCH64_CC ?= aarch64-linux-gnu-gcc
STAGE64 := build/stage-aarch64
build/aarch64/nsbox-shim: csrc/arch_aarch64.c csrc/lib.c $(SHIM_FILES)
	@mkdir -p build/aarch64
	cat csrc/arch_aarch64.c csrc/lib.c $(SHIM_FILES) | $(AARCH64_CC) -x c $(SHIM_CFLAGS) -o $@ -
build/aarch64/nsbox-helper.so: csrc/arch_aarch64.c csrc/lib.c $(HELPER_FILES)
	@mkdir -p build/aarch64
	cat csrc/arch_aarch64.c csrc/lib.c $(HELPER_FILES) | $(AARCH64_CC) -x c $(HELPER_CFLAGS) -o $@ -
dist/nsbox-arm64: $(SRC) build/aarch64/nsbox-shim.hex.ts build/aarch64/nsbox-helper.so.hex.ts node_modules/.installed
	rm -rf $(STAGE64) && mkdir -p $(STAGE64)/build dist
	cp -r src csrc package.json tsconfig.json $(STAGE64)/ && ln -s $(CURDIR)/node_modules $(STAGE64)/node_modules
	cp build/aarch64/nsbox-shim build/aarch64/nsbox-helper.so build/aarch64/nsbox-shim.hex.ts build/aarch64/nsbox-helper.so.hex.ts $(STAGE64)/build/
	cd $(STAGE64) && $(BUN) build $(BUNFLAGS) $(addprefix --bytecode-order=$(CURDIR)/,$(ORDER_FILES)) --target=bun-linux-arm64 src/main.ts --outfile $(CURDIR)/$@
build-arm64: dist/nsbox-arm64

dist/nsbox: $(SRC) $(EMBEDDED) $(ORDER_FILES) node_modules/.installed
	@mkdir -p dist
	$(BUN) build $(BUNFLAGS) $(ORDERFLAGS) src/main.ts --outfile $@
build: dist/nsbox

# The README's first command ends here: a shell as PID 1 in the bundled busybox
# rootfs (interactive when run from a terminal, a short tour otherwise).
demo: build rootfs
	@if [ -t 0 ]; then ./dist/nsbox run -it dist/rootfs/busybox /bin/sh; \
	else ./dist/nsbox run dist/rootfs/busybox /bin/sh -c 'echo "PID $$$$ on $$(hostname), as $$(id -un)"; ls /; cat /proc/self/cgroup | head -3'; fi
	@# the tour leaves no bridge behind (prune keeps it while anything uses it)
	@./dist/nsbox network prune >/dev/null

rootfs: dist/rootfs/busybox
# (order-only: a rebuilt nsbox makes the same rootfs, and mv could not replace the old one)
dist/rootfs/busybox: | dist/nsbox
	rm -rf $@.tmp && ./dist/nsbox rootfs busybox $@.tmp && mv $@.tmp $@

# Unit tests, then the integration suites against the real kernel (as root).
test: build
	$(BUN) test --timeout 120000 test/unit
	$(BUN) test --timeout 120000 test/integration

test-unit: $(EMBEDDED) node_modules/.installed
	$(BUN) test test/unit

test-integration: build
	$(BUN) test --timeout 120000 test/integration

# The chaos suite (issue 10): parallel run/exec/logs/ps/stop/rm churn, SIGKILLs of
# the CLI at random moments, and an argument fuzzer; about 2-3 minutes. One seed for
# the three parts, printed first: NSBOX_CHAOS_SEED=N make test-chaos replays a run.
# A new seed every run for developers (so that it keeps finding); in CI (CI set) a
# fixed one, so that whether a change lands depends on the change, not on the draw:
# a defect a developer's seed finds gets fixed and its case joins the fuzzer's corpus.
CHAOS_CI_SEED := 20261202
test-chaos: build
	@seed=$${NSBOX_CHAOS_SEED:-$$(if [ -n "$${CI:-}" ]; then echo $(CHAOS_CI_SEED); else echo $$(( $$(date +%s%N) % 4294967296 )); fi)}; \
	echo "chaos seed $$seed (replay: NSBOX_CHAOS_SEED=$$seed make test-chaos)"; \
	NSBOX_CHAOS_SEED=$$seed $(BUN) test --timeout 600000 test/chaos
# nsbox as the OCI runtime of real clients (podman, containerd) and the OCI
# runtime-tools validation suite against crun and nsbox (runc too with
# OCI_VALIDATION_RUNTIMES=crun,runc,nsbox; the client tests take OCI_RUNTIMES
# the same way). Bounded: each part has its own timeout, < 10 minutes in all
# (runtime-tools is not built here: the suite runs a build made beforehand, found in
# RUNTIME_TOOLS_DIR or /var/cache/nsbox/runtime-tools-0105384, and is skipped with
# one line without one; the runtimes run each program side by side, ~3 min here;
# no program starts after 240 s).
# A missing client is skipped with a one-line reason (.ci/setup --test installs them).
OCI_VALIDATION_RUNTIMES ?= crun,nsbox
test-oci: build
	@if [ "$$(id -u)" != 0 ]; then echo "test-oci: skipped: needs root (containers, mounts, cgroups)"; exit 0; fi
	@mkdir -p build
	@# both parts run; the target fails if either did
	timeout -k 10 120 $(BUN) test --timeout 60000 test/oci; clients=$$?; \
	timeout -k 10 460 $(BUN) test/oci/runtime-tools.ts --runtimes $(OCI_VALIDATION_RUNTIMES) --parallel --timeout 60 --budget 240 --markdown build/runtime-tools-results.md; suite=$$?; \
	[ $$clients = 0 ] && [ $$suite = 0 ]

test-cgroup2: build
	test/vm/run.sh

# nsbox-arm64 on Debian's arm64 kernel in qemu-system-aarch64 (TCG), about 1.5 min
test-arm64: build-arm64
	test/vm/arm64.sh

# make bench BENCH="start limits exec foreground --runs 60": some sections, other options
bench: build
	$(BUN) bench/run.ts $(BENCH)

# Records bytecode-order/ again with the binary built now (as root: it runs containers).
bytecode-order: build rootfs
	bench/record-bytecode-order.sh dist/nsbox dist/rootfs/busybox bytecode-order

install: build
	install -D -m 0755 dist/nsbox $(DESTDIR)$(PREFIX)/bin/nsbox
	ln -sf nsbox $(DESTDIR)$(PREFIX)/bin/nsbox-runc

typecheck: $(EMBEDDED) node_modules/.installed
	./node_modules/.bin/tsc -p .
lint: node_modules/.installed
	./node_modules/.bin/biome check src test bench
# Syscall numbers against the kernel's headers; with a cross compiler, the arm64
# helper and shim must also compile (gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross).
check-arch:
	test/check-syscalls.sh x86_64 $(CC)
	cat csrc/arch_$(ARCH).c csrc/lib.c $(HELPER_FILES) | $(CC) -x c $(HELPER_CFLAGS) -Werror -o /dev/null -
	@if command -v $(AARCH64_CC) >/dev/null; then \
		test/check-syscalls.sh aarch64 $(AARCH64_CC) && \
		cat csrc/arch_aarch64.c csrc/lib.c $(HELPER_FILES) | $(AARCH64_CC) -x c $(HELPER_CFLAGS) -Werror -o /dev/null - && \
		cat csrc/arch_aarch64.c csrc/lib.c $(SHIM_FILES) | $(AARCH64_CC) -x c $(SHIM_CFLAGS) -Werror -o /dev/null - && \
		echo "arm64: the helper and the shim compile"; \
	else echo "arm64: not checked ($(AARCH64_CC) not installed: apt-get install gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross)"; fi
# run, exec and the OCI verbs start without Bun's node: modules (each costs a start milliseconds)
check-start: $(EMBEDDED) node_modules/.installed
	$(BUN) test/check-start-imports.ts
check: typecheck lint check-arch check-start

clean:
	rm -rf dist build
