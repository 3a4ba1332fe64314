#!/usr/bin/env bash
# test/vm/run.sh [TEST_FILE...]
#
# Runs nsbox's cgroup tests on a PURE cgroup v2 kernel, in a qemu VM: the hosts
# we build on have a hybrid layout (v1 controllers plus an almost empty cgroup2
# at /sys/fs/cgroup/unified), so the v2 code paths can only be tested in a VM.
#
#   test/vm/run.sh                 test/integration/cgroup*.test.ts, security-*.test.ts, rootless-cgroup.test.ts, test/vm/smoke.test.ts
#   test/vm/run.sh FILE...         those test files instead (paths in the project)
#
# How: Debian's own kernel (the linux-image-amd64 package, downloaded once and
# cached), an initramfs rebuilt on every run (static busybox, bun, dist/nsbox, the
# shared libraries they need, the project's sources and tests, a busybox rootfs,
# the kernel modules nsbox needs) and test/vm/init.sh as PID 1, which mounts
# cgroup2 as the only hierarchy and runs `bun test`. KVM does not work on our
# machines, so qemu emulates the CPU (TCG; -cpu max has the AVX2 that bun needs).
# The serial console, with the kernel's boot messages, is saved in $CACHE/logs/;
# what /init prints is streamed here (test/vm/console.sh). A VM that has not
# reached /init within NSBOX_VM_BOOT_TIMEOUT is stopped, and the run fails
# saying how far the boot got. The exit status is 0 only when the VM booted,
# bun test ran, and no test failed.
#
# Settings (environment):
#   NSBOX_VM_CACHE        cache dir (default ${XDG_CACHE_HOME:-/var/cache}/nsbox-vm)
#   NSBOX_VM_TIMEOUT      seconds for the whole VM run (default 900)
#   NSBOX_VM_BOOT_TIMEOUT seconds from starting qemu to /init's first line (default 200)
#   NSBOX_VM_MEM          VM memory (default 3G)        NSBOX_VM_SMP  CPUs (default 2)
#   NSBOX_VM_CGROUP       cgroup the tests run in (default /system.slice/nsbox-test.service,
#                         as under systemd; "/" for the root cgroup)
#   NSBOX_VM_BUN_ARGS     extra `bun test` arguments (default: --timeout 300000, TCG is slow)
#   NSBOX_VM_KERNEL_PKG   a linux-image-* package to use instead of linux-image-amd64's
#   NSBOX_VM_MODULES      kernel modules to load (default below; deps are added)
#   NSBOX_VM_TOOLS        host programs to copy in (default: tar gzip zstd xz nft ip script tmux setpriv)
#   NSBOX_VM_DISK         size of the sparse ext4 scratch disk for /tmp (default 16G)
#   NSBOX_VM_VERBOSE=1    stream the kernel's boot messages too (they are always in the log)
#   NSBOX_VM_APPEND       more kernel arguments, NSBOX_VM_QEMU_ARGS more qemu arguments (to
#                         test the boot deadline: "rdinit=/none rootwait root=/dev/sdz", "-S")
#   NSBOX_VM_KEEP=1       keep the work dir (initramfs tree) for debugging
#   NSBOX_TEST_*          passed through to the tests in the VM
set -euo pipefail

