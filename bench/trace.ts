/**
 * NSBOX_TRACE=1 of a median run, for bench/results.md: where nsbox's time
 * goes, so that traces from before and after a change can be compared.
 *
 * The traced command runs N times (N odd), interleaved with the hello world
 * and `nsbox --version`, all through the same wrapper; each run's wall time
 * (spawn to exit, measured here) is its total, and the run whose total is the
 * median is the one printed. nsbox's marks count from Bun's performance.now()
 * origin, which starts after part of Bun's own set-up: wall − last mark shows
 * what lies outside the trace's clock (Bun's start before it, exit after it).
 */
import { type Arg, type BenchContext, BenchError, type Block, median, wrapArgv } from "./lib.ts";

/** Traced runs per trace: enough for a stable median, few enough to keep a section short. */
export const TRACE_RUNS = 15;

export interface Mark {
  ms: number;
  /** the phase's name: marks of different runs are matched by it */
  what: string;
  /** nsbox's resident memory then ("N MiB" before the name), when printed */
  rssMiB?: number;
}

interface TracedRun {
  wallMs: number;
  marks: Mark[];
  /** spawn → the clock's origin (ms), when nsbox printed it */
  originMs?: number;
}

/** "[trace] 12.34 ms  33.6 MiB  what" lines (src/trace.ts); other stderr lines are not marks. */
export function parseMarks(stderr: string): Mark[] {
  const out: Mark[] = [];
  for (const line of stderr.split("\n")) {
    // the memory is not part of the name: with it, marks of runs that differed by 0.1 MiB were not matched
    const m = /^\[trace\]\s+([\d.]+) ms\s+(?:([\d.]+) MiB\s+)?(.*)$/.exec(line);
    if (m) out.push({ ms: Number(m[1]), what: (m[3] ?? "").trim(), rssMiB: m[2] === undefined ? undefined : Number(m[2]) });
  }
  return out;
}

