#!/bin/sh
# PID 1 of the cgroup v2 test VM (see test/vm/run.sh, which puts this file at
# /init in the initramfs). It runs under busybox ash, in two stages:
#
#   stage 1  (/ is the initramfs): move everything into a tmpfs and switch_root
#            into it. pivot_root(2) fails when the current root is the initial
#            rootfs, and nsbox pivot_roots into every container, so the tests
#            must run from a real mount.
#   stage 2  (/ is the tmpfs): mount what a systemd host mounts (/proc, /sys,
#            /dev, /dev/pts, /run, cgroup2 as the only hierarchy), load the
#            kernel modules nsbox needs (others load on demand through busybox
#            modprobe), mount the scratch disk on /tmp and /var/lib/nsbox,
#            enable the cgroup controllers, run `bun test` in /project as root,
#            print NSBOX-VM-RESULT and power off.
#
# Every line the host looks for starts with "NSBOX-VM". The host decides pass or
# fail from "NSBOX-VM-RESULT: rc=N"; if this script dies, the kernel panics
# (panic=-1 and -no-reboot make qemu exit) and the host sees no result line.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CONF=/etc/nsbox-vm

say() { echo "NSBOX-VM: $*"; }

# End the run with a result line the host can read, then power off.
finish() {
	echo "NSBOX-VM-RESULT: rc=$1"
	sync
	poweroff -f
	sleep 5 # poweroff -f returns before the VM is gone
	exit "$1"
}
die() {
	say "setup failed: $*"
	finish 125
}
now() { cut -d' ' -f1 /proc/uptime; }

# ---------------------------------------------------------------- stage 1
if [ "${1:-}" != stage2 ]; then
	# The kernel booted with its messages on the console, for the host's log. From
	# here on, only the worst ones (as with `quiet loglevel=3`): others would cut
	# into the lines the host parses (NSBOX_VM_VERBOSE=1 keeps them all).
	. "$CONF/config"
	dmesg -n "${NSBOX_VM_CONSOLE_LEVEL:-3}"
	say "stage 1: moving the initramfs into a tmpfs (pivot_root does not work on rootfs)"
	mkdir -p /newroot || die "mkdir /newroot"
	mount -t tmpfs -o mode=0755 tmpfs /newroot || die "mount tmpfs on /newroot"
	# mv, not cp: each file leaves the initramfs as it lands in the tmpfs, so the
	# payload (two ~110 MB executables) is never in memory twice. /bin (busybox
	# itself) goes last; from then on busybox runs from its new place.
	for f in /*; do
		case $f in /newroot | /init | /dev | /proc | /sys | /bin) continue ;; esac
		/bin/busybox mv "$f" /newroot/ || die "move $f to the tmpfs"
	done
	/bin/busybox mv /bin /newroot/ || die "move /bin to the tmpfs"
	/newroot/bin/busybox cp -a /init /newroot/init || die "copy /init"
	for d in proc sys dev tmp run mnt; do /newroot/bin/busybox mkdir -p "/newroot/$d"; done
	# switch_root empties the initramfs, chroots into /newroot and runs its /init.
	# shellcheck disable=SC2093 # die runs only if the exec fails
	exec /newroot/bin/busybox switch_root /newroot /init stage2
	die "switch_root failed"
fi

# ---------------------------------------------------------------- stage 2
say "stage 2: / is a $(stat -f -c %T /)"

# The mounts of a systemd host, with systemd's options.
mount -t proc -o nosuid,nodev,noexec proc /proc || die "mount /proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || die "mount /sys"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || die "mount /dev"
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=000 devpts /dev/pts || die "mount /dev/pts"
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm || die "mount /dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue || say "warning: no mqueue"
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run || die "mount /run"
# cgroup2 as the only hierarchy, mounted as systemd mounts it. The kernel was
# booted with cgroup_no_v1=all, so no v1 hierarchy could be mounted anyway.
mount -t cgroup2 -o nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "mount cgroup2 on /sys/fs/cgroup"
# systemd makes every mount shared; a runtime must cope with that (rslave/private
# its own mount namespace), so the tests see it too.
mount --make-rshared / || say "warning: mount --make-rshared / failed"
hostname nsbox-vm

say "uptime $(now)s, kernel: $(uname -r), cmdline: $(cat /proc/cmdline)"
say "cpus: $(nproc), memory: $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo)"

# Kernel modules (overlay, veth, bridge, nf_tables...), in the dependency order
# run.sh computed from modules.dep. The kernel asks /sbin/modprobe (busybox) for
# any other it needs; run.sh put the netfilter and bridge modules in for that.
loaded=""
failed=""
while read -r ko; do
	[ -n "$ko" ] || continue
	name=${ko##*/}
	name=${name%.ko}
	if insmod "/lib/modules/$ko" 2>/run/insmod.err; then
		loaded="$loaded $name"
	else
		failed="$failed $name($(cat /run/insmod.err))"
	fi
