/**
 * Helpers for the cgroup suite (test/integration/cgroup-*.test.ts).
 *
 * The same files run here (a hybrid host: v1 controllers plus an almost empty
 * cgroup2 at /sys/fs/cgroup/unified) and in test/vm/run.sh's VM (pure cgroup
 * v2), so nothing here assumes a layout: it is read at run time from
 * /proc/self/mountinfo and /proc/self/cgroup, and each logical setting ("the
 * memory limit", "the pids limit"...) maps to the file of that layout.
 *
 * Other suites and other people's containers may run on the same host at the
 * same time, so "no cgroup left behind" is checked for this file's containers:
 * their ids are collected as nsbox creates their state directories (inotify on
 * the private state root: nsbox makes a container's state dir before its
 * cgroup), and every nsbox-<id> dir anywhere under /sys/fs/cgroup with one of
 * those ids counts. In the VM (NSBOX_TEST_VM / NSBOX_TEST_CGROUP2), where
 * nothing else runs, any new nsbox-* dir counts.
 */
import { afterEach, beforeEach, expect } from "bun:test";
import { randomBytes } from "node:crypto";
import { type Dirent, existsSync, type FSWatcher, mkdirSync, readdirSync, readFileSync, rmdirSync, watch } from "node:fs";
import { basename, join } from "node:path";
import { type NsboxContext, type RunOptions, type RunResult, tryKill, useNsbox, waitUntil } from "./nsbox.ts";

export type CgroupMode = "v2" | "hybrid" | "v1" | "none";

export interface HostCgroups {
  mode: CgroupMode;
  /** the cgroup2 mount (v2, hybrid) */
  v2Mount?: string;
  /** the test process's cgroup in the v2 hierarchy */
  v2Own?: string;
  /** v1 controller -> its mount point */
  v1Mounts: Map<string, string>;
  /** v1 controller -> the test process's cgroup there */
  v1Own: Map<string, string>;
}

/** The host's cgroup layout, as nsbox should detect it (v1 controllers present -> nsbox uses v1). */
export function readHostCgroups(mountinfo = readFileSync("/proc/self/mountinfo", "utf8"), self = readFileSync("/proc/self/cgroup", "utf8")): HostCgroups {
  const host: HostCgroups = { mode: "none", v1Mounts: new Map(), v1Own: new Map() };
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [type, , superOpts] = line.slice(sep + 3).split(" ");
    const point = (line.slice(0, sep).split(" ")[4] ?? "").replace(/\\040/g, " ");
    if (type === "cgroup2") {
      if (!host.v2Mount || point === "/sys/fs/cgroup") host.v2Mount = point;
    } else if (type === "cgroup") {
      for (const o of (superOpts ?? "").split(",")) {
        if (o === "rw" || o === "ro" || o.includes("=") || o === "noprefix" || o === "clone_children") continue;
        if (!host.v1Mounts.has(o)) host.v1Mounts.set(o, point);
      }
    }
  }
  for (const line of self.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const ctrls = m[1] as string;
    const path = m[2] as string;
    if (ctrls === "") host.v2Own = path;
    else for (const c of ctrls.split(",")) if (!c.startsWith("name=")) host.v1Own.set(c, path);
  }
  const v1 = host.v1Mounts.size > 0;
  host.mode = host.v2Mount && !v1 ? "v2" : host.v2Mount && v1 ? "hybrid" : v1 ? "v1" : "none";
  return host;
}

export const HOST = readHostCgroups();
/** nsbox uses cgroup v2 only on a pure v2 host; v1 and hybrid hosts get the v1 controllers. */
export const V2 = HOST.mode === "v2";
/** The VM of test/vm/run.sh: nothing else runs there, so any stray nsbox-* cgroup is ours. */
export const STRICT = !!(process.env.NSBOX_TEST_VM || process.env.NSBOX_TEST_CGROUP2);

/** A cgroup file: the controller whose directory holds it (v1), and its name. */
export interface CgFile {
  controller: string;
  file: string;
}

const f = (controller: string, file: string): CgFile => ({ controller, file });

