/**
 * Shared helpers for the integration tests of `nsbox run`.
 *
 * Each test file calls useNsbox() once at top level: it gets a private temporary
 * directory holding the data root (NSBOX_ROOT), the state root (NSBOX_STATE) and a
 * busybox rootfs built once (with `nsbox rootfs busybox`) in beforeAll, and
 * everything is removed in afterAll (mounts that a bug might have left below the
 * temporary directory are detached first, so that removing it never reaches into
 * the host's files).
 *
 * The tests run dist/nsbox, the compiled binary: run `make build` first.
 */
import { afterAll, beforeAll } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bridgeExists, bridgeLeftover } from "./host-bridge.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const NSBOX = join(REPO, "dist/nsbox");
/** nsbox's default PATH inside a container (src/config/defaults.ts). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface RunResult {
  code: number;
  /** the signal that ended nsbox itself, if any */
  signal: string | null;
  stdout: string;
  /** stderr without nsbox's one-time notes about host sysctls it turned on (see HOST_NOTE) */
  stderr: string;
  /** stderr as it came */
  rawStderr: string;
  /** true when the helper had to kill nsbox after timeoutMs */
  timedOut: boolean;
}

export interface RunOptions {
  /** written to nsbox's stdin, which is then closed (without it: an empty pipe for nsbox(), an open one for start()) */
  input?: string | Uint8Array;
  /** added to (or, with undefined, removed from) the environment nsbox gets */
  env?: Record<string, string | undefined>;
  /** start from an empty environment (plus NSBOX_ROOT and NSBOX_STATE) instead of the test's */
  cleanEnv?: boolean;
  cwd?: string;
  /** nsbox is killed (SIGKILL) after this long; default 30 s */
  timeoutMs?: number;
  /** the nsbox binary to run (default dist/nsbox) */
  bin?: string;
  /** a command to run nsbox through, e.g. ["setpriv", "--reuid=65534", ...] */
  prefix?: string[];
  /** false: the result comes at nsbox's exit, before its exit keeper's removals are done (see removalsDone) */
  waitRemovals?: boolean;
}

/** One line per mount of /proc/self/mountinfo that mentions one of `needles`. */
export function mountLines(needles: string[]): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l && needles.some((n) => l.includes(n)));
}

