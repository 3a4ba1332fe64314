/**
 * Section "foreground": what a runtime holds on the host while a foreground
 * container runs (issue 14.5: a server running twenty `ExecStart=nsbox run
 * ...` services pays this twenty times). Each contender runs `run ROOTFS
 * sleep 3600` in the foreground, through the usual wrapper, below
 * bench/subreaper.c; once the container's `sleep` runs and start-up has
 * settled, the PSS of the runtime's own processes is summed
 * (bench/procs.ts runtimeProcesses: every descendant of the subreaper in the
 * host's PID namespace, or running from a memfd or the nsbox binary inside
 * the container's; the container's own processes are left out, and whatever
 * nsbox execs into or forks is counted). Then the container's PID 1
 * is killed from the host and the runtime must see it, clean up and exit
 * (128+9), leaving no process behind.
 *
 * nsbox --net none against `crun run` and `runc run` (the process that waits;
 * no conmon). Target: at most 4 MiB PSS for nsbox.
 */
import { realpathSync } from "node:fs";
import { join } from "node:path";
import {
  type Arg,
  type BenchContext,
  BenchError,
  type Column,
  exec,
  makeBundle,
  median,
  met,
  nsboxArgv,
  RATIO_NOTE,
  REPO,
  type Runtime,
  runtimeArgv,
  type SectionResult,
  type Target,
  wrapArgv,
} from "./lib.ts";
import { commOf, type Mem, memOf, processesRunning, runtimeProcesses, sumMem } from "./procs.ts";

export const title = "host memory of a runtime while a foreground container runs (`run ROOTFS sleep 3600`)";

const ARGS = ["sleep", "3600"];
const CONTENDERS = ["nsbox", "crun", "runc"] as const;
type Who = (typeof CONTENDERS)[number];
/** foreground runs per contender, one at a time (interleaved); the median is reported */
const REPEATS = 3;
/** then this many at once, per contender: the per-container cost on a server running many */
const TOGETHER = 5;
const TARGET_KIB = 4 * 1024;
/** after the container's sleep is seen: let start-up's leftovers go (freed memory, exiting helpers) */
const SETTLE_MS = 2000;
const SAMPLES = 3;
const SAMPLE_GAP_MS = 500;
const START_TIMEOUT_MS = 30000;
const EXIT_TIMEOUT_MS = 30000;

function argvFor(ctx: BenchContext, who: Who): Arg[] {
  if (who === "nsbox") return nsboxArgv(ctx, ["--net", "none"], ARGS);
  return runtimeArgv(ctx, who as Runtime, makeBundle(ctx, who as Runtime, { args: ARGS, cgroupsPath: ctx.cgroups.next() }));
}

/** Builds bench/subreaper.c into the temp dir; undefined when gcc cannot. */
function buildSubreaper(ctx: BenchContext): string | undefined {
  const bin = join(ctx.tmp, "subreaper");
  const r = exec(["gcc", "-O2", "-o", bin, join(REPO, "bench/subreaper.c")]);
  return r.code === 0 ? bin : undefined;
}

interface Sample {
  /** per container */
  mem: Mem;
  /** "comm PSS" of each runtime process of the first run, for the notes */
  shape: string;
  /** runtime processes per container */
  processes: number;
  exitCodes: number[];
}

function waitUntil(what: string, timeoutMs: number, ready: () => boolean): void {
  const until = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() > until) throw new BenchError(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    Bun.sleepSync(20);
  }
}