done <"$CONF/modules"
say "modules loaded:${loaded:- none}"
[ -z "$failed" ] || say "warning: modules that did not load:$failed"
ip link set lo up || say "warning: could not bring lo up"

# /tmp and /var/lib/nsbox on ext4, as on a Debian 12 host: run.sh gives the VM a
# blank disk. (tmpfs would do, but Linux 6.1's tmpfs has no idmapped mounts, so
# every --userns test would fail.) Without the disk: tmpfs.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1 && i=$((i + 1)); done
mkdir -p /mnt/disk /var/lib/nsbox
if [ -b /dev/vda ] && mount -t ext4 -o noinit_itable /dev/vda /mnt/disk; then
	mkdir -p /mnt/disk/tmp /mnt/disk/nsbox && chmod 1777 /mnt/disk/tmp
	mount --bind /mnt/disk/tmp /tmp && mount --bind /mnt/disk/nsbox /var/lib/nsbox || die "bind mounts from the disk"
	say "/tmp and /var/lib/nsbox: ext4 on /dev/vda ($(df -h /mnt/disk | awk 'NR == 2 {print $2}'))"
else
	say "warning: no scratch disk: /tmp is a tmpfs (--userns tests will fail: no idmapped mounts on tmpfs)"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp || die "mount /tmp"
fi

# Controllers: enabled in the root's cgroup.subtree_control, as systemd does.
CG=/sys/fs/cgroup
say "cgroup.controllers: $(cat $CG/cgroup.controllers)"
enable_controllers() { # DIR: enable in DIR every controller DIR offers that systemd would enable
	for c in cpuset cpu io memory hugetlb pids rdma misc; do
		grep -qw "$c" "$1/cgroup.controllers" || continue
		echo "+$c" >"$1/cgroup.subtree_control" 2>/dev/null || say "warning: could not enable $c in $1"
	done
}
enable_controllers $CG
say "cgroup.subtree_control: $(cat $CG/cgroup.subtree_control)"

# Where the tests run. As on a systemd host, they do not run in the root cgroup
# but in a service under system.slice (NSBOX_VM_CGROUP=/ keeps them at the root),
# and PID 1 sits in init.scope.
. "$CONF/config"
TEST_CG=${NSBOX_VM_CGROUP:-/}
if [ "$TEST_CG" != / ]; then
	mkdir -p $CG/init.scope && echo 1 >$CG/init.scope/cgroup.procs || die "move PID 1 to init.scope"
	dir=$CG
	rest=${TEST_CG#/}
	while [ -n "$rest" ]; do
		part=${rest%%/*}
		[ "$part" = "$rest" ] && rest="" || rest=${rest#*/}
		dir=$dir/$part
		mkdir -p "$dir" || die "mkdir $dir"
		# slices delegate the controllers to their children; the leaf holds the tests
		[ -z "$rest" ] || enable_controllers "$dir"
	done
fi
say "tests run in cgroup $TEST_CG"

# The test environment: root, PATH with /bin, a pure cgroup v2 host.
export HOME=/root TMPDIR=/tmp TERM=dumb NO_COLOR=1 USER=root LOGNAME=root LANG=C.UTF-8
export NSBOX_TEST_CGROUP2=1 NSBOX_TEST_ROOTFS=/project/dist/rootfs/busybox NSBOX_TEST_VM=1
# NSBOX_TEST_* variables passed through from the host, one KEY=VALUE a line
# shellcheck disable=SC2163 # kv is KEY=VALUE: export it as it is
while IFS= read -r kv; do [ -n "$kv" ] && export "$kv"; done <"$CONF/env"

set --
while IFS= read -r f; do [ -n "$f" ] && set -- "$@" "$f"; done <"$CONF/tests"
say "running: bun test $NSBOX_VM_BUN_ARGS $* (uptime $(now)s)"
start=$(now)
# bun prints "(pass) name" / "(fail) name" lines only when its output is not a
# terminal: the serial console is one, so its output goes through cat.
# shellcheck disable=SC3040 # busybox ash has pipefail
set -o pipefail
# shellcheck disable=SC2086 # NSBOX_VM_BUN_ARGS is split on purpose
/bin/sh -c 'echo $$ >"$1/cgroup.procs" || exit 125; shift; cd /project && exec bun test "$@"' \
	sh "$CG${TEST_CG%/}" $NSBOX_VM_BUN_ARGS "$@" 2>&1 </dev/null | cat
rc=$?
say "bun test exited with $rc after $(awk "BEGIN {print $(now) - $start}")s"
finish $rc