CALLER_PWD=$PWD # test files given as arguments are relative to it
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/vm/console.sh
. "$HERE/console.sh"
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${NSBOX_VM_CACHE:-${XDG_CACHE_HOME:-/var/cache}/nsbox-vm}
TIMEOUT=${NSBOX_VM_TIMEOUT:-900}
# From starting qemu to /init's first line, measured on our 2-CPU build machine
# (TCG) while other jobs ran: 4.7 to 10.6 s in 85 boots in a row at a load
# average of 3 to 5; 6.3 to 19.5 s in 8 more, the slowest at a load of 11 (as in
# CI, where the host suites run beside the VM). The kernel's messages on the
# console cost nothing measurable (quiet: 9.4 to 16.9 s in 6 boots alternated
# with 6 of those). 200 s is 10 times the slowest: a boot that has not reached
# /init by then is stuck, not slow (one once printed nothing for the whole 900 s).
BOOT_TIMEOUT=${NSBOX_VM_BOOT_TIMEOUT:-200}
MEM=${NSBOX_VM_MEM:-3G}
SMP=${NSBOX_VM_SMP:-2}
TEST_CGROUP=${NSBOX_VM_CGROUP:-/system.slice/nsbox-test.service}
BUN_ARGS=${NSBOX_VM_BUN_ARGS:---timeout 300000}
# overlay for the rootfs; veth, bridge and nftables (NAT, masquerade, conntrack)
# for networking. Debian builds them as modules; their dependencies (stp, llc,
# nfnetlink, nf_conntrack, nf_nat, nf_defrag_ipv4/6, libcrc32c...) come from
# modules.dep. Modules this kernel does not have are skipped with a warning.
# (Other netfilter and bridge modules are in the VM too, loaded on demand.)
read -r -a MODULES <<<"${NSBOX_VM_MODULES:-overlay veth bridge nf_tables nft_chain_nat nft_nat nft_masq nft_ct nft_fib_inet nft_reject_inet}"
# and always: the scratch disk (virtio, ext4; see init.sh)
MODULES+=(virtio_pci virtio_blk ext4)
# Host programs the tests or nsbox run that busybox lacks or does differently
# (nsbox extracts tarballs with GNU tar, which calls gzip/zstd/xz, and programs
# NAT with nft (at /usr/sbin/nft); the tty tests drive tmux and script). Copied,
# with their libraries, to the same path as here, when the host has them.
read -r -a TOOLS <<<"${NSBOX_VM_TOOLS:-tar gzip zstd xz nft ip script tmux setpriv}"

T0=$(date +%s.%N)
B="" R0="" E=""
[ -t 2 ] && B=$'\033[1m' E=$'\033[1;31m' R0=$'\033[0m'
say() { printf '%svm:%s %s\n' "$B" "$R0" "$*" >&2; }
die() {
	printf '%svm: error:%s %s\n' "$E" "$R0" "$*" >&2
	exit 2
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }

[ "$(uname -m)" = x86_64 ] || die "this runs an x86_64 VM, on x86_64 hosts only (this is $(uname -m))"

# ------------------------------------------------------------------ tools
# command -> the Debian package that provides it
declare -A NEED=([qemu-system-x86_64]=qemu-system-x86 [cpio]=cpio [xz]=xz-utils [zstd]=zstd
	[depmod]=kmod [dpkg-deb]=dpkg [apt-get]=apt [timeout]=coreutils [ldd]=libc-bin [mkfs.ext4]=e2fsprogs)
