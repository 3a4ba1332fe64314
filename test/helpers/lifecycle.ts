/**
 * Helpers for the lifecycle tests (test/integration/lifecycle-*.test.ts):
 * detached containers, parsed `ps`/`inspect` output, and the checks that a
 * container left nothing behind on the host (state, layers, mounts, cgroups,
 * processes), looked up by the container's id so that containers of other
 * test files (or other users of the machine) never count.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ls, NSBOX, type NsboxContext, type RunResult, waitUntil } from "./nsbox.ts";

export const ID_RE = /^[0-9a-f]{64}$/;

/** One line of `ps --format json`. */
export interface PsEntry {
  ID: string;
  Names: string;
  Rootfs: string;
  Command: string;
  CreatedAt: string;
  State: "created" | "running" | "exited";
  Status: string;
  ExitCode: number | null;
  Pid: number;
}

/** The part of `inspect` the tests look at. */
export interface InspectEntry {
  Id: string;
  Name: string;
  Path: string;
  Args: string[];
  State: {
    Status: string;
    Running: boolean;
    Pid: number;
    MonitorPid: number;
    ExitCode: number | null;
    ExitNote?: string;
    OOMKilled: boolean;
    StartedAt: string | null;
    FinishedAt: string | null;
  };
  Detached: boolean;
  AutoRemove: boolean;
  Cgroup: { Version: number; Paths: Record<string, string> } | null;
  Image: string;
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
  Namespaces: { Type: string; Inode: number; Path: string }[];
  LogPath: string | null;
  Config: { Image: string; Env: string[]; Cmd: string[]; Entrypoint: string[] | null; WorkingDir: string; User: string; Hostname: string };
  NetworkSettings: { IPAddress: string; Gateway: string; MacAddress: string };
  Spec: { process: { args: string[] }; mounts: { destination: string }[] };
}

function describe(args: string[], r: RunResult): string {
  return `nsbox ${args.join(" ")} -> exit ${r.code}${r.signal ? ` (${r.signal})` : ""}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.rawStderr)}`;
}

/** Runs nsbox and throws (with everything it printed) unless it exits 0. */
export async function ok(ctx: NsboxContext, args: string[], input?: string): Promise<RunResult> {
  const r = await ctx.nsbox(args, { input });
  if (r.code !== 0) throw new Error(describe(args, r));
  return r;
}

/** `run -d --net none [flags] ROOTFS cmd...`: the container's id. */
export async function runDetached(ctx: NsboxContext, cmd: string[], flags: string[] = []): Promise<string> {
  const args = ["run", "-d", "--net", "none", ...flags, ctx.rootfs, ...cmd];
  const r = await ctx.nsbox(args);
  const id = r.stdout.trim();
  if (r.code !== 0 || !ID_RE.test(id) || r.stdout !== `${id}\n`) throw new Error(describe(args, r));
  return id;
}

export function parsePs(stdout: string): PsEntry[] {
  return stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as PsEntry);
}

/** `ps [-a] --format json --no-trunc`, parsed. */
export async function psJson(ctx: NsboxContext, all = true): Promise<PsEntry[]> {
  const r = await ok(ctx, ["ps", ...(all ? ["-a"] : []), "--format", "json", "--no-trunc"]);
  return parsePs(r.stdout);
}

export async function psEntry(ctx: NsboxContext, id: string): Promise<PsEntry | undefined> {
  return (await psJson(ctx)).find((e) => e.ID === id);
}

export async function inspectOne(ctx: NsboxContext, ref: string): Promise<InspectEntry> {
  const r = await ok(ctx, ["inspect", ref]);
  const arr = JSON.parse(r.stdout) as InspectEntry[];
  if (arr.length !== 1) throw new Error(`inspect ${ref} returned ${arr.length} entries`);
  return arr[0] as InspectEntry;
}

/** The container's PID 1 on the host (from inspect). */
export async function hostPid(ctx: NsboxContext, ref: string): Promise<number> {
  const pid = (await inspectOne(ctx, ref)).State.Pid;
  if (!pid) throw new Error(`container ${ref} has no pid (not running?)`);
  return pid;
}

/** Every id that the state root knows of, including half-created (.tmp-*) and half-removed (.rm-<id>-*) ones. */
export function idsInState(stateRoot: string): string[] {
  const out = new Set<string>();
  for (const e of ls(stateRoot)) {
    if (ID_RE.test(e)) out.add(e);
    else if (e.startsWith(".rm-")) out.add(e.slice(4, 68));
    else if (e.startsWith(".tmp-")) {
      try {
        const c = JSON.parse(readFileSync(join(stateRoot, e, "config.json"), "utf8")) as { id?: string };
        if (c.id) out.add(c.id);
      } catch {
        // config not written yet: no id, and nothing else made yet either
      }
    }
  }
  return [...out];
}

/** Entries of the state root other than container dirs and names/ (temp dirs of interrupted work). */
export function strayStateEntries(stateRoot: string): string[] {
  return ls(stateRoot).filter((e) => !KEPT_STATE.includes(e) && !ID_RE.test(e));
}

/** What a state root keeps when no container is left: names/, net/ (made once), seccomp/ (a cache of compiled filters). */
export const KEPT_STATE = ["names", "net", "seccomp"];

/** Where the host has cgroup hierarchies mounted (v1 controllers, cgroup2). */
function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fstype = right.split(" ")[0];
    const point = left.split(" ")[4];
    if (point && (fstype === "cgroup" || fstype === "cgroup2")) out.push(point);
  }
  return out;
}

