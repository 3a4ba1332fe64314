/**
 * cgroup v1 (and the v1 side of a hybrid host): one hierarchy per controller,
 * the container gets a directory in each, nested under nsbox's own cgroup there.
 */

import type { Resources } from "../config/spec.ts";
import { filter, unique } from "../list.ts";
import { existsSync, mkdirSync, rmdirSync } from "../native/fs.ts";
import { dirname, join } from "../posixpath.ts";
import { rulesNeedCgroup } from "../security/devices.ts";
import { CgroupError, type CgroupRecord, type CgroupStats, type ContainerCgroup } from "./cgroup.ts";
import type { CgroupHost } from "./detect.ts";
import { applyDevicesV1 } from "./devices-v1.ts";
import { keyed, killPids, numberOf, pidsIn, readCg, rmdirCg, writeCg, writeCgAsync } from "./fsutil.ts";
import { ensureParent, plannedParents, removeParents } from "./parents.ts";
import { settleWarmUps } from "./warm.ts";

/** v1 memory files say "unlimited" with a huge number (PAGE_COUNTER_MAX pages). */
const V1_UNLIMITED = 2 ** 62;

export class V1Cgroup implements ContainerCgroup {
  constructor(readonly record: CgroupRecord) {}

  private dir(c: string): string | undefined {
    return this.record.paths[c];
  }
  private dirs(): string[] {
    return unique(Object.values(this.record.paths));
  }

  join(pid: number): void {
    for (const d of this.dirs()) writeCg(join(d, "cgroup.procs"), `${pid}\n`, `the container's cgroup ${d}`);
    settleWarmUps();
  }

  async joinAsync(pid: number): Promise<void> {
    for (const d of this.dirs()) await writeCgAsync(join(d, "cgroup.procs"), `${pid}\n`, `the container's cgroup ${d}`);
    settleWarmUps();
  }

  /** v1 has no CLONE_INTO_CGROUP: the process is moved (join) */
  cloneFd(): undefined {
    return undefined;
  }

  oomKills(): number {
    const f = this.oomFile();
    return f ? (keyed(readCg(f), "oom_kill") ?? 0) : 0;
  }

  oomFile(): string | undefined {
    const d = this.dir("memory");
    return d ? join(d, "memory.oom_control") : undefined;
  }

  stats(): CgroupStats {
    const mem = this.dir("memory");
    const acct = this.dir("cpuacct");
    const pids = this.dir("pids");
    const limit = mem ? numberOf(readCg(join(mem, "memory.limit_in_bytes"))) : undefined;
    return {
      memoryUsage: mem ? numberOf(readCg(join(mem, "memory.usage_in_bytes"))) : undefined,
      memoryLimit: limit !== undefined && limit >= V1_UNLIMITED ? Number.POSITIVE_INFINITY : limit,
      cpuNs: acct ? numberOf(readCg(join(acct, "cpuacct.usage"))) : undefined,
      pids: pids ? numberOf(readCg(join(pids, "pids.current"))) : undefined,
      pidsLimit: pids ? numberOf(readCg(join(pids, "pids.max"))) : undefined,
    };
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs()) for (const p of pidsIn(d)) all.add(p);
    return [...all];
  }

  killAll(): void {
    killPids(this.pids());
  }

  /** rmdir first: an empty cgroup (the usual case) costs no cgroup.procs read; rmdirCg kills what it finds busy */
  async remove(): Promise<void> {
    const leaves = new Set(Object.values(this.record.paths));
    for (const d of this.record.created) if (leaves.has(d)) await rmdirCg(d, () => this.killAll());
    removeParents(filter(this.record.created, (d) => !leaves.has(d)));
  }
}

/**
 * Controllers for a container on v1: memory, cpuacct and pids always (OOM, stats,
 * finding its processes), others when a limit needs them. Each hierarchy costs
 * an attach (a few ms: v1 migration waits for an RCU grace period), so no more.
 */
function wantedV1(res: Resources | undefined): { wanted: string[]; required: Map<string, string> } {
  const required = new Map<string, string>();
  if (res?.memory) required.set("memory", "--memory");
  if (res?.pids) required.set("pids", "--pids-limit");
  if (res?.cpu && (res.cpu.quota !== undefined || res.cpu.shares !== undefined || res.cpu.weight !== undefined)) required.set("cpu", "--cpus/--cpu-shares");
  if (res?.cpu && (res.cpu.cpus || res.cpu.mems)) required.set("cpuset", "--cpuset-cpus/--cpuset-mems");
  if (res?.blockIO) required.set("blkio", "--blkio-weight/--device-*-bps");
  // --privileged (allow everything) needs no cgroup of its own: the parent's list holds anyway, as it would for a child
  if (rulesNeedCgroup(res?.devices)) required.set("devices", "the device rules (docker's default devices, --device, --device-cgroup-rule)");
  const wanted = ["memory", "cpuacct", "pids"];
  for (const [c] of required) if (!wanted.includes(c)) wanted.push(c);
  return { wanted, required };
}

