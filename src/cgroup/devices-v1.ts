/**
 * Device rules on cgroup v1: the container's own cgroup in the devices
 * hierarchy. A new cgroup starts with its parent's list; nsbox resets it with
 * one "a" line (devices.deny: nothing allowed; devices.allow: everything) and
 * then writes each exception, as runc's v1 devices manager does, then reads
 * devices.list back to be sure the kernel holds what was asked.
 */
import { filter, map, sorted } from "../list.ts";
import { closeSync, openSync, writeSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { cgroupLine, type DeviceRule, type DeviceRuleSet, effectiveRules } from "../security/devices.ts";
import { CgroupError } from "./cgroup.ts";
import { cgWriteError, readCg } from "./fsutil.ts";

/** The writes that give a new devices cgroup the rules: [file, line]. */
export function devicesV1Writes(rules: readonly DeviceRule[]): [string, string][] {
  return writesFor(effectiveRules(rules));
}

function writesFor(set: DeviceRuleSet): [string, string][] {
  const file = (allow: boolean) => (allow ? "devices.allow" : "devices.deny");
  const writes: [string, string][] = [[file(set.defaultAllow), "a"]];
  for (const e of set.exceptions) writes.push([file(e.allow), cgroupLine(e)]);
  return writes;
}

/**
 * What devices.list shows afterwards: the allowed exceptions (the kernel lists
 * those of a deny-by-default cgroup), or "a *:* rwm" when everything is allowed.
 */
export function expectedDevicesList(rules: readonly DeviceRule[]): string[] {
  return expectedFor(effectiveRules(rules));
}

function expectedFor(set: DeviceRuleSet): string[] {
  return set.defaultAllow ? ["a *:* rwm"] : sorted(map(set.exceptions, cgroupLine));
}

/**
 * Gives the devices cgroup dir the rules; nothing when they allow everything
 * (no devices cgroup was made for them: see rulesNeedCgroup).
 */
export function applyDevicesV1(dir: string | undefined, rules: readonly DeviceRule[]): void {
  const set = effectiveRules(rules);
  if (set.defaultAllow && set.exceptions.length === 0) return;
  if (dir === undefined) throw new CgroupError("the device rules need a devices cgroup, and none was made");
  // One open file each for devices.allow and devices.deny: the kernel takes each
  // write(2) as one rule, so a dozen rules need not cost a dozen opens.
  const fds = new Map<string, number>();
  try {
    for (const [file, line] of writesFor(set)) {
      const path = join(dir, file);
      try {
        let fd = fds.get(file);
        if (fd === undefined) {
          fd = openSync(path, "w");
          fds.set(file, fd);
        }
        writeSync(fd, line);
      } catch (e) {
        throw cgWriteError(e, path, line, `the device rule "${line}" (${file})`);
      }
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  const got = sorted(filter((readCg(join(dir, "devices.list")) ?? "").trim().split("\n"), Boolean));
  const want = expectedFor(set);
  if (got.join("\n") !== want.join("\n"))
    throw new CgroupError(
      `the devices cgroup ${dir} holds [${got.join(", ")}], not the rules nsbox wrote [${want.join(", ")}] (does a parent cgroup deny them?)`,
    );
}