/** The files the tests read, per layout. */
export const FILES = V2
  ? {
      memoryLimit: f("memory", "memory.max"),
      /** v2: the swap part alone */
      swapLimit: f("memory", "memory.swap.max"),
      memoryReservation: f("memory", "memory.low"),
      oomEvents: f("memory", "memory.events"),
      pidsMax: f("pids", "pids.max"),
      pidsCurrent: f("pids", "pids.current"),
      pidsPeak: f("pids", "pids.peak"),
      pidsEvents: f("pids", "pids.events"),
      procs: f("pids", "cgroup.procs"),
      cpuMax: f("cpu", "cpu.max"),
      cpuWeight: f("cpu", "cpu.weight"),
      cpuStat: f("cpu", "cpu.stat"),
      cpusetCpus: f("cpuset", "cpuset.cpus"),
    }
  : {
      memoryLimit: f("memory", "memory.limit_in_bytes"),
      /** v1: memory plus swap */
      swapLimit: f("memory", "memory.memsw.limit_in_bytes"),
      memoryReservation: f("memory", "memory.soft_limit_in_bytes"),
      oomEvents: f("memory", "memory.oom_control"),
      pidsMax: f("pids", "pids.max"),
      pidsCurrent: f("pids", "pids.current"),
      pidsPeak: f("pids", "pids.peak"),
      pidsEvents: f("pids", "pids.events"),
      procs: f("pids", "cgroup.procs"),
      cpuMax: f("cpu", "cpu.cfs_quota_us"),
      cpuWeight: f("cpu", "cpu.shares"),
      cpuStat: f("cpu", "cpu.stat"),
      cpusetCpus: f("cpuset", "cpuset.cpus"),
    };

/** v1 files that belong with FILES.cpuMax (v2 has both numbers in cpu.max). */
export const V1_CPU_PERIOD = f("cpu", "cpu.cfs_period_us");

/** Where a cgroup file is inside a container with a private cgroup namespace (its /sys/fs/cgroup). */
export function insidePath(x: CgFile): string {
  if (V2) return `/sys/fs/cgroup/${x.file}`;
  const mount = HOST.v1Mounts.get(x.controller);
  if (!mount) throw new Error(`no cgroup v1 ${x.controller} hierarchy on this host`);
  return `/sys/fs/cgroup/${basename(mount)}/${x.file}`;
}

/** Where a cgroup file of a container is on the host, from `nsbox inspect`'s Cgroup.Paths. */
export function hostPath(paths: Record<string, string>, x: CgFile): string {
  const dir = V2 ? paths.unified : paths[x.controller];
  if (!dir) throw new Error(`inspect's Cgroup.Paths has no ${V2 ? "unified" : x.controller} entry: ${JSON.stringify(paths)}`);
  return join(dir, x.file);
}

export function readTrim(path: string): string {
  return readFileSync(path, "utf8").trim();
}

/** The value of `key N` in a flat keyed file (cpu.stat, memory.events, pids.events, memory.oom_control). */
export function keyed(text: string, key: string): number | undefined {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/** CPU time a container's cgroup has used, in ns (cpuacct.usage on v1, cpu.stat usage_usec on v2). */
export function cpuUsageNs(paths: Record<string, string>): number {
  if (V2) {
    const usec = keyed(readFileSync(hostPath(paths, FILES.cpuStat), "utf8"), "usage_usec");
    if (usec === undefined) throw new Error("cpu.stat has no usage_usec");
    return usec * 1000;
  }
  return Number(readTrim(hostPath(paths, f("cpuacct", "cpuacct.usage"))));
}

/** The machine's idle time so far and its total, in /proc/stat ticks summed over its CPUs, and how many CPUs. */
export function cpuTicks(): { idle: number; total: number; cpus: number } {
  const lines = readFileSync("/proc/stat", "utf8").split("\n");
  const v = (lines[0] ?? "").trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  return { idle: (v[3] ?? 0) + (v[4] ?? 0), total: v.reduce((a, b) => a + b, 0), cpus: lines.filter((l) => /^cpu\d/.test(l)).length };
}

export function onlineCpus(): number[] {
  return parseList(readFileSync("/sys/devices/system/cpu/online", "utf8").trim());
}

export function onlineNodes(): number[] {
  try {
    return parseList(readFileSync("/sys/devices/system/node/online", "utf8").trim());
  } catch {
    return [0];
  }
}

function parseList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(",")) {
    const [a, b] = part.split("-").map(Number) as [number, number | undefined];
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

/** Every directory named nsbox-<64 hex> under /sys/fs/cgroup (every hierarchy), maxDepth levels down. */
export function nsboxCgroupDirs(maxDepth = 7): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed meanwhile
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (/^nsbox-[0-9a-f]{64}$/.test(e.name)) out.push(p);
      if (depth < maxDepth) walk(p, depth + 1);
    }
  };
  walk("/sys/fs/cgroup", 1);
  return out.sort();
}

/** The container id in an nsbox-<id> cgroup path. */
export const idOfCgroup = (dir: string): string => basename(dir).slice("nsbox-".length);

export function randomSuffix(): string {
  return randomBytes(4).toString("hex");
}

