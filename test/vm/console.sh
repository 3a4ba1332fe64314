# shellcheck shell=bash
# test/vm/console.sh, sourced by run.sh and arm64.sh: runs a qemu VM with its
# serial console kept whole in a log file, streams only what the VM's /init
# prints, and stops a VM that has not reached /init by a deadline, saying how
# far it got.
#
# Why: a cgroup v2 VM once hung at boot in CI with no output at all for the
# whole 900 s timeout (the kernel booted with `quiet`), and booted in 6.5 s when
# run again: nothing said whether qemu, the firmware or the kernel hung. Now the
# kernel boots with its messages on the console (into the log, not the stream),
# and qemu has a monitor on a pipe, so at the deadline the log tells what the
# kernel printed last and where each CPU was.

# The console's kernel lines: the kernel boots with printk.time=1.
VM_KERNEL_LINE='^\[ *[0-9]+\.[0-9]+\] '

# vm_log DIR: a new log file's path in DIR (DIR/last.log points to it); keeps the newest 20.
vm_log() {
	local log
	log=$1/$(date +%Y%m%d-%H%M%S)-$$.log
	mkdir -p "$1"
	{ ls -t "$1"/*.log 2>/dev/null || true; } | tail -n +20 | xargs -r rm -f
	ln -sfn "$(basename "$log")" "$1/last.log"
	echo "$log"
}

# vm_run DIR LOG DEADLINE FIRST TIMEOUT QEMU_COMMAND...
#   Runs QEMU_COMMAND under `timeout TIMEOUT` (with a monitor added; stdin
#   /dev/null, stdout and stderr: the serial console). Every line of the console,
#   without \r and terminal escapes, goes to LOG; to stdout go the lines from the
#   first that contains FIRST (what /init prints first) on, or every line with
#   NSBOX_VM_VERBOSE=1. If no such line came within DEADLINE seconds, qemu is
#   stopped; then DIR/late holds one line saying how far the boot got, and LOG
#   ends with qemu's registers. DIR/boot gets the seconds to the FIRST line.
#   Returns qemu's exit status (timeout's: 124 when TIMEOUT ran out).
vm_run() {
	local dir=$1 log=$2 deadline=$3 first=$4 timeout=$5 qpid rc=0 mon
	shift 5
	rm -f "$dir"/{serial,mon.in,mon.out,late,boot,monitor}
	mkfifo "$dir/serial" "$dir/mon.in" "$dir/mon.out"
	# qemu opens mon.out write-only, which blocks until there is a reader: this
	# one, read-write, so that it never blocks either.
	exec {mon}<>"$dir/mon.out"
	timeout -k 10 "$timeout" "$@" -chardev "pipe,id=nsboxmon,path=$dir/mon" -mon chardev=nsboxmon,mode=readline \
		</dev/null >"$dir/serial" 2>&1 &
	qpid=$!
	sed -u 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' <"$dir/serial" | tee "$log" |
		_vm_watch "$dir" "$deadline" "$first" "$qpid" "$mon"
	wait "$qpid" || rc=$?
	exec {mon}<&-
	if [ -s "$dir/monitor" ]; then
		{
			echo "---- qemu's monitor at the boot deadline (stop; info registers -a):"
			cat "$dir/monitor"
		} >>"$log"
	fi
	return "$rc"
}

# _vm_watch DIR DEADLINE FIRST QEMU_PID MONITOR_FD: reads the cleaned console (stdin)
_vm_watch() {
	local dir=$1 first=$3 qpid=$4 mon=$5 line left rc t0=$EPOCHREALTIME
	local end=$((SECONDS + $2)) lines=0 klines=0 lastk="" lasto="" cpus
	while :; do
		rc=0 line=""
		left=$((end - SECONDS))
		if ((left > 0)); then IFS= read -r -t "$left" line || rc=$?; else rc=142; fi # (>128: read timed out)
		if ((rc == 0)) && [[ $line == *"$first"* ]]; then
			awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f\n", b - a}' >"$dir/boot"
			printf '%s\n' "$line"
			exec cat # the rest: /init's output
		fi
		[ "${NSBOX_VM_VERBOSE:-}" != 1 ] || ((rc != 0)) || printf '%s\n' "$line"
		if [ -n "$line" ]; then # a whole line, or the start of one (no \n yet)
			lines=$((lines + 1))
			if [[ $line =~ $VM_KERNEL_LINE ]]; then klines=$((klines + 1)) lastk=$line; else lasto=$line; fi
		fi
		((rc == 0)) || break
	done
	if ((rc > 128)); then # the deadline: say how far the boot got, then stop qemu
		if ((lines == 0)); then
			echo "qemu printed nothing at all: no firmware line, no kernel line" >"$dir/late"
		elif ((klines == 0)); then
			echo "qemu printed $lines lines, none from the kernel (firmware or qemu), the last: ${lasto:0:160}" >"$dir/late"
		else
			echo "the kernel printed $klines lines, the last: ${lastk:0:160}" >"$dir/late"
		fi
		_vm_monitor "$dir" "$mon"
		cpus=$(_vm_cpus "$dir/monitor")
		[ -z "$cpus" ] || echo "$cpus" >>"$dir/late"
		kill "$qpid" 2>/dev/null || true
	fi
	cat >/dev/null # what qemu prints as it goes ("terminating on signal"): in the log only
}

# _vm_monitor DIR FD: stop the VM and dump its registers into DIR/monitor (5 s at most:
# a qemu that is stuck itself does not answer, and says so by that).
_vm_monitor() {
	local line n=0
	printf 'stop\ninfo registers -a\n' 1<>"$1/mon.in"
	while ((n < 400)) && IFS= read -r -t 5 -u "$2" line; do
		printf '%s\n' "$line"
		n=$((n + 1))
	done | sed 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; /^(qemu)/d' >"$1/monitor" # (the prompt and its echo)
	grep -q '^CPU#' "$1/monitor" || echo "(no answer in 5 s: qemu itself is stuck)" >>"$1/monitor"
}

# _vm_cpus MONITOR_DUMP: one line, each CPU's program counter and whether it is
# halted: x86's RIP (64-bit mode: the kernel) or EIP (firmware or early boot
# code), arm64's PC. (Not as symbols: Debian's System.map is a stub.)
_vm_cpus() {
	local cpu="" line pc out=""
	while IFS= read -r line; do
		line=${line#"${line%%[! ]*}"} # (arm64's " PC=")
		case $line in
		CPU#*) cpu=${line%%[^A-Z#0-9]*} ;;
		"(no answer"*) echo "qemu's monitor did not answer in 5 s: qemu itself is stuck" && return ;;
		RIP=* | EIP=* | PC=*)
			pc=${line%% *}
			out+="${out:+, }${cpu:-CPU} $pc"
			[[ $line != *HLT=1* ]] || out+=" halted"
			;;
		esac
	done <"$1"
	[ -z "$out" ] || echo "qemu's CPUs: $out"
}

# vm_kernel_tail LOG N: the kernel's last N lines in LOG (or, if none, qemu's), for a failure's report
vm_kernel_tail() {
	local k
	k=$(grep -acE "$VM_KERNEL_LINE" "$1" || true)
	if [ "${k:-0}" = 0 ]; then # then what qemu or the firmware said (qemu's errors)
		echo "---- no kernel line in $1; what qemu printed:"
		sed '/^---- qemu.s monitor/,$d' "$1" | tail -n "$2"
	else
		echo "---- the kernel's last $2 lines (of $k) in $1:"
		grep -aE "$VM_KERNEL_LINE" "$1" | tail -n "$2"
	fi
}
