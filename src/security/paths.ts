/**
 * Paths of /proc and /sys that a container must not read or write: docker's
 * lists (moby oci/defaults.go), the same in runc's and crun's default specs.
 * Masked: a file gets /dev/null bound over it, a directory an empty read-only
 * tmpfs (kernel memory, key rings, timers that leak other tenants' activity).
 * Read-only: kernel tunables, whose writes would reach the whole host
 * (/proc/sys/kernel/core_pattern runs a program as host root on the next crash).
 * Paths this kernel lacks are skipped.
 */
export const MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

export const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
