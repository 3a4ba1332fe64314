/**
 * Device rules on cgroup v1: the container's own cgroup in the devices
 * hierarchy. A new cgroup starts with its parent's list; nsbox resets it with
 * one "a" line (devices.deny: nothing allowed; devices.allow: everything) and
 * then writes each exception, as runc's v1 devices manager does, then reads
 * devices.list back to be sure the kernel holds what was asked.
 */
import { join } from "node:path";
import { cgroupLine, type DeviceRule, effectiveRules } from "../security/devices.ts";
import { CgroupError } from "./cgroup.ts";
import { readCg, writeCg } from "./fsutil.ts";

/** The writes that give a new devices cgroup the rules: [file, line]. */
export function devicesV1Writes(rules: readonly DeviceRule[]): [string, string][] {
  const set = effectiveRules(rules);
  const file = (allow: boolean) => (allow ? "devices.allow" : "devices.deny");
  return [[file(set.defaultAllow), "a"], ...set.exceptions.map((e): [string, string] => [file(e.allow), cgroupLine(e)])];
}

/**
 * What devices.list shows afterwards: the allowed exceptions (the kernel lists
 * those of a deny-by-default cgroup), or "a *:* rwm" when everything is allowed.
 */
export function expectedDevicesList(rules: readonly DeviceRule[]): string[] {
  const set = effectiveRules(rules);
  return set.defaultAllow ? ["a *:* rwm"] : set.exceptions.map(cgroupLine).sort();
}

export function applyDevicesV1(dir: string, rules: readonly DeviceRule[]): void {
  for (const [file, line] of devicesV1Writes(rules)) writeCg(join(dir, file), line, `the device rule "${line}" (${file})`);
  const got = (readCg(join(dir, "devices.list")) ?? "").trim().split("\n").filter(Boolean).sort();
  const want = expectedDevicesList(rules);
  if (got.join("\n") !== want.join("\n"))
    throw new CgroupError(
      `the devices cgroup ${dir} holds [${got.join(", ")}], not the rules nsbox wrote [${want.join(", ")}] (does a parent cgroup deny them?)`,
    );
}
