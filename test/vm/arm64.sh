#!/usr/bin/env bash
# nsbox on arm64, on a real arm64 kernel: Debian's linux-image-arm64 booted in
# qemu-system-aarch64 (TCG: no arm64 hardware needed) with an initramfs holding
# dist/nsbox-arm64, the arm64 libc it needs, Debian's arm64 busybox-static and a
# busybox rootfs. The init script runs a few containers (PID 1, exit codes,
# cgroup v2 limits, --init, run -d/exec/stop/rm through the monitor shim, a pod's
# pause shim) and prints NSBOX-ARM64 lines; this script passes when all hold.
#
# Why a VM and not qemu-user: qemu-user (7.2) refuses clone() with CLONE_NEW*
# flags (EINVAL), so no container can start under it.
#
#   make test-arm64            (builds dist/nsbox-arm64 first)
# Needs: qemu-system-arm, gcc-aarch64-linux-gnu, libc6-arm64-cross, cpio, and
# Debian's arm64 packages (the kernel and busybox-static), which apt-get download
# fetches once the arm64 architecture is known to dpkg (this script adds it).
# Cache: /var/cache/nsbox-vm/arm64 (NSBOX_VM_CACHE to change); the console, with
# the kernel's boot messages, is kept in its logs/ (test/vm/console.sh), and a VM
# that has not reached /init within NSBOX_VM_BOOT_TIMEOUT seconds is stopped.
# NSBOX_VM_APPEND, NSBOX_VM_QEMU_ARGS: more kernel or qemu arguments (as in run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
# shellcheck source=test/vm/console.sh
. "$REPO/test/vm/console.sh"
# From starting qemu to /init's first line, measured on our 2-CPU build machine
# (TCG): 11.9 to 12.7 s at a load average of 2 to 4, 42.3 s in a make test-arm64
# beside other jobs (the kernel's messages on the console cost nothing
# measurable: quiet, 12.4 to 15.0 s alternated with those). 420 s is 10 times
# the slowest: a boot that has not reached /init by then is stuck, not slow.
BOOT_TIMEOUT=${NSBOX_VM_BOOT_TIMEOUT:-420}
CACHE=${NSBOX_VM_CACHE:-/var/cache/nsbox-vm}/arm64
BIN=$REPO/dist/nsbox-arm64
LIBS=/usr/aarch64-linux-gnu/lib
die() { echo "arm64 vm: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get download, dpkg --add-architecture)"
[ -x "$BIN" ] || die "$BIN is missing: make build-arm64"
for t in qemu-system-aarch64 cpio dpkg-deb; do command -v "$t" >/dev/null || die "$t is not installed (apt-get install qemu-system-arm cpio)"; done
[ -e "$LIBS/ld-linux-aarch64.so.1" ] || die "no arm64 libc in $LIBS (apt-get install libc6-arm64-cross)"

# Debian's arm64 kernel and busybox, downloaded once.
mkdir -p "$CACHE"
if ! ls "$CACHE"/linux-image-*.deb >/dev/null 2>&1 || ! ls "$CACHE"/busybox-static_*.deb >/dev/null 2>&1; then
	# dpkg learns arm64 only for this download, and forgets it after (no arm64
	# package is installed: the cross compiler's packages are "all").
	added=
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64 && added=1; fi
	apt-get update -qq
	kpkg=$(apt-cache show --no-all-versions linux-image-arm64:arm64 | sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= .*/\1/p' | head -1)
	ok=
	[ -n "$kpkg" ] && (cd "$CACHE" && apt-get download -q "$kpkg:arm64" busybox-static:arm64 2>/dev/null) && ok=1
	if [ -n "$added" ]; then dpkg --remove-architecture arm64 && apt-get update -qq; fi
	[ -n "$ok" ] || die "apt-get download of linux-image-arm64's kernel (${kpkg:-not found}) and busybox-static:arm64 failed"
fi

W=$(mktemp -d /tmp/nsbox-arm64-vm.XXXXXX)
trap 'rm -rf "$W"' EXIT
dpkg-deb -x "$(ls "$CACHE"/linux-image-*.deb | head -1)" "$W/k"
dpkg-deb -x "$(ls "$CACHE"/busybox-static_*.deb | head -1)" "$W/bb"
KERNEL=$(ls "$W"/k/boot/vmlinuz-* | head -1)
OVERLAY=$(find "$W/k/lib/modules" -name 'overlay.ko*' | head -1)

R=$W/initramfs
mkdir -p "$R"/{bin,lib,proc,sys,dev,tmp,run,rootfs/bin,rootfs/proc,rootfs/sys,rootfs/dev,rootfs/tmp,rootfs/etc}
cp "$W/bb/bin/busybox" "$R/bin/busybox"
cp "$BIN" "$R/bin/nsbox"
for l in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2; do cp -L "$LIBS/$l" "$R/lib/$l"; done
cp "$OVERLAY" "$R/lib/"
cp "$W/bb/bin/busybox" "$R/rootfs/bin/busybox"
for a in sh echo cat sleep ls hostname id; do ln -s busybox "$R/rootfs/bin/$a"; done
cp "$REPO/test/vm/arm64-init.sh" "$R/init"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet) >"$W/initramfs.cpio"

LOG=$(vm_log "$CACHE/logs")
echo "arm64 vm: booting $(basename "$KERNEL") in qemu-system-aarch64 (TCG); log: $LOG"
# The kernel's boot messages go to the log (loglevel=7, with times, from the
# earliest moment: earlycon), arm64-init.sh lowers the console's level to what
# `quiet` gave, and only the NSBOX-ARM64 lines are shown.
read -r -a qemu_args <<<"${NSBOX_VM_QEMU_ARGS:-}"
set +o pipefail # qemu's status is read from PIPESTATUS
vm_run "$W" "$LOG" "$BOOT_TIMEOUT" "NSBOX-ARM64-INIT:" 900 \
	qemu-system-aarch64 -M virt -cpu max -smp 2 -m 2048 -nographic -serial stdio -monitor none -no-reboot \
	-kernel "$KERNEL" -initrd "$W/initramfs.cpio" \
	-append "console=ttyAMA0 earlycon loglevel=7 printk.time=1 rdinit=/init panic=-1${NSBOX_VM_APPEND:+ $NSBOX_VM_APPEND}" "${qemu_args[@]}" |
	{ grep --line-buffered -E '^NSBOX-ARM64(:|-RESULT:)' || true; }
qrc=${PIPESTATUS[0]}
set -o pipefail
rc=$(sed -n 's/^NSBOX-ARM64-RESULT: rc=\([0-9]*\).*/\1/p' "$LOG" | tail -1)
failed() { echo "arm64 vm: FAILED: $*" >&2; }
if [ -s "$W/late" ]; then
	failed "the VM did not reach /init in ${BOOT_TIMEOUT}s (NSBOX_VM_BOOT_TIMEOUT): $(head -1 "$W/late"); log: $LOG"
	tail -n +2 "$W/late" >&2
	vm_kernel_tail "$LOG" 40 >&2
	exit 1
elif [ ! -s "$W/boot" ]; then # (vm_run saw no NSBOX-ARM64-INIT line)
	failed "the VM did not boot: /init never ran (qemu exit status $qrc); log: $LOG"
	vm_kernel_tail "$LOG" 40 >&2
	exit 1
elif [ "${rc:-}" != 0 ]; then
	failed "result: ${rc:-none} (qemu exit status $qrc); log: $LOG; the console's last lines:"
	tail -30 "$LOG" >&2
	exit 1
fi
echo "arm64 vm: ok (/init reached in $(cat "$W/boot")s)"
