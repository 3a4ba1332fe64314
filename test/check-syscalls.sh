#!/usr/bin/env bash
# Checks csrc/arch_<arch>.c against the kernel's own numbers: every SYS_x it
# defines must equal __NR_x from that architecture's <asm/unistd.h>, and both
# arch files must define the same names (the helper and shim use one set);
# likewise src/native/syscall.ts's table for the architecture.
#   test/check-syscalls.sh x86_64 gcc
#   test/check-syscalls.sh aarch64 aarch64-linux-gnu-gcc   (linux-libc-dev-arm64-cross)
set -euo pipefail
cd "$(dirname "$0")/../csrc"
arch=$1 cc=$2
names=$(grep -oE '^#define SYS_[a-z0-9_]+ ' "arch_$arch.c" | awk '{print $2}' | sed 's/^SYS_//')
kernel=$({ echo '#include <asm/unistd.h>'; for n in $names; do echo "CHK $n __NR_$n"; done; } | "$cc" -E -P -x c - | grep '^CHK ')
bad=0
while read -r _ n v; do
	ours=$(grep -E "^#define SYS_$n " "arch_$arch.c" | awk '{print $3}')
	if [ "$ours" != "$v" ]; then echo "arch_$arch.c: SYS_$n is $ours, the kernel says $v" >&2; bad=1; fi
done <<<"$kernel"
if ! diff <(grep -oE '^#define (SYS|O)_[A-Za-z0-9_]+' arch_x86_64.c | sort) <(grep -oE '^#define (SYS|O)_[A-Za-z0-9_]+' arch_aarch64.c | sort) >&2; then
	echo "arch_x86_64.c and arch_aarch64.c define different names (above)" >&2
	bad=1
fi
# src/native/syscall.ts's table for this architecture (the system calls nsbox makes from TypeScript)
table=$([ "$arch" = x86_64 ] && echo X86_64 || echo AARCH64)
ts=$(sed -n "/^const $table\b/,/^}/p" ../src/native/syscall.ts | grep -oE '^  [a-z0-9_]+: [0-9]+' | tr -d ':')
[ -n "$ts" ] || { echo "src/native/syscall.ts: no $table table found" >&2; bad=1; }
tskernel=$({ echo '#include <asm/unistd.h>'; while read -r n _; do echo "CHK $n __NR_$n"; done <<<"$ts"; } | "$cc" -E -P -x c - | grep '^CHK ')
while read -r _ n v; do
	ours=$(awk -v n="$n" '$1 == n {print $2}' <<<"$ts")
	if [ "$ours" != "$v" ]; then echo "src/native/syscall.ts: $table.$n is $ours, the kernel says $v" >&2; bad=1; fi
done <<<"$tskernel"
[ "$bad" = 0 ] && echo "arch_$arch.c: $(wc -l <<<"$kernel") syscall numbers match the kernel's; syscall.ts's $table: $(wc -l <<<"$tskernel")"
exit "$bad"
