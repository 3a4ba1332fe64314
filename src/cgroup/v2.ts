/**
 * cgroup v2: one hierarchy, controllers enabled from the root down through
 * cgroup.subtree_control, and the "no internal processes" rule: a cgroup that
 * delegates controllers to children may hold no processes itself.
 */

import type { Resources } from "../config/spec.ts";
import { constants, existsSync, mkdirSync, openSync, readFileSync, rmdirSync } from "../native/fs.ts";
import { dirname, join } from "../posixpath.ts";
import { rulesNeedCgroup } from "../security/devices.ts";
import { mark } from "../trace.ts";
import { CgroupError, type CgroupRecord, type CgroupStats, type ContainerCgroup } from "./cgroup.ts";
import { type CgroupHost, detectCgroups } from "./detect.ts";
import { attachDeviceFilter } from "./devices-v2.ts";
import { keyed, killPids, numberOf, pidsIn, readCg, rmdirCg, writeCg, writeCgAsync } from "./fsutil.ts";
import { ensureParent, plannedParents, removeParents } from "./parents.ts";

export class V2Cgroup implements ContainerCgroup {
  constructor(readonly record: CgroupRecord) {}

  private get dir(): string {
    return this.record.paths.unified as string;
  }

  join(pid: number): void {
    if (this.holds(pid)) return;
    writeCg(join(this.dir, "cgroup.procs"), `${pid}\n`, "the container's cgroup");
  }

  joinAsync(pid: number): Promise<void> {
    if (this.holds(pid)) return Promise.resolve();
    return writeCgAsync(join(this.dir, "cgroup.procs"), `${pid}\n`, "the container's cgroup");
  }

  /**
   * An fd of the cgroup's directory, for clone3's CLONE_INTO_CGROUP: a process
   * born in its cgroup is never moved there, and a move first waits for an RCU
   * grace period (see warmCgroupMoves). The caller closes it.
   */
  cloneFd(): number | undefined {
    try {
      return openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch {
      return undefined; // then the process is moved, as without clone3
    }
  }

  /** Whether pid already sits in this cgroup (born there): a move to where it is would only wait for the kernel. */
  private holds(pid: number): boolean {
    try {
      const own = /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1];
      const mount = detectCgroups().v2Mount;
      if (own === undefined || !mount || join(mount, own) !== this.dir) return false;
      mark("born in its cgroup (CLONE_INTO_CGROUP)");
      return true;
    } catch {
      return false;
    }
  }

  oomKills(): number {
    return keyed(readCg(this.oomFile()), "oom_kill") ?? 0;
  }

  oomFile(): string {
    return join(this.dir, "memory.events");
  }

  stats(): CgroupStats {
    const r = (f: string) => readCg(join(this.dir, f));
    const usec = keyed(r("cpu.stat"), "usage_usec");
    return {
      memoryUsage: numberOf(r("memory.current")),
      memoryLimit: numberOf(r("memory.max")),
      cpuNs: usec === undefined ? undefined : usec * 1000,
      pids: numberOf(r("pids.current")),
      pidsLimit: numberOf(r("pids.max")),
    };
  }

  pids(): number[] {
    return pidsIn(this.dir);
  }

  killAll(): void {
    if (existsSync(join(this.dir, "cgroup.kill"))) {
      try {
        writeCg(join(this.dir, "cgroup.kill"), "1", "cgroup.kill");
        return;
      } catch {
        // fall back to one signal per process
      }
    }
    killPids(this.pids());
  }

  /** rmdir first: an empty cgroup (the usual case) costs no cgroup.procs read; rmdirCg kills what it finds busy */
  async remove(): Promise<void> {
    await rmdirCg(this.dir, () => this.killAll());
    // shared parents (nsbox.slice, --cgroup-parent levels nsbox made) go with the last container
    removeParents(this.record.created.filter((d) => d !== this.dir));
  }
}

