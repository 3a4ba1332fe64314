/**
 * Processes and their memory, from /proc: for the idle and foreground sections.
 *
 * runtimeProcesses() is how the bench finds what a runtime holds on the host
 * for one container, whatever shape the runtime takes: every descendant of a
 * known ancestor (bench/subreaper.c, so that double-forked or re-parented
 * processes stay below it), minus the container's own processes (those in
 * another PID namespace than the host's, unless they run the runtime's own
 * code: see runtimeProcesses). A runtime that execs into a shim, forks a
 * monitor, or keeps a helper all show up, under any name.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { BenchError } from "./lib.ts";

export interface Mem {
  pssKib: number;
  rssKib: number;
  /** Private_Clean + Private_Dirty: pages no other process maps (USS), whatever else runs on the host */
  privateKib: number;
  /** PSS of anonymous memory (heaps, stacks: each process's own) and of file pages (the executable: shared by every process that runs it) */
  pssAnonKib: number;
  pssFileKib: number;
}

/** Pss, Rss and private pages (KiB) of a process, from /proc/PID/smaps_rollup. */
export function memOf(pid: number): Mem {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  } catch (e) {
    throw new BenchError(`cannot read /proc/${pid}/smaps_rollup: ${(e as Error).message}`);
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    pssKib: field("Pss"),
    rssKib: field("Rss"),
    privateKib: field("Private_Clean") + field("Private_Dirty"),
    pssAnonKib: field("Pss_Anon"),
    pssFileKib: field("Pss_File"),
  };
}

/** The sum of mems, divided by `per` (e.g. per container). */
export function sumMem(mems: Mem[], per = 1): Mem {
  const sum = (f: (m: Mem) => number) => mems.reduce((a, m) => a + f(m), 0) / per;
  return {
    pssKib: sum((m) => m.pssKib),
    rssKib: sum((m) => m.rssKib),
    privateKib: sum((m) => m.privateKib),
    pssAnonKib: sum((m) => m.pssAnonKib),
    pssFileKib: sum((m) => m.pssFileKib),
  };
}

export function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

/** The PID namespace a process is in ("pid:[INODE]"), or "" when it is gone. */
export function pidNsOf(pid: number | "self"): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return "";
  }
}

/** Every live descendant of root (root excluded), parents before children. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const ppid = ppidOf(pid);
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift() as number;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface Split {
  /** the runtime's own processes: in the host's PID namespace */
  runtime: number[];
  /** the container's processes: in another PID namespace */
  container: number[];
}

function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/**
 * The descendants of root, split into the runtime's and the container's by
 * PID namespace (the bench's own is the host's). A process in the container's
 * PID namespace still counts as the runtime's when it runs the runtime's code,
 * not the container's: its executable is a memfd (how nsbox's shim and crun
 * run themselves) or one of `runtimeExes` (e.g. the nsbox binary): a shim
 * waiting as the container's PID 1 is the runtime's cost. A process that is
 * gone between the reads is left out.
 */
export function runtimeProcesses(root: number, runtimeExes: string[] = []): Split {
  const host = pidNsOf("self");
  const split: Split = { runtime: [], container: [] };
  for (const pid of descendants(root)) {
    const ns = pidNsOf(pid);
    if (!ns) continue;
    const exe = ns === host ? "" : exeOf(pid);
    const runtimeCode = exe.startsWith("/memfd:") || runtimeExes.includes(exe);
    (ns === host || runtimeCode ? split.runtime : split.container).push(pid);
  }
  return split;
}

/** The processes whose executable is this file (e.g. other engineers' nsbox runs, which share its pages). */
export function processesRunning(file: string): number[] {
  const exe = realpathSync(file);
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/exe`) === exe) out.push(Number(e));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}