/** A timer that resolves to undefined and can be cancelled (a pending timer would keep the bench alive). */
function timeout(ms: number): { expired: Promise<undefined>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return { expired, cancel: () => clearTimeout(timer) };
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

interface Run {
  proc: Bun.Subprocess<"ignore", "ignore", "pipe">;
  stderr: Promise<string>;
  exited: boolean;
}

/**
 * `count` foreground runs of one contender at once (their shared pages split
 * among them, as on a server running many): start them, wait for every
 * container's sleep, settle, sample the runtime's processes of all of them,
 * kill the containers, wait for each runtime to exit. Returns the memory per
 * container.
 */
async function measureGroup(ctx: BenchContext, subreaper: string, who: Who, count: number): Promise<Sample> {
  const exes = [realpathSync(ctx.opts.nsbox)];
  const split = (r: Run) => runtimeProcesses(r.proc.pid, exes);
  const runs: Run[] = [];
  for (let i = 0; i < count; i++) {
    const proc = Bun.spawn([subreaper, ...wrapArgv(ctx.wrapper, argvFor(ctx, who))], { env: ctx.env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const r: Run = { proc, stderr: new Response(proc.stderr).text(), exited: false };
    void proc.exited.then(() => {
      r.exited = true;
    });
    runs.push(r);
  }
  try {
    waitUntil(`${who}'s container${count > 1 ? "s" : ""} to run sleep`, START_TIMEOUT_MS, () =>
      runs.every((r) => {
        if (r.exited) throw new BenchError(`${who} exited (${r.proc.exitCode}) before its container ran sleep`);
        return split(r).container.some((p) => commOf(p) === "sleep");
      }),
    );
    Bun.sleepSync(SETTLE_MS);
    const samples: { mem: Mem; pids: number[] }[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (i) Bun.sleepSync(SAMPLE_GAP_MS);
      const pids = runs.flatMap((r) => split(r).runtime);
      if (runs.some((r) => split(r).runtime.length === 0)) throw new BenchError(`${who}: no runtime process found while its container runs`);
      samples.push({ mem: sumMem(pids.map(memOf), count), pids });
    }
    const mid = [...samples].sort((a, b) => a.mem.pssKib - b.mem.pssKib)[Math.floor(SAMPLES / 2)] as { mem: Mem; pids: number[] };
    const first = split(runs[0] as Run).runtime;
    const shape = first.map((p) => `${commOf(p)} ${(memOf(p).pssKib / 1024).toFixed(1)}`).join(" + ");

    // the containers end from outside, as an OOM kill would end them: each runtime must notice, clean up and exit
    for (const r of runs) killAll(split(r).container);
    const exitCodes: number[] = [];
    for (const r of runs) {
      const t = timeout(EXIT_TIMEOUT_MS);
      const code = await Promise.race([r.proc.exited, t.expired]);
      t.cancel();
      if (code === undefined) {
        const left = split(r).runtime.map((p) => `${p} ${commOf(p)}`);
        throw new BenchError(`${who} did not exit within ${EXIT_TIMEOUT_MS / 1000} s of its container's end (still running: ${left.join(", ") || "none"})`);
      }
      exitCodes.push(code);
    }
    return { mem: mid.mem, shape, processes: mid.pids.length / count, exitCodes };
  } catch (e) {
    if (!(e instanceof BenchError)) throw e;
    // nothing of a failed run may stay (the runtime's processes included); then its stderr is complete
    for (const r of runs) {
      const { runtime, container } = split(r);
      killAll([...container, ...runtime.reverse()]);
    }
    const errs: string[] = [];
    for (const r of runs) {
      await r.proc.exited;
      const err = (await r.stderr).trim();
      if (err && !errs.includes(err)) errs.push(err);
    }
    throw new BenchError(`${e.message}${errs.length ? `\n  ${who}'s stderr: ${errs.join("\n  ")}` : ""}`);
  }
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const subreaper = buildSubreaper(ctx);
  if (!subreaper) return { title, tables: [], notes: [], skipped: "skipped: gcc cannot build bench/subreaper.c (apt-get install -y gcc libc6-dev)" };
  const alone = new Map<Who, Sample[]>(CONTENDERS.map((c) => [c, []]));
  for (let i = 0; i < REPEATS; i++) for (const who of CONTENDERS) alone.get(who)?.push(await measureGroup(ctx, subreaper, who, 1));
  const together = new Map<Who, Sample>();
  for (const who of CONTENDERS) together.set(who, await measureGroup(ctx, subreaper, who, TOGETHER));

  const med = (who: Who, f: (m: Mem) => number) => median((alone.get(who) ?? []).map((s) => f(s.mem))) / 1024;
  const row = (metric: string, f: (m: Mem) => number) => {
    const values: Partial<Record<Column, number>> = {};
    for (const who of CONTENDERS) values[who] = med(who, f);
    return { metric, values, digits: 2 };
  };
  const per = (metric: string, f: (m: Mem) => number) => {
    const values: Partial<Record<Column, number>> = {};
    for (const who of CONTENDERS) values[who] = f((together.get(who) as Sample).mem) / 1024;
    return { metric, values, digits: 2 };
  };
  const processes: Partial<Record<Column, number>> = {};
  for (const who of CONTENDERS) processes[who] = median((alone.get(who) ?? []).map((s) => s.processes));
  const nsboxPss = med("nsbox", (m) => m.pssKib);
  const target: Target = {
    what: "foreground: nsbox's PSS while its container runs (MiB)",
    value: nsboxPss,
    limit: TARGET_KIB / 1024,
    how: `alone, median of ${REPEATS} runs; crun ${med("crun", (m) => m.pssKib).toFixed(2)} MiB, runc ${med("runc", (m) => m.pssKib).toFixed(2)} MiB; with ${TOGETHER} at once: nsbox ${((together.get("nsbox") as Sample).mem.pssKib / 1024).toFixed(2)} MiB per container`,
  };
  const shapes = CONTENDERS.map((who) => `${who}: ${(alone.get(who) ?? []).map((s) => `[${s.shape}]`).join(" ")}`);
  const codes = CONTENDERS.map(
    (who) => `${who} ${[...new Set([...(alone.get(who) ?? []).flatMap((s) => s.exitCodes), ...(together.get(who)?.exitCodes ?? [])])].join("/")}`,
  );
  const sharing = processesRunning(ctx.opts.nsbox).length;
  // a foreground run's exit code is its container's (here 128+SIGKILL), whoever does the waiting
  const wrongCodes = CONTENDERS.filter((who) => [...(alone.get(who) ?? []), together.get(who)].some((s) => s?.exitCodes.some((c) => c !== 137)));
  return {
    title,
    tables: [
      {
        title: `foreground \`run ROOTFS sleep 3600\`: the runtime's own processes on the host per container; alone: median of ${REPEATS} runs; ${TOGETHER} at once: one run (each: ${SAMPLES} samples ${SAMPLE_GAP_MS} ms apart, ${SETTLE_MS / 1000} s after the containers' sleep started)`,
        rows: [
          row("alone: PSS (MiB)", (m) => m.pssKib),
          row("alone: PSS of anonymous memory (MiB)", (m) => m.pssAnonKib),
          row("alone: PSS of file pages (MiB)", (m) => m.pssFileKib),
          row("alone: private, USS (MiB)", (m) => m.privateKib),
          row("alone: RSS (MiB)", (m) => m.rssKib),
          { metric: "alone: processes", values: processes, digits: 0 },
          per(`${TOGETHER} at once: PSS per container (MiB)`, (m) => m.pssKib),
          per(`${TOGETHER} at once: PSS of anonymous memory per container (MiB)`, (m) => m.pssAnonKib),
        ],
      },
    ],
    targets: [target],
    notes: [
      RATIO_NOTE,
      `issue 14.5: ${target.what} = ${nsboxPss.toFixed(2)}, target ≤ ${target.limit}: ${met(target) ? "met" : "NOT met"} (the target is judged alone: a single foreground container pays for the whole executable's pages)`,
      `with ${TOGETHER} at once, the file pages (the executable) are shared among them and PSS splits them: what each further container costs is about its anonymous memory`,
      "counted (bench/procs.ts runtimeProcesses): every descendant of the process the bench started (bench/subreaper.c, a child subreaper, so forked or re-parented helpers stay below it) in the host's PID namespace, and any in the container's PID namespace that runs from a memfd or the nsbox binary (a shim as PID 1); the container's own processes are not counted; RSS sums shared pages in full, PSS splits them among the processes that map them",
      `the processes counted alone (comm and PSS in MiB, per run): ${shapes.join("; ")}`,
      `after the containers' PID 1 was killed from the host (SIGKILL), each runtime exited, leaving no process; exit codes: ${codes.join(", ")}`,
      ...wrongCodes.map((who) => `WARNING ${who}: a foreground run did not exit with its container's status (137 = 128+SIGKILL)`),
      `nsbox's file pages are shared with any other process running ${ctx.opts.nsbox} (${sharing} such processes at the end of the section), which lowers its PSS but not its USS`,
      "nsbox runs with --net none; crun and runc from `<rt> spec`'s config.json plus a cgroup namespace (lib.ts makeBundle); all through the usual `unshare -m` wrapper; bwrap: n/a",
    ],
  };
}