/** Controllers nsbox wants for a container: always memory, pids and cpu (for stats), others when asked. */
export function wantedControllers(res: Resources | undefined): { wanted: Set<string>; required: Map<string, string> } {
  const required = new Map<string, string>(); // controller -> the flag that needs it
  if (res?.memory) required.set("memory", "--memory");
  if (res?.pids) required.set("pids", "--pids-limit");
  if (res?.cpu && (res.cpu.quota !== undefined || res.cpu.shares !== undefined || res.cpu.weight !== undefined)) required.set("cpu", "--cpus/--cpu-shares");
  if (res?.cpu && (res.cpu.cpus || res.cpu.mems)) required.set("cpuset", "--cpuset-cpus/--cpuset-mems");
  if (res?.blockIO) required.set("io", "--blkio-weight/--device-*-bps");
  const wanted = new Set(["memory", "pids", "cpu", ...required.keys()]);
  return { wanted, required };
}

/**
 * Where a container's cgroup goes by default: under nsbox's own cgroup when that
 * is the root; otherwise beside it, in <parent>/nsbox.slice (nsbox's own cgroup
 * holds nsbox, so it cannot delegate controllers: the no-internal-process rule).
 */
export function defaultParentV2(own: string): string {
  if (own === "/" || own === "") return "/";
  return join(dirname(own), "nsbox.slice");
}

/** The record createV2 returns when nothing changes in between, created nothing (see planCgroup). */
export function planV2(host: CgroupHost, id: string, res: Resources | undefined, parent: string | undefined, leafName = `nsbox-${id}`): CgroupRecord {
  const mount = host.v2Mount as string;
  const parentPath = parent ?? defaultParentV2(host.v2Own ?? "/");
  const leaf = join(mount, parentPath, leafName);
  return { version: 2, paths: { unified: leaf }, created: [...plannedParents(mount, parentPath), leaf], memoryLimit: res?.memory?.limit };
}

export function createV2(host: CgroupHost, id: string, res: Resources | undefined, parent: string | undefined, leafName = `nsbox-${id}`): V2Cgroup {
  const mount = host.v2Mount as string;
  const parentPath = parent ?? defaultParentV2(host.v2Own ?? "/");
  const { wanted, required } = wantedControllers(res);
  const available = new Set((readCg(join(mount, "cgroup.controllers")) ?? "").trim().split(/\s+/).filter(Boolean));
  for (const [c, flag] of required)
    if (!available.has(c))
      throw new CgroupError(
        `${flag} needs the cgroup v2 "${c}" controller, which this host does not offer (${join(mount, "cgroup.controllers")} lists: ${[...available].join(" ") || "nothing"})`,
      );
  const use = [...wanted].filter((c) => available.has(c));

  // Walk down from the root: create missing levels, enable the controllers in each.
  const segments = parentPath.split("/").filter(Boolean);
  let dir = mount;
  const levels = [mount, ...segments.map((s) => (dir = join(dir, s)))];
  const { ours } = ensureParent(mount, parentPath);
  const created: string[] = [...ours];
  try {
    for (const level of levels) {
      const have = new Set((readCg(join(level, "cgroup.subtree_control")) ?? "").trim().split(/\s+/));
      const missing = use.filter((c) => !have.has(c));
      if (missing.length === 0) continue;
      const offered = new Set((readCg(join(level, "cgroup.controllers")) ?? "").trim().split(/\s+/));
      for (const c of missing) {
        if (!offered.has(c)) {
          if (required.has(c))
            throw new CgroupError(
              `${required.get(c)} needs the "${c}" controller, but it is not delegated to ${level} (enable it in the parent's cgroup.subtree_control)`,
            );
          continue;
        }
        try {
          writeCg(join(level, "cgroup.subtree_control"), `+${c}`, `the ${c} controller for ${level}`);
        } catch (e) {
          if (required.has(c)) throw e; // a controller only wanted for stats: do without
        }
      }
    }
    const leaf = join(levels[levels.length - 1] as string, leafName);
    mkdirSync(leaf);
    created.push(leaf);
    const cg = new V2Cgroup({ version: 2, paths: { unified: leaf }, created, memoryLimit: res?.memory?.limit });
    applyV2(leaf, res);
    return cg;
  } catch (e) {
    const leaf = join(levels[levels.length - 1] as string, leafName);
    if (created.includes(leaf)) {
      try {
        rmdirSync(leaf);
      } catch {
        // best effort
      }
    }
    removeParents(ours);
    throw e;
  }
}