/** cgroup dirs named nsbox-<id>, anywhere in the top 4 levels of every hierarchy. */
export function cgroupDirsOf(id: string): string[] {
  const want = `nsbox-${id}`;
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === want) found.push(join(dir, e.name));
      else if (depth < 4 && !e.name.startsWith("nsbox-")) walk(join(dir, e.name), depth + 1);
    }
  };
  for (const m of new Set(cgroupMounts())) walk(m, 0);
  return found.sort();
}

/** Host pids (other than ours) whose command line contains needle. */
export function pidsMatching(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ");
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      if (cmd.includes(needle) && state !== "Z") out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** True while a live (non-zombie) process has this pid. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !["Z", "X"].includes(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "");
  } catch {
    return false;
  }
}

/** Parent pid of a process (0 when gone). */
export function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/**
 * What a container that should be gone still holds on the host: its state dir,
 * its data dir (overlay layers), mounts, cgroups, and processes (the monitor
 * and `nsbox cleanup` carry the id in their command line; `tag` finds the
 * container's own processes). Empty when nothing is left.
 */
export function leftoversOf(ctx: NsboxContext, id: string, tag?: string): string[] {
  const out: string[] = [];
  if (existsSync(join(ctx.stateRoot, id))) out.push(`state dir ${join(ctx.stateRoot, id)}`);
  for (const e of ls(ctx.stateRoot)) if (e !== id && e.includes(id)) out.push(`state entry ${e}`);
  if (existsSync(join(ctx.dataRoot, "containers", id))) out.push(`data dir ${join(ctx.dataRoot, "containers", id)}`);
  for (const l of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l.includes(id)) out.push(`mount: ${l}`);
  for (const d of cgroupDirsOf(id)) out.push(`cgroup ${d}`);
  for (const p of pidsMatching(id)) out.push(`process ${p}: ${readCmd(p)}`);
  if (tag) for (const p of pidsMatching(tag)) out.push(`process ${p}: ${readCmd(p)}`);
  return out;
}

function readCmd(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "?";
  }
}

/** Waits (up to timeoutMs) for a container's leftovers to go, and returns what is still there. */
export async function settledLeftovers(ctx: NsboxContext, id: string, tag?: string, timeoutMs = 5000): Promise<string[]> {
  await waitUntil(() => leftoversOf(ctx, id, tag).length === 0, timeoutMs);
  return leftoversOf(ctx, id, tag);
}

/** Removes every container of the state root (for afterAll). */
export async function removeAll(ctx: NsboxContext): Promise<void> {
  if (!existsSync(ctx.stateRoot)) return;
  const r = Bun.spawnSync([NSBOX, "ps", "-a", "-q", "--no-trunc"], { env: ctx.env(), stdout: "pipe", stderr: "pipe" });
  const ids = r.stdout.toString().split("\n").filter(Boolean);
  if (ids.length) Bun.spawnSync([NSBOX, "rm", "-f", ...ids], { env: ctx.env(), stdout: "ignore", stderr: "ignore" });
}

/**
 * nsbox started with NSBOX_TRACE=1, whose stderr is read as it comes, so that
 * a test can act (SIGKILL it, SIGSTOP it) right after a phase of its work.
 */
export class Traced {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout = "";
  stderr = "";
  private readonly done: Promise<void>;
  private wake: (() => void) | undefined;

  constructor(ctx: NsboxContext, args: string[], trace = true) {
    this.proc = Bun.spawn([NSBOX, ...args], {
      env: ctx.env(trace ? { NSBOX_TRACE: "1" } : {}),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const drain = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
      const dec = new TextDecoder();
      for await (const c of s) {
        add(dec.decode(c, { stream: true }));
        this.wake?.();
      }
    };
    this.done = Promise.all([drain(this.proc.stdout, (t) => (this.stdout += t)), drain(this.proc.stderr, (t) => (this.stderr += t)), this.proc.exited]).then(
      () => this.wake?.(),
    );
  }

  /** Resolves when stderr shows `[trace] ... what` (true), or when nsbox exits first (false). */
  async mark(what: string, timeoutMs = 10000): Promise<boolean> {
    const seen = () => this.stderr.includes(`  ${what}\n`);
    const end = Date.now() + timeoutMs;
    while (!seen()) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null || Date.now() > end) return seen();
      await Promise.race([new Promise<void>((r) => (this.wake = r)), Bun.sleep(20)]);
    }
    return true;
  }

  kill(sig: NodeJS.Signals = "SIGKILL"): void {
    try {
      process.kill(this.proc.pid, sig);
    } catch {
      // already gone
    }
  }

  /** Waits for nsbox to end and for its output. */
  async finished(): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
    await this.done;
    return { code: this.proc.exitCode, signal: this.proc.signalCode === null ? null : String(this.proc.signalCode), stdout: this.stdout, stderr: this.stderr };
  }
}

/** Who holds the flock of a container's lock file (pid and command line), from /proc/locks. */
export function lockHolders(stateRoot: string, id: string): string[] {
  let ino: number;
  try {
    ino = statSync(join(stateRoot, id, "lock")).ino;
  } catch {
    return [];
  }
  return readFileSync("/proc/locks", "utf8")
    .split("\n")
    .filter((l) => l.includes(`:${ino} `))
    .map((l) => {
      const pid = Number(l.split(/\s+/)[4]);
      return `${pid}: ${readCmd(pid)}`;
    });
}
