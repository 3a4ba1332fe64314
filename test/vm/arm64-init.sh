#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the arm64 VM (see test/vm/arm64.sh). Stage 1 moves the initramfs into
# a tmpfs (pivot_root does not work from rootfs, and nsbox pivot_roots into every
# container); stage 2 mounts what a host has, runs nsbox-arm64 and prints one
# NSBOX-ARM64 line per check, then NSBOX-ARM64-RESULT: rc=<failures>.
export PATH=/bin
B=/bin/busybox
if [ "${1:-}" != stage2 ]; then
	# The kernel booted with its messages on the console, for the host's log.
	# From here on only errors, as with `quiet`: others would cut into the
	# NSBOX-ARM64 lines. The first line tells the host that /init runs.
	$B dmesg -n 4
	echo "NSBOX-ARM64-INIT: stage 1"
	$B mkdir -p /newroot && $B mount -t tmpfs -o mode=0755 tmpfs /newroot
	for f in /lib /rootfs /init; do $B cp -a "$f" /newroot/; done
	$B mkdir -p /newroot/bin && $B cp -a /bin/nsbox /bin/busybox /newroot/bin/
	for d in proc sys dev tmp run; do $B mkdir -p "/newroot/$d"; done
	exec $B switch_root /newroot /init stage2
fi

$B --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /lib/overlay.ko 2>/dev/null
# the controllers nsbox's cgroups will ask for
echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
# The tests run from a cgroup of their own, as on a delegated host (v2: no
# processes in a cgroup whose controllers are handed down).
mkdir -p /sys/fs/cgroup/test && echo $$ >/sys/fs/cgroup/test/cgroup.procs

fails=0
check() { # check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "NSBOX-ARM64: ok   $1"; else
		echo "NSBOX-ARM64: FAIL $1: expected [$2], got [$3]"
		fails=$((fails + 1))
	fi
}
N="nsbox run --net none"
echo "NSBOX-ARM64: kernel $(uname -r), $(uname -m); $(nsbox --version)"

check "PID 1 in its own pid namespace" "1" "$($N /rootfs /bin/sh -c 'echo $$' 2>&1)"
$N /rootfs /bin/sh -c 'exit 7' >/dev/null 2>&1
check "the command's exit code" "7" "$?"
$N /rootfs /no/such/cmd >/dev/null 2>&1
check "a missing command: 127" "127" "$?"
check "own hostname (uts)" "box" "$($N --hostname box /rootfs /bin/hostname 2>&1)"
check "own mount namespace" "no" "$($N /rootfs /bin/sh -c 'ls /lib/overlay.ko >/dev/null 2>&1 && echo yes || echo no' 2>&1)"
check "lo up in --net none" "up" "$($N /rootfs /bin/cat /sys/class/net/lo/operstate 2>&1 | sed 's/unknown/up/')"
check "cgroup v2 limits seen inside" "33554432 16" "$($N --memory 32m --pids-limit 16 /rootfs /bin/sh -c 'echo $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/pids.max)' 2>&1)"
# security: the aarch64 seccomp program (with its arm compat section) loads, and the sets are docker's
check "seccomp filter and docker's capabilities" "2 00000000a80425fb" "$($N /rootfs /bin/sh -c 'echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(grep ^CapEff /proc/self/status | cut -f2)' 2>&1)"
check "the filter refuses mount (EPERM), unconfined: the missing capability does" "permission denied" "$($N /rootfs /bin/sh -c 'mount -t tmpfs t /tmp 2>&1 | grep -o "permission denied"' 2>&1)"
check "clone3 is ENOSYS, unshare -U refused" "refused" "$($N /rootfs /bin/sh -c 'unshare -U true 2>/dev/null && echo allowed || echo refused' 2>&1)"
check "--privileged: no filter" "0" "$($N --privileged /rootfs /bin/sh -c 'grep ^Seccomp: /proc/self/status | cut -f2' 2>&1)"
check "a masked path reads empty" "0" "$($N /rootfs /bin/sh -c 'cat /proc/keys 2>/dev/null | wc -c' 2>&1)"
check "a mknod'ed block device cannot be opened (cgroup v2 devices program)" "refused" "$($N /rootfs /bin/sh -c 'mknod /tmp/vda b 254 0 && (head -c1 /tmp/vda >/dev/null 2>&1 && echo opened || echo refused)' 2>&1)"
check "--init: the shim is PID 1, the command its child" "nsbox-init 2" "$($N --init /rootfs /bin/sh -c 'echo $(cat /proc/1/comm) $$' 2>&1)"

id=$(nsbox run -d --net none --name d1 /rootfs /bin/sh -c 'echo started; sleep 1000' 2>&1)
check "run -d prints a 64-hex id" "64" "$(echo -n "$id" | tr -dc 0-9a-f | wc -c)"
check "ps shows it running" "running" "$(nsbox ps --format json 2>&1 | grep -o '"State":"[a-z]*"' | head -1 | cut -d'"' -f4)"
check "its parent is the monitor shim" "nsbox-monitor" "$(cat "/proc/$(cut -d' ' -f4 "/proc/$(nsbox inspect -f '{{.State.Pid}}' d1)/stat")/comm" 2>&1)"
check "exec runs in it" "d1-exec" "$(nsbox exec d1 /bin/echo d1-exec 2>&1)"
sleep 1
check "logs" "started" "$(nsbox logs d1 2>&1)"
nsbox stop -t 1 d1 >/dev/null 2>&1
check "stop, then wait prints 137 (sh ignores TERM as PID 1)" "137" "$(nsbox wait d1 2>&1)"
nsbox rm d1 >/dev/null 2>&1
check "rm leaves no container" "" "$(nsbox ps -aq 2>&1)"

nsbox pod create --name p1 --net none >/dev/null 2>&1
check "pod infra is the pause shim" "nsbox-pause" "$(cat "/proc/$(nsbox pod inspect --format '{{.InfraPid}}' p1)/comm" 2>&1)"
check "a pod member shares the infra's uts" "$(readlink "/proc/$(nsbox pod inspect --format '{{.InfraPid}}' p1)/ns/uts")" "$(nsbox run --pod p1 /rootfs /bin/sh -c 'readlink /proc/self/ns/uts' 2>&1)"
nsbox pod rm -f p1 >/dev/null 2>&1
check "pod rm leaves nothing" "" "$(nsbox ps -aq 2>&1)"
check "no nsbox cgroup left" "" "$(find /sys/fs/cgroup -name 'nsbox*' -type d)"

echo "NSBOX-ARM64-RESULT: rc=$fails"
sync
poweroff -f