/** docker/runc's conversion of cpu.shares (2-262144) to cpu.weight (1-10000). */
export const sharesToWeight = (shares: number) => Math.floor(1 + ((shares - 2) * 9999) / 262142);
/** runc's conversion of blkio.weight (10-1000) to io.weight (1-10000). */
export const blkioToIoWeight = (w: number) => Math.floor(1 + ((w - 10) * 9999) / 990);

export function applyV2(dir: string, res: Resources | undefined): void {
  if (!res) return;
  const w = (file: string, value: string, what: string) => writeCg(join(dir, file), value, what);
  const m = res.memory;
  if (m?.limit !== undefined) w("memory.max", String(m.limit), "--memory");
  if (m?.swap !== undefined) {
    // OCI and docker give memory+swap; cgroup v2 wants the swap part alone.
    const swap = m.swap === -1 ? "max" : String(Math.max(0, m.swap - (m.limit ?? 0)));
    if (!existsSync(join(dir, "memory.swap.max")))
      throw new CgroupError("--memory-swap needs swap accounting (memory.swap.max is missing: boot with swapaccount=1)");
    w("memory.swap.max", swap, "--memory-swap");
  } else if (m?.limit !== undefined && existsSync(join(dir, "memory.swap.max")))
    // docker: without --memory-swap, a container may use as much swap as memory
    w("memory.swap.max", String(m.limit), "--memory (swap allowance)");
  if (m?.reservation !== undefined) w("memory.low", String(m.reservation), "--memory-reservation");
  const c = res.cpu;
  if (c?.cpus) w("cpuset.cpus", c.cpus, "--cpuset-cpus");
  if (c?.mems) w("cpuset.mems", c.mems, "--cpuset-mems");
  if (c?.quota !== undefined) w("cpu.max", `${c.quota} ${c.period ?? 100000}`, "--cpus");
  if (c?.weight !== undefined) w("cpu.weight", String(c.weight), "--cpu-weight");
  else if (c?.shares !== undefined) w("cpu.weight", String(sharesToWeight(c.shares)), "--cpu-shares");
  if (res.pids) w("pids.max", String(res.pids.limit), "--pids-limit");
  const b = res.blockIO;
  if (b?.weight !== undefined) {
    // io.weight needs the BFQ scheduler's or the cost model's weight file; say so if absent
    if (!existsSync(join(dir, "io.weight")))
      throw new CgroupError("--blkio-weight needs io.weight, which this kernel does not offer (no proportional I/O control)");
    w("io.weight", `default ${blkioToIoWeight(b.weight)}`, "--blkio-weight");
  }
  const devs = new Map<string, string[]>();
  for (const d of b?.throttleReadBpsDevice ?? []) devs.set(`${d.major}:${d.minor}`, [...(devs.get(`${d.major}:${d.minor}`) ?? []), `rbps=${d.rate}`]);
  for (const d of b?.throttleWriteBpsDevice ?? []) devs.set(`${d.major}:${d.minor}`, [...(devs.get(`${d.major}:${d.minor}`) ?? []), `wbps=${d.rate}`]);
  for (const [dev, limits] of devs) w("io.max", `${dev} ${limits.join(" ")}`, "--device-read-bps/--device-write-bps");
  // no devices controller on v2: a device program attached to the cgroup ("allow everything" needs none)
  if (res.devices && rulesNeedCgroup(res.devices)) attachDeviceFilter(dir, res.devices);
}
