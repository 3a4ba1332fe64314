/**
 * docker's resource flags -> OCI linux.resources, checked against this machine
 * before anything exists (sizes the kernel would refuse, CPUs that are not there).
 */

import { fail } from "../errors.ts";
import { map } from "../list.ts";
import { readFileSync, statSync } from "../native/fs.ts";
import type { Resources, ThrottleDevice } from "./spec.ts";
import { formatBytes, parseCpuList, parseCpus, parsePositiveInt, parseSize, parseSizeOrUnlimited } from "./units.ts";

/** The smallest memory limit docker accepts; below it a container cannot even start its shell. */
export const MIN_MEMORY = 6 * 1024 * 1024;

export interface ResourceFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpuWeight?: string;
  pidsLimit?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  blkioWeight?: string;
  deviceReadBps?: string[];
  deviceWriteBps?: string[];
}

function onlineList(path: string, fallback: string): number[] {
  try {
    return parseCpuList(readFileSync(path, "utf8").trim(), path);
  } catch {
    return parseCpuList(fallback, path);
  }
}

/** The highest number in a sysfs list such as /sys/devices/system/cpu/possible ("0-63"), and the list. */
function possible(path: string, fallback: number[], what: string): { max: number; what: string; possible: string } {
  let list = fallback;
  try {
    list = parseCpuList(readFileSync(path, "utf8").trim(), path);
  } catch {
    // no such file (an old kernel): what is online is what is possible
  }
  return { max: Math.max(...list), what, possible: compact(list) };
}

function checkSubset(flag: string, text: string, online: number[], what: string, possiblePath: string): string {
  // bounded first by what the kernel could ever have, before the list is expanded
  const want = parseCpuList(text, flag, possible(possiblePath, online, what));
  const missing = want.filter((c) => !online.includes(c));
  if (missing.length)
    fail(
      `invalid ${flag} ${text}: ${what} ${missing.join(",")} ${missing.length === 1 ? "does" : "do"} not exist on this machine (available: ${compact(online)})`,
    );
  return text;
}

function compact(list: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < list.length; ) {
    let j = i;
    while (j + 1 < list.length && (list[j + 1] as number) === (list[j] as number) + 1) j++;
    out.push(i === j ? `${list[i]}` : `${list[i]}-${list[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

function throttle(items: string[] | undefined, flag: string): ThrottleDevice[] {
  return map(items ?? [], (item) => {
    const colon = item.lastIndexOf(":");
    if (colon <= 0) fail(`invalid ${flag} "${item}": use DEVICE_PATH:RATE, e.g. /dev/sda:1mb`);
    const path = item.slice(0, colon);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      fail(`invalid ${flag} "${item}": ${path} does not exist`);
    }
    if (!st.isBlockDevice()) fail(`invalid ${flag} "${item}": ${path} is not a block device`);
    const rate = parseSize(item.slice(colon + 1), flag);
    if (rate <= 0) fail(`invalid ${flag} "${item}": the rate must be above 0`);
    const rdev = Number(st.rdev);
    return { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & ~0xff), rate, path };
  });
}

export function parseResources(f: ResourceFlags): Resources | undefined {
  const res: Resources = {};
  if (f.memory !== undefined) {
    const limit = parseSize(f.memory, "--memory");
    if (limit < MIN_MEMORY) fail(`invalid --memory ${f.memory}: the minimum is 6m (${formatBytes(limit)} is too little for the kernel to start a process)`);
    res.memory = { limit };
  }
  if (f.memorySwap !== undefined) {
    if (!res.memory) fail("--memory-swap needs --memory too (it is memory plus swap, as in docker)");
    const swap = f.memorySwap.trim() === "0" ? undefined : parseSizeOrUnlimited(f.memorySwap, "--memory-swap"); // docker: 0 means unset
    if (swap !== undefined && swap !== -1 && swap < (res.memory.limit as number))
      fail(`invalid --memory-swap ${f.memorySwap}: it is memory plus swap, so it cannot be below --memory ${f.memory}`);
    if (swap !== undefined) res.memory.swap = swap;
  }
  if (f.memoryReservation !== undefined) {
    const reservation = parseSize(f.memoryReservation, "--memory-reservation");
    if (res.memory?.limit !== undefined && reservation > res.memory.limit)
      fail(`invalid --memory-reservation ${f.memoryReservation}: it must not exceed --memory ${f.memory}`);
    res.memory = { ...res.memory, reservation };
  }
  // read only for the flags that need it: most runs give none
  const cpuOnline = () => onlineList("/sys/devices/system/cpu/online", `0-${navigator.hardwareConcurrency - 1}`);
  if (f.cpus !== undefined) {
    const cpus = parseCpus(f.cpus, cpuOnline().length);
    res.cpu = { quota: Math.round(cpus * 100000), period: 100000 };
  }
  if (f.cpuShares !== undefined) res.cpu = { ...res.cpu, shares: parsePositiveInt(f.cpuShares, "--cpu-shares", 2, 262144) };
  if (f.cpuWeight !== undefined) res.cpu = { ...res.cpu, weight: parsePositiveInt(f.cpuWeight, "--cpu-weight", 1, 10000) };
  if (f.cpusetCpus !== undefined)
    res.cpu = { ...res.cpu, cpus: checkSubset("--cpuset-cpus", f.cpusetCpus, cpuOnline(), "CPU", "/sys/devices/system/cpu/possible") };
  if (f.cpusetMems !== undefined) {
    const nodes = onlineList("/sys/devices/system/node/online", "0");
    res.cpu = { ...res.cpu, mems: checkSubset("--cpuset-mems", f.cpusetMems, nodes, "memory node", "/sys/devices/system/node/possible") };
  }
  if (f.pidsLimit !== undefined) {
    if (f.pidsLimit.trim() === "-1") fail("invalid --pids-limit -1: leave the flag out for no limit, or give a number of processes from 1");
    res.pids = { limit: parsePositiveInt(f.pidsLimit, "--pids-limit", 1, 4194304) };
  }
  const weight = f.blkioWeight === undefined ? undefined : parsePositiveInt(f.blkioWeight, "--blkio-weight", 10, 1000);
  const rd = throttle(f.deviceReadBps, "--device-read-bps");
  const wr = throttle(f.deviceWriteBps, "--device-write-bps");
  if (weight !== undefined || rd.length || wr.length)
    res.blockIO = {
      ...(weight !== undefined ? { weight } : {}),
      ...(rd.length ? { throttleReadBpsDevice: rd } : {}),
      ...(wr.length ? { throttleWriteBpsDevice: wr } : {}),
    };
  return Object.keys(res).length ? res : undefined;
}
