#!/usr/bin/env bash
# Records which of nsbox's functions the starts that count run, and in what order
# (`bun build --bytecode-order`, Bun 1.4): run, run with limits, exec. The
# Makefile builds dist/nsbox with these files, so that the bytecode those starts
# execute lies together at the front of the binary's embedded payload: a start
# then maps fewer of its pages (run's peak RSS −0.68 MiB, bench/trace-notes.md,
# "eighth stop"). Functions are named by a hash of their own code: an edit moves
# only the functions it touches to the back, and test/integration/bytecode-order.test.ts
# fails once the files no longer cover run's functions.
#
#   make bytecode-order   (as root: runs containers; then commit bytecode-order/)
#   bench/record-bytecode-order.sh NSBOX ROOTFS OUTDIR
set -euo pipefail
nsbox=$(realpath "$1") rootfs=$(realpath "$2") out=$3
[ "$(id -u)" = 0 ] || { echo "record-bytecode-order: run as root (it runs containers)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d /tmp/nsbox-order-XXXXXX)
name=order-$$
cleanup() {
	NSBOX_ROOT=$tmp/root NSBOX_STATE=$tmp/state "$nsbox" rm -f "$name" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
export NSBOX_ROOT=$tmp/root NSBOX_STATE=$tmp/state
# a first run makes the data root and the helper's copy: the recorded starts are the usual ones
"$nsbox" run --rm --net none "$rootfs" /bin/true
record() { # FILE ARGS...
	local file=$1
	shift
	rm -f "$tmp/order.txt"
	BUN_BYTECODE_ORDER_OUT=$tmp/order.txt "$nsbox" "$@" >/dev/null
	mv "$tmp/order.txt" "$out/$file"
	chmod 0644 "$out/$file"
	echo "$out/$file: $(grep -c '^F ' "$out/$file") functions (nsbox $*)"
}
record run.txt run --rm --net none "$rootfs" /bin/true
record limits.txt run --rm --net none --memory 64m --pids-limit 64 "$rootfs" /bin/true
"$nsbox" run -d --name "$name" --net none "$rootfs" sleep 600 >/dev/null
record exec.txt exec "$name" /bin/true
