/**
 * Device rules on cgroup v2: there is no devices controller; the kernel runs
 * the BPF_PROG_TYPE_CGROUP_DEVICE programs attached to a process's cgroup (and
 * its ancestors) on every mknod and device open. nsbox builds the program in
 * TypeScript (security/devices-bpf.ts), loads it with bpf(BPF_PROG_LOAD) and
 * attaches it to the container's cgroup with bpf(BPF_PROG_ATTACH), as runc and
 * crun do. The attachment holds the program: its fd is closed at once, and
 * removing the cgroup detaches and frees it.
 */
import { errnoName } from "../native/errno.ts";
import { closeSync, constants, openSync } from "../native/fs.ts";
import { addr, sys } from "../native/syscall.ts";
import type { DeviceRule } from "../security/devices.ts";
import { deviceFilterProgram } from "../security/devices-bpf.ts";
import { CgroupError } from "./cgroup.ts";

const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
/** several programs per cgroup, all of which must allow (systemd's own may be there too) */
const BPF_F_ALLOW_MULTI = 2;
/** union bpf_attr is larger on newer kernels; the kernel takes a shorter one whose tail is zero */
const ATTR_SIZE = 120;

/** bpf(BPF_PROG_LOAD): the program's fd, or -errno. `log` receives the verifier's words when given. */
function load(insns: Uint8Array, license: Uint8Array, log?: Uint8Array): number {
  const attr = new Uint8Array(ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, BPF_PROG_TYPE_CGROUP_DEVICE, true); // prog_type
  v.setUint32(4, insns.length / 8, true); // insn_cnt
  v.setBigUint64(8, BigInt(addr(insns)), true); // insns
  v.setBigUint64(16, BigInt(addr(license)), true); // license
  if (log) {
    v.setUint32(24, 1, true); // log_level
    v.setUint32(28, log.length, true); // log_size
    v.setBigUint64(32, BigInt(addr(log)), true); // log_buf
  }
  const fd = sys("bpf", BPF_PROG_LOAD, addr(attr), ATTR_SIZE);
  // the arrays the kernel read through pointers stay referenced until here
  void [insns, license, log];
  return fd;
}

/** Loads the program for `rules` and attaches it to the cgroup directory `dir`. */
export function attachDeviceFilter(dir: string, rules: readonly DeviceRule[]): void {
  const insns = deviceFilterProgram(rules);
  // The license only gates GPL-only helpers, which the program does not call (runc says "Apache").
  const license = new TextEncoder().encode("Apache\0");
  const prog = load(insns, license);
  if (prog < 0) {
    const log = new Uint8Array(1 << 16);
    load(insns, license, log);
    const words = new TextDecoder()
      .decode(log.subarray(0, Math.max(0, log.indexOf(0))))
      .trim()
      .split("\n")
      .slice(-2)
      .join("; ");
    throw new CgroupError(
      `cannot load the device rules program (bpf BPF_PROG_LOAD: ${errnoName(-prog)}${prog === -1 /* EPERM */ ? ", needs CAP_SYS_ADMIN or CAP_BPF" : ""})${words ? `: ${words}` : ""}`,
    );
  }
  let cg: number | undefined;
  try {
    cg = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    const attr = new Uint8Array(ATTR_SIZE);
    const v = new DataView(attr.buffer);
    v.setUint32(0, cg, true); // target_fd
    v.setUint32(4, prog, true); // attach_bpf_fd
    v.setUint32(8, BPF_CGROUP_DEVICE, true); // attach_type
    v.setUint32(12, BPF_F_ALLOW_MULTI, true); // attach_flags
    const r = sys("bpf", BPF_PROG_ATTACH, addr(attr), ATTR_SIZE);
    if (r < 0) throw new CgroupError(`cannot attach the device rules program to ${dir} (bpf BPF_PROG_ATTACH: ${errnoName(-r)})`);
  } finally {
    if (cg !== undefined) closeSync(cg);
    sys("close", prog);
  }
}