/** What `nsbox inspect` says of a container (the parts these tests use). */
export interface Inspected {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number | null; OOMKilled: boolean };
  Cgroup: { Version: number; Paths: Record<string, string> } | null;
}

/** One line of `nsbox stats --no-stream --format json`. */
export interface StatsLine {
  id: string;
  name: string;
  cpuPercent: number | null;
  memoryUsage: number | null;
  memoryLimit: number | null;
  memoryPercent: number | null;
  pids: number | null;
  pidsLimit: number | null;
}

export interface CgroupSuite {
  ctx: NsboxContext;
  /** the busybox rootfs: NSBOX_TEST_ROOTFS when set (the VM), else one built for this file */
  readonly rootfs: string;
  /** ids of every container nsbox created with this file's state root */
  readonly ids: Set<string>;
  /** `nsbox run --net none ARGS` */
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** `nsbox run -d --net none --name NAME ARGS`; returns inspect's view of it */
  detach(name: string, args: string[]): Promise<Inspected>;
  inspect(ref: string): Promise<Inspected>;
  stats(ref: string): Promise<StatsLine>;
  /** `nsbox kill REF` (SIGKILL), waits until its cgroup dirs are gone, then `nsbox rm REF` */
  killAndRemove(ref: string, paths?: Record<string, string>): Promise<void>;
  /** cgroup dirs (anywhere under /sys/fs/cgroup) of this file's containers */
  leftovers(): string[];
  /** reads the state root and lets pending inotify events in, so that ids is complete */
  syncIds(): Promise<void>;
}

/**
 * useNsbox plus: the rootfs (NSBOX_TEST_ROOTFS in the VM), the ids of the file's
 * containers, and an afterEach that fails the test if one of its containers left
 * a cgroup anywhere (after giving detached ones' monitors time to clean up).
 */
export function useCgroupSuite(name: string): CgroupSuite {
  const envRootfs = process.env.NSBOX_TEST_ROOTFS;
  const ctx = useNsbox(name, { rootfs: !envRootfs });
  const rootfs = envRootfs || ctx.rootfs;
  const ids = new Set<string>();
  const isId = (n: string | null | undefined): n is string => !!n && /^[0-9a-f]{64}$/.test(n);
  // The state root exists from the start so that it can be watched; nsbox is fine with that.
  mkdirSync(ctx.stateRoot, { recursive: true, mode: 0o711 });
  let watcher: FSWatcher | undefined = watch(ctx.stateRoot, (_ev, file) => {
    if (isId(file)) ids.add(file);
  });
  ctx.beforeCleanup(async () => {
    // detached containers a failed test left running: killed and removed (cgroups included)
    const ps = await ctx.nsbox(["ps", "-aq", "--no-trunc"]);
    for (const id of ps.stdout.split("\n").filter(isId)) await ctx.nsbox(["rm", "-f", id]);
    watcher?.close();
    watcher = undefined;
  });

  const syncIds = async () => {
    await Bun.sleep(20); // inotify events already queued are delivered
    try {
      for (const e of readdirSync(ctx.stateRoot)) if (isId(e)) ids.add(e);
    } catch {
      // no state root yet
    }
  };
  const leftovers = () => nsboxCgroupDirs().filter((d) => ids.has(idOfCgroup(d)));

  let before = new Set<string>();
  beforeEach(() => {
    before = new Set(nsboxCgroupDirs());
  });
  // leftovers already blamed on a test (nsbox could not remove them): not blamed again on the next ones
  const reported = new Set<string>();
  afterEach(async () => {
    await syncIds();
    // detached containers end asynchronously (their monitor runs `nsbox cleanup`)
    const ours = () => leftovers().filter((d) => !reported.has(d));
    const remaining = (await waitUntil(() => (ours().length === 0 ? [] : undefined), 10000)) ?? ours();
    let stray: string[] = [];
    if (STRICT) {
      // nothing else runs in the VM: a new nsbox-* dir that stays is a leak whatever its id
      const fresh = () => nsboxCgroupDirs().filter((d) => !before.has(d) && !reported.has(d) && !remaining.includes(d));
      stray = (await waitUntil(() => (fresh().length === 0 ? [] : undefined), 10000)) ?? fresh();
    }
    for (const d of [...remaining, ...stray]) reported.add(d);
    if (remaining.length || stray.length) {
      // give the next tests a clean host before failing this one
      const ps = await ctx.nsbox(["ps", "-aq", "--no-trunc"]);
      for (const id of ps.stdout.split("\n").filter(isId)) await ctx.nsbox(["rm", "-f", id]);
    }
    expect({ cgroupsLeftBehind: remaining, strayCgroups: stray }).toEqual({ cgroupsLeftBehind: [], strayCgroups: [] });
  });

  const run = (args: string[], opts?: RunOptions) => ctx.run(["--net", "none", ...args], opts);

  const inspect = async (ref: string): Promise<Inspected> => {
    const r = await ctx.nsbox(["inspect", ref]);
    if (r.code !== 0) throw new Error(`nsbox inspect ${ref} failed (${r.code}): ${r.stderr}`);
    const list = JSON.parse(r.stdout) as Inspected[];
    const one = list[0];
    if (!one) throw new Error(`nsbox inspect ${ref} printed no container`);
    return one;
  };

  return {
    ctx,
    rootfs,
    ids,
    run,
    async detach(cname, args) {
      const r = await ctx.run(["-d", "--net", "none", "--name", cname, ...args]);
      if (r.code !== 0) throw new Error(`nsbox run -d --name ${cname} failed (${r.code}): ${r.stderr}`);
      const id = r.stdout.trim();
      if (isId(id)) ids.add(id);
      return inspect(cname);
    },
    inspect,
    async stats(ref) {
      const r = await ctx.nsbox(["stats", "--no-stream", "--format", "json", ref]);
      if (r.code !== 0) throw new Error(`nsbox stats ${ref} failed (${r.code}): ${r.stderr}`);
      const lines = r.stdout.split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      return JSON.parse(lines[0] as string) as StatsLine;
    },
    async killAndRemove(ref, paths) {
      const k = await ctx.nsbox(["kill", ref]);
      const dirs = [...new Set(Object.values(paths ?? {}))];
      if (k.code === 0) await waitUntil(() => dirs.every((d) => !existsSync(d)), 10000);
      const rm = await ctx.nsbox(["rm", "-f", ref]);
      if (rm.code !== 0) throw new Error(`nsbox rm -f ${ref} failed (${rm.code}): ${rm.stderr}`);
    },
    leftovers,
    syncIds,
  };
}

