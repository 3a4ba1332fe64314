/**
 * Shared helpers for `make bench` (bench/run.ts): the busybox rootfs every
 * contender runs, OCI bundles for crun and runc over that same directory, the
 * mount-namespace wrapper every contender is measured through, hyperfine and
 * peak-memory runners, result tables, and the clean-up that leaves nothing
 * behind (temp dirs, runtime state, cgroups).
 *
 * Fairness rules kept here so that sections cannot drift apart:
 *  - one rootfs directory (a real path, not a symlink: runc refuses those);
 *  - the same wrapper around nsbox, crun, runc and bwrap (see wrapArgv);
 *  - crun, runc and nsbox get the same kind of cgroup: nested under the bench
 *    process's own cgroup, never at a hierarchy's root.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "..");
export const DEFAULT_NSBOX = join(REPO, "dist/nsbox");

export const CONTENDERS = ["nsbox", "crun", "runc", "bwrap"] as const;
export type Contender = (typeof CONTENDERS)[number];
export type Runtime = "crun" | "runc";

/** A failure the bench reports in one line (no stack trace): a missing tool, a contender that does not start. */
export class BenchError extends Error {}

// ---------------------------------------------------------------- processes

/** Quotes one word for sh (and for hyperfine -N, which splits commands with POSIX shell-word rules). */
export function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command-line word; `{ sh }` goes into the wrapper's script unquoted, so that sh expands it (e.g. an id with $$). */
export type Arg = string | { sh: string };

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion and returns its exit code and output (never throws on a non-zero exit). */
export function exec(argv: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): Output {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? 128 + 9, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Like exec, but a non-zero exit is a BenchError that quotes the command and its stderr. */
export function mustExec(argv: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): string {
  const r = exec(argv, opts);
  if (r.code !== 0) throw new BenchError(`${argv.map(shq).join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** A small seeded generator (mulberry32): the same seed gives the same numbers on every run (bootstrap intervals, shuffled rounds). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// ---------------------------------------------------------------- mounts

interface MountEntry {
  point: string;
  fstype: string;
}

/** /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - FSTYPE SOURCE SUPER". */
export function mounts(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const point = left.split(" ")[4];
    const fstype = right.split(" ")[0];
    if (point && fstype) out.push({ point: point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))), fstype });
  }
  return out;
}

// ---------------------------------------------------------------- the wrapper

/**
 * crun refuses a hybrid cgroup host (v1 controllers plus a cgroup2 mount at
 * /sys/fs/cgroup/unified), even with --cgroup-manager=disabled. It runs when
 * started in a private mount namespace where that cgroup2 mount is gone. So
 * every contender runs as `unshare -m sh -c '[umount unified &&] exec CMD'`:
 * the same extra fork+exec+unshare for all, and the host's mounts untouched
 * (unshare -m makes the new namespace's propagation private by default; we
 * also say so explicitly).
 */
export interface Wrapper {
  /** /sys/fs/cgroup/unified is a cgroup2 mount (hybrid host): unmount it inside the namespace */
  umountUnified: boolean;
}

export const UNIFIED = "/sys/fs/cgroup/unified";

export function detectWrapper(): Wrapper {
  return { umountUnified: mounts().some((m) => m.point === UNIFIED && m.fstype === "cgroup2") };
}

export function wrapArgv(w: Wrapper, argv: Arg[]): string[] {
  const words = argv.map((a) => (typeof a === "string" ? shq(a) : a.sh)).join(" ");
  const script = w.umountUnified ? `umount ${UNIFIED} && exec ${words}` : `exec ${words}`;
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script];
}

/** The wrapped command as one string, for hyperfine -N. */
export function wrapCommand(w: Wrapper, argv: Arg[]): string {
  return wrapArgv(w, argv).map(shq).join(" ");
}

// ---------------------------------------------------------------- cgroups

/**
 * Where crun, runc (and nsbox, with --cgroup-parent) put their cgroups: below
 * the bench process's own cgroup (the memory controller's path on v1, the
 * cgroup2 path otherwise), in dirs named nsbox-bench-<pid>-<n> so that only
 * ours are ever removed. On v1 the runtimes use that same path in every
 * hierarchy and create its missing ancestors (e.g. cpu/process_api/<hash>),
 * so we note which ancestors existed before and remove the ones that did not.
 */
export class CgroupPlan {
  readonly parent: string;
  readonly prefix = `nsbox-bench-${process.pid}`;
  private readonly hierarchies: string[];
  private readonly existedBefore = new Set<string>();
  /** nsbox-<id> cgroups below our own cgroup when the bench started (see nsboxLeftovers) */
  private readonly nsboxBefore = new Set<string>();
  private n = 0;

  constructor() {
    this.parent = ownCgroup();
    this.hierarchies = mounts()
      .filter((m) => (m.fstype === "cgroup" || m.fstype === "cgroup2") && m.point.startsWith("/sys/fs/cgroup"))
      .map((m) => m.point);
    for (const dir of this.ancestorDirs()) if (existsSync(dir)) this.existedBefore.add(dir);
    for (const dir of this.nsboxCgroups()) this.nsboxBefore.add(dir);
  }

  /** A fresh cgroup path (as given to cgroupsPath / --cgroup-parent): <own cgroup>/nsbox-bench-<pid>-<n>. */
  next(): string {
    this.n += 1;
    return `${this.parent === "/" ? "" : this.parent}/${this.prefix}-${this.n}`;
  }

  /** Every directory along the parent path, in every hierarchy, deepest last. */
  private ancestorDirs(): string[] {
    const segs = this.parent.split("/").filter(Boolean);
    const out: string[] = [];
    for (const h of this.hierarchies) for (let i = 1; i <= segs.length; i++) out.push(join(h, ...segs.slice(0, i)));
    return out;
  }

  /** Removes our nsbox-bench-<pid>-* cgroups and the ancestors we caused; returns what could not be removed. */
  cleanup(): string[] {
    const left: string[] = [];
    for (const h of this.hierarchies) {
      const base = join(h, this.parent);
      for (const name of safeReaddir(base)) if (name.startsWith(`${this.prefix}-`)) left.push(...rmdirTree(join(base, name)));
    }
    const ancestors = this.ancestorDirs().filter((d) => !this.existedBefore.has(d));
    for (const dir of ancestors.sort((a, b) => b.length - a.length)) {
      // another process may have started using it meanwhile: then rmdir fails with EBUSY, and it is not ours to remove
      if (existsSync(dir) && rmdirTree(dir).length) left.push(dir);
    }
    return left;
  }

  /**
   * nsbox puts a container's cgroup, nsbox-<id>, below the cgroup it runs in:
   * below the bench's own (never a hierarchy's root, which others share).
   */
  private nsboxCgroups(): string[] {
    if (this.parent === "/") return [];
    return this.hierarchies.flatMap((h) =>
      safeReaddir(join(h, this.parent))
        .filter((n) => /^nsbox-[0-9a-f]{12,64}$/.test(n))
        .map((n) => join(h, this.parent, n)),
    );
  }

  /** nsbox-<id> cgroups that nsbox made during the bench and left (removed now when empty): a clean-up bug in nsbox. */
  nsboxLeftovers(): string[] {
    const left = this.nsboxCgroups().filter((d) => !this.nsboxBefore.has(d));
    for (const dir of left) rmdirTree(dir);
    return left;
  }

  /** nsbox-bench* cgroups that are not ours (another bench run, or a crashed one): reported, never removed. */
  foreign(): string[] {
    const out: string[] = [];
    for (const h of this.hierarchies) {
      for (const base of [h, join(h, this.parent)]) {
        for (const name of safeReaddir(base)) if (name.startsWith("nsbox-bench") && !name.startsWith(`${this.prefix}-`)) out.push(join(base, name));
      }
    }
    return [...new Set(out)];
  }
}

/** The bench's own cgroup: the v1 memory controller's line of /proc/self/cgroup, else the cgroup2 ("0::") line. */
export function ownCgroup(text = readFileSync("/proc/self/cgroup", "utf8")): string {
  const lines = text.split("\n").map((l) => l.split(":"));
  const memory = lines.find((f) => f[1]?.split(",").includes("memory"));
  const unified = lines.find((f) => f[0] === "0" && f[1] === "");
  const path = (memory ?? unified)?.slice(2).join(":");
  if (!path) throw new BenchError("cannot find this process's cgroup in /proc/self/cgroup");
  return path;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** rmdir of a cgroup and its child cgroups, deepest first (cgroupfs dirs hold only control files, which go with rmdir). */
function rmdirTree(dir: string): string[] {
  const left: string[] = [];
  for (const name of safeReaddir(dir)) {
    const child = join(dir, name);
    try {
      if (statSync(child).isDirectory()) left.push(...rmdirTree(child));
    } catch {
      // vanished meanwhile
    }
  }
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") left.push(dir);
  }
  return left;
}

// ---------------------------------------------------------------- the context

export interface Options {
  runs: number;
  warmup: number;
  memRuns: number;
  nsbox: string;
}

/** Everything a section needs; sections must create things only through it, so that clean-up finds them. */
export interface BenchContext {
  opts: Options;
  /** private temp dir: rootfs (unless reused), bundles, runtime state, nsbox's --root */
  tmp: string;
  /** the busybox rootfs, a real path */
  rootfs: string;
  wrapper: Wrapper;
  cgroups: CgroupPlan;
  /** the environment for every contender: NSBOX_ROOT/NSBOX_STATE point into tmp */
  env: Record<string, string | undefined>;
  nsboxRoot: string;
  /** `nsbox run --help` mentions this flag (for flags other engineers are still adding) */
  nsboxHas(flag: string): boolean;
  /** the --root state dir of crun or runc */
  stateDir(rt: Runtime): string;
}

export const TOOLS = ["unshare", "hyperfine", "crun", "runc", "bwrap"] as const;

/** Checks the tools and nsbox, makes the temp dir and the rootfs. Call cleanupContext() in a finally. */
export function makeContext(opts: Options): BenchContext {
  if (!existsSync(opts.nsbox)) throw new BenchError(`${opts.nsbox} is missing: build it first with \`make build\` (or run \`make bench\`, which builds it)`);
  for (const t of TOOLS)
    if (!Bun.which(t))
      throw new BenchError(
        `${t} is not installed (sudo .ci/setup --bench, or apt-get install -y ${t === "unshare" ? "util-linux" : t === "bwrap" ? "bubblewrap" : t})`,
      );
  if (!gnuTime()) throw new BenchError("GNU time is not installed at /usr/bin/time (apt-get install -y time)");
  if (process.getuid?.() !== 0) throw new BenchError("the bench needs root (containers, mounts and cgroups): run it with sudo");

  const tmp = realpathSync(mkdtempSync(join(tmpdir(), "nsbox-bench-")));
  const nsboxRoot = join(tmp, "nsbox-root");
  const env = { ...process.env, NSBOX_ROOT: nsboxRoot, NSBOX_STATE: join(tmp, "nsbox-state") };
  asInstalled(opts.nsbox);
  const help = exec([opts.nsbox, "run", "--help"]).stdout;
  const ctx: BenchContext = {
    opts,
    tmp,
    rootfs: "",
    wrapper: detectWrapper(),
    cgroups: new CgroupPlan(),
    env,
    nsboxRoot,
    nsboxHas: (flag) => new RegExp(`--${flag}\\b`).test(help),
    stateDir: (rt) => join(tmp, `${rt}-state`),
  };
  for (const rt of ["crun", "runc"] as const) mkdirSync(ctx.stateDir(rt), { recursive: true });
  try {
    ctx.rootfs = busyboxRootfs(opts.nsbox, tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return ctx;
}

/** dist/rootfs/busybox if `make rootfs` made it, else a fresh one in tmp; always its real path (runc refuses symlinks). */
function busyboxRootfs(nsbox: string, tmp: string): string {
  const shared = join(REPO, "dist/rootfs/busybox");
  if (existsSync(join(shared, "bin/busybox"))) return realpathSync(shared);
  const dir = join(tmp, "rootfs");
  mustExec([nsbox, "rootfs", "busybox", dir]);
  return realpathSync(dir);
}

let gnuTimeOk: boolean | undefined;
function gnuTime(): boolean {
  if (gnuTimeOk === undefined) {
    const r = existsSync("/usr/bin/time") ? exec(["/usr/bin/time", "--version"]) : undefined;
    gnuTimeOk = !!r && /GNU/.test(r.stdout + r.stderr);
  }
  return gnuTimeOk;
}

/**
 * Removes what the bench made and checks that nothing is left: runtime state
 * (containers still listed by nsbox, crun or runc are deleted first), mounts
 * below tmp, tmp itself, our cgroups and the ones nsbox made below ours. Returns a list of problems (empty when clean).
 */
export function cleanupContext(ctx: BenchContext): string[] {
  const problems: string[] = [];
  // every section removes its nsbox containers (foreground ones remove themselves): one still listed is a leak
  const ps = exec([ctx.opts.nsbox, `--root=${ctx.nsboxRoot}`, "ps", "-a", "-q", "--no-trunc"], { env: ctx.env });
  const left = ps.stdout.split("\n").filter((l) => /^[0-9a-f]{12,64}$/.test(l.trim()));
  if (left.length) {
    problems.push(`nsbox left containers behind (removed now): ${left.join(", ")}`);
    exec([ctx.opts.nsbox, `--root=${ctx.nsboxRoot}`, "rm", "-f", ...left], { env: ctx.env });
  }
  for (const rt of ["crun", "runc"] as const) {
    const left = runtimeContainers(ctx, rt);
    if (left.length) problems.push(`${rt} left containers behind (deleted now): ${left.join(", ")}`);
    for (const id of left) exec(wrapArgv(ctx.wrapper, [rt, "--root", ctx.stateDir(rt), "delete", "--force", id]));
    const still = runtimeContainers(ctx, rt);
    if (still.length) problems.push(`${rt} containers could not be deleted: ${still.join(", ")}`);
  }
  // Contenders mount only inside their own namespaces; a mount here would be a leak (detach it, then report it).
  for (const m of mounts()
    .filter((m) => m.point.startsWith(`${ctx.tmp}/`))
    .reverse()) {
    exec(["umount", "--lazy", m.point]);
    problems.push(`a mount was left behind (detached now): ${m.point}`);
  }
  try {
    rmSync(ctx.tmp, { recursive: true, force: true });
  } catch (e) {
    problems.push(`cannot remove ${ctx.tmp}: ${(e as Error).message}`);
  }
  for (const dir of ctx.cgroups.nsboxLeftovers())
    problems.push(`nsbox left its cgroup behind${existsSync(dir) ? " (not empty: left in place)" : " (removed now)"}: ${dir}`);
  for (const dir of ctx.cgroups.cleanup()) problems.push(`cgroup could not be removed: ${dir}`);
  for (const dir of ctx.cgroups.foreign()) problems.push(`note: a cgroup from another bench run exists (not ours, left alone): ${dir}`);
  return problems;
}

function runtimeContainers(ctx: BenchContext, rt: Runtime): string[] {
  if (!existsSync(ctx.stateDir(rt))) return [];
  const r = exec([rt, "--root", ctx.stateDir(rt), "list", "--quiet"]);
  return r.stdout
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

// ---------------------------------------------------------------- contenders

export interface Resources {
  memoryBytes?: number;
  pids?: number;
}

export interface BundleOptions {
  args: string[];
  readonly?: boolean;
  resources?: Resources;
  cgroupsPath: string;
  /** an OCI linux.seccomp object (e.g. nsbox's resolved default profile); none when absent, as `<rt> spec` gives */
  seccomp?: object;
}

type OciConfig = {
  process: { args: string[]; terminal: boolean };
  root: { path: string; readonly?: boolean };
  linux: {
    cgroupsPath?: string;
    resources?: Record<string, unknown>;
    namespaces: { type: string; path?: string }[];
    seccomp?: object;
  };
};

let bundles = 0;

/**
 * An OCI bundle over ctx.rootfs: `<rt> spec`'s config.json with our process,
 * root and cgroup. A cgroup namespace is added because nsbox gives one by
 * default (runc's and crun's specs do not), so all do the same work.
 */
export function makeBundle(ctx: BenchContext, rt: Runtime, o: BundleOptions): string {
  bundles += 1;
  const dir = join(ctx.tmp, `bundle-${rt}-${bundles}`);
  mkdirSync(dir, { recursive: true });
  mustExec([rt, "spec"], { cwd: dir });
  const file = join(dir, "config.json");
  const c = JSON.parse(readFileSync(file, "utf8")) as OciConfig;
  c.process.args = o.args;
  c.process.terminal = false;
  c.root = { path: ctx.rootfs, readonly: o.readonly ?? false };
  c.linux.cgroupsPath = o.cgroupsPath;
  if (!c.linux.namespaces.some((n) => n.type === "cgroup")) c.linux.namespaces.push({ type: "cgroup" });
  if (o.resources) c.linux.resources = { ...(c.linux.resources ?? {}), ...ociResources(o.resources) };
  if (o.seccomp) c.linux.seccomp = o.seccomp;
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
  return dir;
}

function ociResources(r: Resources): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.memoryBytes !== undefined) out.memory = { limit: r.memoryBytes };
  if (r.pids !== undefined) out.pids = { limit: r.pids };
  return out;
}

/**
 * `crun|runc run` = create + start + wait + delete, as `nsbox run` does end to
 * end. The id carries sh's $$ (the wrapper's pid) so every iteration gets a
 * fresh one even if one ever failed to be deleted.
 */
export function runtimeArgv(ctx: BenchContext, rt: Runtime, bundle: string): Arg[] {
  return [rt, "--root", ctx.stateDir(rt), "run", "--bundle", bundle, { sh: `nsbox-bench-${rt}-$$` }];
}

/**
 * nsbox run. Its default cgroup is nsbox-<id> under the cgroup it runs in (per
 * controller), which is where crun and runc get theirs (cgroupsPath below ours):
 * no --cgroup-parent needed, and none given (it would add a level per run).
 */
export function nsboxArgv(ctx: BenchContext, flags: string[], args: string[]): Arg[] {
  // The bench's data and state roots come from ctx.env (NSBOX_ROOT, NSBOX_STATE), not
  // from a --root flag: the measured command is issue 14's `nsbox run ...` as written.
  // (A global flag costs a run 0.15-0.25 MiB of peak RSS: bench/trace-notes.md, "Ninth stop".)
  return [ctx.opts.nsbox, "run", ...flags, ctx.rootfs, ...args];
}

/** bwrap with every namespace it has (--unshare-all includes the network) and the rootfs read-only. */
export function bwrapArgv(ctx: BenchContext, args: string[]): Arg[] {
  return ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", ctx.rootfs, "/", "--proc", "/proc", "--dev", "/dev", ...args];
}

/** Runs a contender once through the wrapper, with the contenders' environment. */
export function runOnce(ctx: BenchContext, argv: Arg[]): Output {
  return exec(wrapArgv(ctx.wrapper, argv), { env: ctx.env });
}

/** runOnce, and a failure is a BenchError that names the contender and quotes its stderr and command. */
export function mustRunOnce(ctx: BenchContext, name: string, argv: Arg[]): Output {
  const r = runOnce(ctx, argv);
  if (r.code !== 0) throw new BenchError(`${name} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}\n  command: ${wrapCommand(ctx.wrapper, argv)}`);
  return r;
}

// ---------------------------------------------------------------- measuring

export interface Stats {
  median: number;
  mean: number;
  stddev: number;
  /** hyperfine only: mean user+system CPU time per run (ms), which load from elsewhere on the host stretches far less than wall time */
  cpu?: number;
  /** hyperfine only: every run's wall time (ms), e.g. for a confidence interval */
  times?: number[];
}

export function stats(xs: number[]): Stats {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { median: median(xs), mean, stddev: Math.sqrt(variance) };
}

interface HyperfineJson {
  results: { times: number[]; user: number; system: number }[];
}

/**
 * Rounds per measurement: contenders alternate, so a burst of load from elsewhere
 * on the host hits all of them alike. Short rounds: with 4 rounds of 25 runs, one
 * binary's blocks of 25 moved its median by up to 10 ms against its own next block
 * (the host's speed drifts over seconds), more than the differences measured; with
 * 25 rounds of 4 the drift falls on every contender. The first round warms up
 * with the full count, the others with one run each (the page cache stays warm
 * between rounds seconds apart).
 */
const ROUNDS = 25;

/** How hyperfine() ran `runs` runs, for a table's title. */
export function roundsNote(ctx: BenchContext, runs = ctx.opts.runs): string {
  const rounds = roundCount(runs);
  return `${runs} runs in ${rounds} rounds, contenders alternating; ${ctx.opts.warmup} warm-up runs before the first round, ${Math.min(1, ctx.opts.warmup)} before each other`;
}

const roundCount = (runs: number) => Math.max(1, Math.min(ROUNDS, Math.floor(runs / 2))); // hyperfine needs at least 2 runs

/** cmds rotated by k: each contender goes first in some round. */
function rotate<T>(xs: T[], k: number): T[] {
  const i = k % xs.length;
  return [...xs.slice(i), ...xs.slice(0, i)];
}

/**
 * hyperfine -N over the wrapped commands, in ROUNDS interleaved rounds (each
 * with a warm-up: the other contenders ran in between); stats in milliseconds
 * over all runs, by name.
 */
export function hyperfine(ctx: BenchContext, cmds: { name: string; argv: Arg[] }[], runs = ctx.opts.runs): Map<string, Stats> {
  const rounds = roundCount(runs);
  const times = new Map<string, number[]>(cmds.map((c) => [c.name, []]));
  const cpuMs = new Map<string, number>(cmds.map((c) => [c.name, 0])); // summed over runs
  for (let round = 0; round < rounds; round++) {
    const order = rotate(cmds, round);
    const n = Math.floor(runs / rounds) + (round < runs % rounds ? 1 : 0);
    const json = join(ctx.tmp, "hyperfine.json");
    const warmup = round === 0 ? ctx.opts.warmup : Math.min(1, ctx.opts.warmup);
    const argv = ["hyperfine", "-N", "--style", "none", "--warmup", String(warmup), "--runs", String(n), "--export-json", json];
    for (const c of order) argv.push("--command-name", c.name, wrapCommand(ctx.wrapper, c.argv));
    const r = exec(argv, { env: ctx.env });
    if (r.code !== 0) throw new BenchError(`hyperfine failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    const data = JSON.parse(readFileSync(json, "utf8")) as HyperfineJson;
    rmSync(json, { force: true });
    for (const [i, c] of order.entries()) {
      const res = data.results[i];
      times.get(c.name)?.push(...(res?.times ?? []).map((t) => t * 1000));
      if (res) cpuMs.set(c.name, (cpuMs.get(c.name) ?? 0) + (res.user + res.system) * 1000 * res.times.length);
    }
  }
  return new Map([...times].map(([name, xs]) => [name, { ...stats(xs), cpu: (cpuMs.get(name) ?? 0) / xs.length, times: xs }]));
}

/**
 * Puts an executable's pages in the state of an installed binary: written to
 * disk and out of the page cache, so that runs map it as exec reads it. A file
 * just written (bun build, cp) stays in the cache as written, and a process
 * then maps more of it per fault, and starts faster: measured here, a hello
 * world 25.0 MiB just built against 20.6 MiB read back (+0.6 ms of wall time read
 * back), nsbox 40.3 against 34.5 MiB (+3.4 ms). The bench builds its hello world
 * at each run and nsbox only when its sources changed, so without this their
 * ratio depended on when each was last written. makeContext, hello() and
 * peakRssMiB put every binary they measure through this. (sync FILE fsyncs it;
 * dd's nocache with count=0 drops the whole file's cached pages.)
 * BENCH_BINARIES=as-built skips it, to compare with runs made before.
 */
export function asInstalled(bin: string): void {
  if (process.env.BENCH_BINARIES === "as-built" || !bin.startsWith("/") || !existsSync(bin)) return;
  mustExec(["sync", bin]);
  mustExec(["dd", `if=${bin}`, "iflag=nocache", "count=0", "status=none"]);
}

/**
 * Peak RSS in MiB, median over runs, contenders interleaved. GNU time's %M is
 * ru_maxrss of the waited-for process tree (wait4's rusage folds in every
 * descendant that was waited for): the high-water mark of the LARGEST single
 * process in the tree, not a sum over processes. It is measured from a fork
 * of /usr/bin/time (a small process), not of Bun: ru_maxrss survives exec, so
 * a child forked from Bun would carry Bun's size into the number.
 */
export function peakRssMiB(ctx: BenchContext, cmds: { name: string; argv: Arg[] }[], runs = ctx.opts.memRuns): Map<string, number> {
  for (const c of cmds) if (typeof c.argv[0] === "string") asInstalled(c.argv[0]);
  const out = join(ctx.tmp, "time.txt");
  const kib = new Map<string, number[]>(cmds.map((c) => [c.name, []]));
  for (let i = 0; i < runs; i++) {
    for (const c of cmds) {
      const r = exec(["/usr/bin/time", "-f", "%M", "-o", out, ...wrapArgv(ctx.wrapper, c.argv)], { env: ctx.env });
      if (r.code !== 0) throw new BenchError(`${c.name} failed under /usr/bin/time (exit ${r.code}): ${r.stderr.trim()}`);
      kib.get(c.name)?.push(Number(readFileSync(out, "utf8").trim().split("\n").pop()));
    }
  }
  rmSync(out, { force: true });
  return new Map([...kib].map(([name, xs]) => [name, median(xs) / 1024]));
}

// ---------------------------------------------------------------- tables

/**
 * A column of a table: the four contenders, and "hello", the compiled Bun
 * hello world (bench/hello.ts), shown only in tables that measured it.
 */
export type Column = Contender | "hello";

/** One measured quantity across contenders; a missing contender prints as n/a (e.g. bwrap has no cgroup limits). */
export interface Row {
  metric: string;
  values: Partial<Record<Column, number>>;
  digits?: number;
}

export interface Table {
  title: string;
  rows: Row[];
}

/**
 * A target of an issue, checked in the same run: `value` (e.g. a ratio) must
 * be at most `limit`. `how` says how value was computed, with its inputs.
 */
export interface Target {
  what: string;
  value: number;
  limit: number;
  how: string;
}

export function met(t: Target): boolean {
  return Number.isFinite(t.value) && t.value <= t.limit;
}

/** A block of preformatted text (e.g. a trace), printed as is; a fenced code block in results.md. */
export interface Block {
  title: string;
  text: string;
}

export interface SectionResult {
  title: string;
  tables: Table[];
  notes: string[];
  /** the issue's targets, as a table of their own under the section's tables */
  targets?: Target[];
  blocks?: Block[];
  /** set when the section could not run here (a missing nsbox feature): printed instead of tables */
  skipped?: string;
}

const RIVALS = ["crun", "runc", "bwrap"] as const;

function columns(t: Table): Column[] {
  return t.rows.some((r) => r.values.hello !== undefined) ? [...CONTENDERS, "hello"] : [...CONTENDERS];
}

function header(t: Table): string[] {
  return ["", ...columns(t), ...RIVALS.map((r) => `nsbox/${r}`)];
}

function cells(row: Row, cols: Column[]): string[] {
  const d = row.digits ?? 1;
  const n = row.values.nsbox;
  const vals = cols.map((c) => (row.values[c] === undefined ? "n/a" : (row.values[c] as number).toFixed(d)));
  const ratios = RIVALS.map((r) => {
    const v = row.values[r];
    return n === undefined || v === undefined || v === 0 ? "n/a" : (n / v).toFixed(2);
  });
  return [row.metric, ...vals, ...ratios];
}

function aligned(grid: string[][]): string[] {
  const widths = (grid[0] ?? []).map((_, i) => Math.max(...grid.map((r) => (r[i] ?? "").length)));
  return grid.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  "));
}

/** A markdown table: the first column left-aligned, the others right-aligned unless `left` names them. */
function markdownGrid(grid: string[][], left: number[] = []): string[] {
  const row = (r: string[]) => `| ${r.join(" | ")} |`;
  const head = grid[0] ?? [];
  return [row(head), row(head.map((_, i) => (i === 0 || left.includes(i) ? "---" : "---:"))), ...grid.slice(1).map(row)];
}

function tableGrid(t: Table): string[][] {
  const cols = columns(t);
  return [header(t), ...t.rows.map((r) => cells(r, cols))];
}

/** Aligned plain text for the terminal. */
export function renderText(t: Table): string {
  return [t.title, ...aligned(tableGrid(t))].join("\n");
}

/** A markdown table for bench/results.md (and the README). */
export function renderMarkdown(t: Table): string {
  return [`**${t.title}**`, "", ...markdownGrid(tableGrid(t))].join("\n");
}

function targetGrid(ts: Target[]): string[][] {
  return [["target", "measured", "at most", "", "how"], ...ts.map((t) => [t.what, t.value.toFixed(2), t.limit.toFixed(2), met(t) ? "met" : "NOT met", t.how])];
}

export function renderTargetsText(ts: Target[]): string {
  return ["targets", ...aligned(targetGrid(ts))].join("\n");
}

export function renderTargetsMarkdown(ts: Target[]): string {
  return ["**targets**", "", ...markdownGrid(targetGrid(ts), [3, 4])].join("\n");
}

export const RATIO_NOTE = "ratio = nsbox / other: below 1 means nsbox is faster (or smaller)";