/** Wall time of one wrapped run (ms), when it was spawned (epoch ms), its stdout and stderr; a non-zero exit is a BenchError. */
function timed(
  ctx: BenchContext,
  name: string,
  argv: Arg[],
  env: Record<string, string | undefined>,
): { wallMs: number; spawnedAt: number; stdout: string; stderr: string } {
  const full = wrapArgv(ctx.wrapper, argv);
  const t0 = performance.now();
  const r = Bun.spawnSync(full, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const wallMs = performance.now() - t0;
  if (r.exitCode !== 0) throw new BenchError(`${name} failed (exit ${r.exitCode}) in the traced runs: ${r.stderr.toString().trim()}`);
  return { wallMs, spawnedAt: performance.timeOrigin + t0, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/**
 * Where a run's JavaScript clock starts, measured from its spawn (ms): nsbox's
 * "[trace-origin] EPOCH" line (src/trace.ts), or the marked hello world's
 * "hello world ORIGIN LINE" (bench/hello.ts), whose line time is also returned.
 */
export function clockOf(output: string, spawnedAt: number): { origin: number; line?: number } | undefined {
  const nsbox = /^\[trace-origin\] ([\d.]+)$/m.exec(output);
  if (nsbox) return { origin: Number(nsbox[1]) - spawnedAt };
  const hello = /^hello world ([\d.]+) ([\d.]+)$/m.exec(output);
  if (hello) return { origin: Number(hello[1]) - spawnedAt, line: Number(hello[2]) - spawnedAt };
  return undefined;
}

export interface TraceResult {
  block: Block;
  notes: string[];
}

/**
 * Runs `traced` with NSBOX_TRACE=1 `runs` times (made odd), interleaved with
 * `floors` (e.g. the hello world and `nsbox --version`, untraced); returns the
 * median run's trace as a block, with each mark's step from the previous one
 * and that step's median over all runs.
 */
export function medianTrace(
  ctx: BenchContext,
  label: string,
  traced: Arg[],
  floors: { name: string; argv: Arg[] }[],
  runs: number,
  markedHello?: string,
): TraceResult {
  const n = runs % 2 ? runs : runs + 1;
  const env = { ...ctx.env, NSBOX_TRACE: "1" };
  const all: TracedRun[] = [];
  const floorWalls = new Map<string, number[]>(floors.map((f) => [f.name, []]));
  const hello: { origin: number; line: number; tail: number }[] = [];
  for (let i = 0; i < n; i++) {
    const r = timed(ctx, label, traced, env);
    all.push({ wallMs: r.wallMs, marks: parseMarks(r.stderr), originMs: clockOf(r.stderr, r.spawnedAt)?.origin });
    for (const f of floors) floorWalls.get(f.name)?.push(timed(ctx, f.name, f.argv, ctx.env).wallMs);
    if (markedHello) {
      const h = timed(ctx, "the marked hello world", [markedHello], ctx.env);
      const c = clockOf(h.stdout, h.spawnedAt);
      if (c?.line !== undefined) hello.push({ origin: c.origin, line: c.line - c.origin, tail: h.wallMs - c.line });
    }
  }
  if (all.some((r) => r.marks.length === 0)) throw new BenchError(`${label} printed no [trace] lines with NSBOX_TRACE=1`);
  const sorted = [...all].sort((a, b) => a.wallMs - b.wallMs);
  const mid = sorted[(n - 1) / 2] as TracedRun;
  const rank = all.indexOf(mid) + 1;

  // the median step of each mark over all runs, matched by name and order of appearance
  const stepsOf = (r: TracedRun) => {
    const seen = new Map<string, number>();
    return r.marks.map((m, i) => {
      const k = `${m.what}#${seen.get(m.what) ?? 0}`;
      seen.set(m.what, (seen.get(m.what) ?? 0) + 1);
      return { k, step: m.ms - (r.marks[i - 1]?.ms ?? 0) };
    });
  };
  const byKey = new Map<string, number[]>();
  for (const r of all) for (const s of stepsOf(r)) byKey.set(s.k, [...(byKey.get(s.k) ?? []), s.step]);

  const lines = [`${"at (ms)".padStart(9)}  ${"step".padStart(8)}  ${`median step of ${n}`.padStart(18)}  mark`];
  for (const [i, s] of stepsOf(mid).entries()) {
    const m = mid.marks[i] as Mark;
    const xs = byKey.get(s.k) ?? [];
    const med = xs.length === n ? median(xs).toFixed(2) : `${median(xs).toFixed(2)} (${xs.length} runs)`;
    const rss = m.rssMiB === undefined ? "" : `${m.rssMiB.toFixed(1)} MiB  `;
    lines.push(`${m.ms.toFixed(2).padStart(9)}  ${`+${s.step.toFixed(2)}`.padStart(8)}  ${med.padStart(18)}  ${rss}${m.what}`);
  }
  const last = mid.marks[mid.marks.length - 1]?.ms ?? 0;
  const outside = all.map((r) => r.wallMs - (r.marks[r.marks.length - 1]?.ms ?? 0));
  lines.push(
    `wall ${mid.wallMs.toFixed(1)} ms (spawn to exit, measured by the bench, wrapper included); last mark ${last.toFixed(2)} ms; outside the trace's clock ${(mid.wallMs - last).toFixed(1)} ms (median of ${n}: ${median(outside).toFixed(1)})`,
  );
  // Outside the clock, split: before its origin (the wrapper, exec, Bun's runtime
  // start) and after the last mark (exit), beside the same for a hello world.
  const origins = all.flatMap((r) => (r.originMs === undefined ? [] : [r.originMs]));
  if (origins.length === n) {
    const first = median(all.map((r) => r.marks[0]?.ms ?? 0));
    const after = median(all.map((r) => r.wallMs - (r.originMs as number) - (r.marks[r.marks.length - 1]?.ms ?? 0)));
    lines.push(
      `medians of ${n}: spawn → clock origin ${median(origins).toFixed(2)} ms (wrapper, exec, Bun's runtime start); origin → first mark ${first.toFixed(2)} ms; last mark → exit ${after.toFixed(2)} ms`,
    );
    if (hello.length)
      lines.push(
        `the same for a hello world (its one line as the mark, ${hello.length} runs): spawn → origin ${median(hello.map((h) => h.origin)).toFixed(2)} ms; origin → its line ${median(hello.map((h) => h.line)).toFixed(2)} ms; line → exit ${median(hello.map((h) => h.tail)).toFixed(2)} ms`,
      );
  }
  const floorText = floors.map((f) => `${f.name} ${median(floorWalls.get(f.name) ?? []).toFixed(1)} ms`).join(", ");
  return {
    block: { title: `NSBOX_TRACE=1 ${label}: the median of ${n} runs by wall time (it was run ${rank} of the ${n})`, text: lines.join("\n") },
    notes: [
      `traced runs (${n}, interleaved, measured by the bench as spawn to exit, so about 1 ms above hyperfine's): ${label} median ${median(all.map((r) => r.wallMs)).toFixed(1)} ms; untraced in the same loop: ${floorText}`,
    ],
  };
}