/** Mount points (field 5 of mountinfo) at or below dir, deepest first. */
export function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`))
    .reverse();
}

/** Entries of a directory, sorted; [] when it does not exist. */
export function ls(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Every path below dir (relative, sorted); [] when dir does not exist. */
export function lsRecursive(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of ls(join(dir, rel))) {
      const r = rel ? `${rel}/${e}` : e;
      out.push(r);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(join(dir, r));
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(r);
    }
  };
  walk("");
  return out.sort();
}

/**
 * A description of every file of a tree: path, type and mode, owner, size,
 * mtime (ns), inode, and the content's sha256 or the link target. Equal
 * results mean the tree was not touched.
 */
export function treeManifest(dir: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string) => {
    const p = rel ? join(dir, rel) : dir;
    const st = lstatSync(p, { bigint: true });
    let extra = "";
    if (st.isFile()) extra = createHash("sha256").update(readFileSync(p)).digest("hex");
    else if (st.isSymbolicLink()) extra = `-> ${readlinkSync(p)}`;
    lines.push(`${rel || "."} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ino} ${extra}`);
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
  };
  walk("");
  return lines;
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Fields of /proc/PID/status ("Uid" -> "0\t0\t0\t0"), or undefined when gone. */
export function procStatus(pid: number): Record<string, string> | undefined {
  try {
    const out: Record<string, string> = {};
    for (const l of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
      const i = l.indexOf(":");
      if (i > 0) out[l.slice(0, i)] = l.slice(i + 1).trim();
    }
    return out;
  } catch {
    return undefined;
  }
}

/** The host pids whose parent is pid (scanning /proc: works for any thread of the parent). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(after[1]) === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Host pids of processes whose command line is exactly argv. */
export function pidsWithCmdline(argv: string[]): number[] {
  const want = `${argv.join("\0")}\0`;
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8") === want) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Polls cond every 50 ms until it is truthy or timeoutMs passes; returns its last value. */
export async function waitUntil<T>(cond: () => T | Promise<T>, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v || Date.now() > end) return v;
    await Bun.sleep(50);
  }
}

/**
 * Removals a foreground run left to its exit keeper, pending below the roots that
 * env names: the container's layers and state dir, renamed to .rm-* and removed
 * right after nsbox's exit (src/native/exit.ts).
 */
export function pendingRemovals(env: Record<string, string | undefined>): string[] {
  const dirs = [env.NSBOX_ROOT && join(env.NSBOX_ROOT, "containers"), env.NSBOX_STATE].filter((d): d is string => !!d);
  return dirs.flatMap((d) =>
    ls(d)
      .filter((e) => e.startsWith(".rm-"))
      .map((e) => join(d, e)),
  );
}

/**
 * Waits until no such removal is pending (polling every 5 ms, at most timeoutMs):
 * what a test that looks for leftovers next then sees is what nsbox leaves. Returns
 * what is still pending (a keeper that could not remove it: the test's check fails).
 */
export async function removalsDone(env: Record<string, string | undefined>, timeoutMs = 3000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = pendingRemovals(env);
    if (left.length === 0 || Date.now() > end) return left;
    await Bun.sleep(5);
  }
}

/**
 * Notes nsbox prints when it turns on a host setting the bridge network needs
 * (once per boot, or again when something else turned it off): not errors.
 */
export const HOST_NOTE = /^nsbox: set net\.[^\n]*\n/gm;

/** Lines of text, without the empty last one. */
export const lines = (text: string): string[] => text.split("\n").filter((l, i, a) => l !== "" || i < a.length - 1);

/** A running nsbox whose output is collected as it comes. */
export class Running {
  stdout = "";
  stderr = "";
  readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  private readonly finished: Promise<RunResult>;
  private killedByTimeout = false;
  /** called on every chunk of stdout (waitFor resolves at once, not at the next poll) */
  private readonly waiters = new Set<() => void>();

  constructor(argv: string[], env: Record<string, string>, opts: RunOptions) {
    const proc = Bun.spawn(argv, { env, cwd: opts.cwd, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    this.proc = proc;
    const drain = async (stream: ReadableStream<Uint8Array>, onText: (s: string) => void) => {
      const dec = new TextDecoder();
      for await (const chunk of stream) onText(dec.decode(chunk, { stream: true }));
    };
    const out = drain(proc.stdout, (s) => {
      this.stdout += s;
      for (const w of [...this.waiters]) w();
    });
    const err = drain(proc.stderr, (s) => (this.stderr += s));
    const timer = setTimeout(() => {
      this.killedByTimeout = true;
      proc.kill("SIGKILL");
    }, opts.timeoutMs ?? 30000);
    if (opts.input !== undefined) {
      proc.stdin.write(opts.input);
      proc.stdin.end();
    }
    this.finished = (async (): Promise<RunResult> => {
      await proc.exited;
      await Promise.all([out, err]);
      clearTimeout(timer);
      if (opts.waitRemovals !== false) await removalsDone(env);
      return {
        code: proc.exitCode ?? -1,
        signal: proc.signalCode === null || proc.signalCode === undefined ? null : String(proc.signalCode),
        stdout: this.stdout,
        stderr: this.stderr.replace(HOST_NOTE, ""),
        rawStderr: this.stderr,
        timedOut: this.killedByTimeout,
      };
    })();
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Resolves as soon as stdout contains text (rejects with what was seen after timeoutMs or at exit). */
  waitFor(text: string | RegExp, timeoutMs = 10000): Promise<void> {
    const seen = () => (typeof text === "string" ? this.stdout.includes(text) : text.test(this.stdout));
    if (seen()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string) => {
        done();
        reject(new Error(`nsbox did not print ${String(text)} (${why}); stdout: ${JSON.stringify(this.stdout)} stderr: ${JSON.stringify(this.stderr)}`));
      };
      const check = () => {
        if (!seen()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => fail("timeout"), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      void this.finished.then(() => (seen() ? check() : fail("it exited")));
    });
  }

  /** Writes to stdin (the pipe stays open). */
  write(data: string): void {
    this.proc.stdin.write(data);
    this.proc.stdin.flush();
  }

  closeStdin(): void {
    this.proc.stdin.end();
  }

  kill(sig: NodeJS.Signals | number): void {
    process.kill(this.proc.pid, sig);
  }

  /**
   * The container's PID 1 on the host: nsbox's child (nsbox is a subreaper and the
   * container's parent) in a pid namespace of its own. nsbox's other children
   * share nsbox's (the cgroup warm-up's writer, a moment after the start: taking
   * it for the container made a test wait for a process that had exited).
   */
  async containerPid(timeoutMs = 5000): Promise<number> {
    const ownNs = readlinkSync("/proc/self/ns/pid");
    const pidNs = (p: number) => {
      try {
        return readlinkSync(`/proc/${p}/ns/pid`);
      } catch {
        return ownNs;
      }
    };
    const pid = await waitUntil(() => childrenOf(this.proc.pid).find((c) => pidNs(c) !== ownNs), timeoutMs);
    if (!pid) throw new Error(`no child process of nsbox (pid ${this.proc.pid}) found`);
    return pid;
  }

  /**
   * Ends the container the way a crash would, SIGKILL to its PID 1 from the host,
   * and waits for nsbox, which then cleans up as on any exit (killing nsbox itself
   * would leave its layers, state and cgroup behind by design).
   */
  async stop(): Promise<RunResult> {
    const pid = childrenOf(this.proc.pid)[0];
    if (pid) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    return this.finished;
  }

  result(): Promise<RunResult> {
    return this.finished;
  }
}

/**
 * Container cgroups (nsbox-<64 hex>) directly below the test process's own cgroups,
 * where nsbox creates them (it inherits the test's cgroups).
 */
export function containerCgroups(): string[] {
  let own = "";
  try {
    own = readFileSync("/proc/self/cgroup", "utf8");
  } catch {
    return [];
  }
  const entries = own
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [, ctrls, path] = l.split(":") as [string, string, string];
      return { names: ctrls === "" ? [""] : ctrls.split(",").map((c) => c.replace(/^name=/, "")), path };
    });
  // Hierarchies where the test has a cgroup of its own hold only our containers;
  // the root cgroup is shared with everything else on the machine.
  const privateOnes = entries.filter((e) => e.path !== "/");
  const out = new Set<string>();
  for (const { names, path } of privateOnes.length ? privateOnes : entries) {
    for (const c of names) {
      const base = c === "" ? (existsSync("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup") : join("/sys/fs/cgroup", c);
      // v2 puts containers beside nsbox, in nsbox.slice: look there too
      for (const dir of [join(base, path), join(base, path, "..", "nsbox.slice"), join(base, "nsbox.slice")])
        for (const e of ls(dir)) if (/^nsbox-[0-9a-f]{64}$/.test(e)) out.add(join(dir, e));
    }
  }
  return [...out].sort();
}

export type Leftovers = {
  mounts: string[];
  containers: string[];
  state: string[];
  /** extraction directories (.tmp-*) and digest dirs of the rootfs cache */
  rootfsCache: string[];
  /** container cgroups (see containerCgroups) */
  cgroups: string[];
  /** host ends of containers' veth pairs (nsb<12 hex>) */
  veths: string[];
  /** addresses and ports held in the state root's network records */
  netState: string[];
};

/**
 * What appeared in `now` and was not in `before`, per kind. Other programs on the
 * machine (other nsbox runs) may add things for a moment: what is left after a
 * few polls is what this run left.
 */
export async function addedLeftovers(before: Leftovers, snapshot: () => Leftovers, settleMs = 1500): Promise<Partial<Leftovers>> {
  return addedSince(before, snapshot, settleMs);
}

/** The same for any snapshot of lists: what each list gained, once things settle. */
export async function addedSince<T extends Record<string, string[]>>(before: T, snapshot: () => T, settleMs = 1500): Promise<Partial<T>> {
  const diff = (): Partial<T> => {
    const now = snapshot();
    const out: Partial<T> = {};
    for (const k of Object.keys(now) as (keyof T)[]) {
      const added = (now[k] as string[]).filter((x) => !(before[k] as string[]).includes(x));
      if (added.length) out[k] = added as T[keyof T];
    }
    return out;
  };
  let d = diff();
  const end = Date.now() + settleMs;
  while (Object.keys(d).length && Date.now() < end) {
    await Bun.sleep(100);
    d = diff();
  }
  return d;
}

/** Host network interfaces that nsbox made for containers (veth nsb<short id>). */
export function containerVeths(): string[] {
  return ls("/sys/class/net").filter((n) => /^nsb[0-9a-f]{12}$/.test(n));
}

/** Address and port reservations in STATE/net/state.json. */
function netReservations(stateRoot: string): string[] {
  try {
    const st = JSON.parse(readFileSync(join(stateRoot, "net/state.json"), "utf8")) as { addresses?: object; ports?: object };
    return [...Object.keys(st.addresses ?? {}).map((a) => `address ${a}`), ...Object.keys(st.ports ?? {}).map((p) => `port ${p}`)].sort();
  } catch {
    return [];
  }
}

export interface NsboxContext {
  /** the private temporary directory of this test file (mode 0755) */
  readonly tmp: string;
  /** NSBOX_ROOT */
  readonly dataRoot: string;
  /** NSBOX_STATE */
  readonly stateRoot: string;
  /** a busybox rootfs, built in beforeAll (when asked for) */
  readonly rootfs: string;
  /** the environment nsbox gets: the test's plus NSBOX_ROOT/NSBOX_STATE (debug and trace off) */
  env(extra?: Record<string, string | undefined>, clean?: boolean): Record<string, string>;
  /** runs nsbox with args (e.g. ["run", rootfs, "true"]) and waits for it */
  nsbox(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** shorthand for nsbox(["run", ...args]) */
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** starts nsbox with args without waiting */
  start(args: string[], opts?: RunOptions): Running;
  /** a new empty directory inside tmp */
  mkdir(name: string): string;
  /** mountinfo lines mentioning the temporary directory or "nsbox" */
  mounts(): string[];
  /** what nsbox may have left on the host: mounts, containers/, the state root, cache temporaries */
  leftovers(): Leftovers;
  /** runs fn in afterAll, before the temporary directory is removed */
  beforeCleanup(fn: () => void | Promise<void>): void;
}

/** argv of a process ([] when it is gone). */
/** A foreground `nsbox run` once it handed the wait to its shim (csrc/shim_fg.c): the same pid, argv[0] nsbox-fg. */
export function isForegroundShim(pid: number): boolean {
  return cmdlineOf(pid)[0] === "nsbox-fg";
}

export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export function tryKill(pid: number, sig: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Fails early, with the fix, when the binary is missing. */
function checkBinary(): void {
  if (!existsSync(NSBOX)) throw new Error(`${NSBOX} does not exist: run "make build" before the integration tests`);
}

/**
 * Sets up the file's private roots and (unless rootfs: false) a busybox rootfs.
 * Call once, at the top level of a test file.
 */
export function useNsbox(name: string, opts: { rootfs?: boolean } = {}): NsboxContext {
  const tmp = mkdtempSync(join(tmpdir(), `nsbox-test-${name}-`));
  // Readable by everyone: some tests run nsbox as an unprivileged user.
  chmodSync(tmp, 0o755);
  const dataRoot = join(tmp, "data");
  const stateRoot = join(tmp, "state");
  const rootfs = join(tmp, "rootfs");

  const env = (extra: Record<string, string | undefined> = {}, clean = false): Record<string, string> => {
    const base: Record<string, string | undefined> = clean ? {} : { ...process.env };
    delete base.NSBOX_DEBUG;
    delete base.NSBOX_TRACE;
    const merged: Record<string, string | undefined> = { ...base, NSBOX_ROOT: dataRoot, NSBOX_STATE: stateRoot, ...extra };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(merged)) if (v !== undefined) out[k] = v;
    return out;
  };
  const start = (args: string[], o: RunOptions = {}): Running => new Running([...(o.prefix ?? []), o.bin ?? NSBOX, ...args], env(o.env, o.cleanEnv), o);
  const nsbox = (args: string[], o: RunOptions = {}): Promise<RunResult> => {
    // stdin: the input, or an empty pipe (end-of-file at once)
    return start(args, { ...o, input: o.input ?? "" }).result();
  };
  const mounts = () => mountLines([tmp, "nsbox"]);

  let bridgeBefore = false;
  beforeAll(() => {
    checkBinary();
    bridgeBefore = bridgeExists();
    if (opts.rootfs === false) return;
    const r = Bun.spawnSync([NSBOX, "rootfs", "busybox", rootfs], { env: env(), stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0 || !existsSync(join(rootfs, "bin/busybox")))
      throw new Error(`nsbox rootfs busybox ${rootfs} failed (${r.exitCode}): ${r.stderr.toString()}`);
  });

  const cleanups: (() => void | Promise<void>)[] = [];
  afterAll(async () => {
    for (const fn of cleanups) await fn();
    const containers = ls(stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e));
    // Safety net: an nsbox of this file still running (a bug, or a failed test),
    // or a detached container's monitor, gets its container killed, so that it
    // cleans up before tmp goes and before the prune below: a container left
    // running would give its veth and address back later, and leave nsbox0 on
    // the host with nothing on it.
    const ours = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .map(Number)
      .filter(
        (p) =>
          p !== process.pid &&
          cmdlineOf(p).some((a) => a.includes(tmp)) &&
          (cmdlineOf(p).includes("run") || isForegroundShim(p) || cmdlineOf(p)[0] === "nsbox-monitor"),
      );
    const monitors = ours.filter((p) => cmdlineOf(p)[0] === "nsbox-monitor");
    if (monitors.length) console.error(`useNsbox("${name}"): ${monitors.length} detached container(s) still running at the end of the file: killed`);
    for (const p of ours) for (const c of childrenOf(p)) tryKill(c);
    await waitUntil(() => ours.every((p) => !existsSync(`/proc/${p}`)), 5000);
    // What an nsbox killed by a signal left (cgroups, addresses, veths) is
    // repaired by any listing command: give it back before the state goes.
    if (existsSync(stateRoot)) Bun.spawnSync([NSBOX, "ps", "-a"], { env: env(), stdout: "ignore", stderr: "ignore" });
    // A mount left below tmp (a bug) must not let rm reach into the host's files.
    for (const mp of mountsBelow(tmp)) Bun.spawnSync(["umount", "-l", mp]);
    if (mountsBelow(tmp).length === 0) rmSync(tmp, { recursive: true, force: true });
    // Containers run with the default network used the host's bridge: with none of
    // them left, prune removes nsbox0 and the nft table and puts back the sysctls
    // nsbox turned on, so the host is as the file found it (prune keeps anything
    // a container still uses, this file's or not, and says so). Checked: a file
    // that leaves nsbox0 fails (see host-bridge.ts).
    const prune = () => {
      const r = Bun.spawnSync([NSBOX, "network", "prune"], { env: env(), stdout: "pipe", stderr: "pipe" });
      return { code: r.exitCode ?? -1, stderr: r.stderr.toString() };
    };
    const left = bridgeLeftover(`useNsbox("${name}")`, bridgeBefore, containers, prune(), prune);
    if (left) throw new Error(left);
  });

  return {
    tmp,
    dataRoot,
    stateRoot,
    rootfs,
    env,
    nsbox,
    run: (args, o) => nsbox(["run", ...args], o),
    start,
    mkdir(n: string) {
      const d = join(tmp, n);
      mkdirSync(d, { recursive: true });
      return d;
    },
    mounts,
    beforeCleanup: (fn) => cleanups.push(fn),
    leftovers: () => ({
      mounts: mounts(),
      containers: lsRecursive(join(dataRoot, "containers")),
      state: lsRecursive(stateRoot),
      rootfsCache: ls(join(dataRoot, "rootfs")).filter((e) => e !== "by-path"),
      cgroups: containerCgroups(),
      veths: containerVeths(),
      netState: netReservations(stateRoot),
    }),
  };
}

/** stderr must be exactly one line starting with "nsbox: ". */
export function isOneNsboxLine(stderr: string): boolean {
  return /^nsbox: [^\n]*\n?$/.test(stderr);
}