/**
 * A --cgroup-parent for tests that nsbox may create and must remove: a new
 * nsbox-test-<random> level below the deepest of the test's own cgroups (so that
 * on this machine a container never leaves the subtree its test started in: on
 * the hybrid host the memory hierarchy puts us in the infrastructure's cgroup),
 * or /nsbox-test-<random> at the root on v2 (beside the test's cgroup: a v2
 * cgroup that holds processes cannot delegate controllers). Undefined when the
 * v1 hierarchies put the test in unrelated places (no single path fits them all).
 */
export function testCgroupParent(controllers = ["memory", "cpuacct", "pids", "devices"]): string | undefined {
  const leaf = `nsbox-test-${randomSuffix()}`;
  if (V2) return `/${leaf}`;
  const owns = controllers.filter((c) => HOST.v1Mounts.has(c)).map((c) => HOST.v1Own.get(c) ?? "/");
  const deepest = owns.reduce((a, b) => (b.length > a.length ? b : a), "/");
  const inside = (p: string, base: string) => base === "/" || p === base || p.startsWith(`${base}/`);
  if (!owns.every((o) => inside(deepest, o))) return undefined;
  return join(deepest, leaf);
}

/** The directories a cgroup path is made of in every hierarchy nsbox uses (for v1: per controller). */
export function cgroupDirsOf(path: string, controllers = ["memory", "cpuacct", "pids", "devices"]): string[] {
  if (V2) return [join(HOST.v2Mount as string, path)];
  return [...new Set(controllers.filter((c) => HOST.v1Mounts.has(c)).map((c) => join(HOST.v1Mounts.get(c) as string, path)))];
}

/** Every level of dir from its mount down ("/a/b" -> [/mnt/a, /mnt/a/b]). */
export function levelsOf(mount: string, path: string): string[] {
  const out: string[] = [];
  let d = mount;
  for (const s of path.split("/").filter(Boolean)) out.push((d = join(d, s)));
  return out;
}

/**
 * Removes cgroup dirs the test created (deepest first), once they are empty;
 * only dirs the caller names, never anything else.
 */
export async function removeOwnCgroups(dirs: string[]): Promise<void> {
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    for (let i = 0; i < 100 && existsSync(d); i++) {
      try {
        rmdirSync(d);
      } catch {
        await Bun.sleep(20);
      }
    }
  }
}

/** The pids in a cgroup dir's cgroup.procs ([] when it is gone). */
export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kills a process we started and waits for it. */
export async function killAndWait(p: { pid: number; exited: Promise<unknown> }): Promise<void> {
  tryKill(p.pid);
  await Promise.race([p.exited, Bun.sleep(5000)]);
}
