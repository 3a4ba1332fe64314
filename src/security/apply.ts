/**
 * Puts a container's security settings into its spec, from docker's flags:
 * --privileged, --cap-add/--cap-drop, --security-opt, --device and
 * --device-cgroup-rule. Every bad input throws before anything is created.
 */

import type { ContainerSpec, Device } from "../config/spec.ts";
import { findIndex, flatMap, map } from "../list.ts";
import { log } from "../log.ts";
import { lstatSync, readdirSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { deviceRules, parseDeviceFlag, splitDev } from "./devices.ts";
import { SecurityError } from "./errors.ts";
import { securityFromFlags } from "./policy.ts";

export interface SecurityCliFlags {
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  securityOpt: string[];
  devices: string[];
  deviceCgroupRules: string[];
}

export async function applySecurity(spec: ContainerSpec, f: SecurityCliFlags): Promise<void> {
  const s = await securityFromFlags({ ...f, uid: spec.process.user.uid });
  for (const n of s.notes) log.info(n);
  if (s.unknownSyscalls.length)
    log.debug(
      `the seccomp profile names ${s.unknownSyscalls.length} syscalls this architecture lacks (ignored, as docker does): ${s.unknownSyscalls.join(", ")}`,
    );
  spec.process.capabilities = s.capabilities;
  if (s.noNewPrivileges) spec.process.noNewPrivileges = true;
  spec.linux.seccomp = s.seccomp;
  if (s.seccomp) {
    spec.nsbox.seccompProfile = s.seccompSource;
    spec.nsbox.seccompKey = s.seccompKey;
  }
  spec.linux.maskedPaths = s.maskedPaths;
  spec.linux.readonlyPaths = s.readonlyPaths;
  if (f.privileged) {
    spec.nsbox.privileged = true;
    // /sys writable, as docker's --privileged
    for (const m of spec.mounts) if (m.type === "sysfs") m.options = (m.options ?? []).filter((o) => o !== "ro");
  }

  const extra = flatMap(f.devices, parseDeviceFlag);
  const nodes: Device[] = f.privileged ? hostDevices() : [];
  for (const d of extra) nodes.push(d.node);
  for (const n of nodes) {
    const i = findIndex(spec.linux.devices, (d) => d.path === n.path);
    if (i >= 0) spec.linux.devices.splice(i, 1);
    spec.linux.devices.push(n);
  }
  const rules = deviceRules({ privileged: f.privileged, devices: map(extra, (d) => d.rule), rules: f.deviceCgroupRules });
  if (spec.nsbox.rootless) {
    // No device can be made in a user namespace, and a user may not load a device program.
    if (f.deviceCgroupRules.length)
      throw new SecurityError("--device-cgroup-rule needs the devices cgroup, which a rootless container does not have (and no device can be made inside it)");
    return;
  }
  if (!spec.nsbox.cgroups) {
    if (f.devices.length || f.deviceCgroupRules.length)
      throw new SecurityError("--device and --device-cgroup-rule need the devices cgroup: drop --cgroup-manager none");
    if (!f.privileged) log.warn("--cgroup-manager none: no devices cgroup, so nothing stops the container from opening a device node it makes (mknod)");
    return;
  }
  spec.linux.resources = { ...(spec.linux.resources ?? {}), devices: rules };
}

/**
 * Every device node of the host's /dev (--privileged), as docker's
 * HostDevices: character and block devices, not the host's pts or shm.
 */
function hostDevices(): Device[] {
  const out: Device[] = [];
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console", "/dev/ptmx"].includes(path)) continue;
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth < 3) walk(path, depth + 1);
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        out.push({
          path,
          type: st.isBlockDevice() ? "b" : "c",
          ...splitDev(Number(st.rdev)),
          fileMode: st.mode & 0o7777,
          uid: st.uid,
          gid: st.gid,
        });
      }
    }
  };
  walk("/dev", 0);
  return out;
}