export function createV1(host: CgroupHost, id: string, res: Resources | undefined, parent: string | undefined, leaf = `nsbox-${id}`): V1Cgroup {
  const { wanted, required } = wantedV1(res);
  for (const [c, flag] of required)
    if (!host.v1Mounts.has(c)) throw new CgroupError(`${flag} needs the cgroup v1 "${c}" controller, which is not mounted on this host`);
  if (res?.cpu?.weight !== undefined && res.cpu.shares === undefined)
    throw new CgroupError("--cpu-weight is a cgroup v2 setting; on this cgroup v1 host use --cpu-shares");
  const paths: Record<string, string> = {};
  const created: string[] = [];
  const parents: string[] = [];
  try {
    for (const c of wanted) {
      const mount = host.v1Mounts.get(c);
      if (!mount) continue;
      const rel = parent ?? host.v1Own.get(c) ?? "/";
      const base = join(mount, rel);
      const dir = join(base, leaf);
      if (!created.includes(dir)) {
        if (parent === undefined && !existsSync(base)) throw new CgroupError(`nsbox's own cgroup ${base} is missing`);
        const { ours, fresh } = ensureParent(mount, rel);
        parents.push(...ours);
        // A new cpuset cgroup starts with no CPUs and no memory nodes: no process
        // could join it. Each new level starts from its parent's.
        if (c === "cpuset") for (const level of fresh) inheritCpuset(level);
        mkdirSync(dir);
        created.push(dir);
        if (c === "cpuset") inheritCpuset(dir);
      }
      paths[c] = dir;
    }
    applyV1(paths, res);
    return new V1Cgroup({ version: 1, paths, created: [...parents, ...created], memoryLimit: res?.memory?.limit });
  } catch (e) {
    for (const d of created) {
      try {
        rmdirSync(d);
      } catch {
        // best effort
      }
    }
    removeParents(parents);
    throw e;
  }
}

/** The record createV1 returns when nothing changes in between, created nothing (see planCgroup). */
export function planV1(host: CgroupHost, id: string, res: Resources | undefined, parent: string | undefined, leaf = `nsbox-${id}`): CgroupRecord {
  const paths: Record<string, string> = {};
  const leaves: string[] = [];
  const parents: string[] = [];
  for (const c of wantedV1(res).wanted) {
    const mount = host.v1Mounts.get(c);
    if (!mount) continue;
    const rel = parent ?? host.v1Own.get(c) ?? "/";
    const dir = join(mount, rel, leaf);
    if (!leaves.includes(dir)) {
      parents.push(...plannedParents(mount, rel));
      leaves.push(dir);
    }
    paths[c] = dir;
  }
  return { version: 1, paths, created: [...parents, ...leaves], memoryLimit: res?.memory?.limit };
}

/** A cpuset cgroup's CPUs and memory nodes, copied from its parent. */
function inheritCpuset(dir: string): void {
  const up = dirname(dir);
  for (const f of ["cpuset.cpus", "cpuset.mems"]) {
    if ((readCg(join(dir, f)) ?? "").trim()) continue;
    writeCg(join(dir, f), (readCg(join(up, f)) ?? "").trim() || "0", `${f} of ${dir}`);
  }
}

export function applyV1(paths: Record<string, string>, res: Resources | undefined): void {
  if (!res) return;
  const w = (c: string, file: string, value: string, what: string) => writeCg(join(paths[c] as string, file), value, what);
  const m = res.memory;
  if (m?.limit !== undefined) w("memory", "memory.limit_in_bytes", String(m.limit), "--memory");
  if (m?.swap !== undefined) {
    if (!existsSync(join(paths.memory as string, "memory.memsw.limit_in_bytes")))
      throw new CgroupError("--memory-swap needs swap accounting (memory.memsw.limit_in_bytes is missing: boot with swapaccount=1)");
    w("memory", "memory.memsw.limit_in_bytes", String(m.swap), "--memory-swap");
  } else if (m?.limit !== undefined && existsSync(join(paths.memory as string, "memory.memsw.limit_in_bytes")))
    // docker: without --memory-swap, a container may use as much swap as memory
    w("memory", "memory.memsw.limit_in_bytes", String(2 * m.limit), "--memory (swap allowance)");
  if (m?.reservation !== undefined) w("memory", "memory.soft_limit_in_bytes", String(m.reservation), "--memory-reservation");
  const c = res.cpu;
  if (c?.cpus) w("cpuset", "cpuset.cpus", c.cpus, "--cpuset-cpus");
  if (c?.mems) w("cpuset", "cpuset.mems", c.mems, "--cpuset-mems");
  if (c?.quota !== undefined) {
    w("cpu", "cpu.cfs_period_us", String(c.period ?? 100000), "--cpus");
    w("cpu", "cpu.cfs_quota_us", String(c.quota), "--cpus");
  }
  if (c?.shares !== undefined) w("cpu", "cpu.shares", String(c.shares), "--cpu-shares");
  if (res.pids) w("pids", "pids.max", String(res.pids.limit), "--pids-limit");
  const b = res.blockIO;
  if (b?.weight !== undefined) {
    if (!existsSync(join(paths.blkio as string, "blkio.weight")))
      throw new CgroupError("--blkio-weight needs blkio.weight, which this kernel does not offer (CFQ/BFQ proportional weights are off)");
    w("blkio", "blkio.weight", String(b.weight), "--blkio-weight");
  }
  for (const d of b?.throttleReadBpsDevice ?? []) w("blkio", "blkio.throttle.read_bps_device", `${d.major}:${d.minor} ${d.rate}`, "--device-read-bps");
  for (const d of b?.throttleWriteBpsDevice ?? []) w("blkio", "blkio.throttle.write_bps_device", `${d.major}:${d.minor} ${d.rate}`, "--device-write-bps");
  if (res.devices) applyDevicesV1(paths.devices, res.devices);
}
