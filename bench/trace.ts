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
  what: string;
}

interface TracedRun {
  wallMs: number;
  marks: Mark[];
}

/** "[trace] 12.34 ms  what" lines (src/trace.ts); other stderr lines are not marks. */
export function parseMarks(stderr: string): Mark[] {
  const out: Mark[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^\[trace\]\s+([\d.]+) ms\s+(.*)$/.exec(line);
    if (m) out.push({ ms: Number(m[1]), what: (m[2] ?? "").trim() });
  }
  return out;
}

/** Wall time of one wrapped run (ms) and its stderr; a non-zero exit is a BenchError. */
function timed(ctx: BenchContext, name: string, argv: Arg[], env: Record<string, string | undefined>): { wallMs: number; stderr: string } {
  const full = wrapArgv(ctx.wrapper, argv);
  const t0 = performance.now();
  const r = Bun.spawnSync(full, { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const wallMs = performance.now() - t0;
  if (r.exitCode !== 0) throw new BenchError(`${name} failed (exit ${r.exitCode}) in the traced runs: ${r.stderr.toString().trim()}`);
  return { wallMs, stderr: r.stderr.toString() };
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
export function medianTrace(ctx: BenchContext, label: string, traced: Arg[], floors: { name: string; argv: Arg[] }[], runs: number): TraceResult {
  const n = runs % 2 ? runs : runs + 1;
  const env = { ...ctx.env, NSBOX_TRACE: "1" };
  const all: TracedRun[] = [];
  const floorWalls = new Map<string, number[]>(floors.map((f) => [f.name, []]));
  for (let i = 0; i < n; i++) {
    const r = timed(ctx, label, traced, env);
    all.push({ wallMs: r.wallMs, marks: parseMarks(r.stderr) });
    for (const f of floors) floorWalls.get(f.name)?.push(timed(ctx, f.name, f.argv, ctx.env).wallMs);
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
    lines.push(`${m.ms.toFixed(2).padStart(9)}  ${`+${s.step.toFixed(2)}`.padStart(8)}  ${med.padStart(18)}  ${m.what}`);
  }
  const last = mid.marks[mid.marks.length - 1]?.ms ?? 0;
  const outside = all.map((r) => r.wallMs - (r.marks[r.marks.length - 1]?.ms ?? 0));
  lines.push(
    `wall ${mid.wallMs.toFixed(1)} ms (spawn to exit, measured by the bench, wrapper included); last mark ${last.toFixed(2)} ms; outside the trace's clock ${(mid.wallMs - last).toFixed(1)} ms (median of ${n}: ${median(outside).toFixed(1)})`,
  );
  const floorText = floors.map((f) => `${f.name} ${median(floorWalls.get(f.name) ?? []).toFixed(1)} ms`).join(", ");
  return {
    block: { title: `NSBOX_TRACE=1 ${label}: the median of ${n} runs by wall time (it was run ${rank} of the ${n})`, text: lines.join("\n") },
    notes: [
      `traced runs (${n}, interleaved, measured by the bench as spawn to exit, so about 1 ms above hyperfine's): ${label} median ${median(all.map((r) => r.wallMs)).toFixed(1)} ms; untraced in the same loop: ${floorText}`,
    ],
  };
}