is_static() { # ELF without an interpreter: ldd says so (and exits 1)
	[ -x "$1" ] && case $(LC_ALL=C ldd "$1" 2>&1) in *"not a dynamic executable"*) true ;; *) false ;; esac
}
BUSYBOX=""
find_busybox() {
	for b in /bin/busybox /usr/bin/busybox /usr/lib/busybox/busybox-static; do
		if is_static "$b"; then BUSYBOX=$b && return 0; fi
	done
	return 1
}
missing=()
for cmd in "${!NEED[@]}"; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("${NEED[$cmd]}")
done
find_busybox || missing+=(busybox-static)
if ((${#missing[@]})); then
	[ "$(id -u)" = 0 ] || die "missing: ${missing[*]} (as root: apt-get install ${missing[*]})"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
		die "apt-get install ${missing[*]} failed"
	find_busybox || die "no static busybox after installing busybox-static"
fi
export PATH=$PATH:/usr/sbin:/sbin # depmod
command -v bun >/dev/null || die "bun is not on PATH (the tests run with bun inside the VM)"

# ------------------------------------------------------------------ project
cd "$ROOT"
if [ ! -d node_modules ]; then
	say "node_modules is missing: make deps (bun install)"
	make --no-print-directory deps >&2
fi
if [ ! -x dist/nsbox ]; then
	say "dist/nsbox is missing: make build"
	make --no-print-directory build >&2
fi

# Test files, relative to the project ("./" so bun takes them as paths, not filters).
tests=()
if (($#)); then
	for f in "$@"; do
		case $f in /*) ;; *) f=$CALLER_PWD/$f ;; esac
		f=$(realpath -m -- "$f")
		[ -f "$f" ] || die "no such test file: $f"
		case $f in "$ROOT"/*) ;; *) die "$f is not in the project ($ROOT): only project files are in the VM" ;; esac
		tests+=("./${f#"$ROOT"/}")
	done
else
	shopt -s nullglob # the cgroup tests may not exist yet: then only the smoke test runs
	for f in test/integration/cgroup*.test.ts test/integration/security-*.test.ts test/integration/rootless-cgroup.test.ts test/vm/smoke.test.ts; do tests+=("./$f"); done
	shopt -u nullglob
fi
((${#tests[@]})) || die "no test files to run"

# ------------------------------------------------------------------ kernel
# Debian's kernel, never built here: linux-image-amd64 is a metapackage, the
# kernel is its linux-image-<abi>-amd64 dependency. The .deb and its extraction
# (with a modules.dep from depmod: the .deb ships none) are kept in the cache.
mkdir -p "$CACHE/debs" "$CACHE/kernels" "$CACHE/logs"
# one run at a time prepares the cache (two CI jobs on one machine...)
exec 9>"$CACHE/.lock"
flock 9
kernel_pkg() { # "package version" of the kernel to use, from apt's lists
	if [ -n "${NSBOX_VM_KERNEL_PKG:-}" ]; then
		apt-cache show --no-all-versions "$NSBOX_VM_KERNEL_PKG" 2>/dev/null |
			awk -v p="$NSBOX_VM_KERNEL_PKG" '/^Version:/ {print p, $2; exit}'
	else # "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
		apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
			sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -1
	fi
}
read -r kpkg kver <<<"$(kernel_pkg)" || true
if [ -z "${kver:-}" ] && [ "$(id -u)" = 0 ] && ! ls "$CACHE"/kernels/*/.complete >/dev/null 2>&1; then
	say "apt knows no linux-image-amd64: apt-get update"
	apt-get update -q >/dev/null 2>&1 || true
	read -r kpkg kver <<<"$(kernel_pkg)" || true
fi
if [ -n "${kver:-}" ]; then
	kdir=$CACHE/kernels/${kpkg}_$kver
else # apt does not know (offline, no lists): the newest kernel in the cache
	kdir=$(ls -d "$CACHE"/kernels/*/ 2>/dev/null | sort -V | tail -1) || true
	kdir=${kdir%/}
	[ -n "$kdir" ] && [ -f "$kdir/.complete" ] ||
		die "cannot find a kernel: apt-cache show linux-image-amd64 names none, and $CACHE/kernels is empty"
	say "apt names no kernel: using the cached $(basename "$kdir")"
fi
if [ ! -f "$kdir/.complete" ]; then
	deb=$CACHE/debs/${kpkg}_${kver//:/%3a}_amd64.deb
	if [ ! -f "$deb" ]; then
		say "downloading $kpkg $kver"
		dl=$(mktemp -d "$CACHE/debs/.dl.XXXXXX")
		# apt drops root to _apt for downloads; let it write there (else it warns)
		chown _apt "$dl" 2>/dev/null || true
		(cd "$dl" && apt-get download -q "$kpkg=$kver" >/dev/null) || { rm -rf "$dl"; die "apt-get download $kpkg=$kver failed"; }
		mv "$dl"/*.deb "$deb" && rm -rf "$dl"
	fi
	say "extracting $(basename "$deb")"
	rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
	dpkg-deb -x "$deb" "$kdir.tmp"
	# /lib/modules on bookworm, /usr/lib/modules after the usr-merge
	mdir=$(dirname "$(ls -d "$kdir".tmp/lib/modules/*/modules.order "$kdir".tmp/usr/lib/modules/*/modules.order 2>/dev/null | head -1)")
	[ -d "$mdir" ] || die "no lib/modules/*/modules.order in $deb"
	# depmod -b takes the directory above lib/modules
	depmod -b "${mdir%/lib/modules/*}" "$(basename "$mdir")" || die "depmod failed for $mdir"
	rm -rf "$kdir" && mv "$kdir.tmp" "$kdir" && touch "$kdir/.complete"
	# older kernels are of no use once a newer one is here
	for old in "$CACHE"/kernels/*/; do [ "${old%/}" = "$kdir" ] || rm -rf "${old%/}"; done
	for old in "$CACHE"/debs/*.deb; do [ "$old" = "$deb" ] || rm -f "$old"; done
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
mdir=$(dirname "$(ls -d "$kdir"/lib/modules/*/modules.dep "$kdir"/usr/lib/modules/*/modules.dep 2>/dev/null | head -1)")
KVER=$(basename "$mdir")

# Under TCG the bzImage spends ~4 s decompressing itself. The ELF inside it
# (what the kernel's scripts/extract-vmlinux gets out) boots directly through
# its PVH entry point (CONFIG_PVH), so it is extracted once, into the cache.
elf_complete() { # the ELF's section headers (at its end) are all there
	local h shoff shentsize shnum
	h=$(od -An -v -tu1 -j0 -N64 "$1" | tr -s ' \n' ' ')
	read -r -a h <<<"$h"
	[ "${h[0]:-}" = 127 ] && [ "${h[1]}" = 69 ] && [ "${h[2]}" = 76 ] && [ "${h[3]}" = 70 ] || return 1
	shoff=0
	for i in 47 46 45 44 43 42 41 40; do shoff=$((shoff * 256 + h[i])); done
	shentsize=$((h[58] + 256 * h[59])) shnum=$((h[60] + 256 * h[61]))
	[ $((shoff + shentsize * shnum)) -le "$(stat -c %s "$1")" ]
}
extract_vmlinux() { # bzImage -> vmlinux: find a compressed stream whose output is a whole ELF
	local magic tool off
	for pair in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd' '\x1f\x8b\x08:gzip' '\x04\x22\x4d\x18:lz4'; do
		magic=${pair%:*} tool=${pair##*:}
		command -v "$tool" >/dev/null || continue
		for off in $(LC_ALL=C grep -obUaP "$magic" "$1" 2>/dev/null | cut -d: -f1 | head -5); do
			tail -c +$((off + 1)) "$1" | "$tool" -dc >"$2.tmp" 2>/dev/null # trailing data: an error, but the output is whole
			if elf_complete "$2.tmp"; then mv "$2.tmp" "$2" && return 0; fi
		done
	done
	rm -f "$2.tmp"
	return 1
}
kernel=$vmlinuz
if grep -q '^CONFIG_PVH=y' "$kdir"/boot/config-* 2>/dev/null; then
	if [ -f "$kdir/vmlinux" ] || extract_vmlinux "$vmlinuz" "$kdir/vmlinux"; then
		kernel=$kdir/vmlinux
	else
		say "warning: could not extract vmlinux from $vmlinuz: booting the bzImage (slower)"
	fi
fi
say "kernel $KVER ($(basename "$kdir"), $(basename "$kernel"))"
flock -u 9

# ------------------------------------------------------------------ initramfs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nsbox-vm.XXXXXX")
cleanup() { if [ "${NSBOX_VM_KEEP:-}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/nsbox-vm,root,proc,sys,dev,tmp,run,mnt,var/tmp,var/lib,project/dist,lib/modules/"$KVER"}
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 700 "$R/root"

# busybox and its applets (sh, mount, insmod, switch_root, ip...)
cp "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r a; do
	[ "$a" = bin/busybox ] || [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done

# bun (for `bun test`), dist/nsbox and the host tools, with the shared libraries
# and the loader they need (busybox is static)
cp "$(realpath "$(command -v bun)")" "$R/usr/bin/bun"
cp dist/nsbox "$R/project/dist/nsbox"
exes=("$R/usr/bin/bun" "$R/project/dist/nsbox")
for t in "${TOOLS[@]}"; do
	if p=$(command -v "$t") && [ "${p#/}" != "$p" ]; then
		rm -f "$R$p" # a busybox applet of the same name
		mkdir -p "$R$(dirname "$p")"
		cp -L "$p" "$R$p" && exes+=("$R$p")
	else
		say "note: $t is not installed here, so it is not in the VM either"
	fi
done
# for tmux: terminal descriptions and a UTF-8 locale (init.sh sets LANG=C.UTF-8)
[ -d /lib/terminfo ] && mkdir -p "$R/lib" && cp -a /lib/terminfo "$R/lib/"
[ -d /usr/lib/locale/C.utf8 ] && mkdir -p "$R/usr/lib/locale" && cp -a /usr/lib/locale/C.utf8 "$R/usr/lib/locale/"
libs=$(for exe in "${exes[@]}"; do ldd "$exe" || true; done |
	awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 != "=>" {print $1}' | sort -u)
for lib in $libs /lib64/ld-linux-x86-64.so.2; do
	mkdir -p "$R$(dirname "$lib")"
	cp -L "$lib" "$R$lib"
done

# The project: what `bun test` and the tests read. node_modules without the dev
# tools (biome, typescript, type definitions), which no test imports.
cp -a package.json bunfig.toml tsconfig.json src csrc build test "$R/project/"
# the security tests' static probes, built here: the VM has no compiler
mkdir -p "$R/project/build/probes"
for c in test/probes/*.c; do
	[ -f "$c" ] || continue
	gcc -static -O2 -Wall -o "$R/project/build/probes/$(basename "$c" .c)" "$c" || die "cannot build the probe $c (gcc, libc6-dev)"
done
export NSBOX_TEST_PROBES=/project/build/probes
[ -f bun.lock ] && cp bun.lock "$R/project/"
mkdir -p "$R/project/node_modules"
for m in node_modules/* node_modules/@*/*; do
	case $m in
	node_modules/@*) [ -d "$m" ] || continue ;;
	esac
	case ${m#node_modules/} in
	@biomejs | @biomejs/* | typescript | @typescript | @typescript/* | @types | @types/* | bun-types | undici-types | .bin | .cache) continue ;;
	@*/*) mkdir -p "$R/project/$(dirname "$m")" && cp -a "$m" "$R/project/$m" ;;
	@*) ;; # scopes: their packages are copied one by one above
	*) cp -a "$m" "$R/project/$m" ;;
	esac
done

# the busybox rootfs for containers, where `make rootfs` puts it
out=$(dist/nsbox rootfs busybox --busybox "$BUSYBOX" "$R/project/dist/rootfs/busybox" 2>&1) ||
	die "dist/nsbox rootfs busybox failed: $out"

# Kernel modules. Those in MODULES are loaded at boot by init.sh, in dependency
# order: modules.dep, plus the "pre:" modules of modules.softdep (libcrc32c asks
# the crypto API for crc32c), names resolved through modules.alias. All of
# netfilter and the bridge come too, with a modules.dep of their own (depmod on
# the copy), so that the kernel's own requests (an nft rule with an expression
# not loaded yet: request_module("nft-expr-...")) are served by busybox's
# modprobe, as on a host. Decompressed: busybox cannot read .ko.xz/.ko.zst.
declare -A MODPATH=() MODDEPS=() SEEN=() SOFTPRE=()
while IFS= read -r line; do
	p=${line%%:*} n=${line%%:*}
	n=${n##*/} n=${n%%.ko*} n=${n//-/_}
	MODPATH[$n]=$p
	MODDEPS[$n]=${line#*:}
done <"$mdir/modules.dep"
while read -r _ n rest; do
	n=${n//-/_} rest=" $rest "
	rest=${rest#* pre: } && rest=${rest%% post:*}
	SOFTPRE[$n]=$rest
done < <(grep -E '^softdep [^ ]+ .*pre:' "$mdir/modules.softdep" 2>/dev/null || true)
BUILTIN=" $(sed 's#.*/##; s#\.ko.*##; s#-#_#g' "$mdir/modules.builtin" | tr '\n' ' ') "
aliased() { awk -v a="$1" '$1 == "alias" && $2 == a {print $3}' "$mdir/modules.alias"; }
ORDER=() # dependencies first
visit() {
	local n=${1//-/_} d real
	[ -z "${SEEN[$n]:-}" ] || return 0
	SEEN[$n]=1
	if [ -z "${MODPATH[$n]:-}" ]; then
		case $BUILTIN in *" $n "*) return 0 ;; esac
		real=$(aliased "$1")
		[ -n "$real" ] || { say "warning: kernel module $n does not exist in $KVER: skipped" && return 0; }
		for d in $real; do visit "$d"; done
		return 0
	fi
	for d in ${SOFTPRE[$n]:-}; do visit "$d"; done
	for d in ${MODDEPS[$n]}; do
		d=${d##*/} && visit "${d%%.ko*}"
	done
	ORDER+=("$n")
}
for m in "${MODULES[@]}"; do visit "$m"; done
npreload=${#ORDER[@]}
for n in "${!MODPATH[@]}"; do
	case ${MODPATH[$n]} in
	kernel/net/netfilter/* | kernel/net/ipv4/netfilter/* | kernel/net/ipv6/netfilter/* | kernel/net/bridge/*) visit "$n" ;;
	esac
done
: >"$R/etc/nsbox-vm/modules"
plain=()
for i in "${!ORDER[@]}"; do
	src=${MODPATH[${ORDER[$i]}]}
	rel=${src%.ko*}.ko
	((i >= npreload)) || echo "$KVER/$rel" >>"$R/etc/nsbox-vm/modules"
	case $src in
	*.ko) plain+=("$src") && continue ;;
	esac
	mkdir -p "$(dirname "$R/lib/modules/$KVER/$rel")"
	case $src in
	*.ko.xz) xz -dc "$mdir/$src" ;;
	*.ko.zst) zstd -qdc "$mdir/$src" ;;
	*.ko.gz) gzip -dc "$mdir/$src" ;;
	esac >"$R/lib/modules/$KVER/$rel"
done
((${#plain[@]} == 0)) || (cd "$mdir" && cp --parents "${plain[@]}" "$R/lib/modules/$KVER/")
cp "$mdir"/modules.builtin* "$mdir/modules.order" "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER" || die "depmod on the VM's modules failed"

# what init.sh reads: its settings, the test files, NSBOX_TEST_* from here
cp "$HERE/init.sh" "$R/init" && chmod 755 "$R/init"
{
	printf 'NSBOX_VM_CGROUP=%s\n' "'${TEST_CGROUP//\'/}'"
	printf 'NSBOX_VM_BUN_ARGS=%s\n' "'${BUN_ARGS//\'/}'"
	[ "${NSBOX_VM_VERBOSE:-}" != 1 ] || echo NSBOX_VM_CONSOLE_LEVEL=7
} >"$R/etc/nsbox-vm/config"
printf '%s\n' "${tests[@]}" >"$R/etc/nsbox-vm/tests"
env | grep '^NSBOX_TEST_' >"$R/etc/nsbox-vm/env" || true
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$R/etc/group"
printf '127.0.0.1\tlocalhost nsbox-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
echo nsbox-vm >"$R/etc/hostname"
: >"$R/etc/resolv.conf"

# Uncompressed: under TCG the kernel would spend longer decompressing than the
# host spends writing a bigger file (and qemu reads it from the page cache).
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$WORK/initramfs.cpio"
say "initramfs: $(du -m "$WORK/initramfs.cpio" | cut -f1) MB, $npreload+$((${#ORDER[@]} - npreload)) modules, tests: ${tests[*]} ($(elapsed)s)"

# The scratch disk, ext4 as on a Debian host: init.sh mounts it on /tmp and
# /var/lib/nsbox, where the tests keep rootfs dirs and container layers. On tmpfs
# (Linux 6.1) idmapped mounts, which --userns needs, are not supported. Sparse,
# with lazy init: it costs nothing until written.
truncate -s "${NSBOX_VM_DISK:-16G}" "$WORK/disk.img"
mkfs.ext4 -q -F -L nsbox-vm -E lazy_itable_init=1,lazy_journal_init=1 "$WORK/disk.img" ||
	die "mkfs.ext4 $WORK/disk.img failed"

# ------------------------------------------------------------------ VM
LOG=$(vm_log "$CACHE/logs")
# The kernel's boot messages go to the console, hence to the log: loglevel=7
# (not quiet), with times, and from the earliest moment (earlyprintk), so that a
# hang at boot shows where. init.sh lowers the console's level to 3 (what
# `quiet loglevel=3` gave) first thing, so the tests' output stays as it was.
# cgroup_no_v1=all: no v1 controller at all; systemd.unified_cgroup_hierarchy=1
# is what a systemd host boots with (init.sh mounts cgroup2 itself).
append="console=ttyS0 earlyprintk=serial,ttyS0,115200 loglevel=7 printk.time=1 panic=-1 oops=panic systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all mitigations=off tsc=reliable rdinit=/init${NSBOX_VM_APPEND:+ $NSBOX_VM_APPEND}"
read -r -a qemu_args <<<"${NSBOX_VM_QEMU_ARGS:-}"
# qboot, a minimal firmware, hands over to Linux sooner than SeaBIOS does
bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
say "booting ($SMP CPUs, $MEM, TCG, timeout ${TIMEOUT}s, ${BOOT_TIMEOUT}s to /init); log: $LOG"
qrc=0
vm_run "$WORK" "$LOG" "$BOOT_TIMEOUT" "NSBOX-VM:" "$TIMEOUT" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM" \
	-nodefaults -nographic -serial stdio -monitor none -no-reboot \
	-drive "file=$WORK/disk.img,if=virtio,format=raw,cache=unsafe" \
	"${bios[@]}" -kernel "$kernel" -initrd "$WORK/initramfs.cpio" -append "$append" "${qemu_args[@]}" || qrc=$?

# ------------------------------------------------------------------ verdict
result=$({ grep -ao 'NSBOX-VM-RESULT: rc=[0-9]*' "$LOG" || true; } | tail -1 | sed 's/.*rc=//')
count() { { grep -aE "^ *[0-9]+ $1\$" "$LOG" || true; } | tail -1 | tr -dc 0-9; }
npass=$(count pass) nfail=$(count fail) nskip=$(count skip)
echo >&2
say "---- results ($(elapsed)s in all; log: $LOG)"
# (bun repeats the failures at the end: each line once)
grep -aE '^\((pass|fail|skip|todo)\) ' "$LOG" | awk '!seen[$0]++' >&2 || true
fail() { # MESSAGE [kernel]: "kernel" adds the kernel's last lines (for a VM that failed, not a test)
	printf '%svm: FAILED:%s %s\n' "$E" "$R0" "$1" >&2
	if [ "${2:-}" = kernel ]; then
		[ ! -s "$WORK/late" ] || tail -n +2 "$WORK/late" >&2 # the CPUs' state
		vm_kernel_tail "$LOG" 40 >&2
	fi
	exit 1
}
if [ -s "$WORK/late" ]; then
	fail "the VM did not reach /init in ${BOOT_TIMEOUT}s (NSBOX_VM_BOOT_TIMEOUT): $(head -1 "$WORK/late"); log: $LOG" kernel
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	fail "the VM did not finish within ${TIMEOUT}s (NSBOX_VM_TIMEOUT); log: $LOG" kernel
elif [ ! -s "$WORK/boot" ]; then # (vm_run saw no NSBOX-VM line)
	fail "the VM did not boot: /init never ran (qemu exit status $qrc); log: $LOG" kernel
elif [ -z "$result" ]; then
	fail "the VM stopped without a result: /init or the kernel crashed (qemu exit status $qrc); log: $LOG" kernel
elif [ "$result" = 125 ]; then
	fail "the VM's setup failed (see the NSBOX-VM lines above)" kernel
elif [ "$result" != 0 ] || [ "${nfail:-0}" != 0 ]; then
	fail "bun test exited with $result: ${npass:-0} pass, ${nfail:-?} fail, ${nskip:-0} skip"
elif [ "${npass:-0}" = 0 ]; then
	fail "no test passed (${nskip:-0} skipped): is this really a cgroup v2 VM?"
fi
say "ok: ${npass} pass, ${nfail:-0} fail, ${nskip:-0} skip (kernel $KVER, /init reached in $(cat "$WORK/boot")s)"
