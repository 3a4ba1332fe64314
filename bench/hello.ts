/**
 * The floor that issue 14 subtracts: a compiled Bun "hello world" (one
 * console.log), built by the bench itself with the bun that runs the bench
 * (`make bench` runs `$(BUN) bench/run.ts`, the same $(BUN) that builds
 * dist/nsbox) and with the same `bun build --compile` flags as the Makefile's
 * dist/nsbox rule, read from the Makefile so that a change there reaches the
 * floor too. It is measured as a contender: same hyperfine call, same wrapper.
 *
 * The targets are then "(nsbox − hello) / crun": what nsbox adds on top of
 * Bun's own start, against everything crun spends.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asInstalled, type BenchContext, BenchError, exec, median, mustExec, REPO, random, type Stats, type Target } from "./lib.ts";

/** The flags of the Makefile's dist/nsbox rule: `BUNFLAGS := --compile ...` (or written out in the rule itself). */
function makefileBuildFlags(): string[] {
  const makefile = readFileSync(join(REPO, "Makefile"), "utf8");
  const vars = /^BUNFLAGS\s*:?=\s*(--compile.*)$/m.exec(makefile);
  const rule = /^dist\/nsbox:.*\n(?:\t.*\n)*?\t\$\(BUN\) build (--compile.*?) src\/main\.ts --outfile \$@$/m.exec(makefile);
  const flags = vars?.[1] ?? rule?.[1];
  if (!flags)
    throw new BenchError(
      "cannot find the build flags of the Makefile's dist/nsbox rule (`BUNFLAGS := --compile ...`, or `$(BUN) build --compile ... src/main.ts --outfile $@`): bench/hello.ts reads them",
    );
  return flags.split(/\s+/).filter(Boolean);
}

export interface Hello {
  /** the compiled hello world, in the bench's temp dir */
  bin: string;
  /**
   * The same, built with the same flags, whose one line also gives Bun's clock
   * origin and the time of that line (epoch ms): where a Bun program's own start
   * ends, for the traced runs (bench/trace.ts). Only the traces use it: the
   * measured floor stays the plain one.
   */
  markedBin: string;
  flags: string[];
  /** the Bun inside the hello world and inside nsbox (BUN_BE_BUN=1 BIN --version) */
  bunVersion: string;
  nsboxBunVersion: string;
}

let built: Hello | undefined;

/** Builds the hello world once per bench run (into ctx.tmp, removed with it). */
export function hello(ctx: BenchContext): Hello {
  if (built && existsSync(built.bin)) return built;
  const dir = join(ctx.tmp, "hello");
  const src = join(ctx.tmp, "hello.ts");
  writeFileSync(src, 'console.log("hello world");\n');
  const bin = join(dir, "hello");
  const flags = makefileBuildFlags();
  mustExec([process.execPath, "build", ...flags, src, "--outfile", bin], { cwd: ctx.tmp });
  const markedSrc = join(ctx.tmp, "hello-marked.ts");
  writeFileSync(
    markedSrc,
    ["const t = performance.now();", 'console.log("hello world " + performance.timeOrigin + " " + (performance.timeOrigin + t));', ""].join("\n"),
  );
  const markedBin = join(dir, "hello-marked");
  mustExec([process.execPath, "build", ...flags, markedSrc, "--outfile", markedBin], { cwd: ctx.tmp });
  // measured as installed, as nsbox is (see asInstalled)
  asInstalled(bin);
  asInstalled(markedBin);
  const version = (b: string) => exec([b, "--version"], { env: { ...process.env, BUN_BE_BUN: "1" } }).stdout.trim() || "?";
  built = { bin, markedBin, flags, bunVersion: version(bin), nsboxBunVersion: version(ctx.opts.nsbox) };
  return built;
}

/** A note for every section that uses the floor: how it was built, and whether nsbox carries the same Bun. */
export function helloNote(h: Hello): string {
  const same = h.bunVersion === h.nsboxBunVersion ? "the same Bun as in nsbox" : `WARNING: nsbox carries Bun ${h.nsboxBunVersion}`;
  return `hello = \`bun build ${h.flags.join(" ")}\` of one console.log (the Makefile's flags for dist/nsbox), Bun ${h.bunVersion} (${same}), run through the same wrapper in the same hyperfine call`;
}

const BOOTSTRAP = 2000;

/**
 * A 95% bootstrap interval of (median(a) − median(b)) / median(c): each
 * contender's runs resampled with replacement. Wide when the host was noisy;
 * "met" is only sure when the whole interval is below the target.
 */
export function ratioInterval(a: number[], b: number[], c: number[]): [number, number] | undefined {
  if (!a.length || !b.length || !c.length) return undefined;
  const rnd = random(14);
  const resampledMedian = (xs: number[]) => median(Array.from(xs, () => xs[Math.floor(rnd() * xs.length)] as number));
  const out: number[] = [];
  for (let i = 0; i < BOOTSTRAP; i++) out.push((resampledMedian(a) - resampledMedian(b)) / resampledMedian(c));
  out.sort((x, y) => x - y);
  return [out[Math.floor(BOOTSTRAP * 0.025)] as number, out[Math.floor(BOOTSTRAP * 0.975)] as number];
}

/**
 * Issue 14's start-up target: (nsbox − hello) / rival on the medians, at most
 * 1.0. The CPU-time form (user+system per run, which load from elsewhere on
 * the host stretches far less than wall time) is given beside it in `how`.
 */
export function aboveBunTarget(what: string, nsbox: Stats, hello: Stats, rival: Stats, rivalName: string): Target {
  const cpu = nsbox.cpu !== undefined && hello.cpu !== undefined && rival.cpu ? ((nsbox.cpu - hello.cpu) / rival.cpu).toFixed(2) : "n/a";
  const ci = ratioInterval(nsbox.times ?? [], hello.times ?? [], rival.times ?? []);
  return {
    what,
    value: (nsbox.median - hello.median) / rival.median,
    limit: 1.0,
    how: `medians: (${nsbox.median.toFixed(1)} − ${hello.median.toFixed(1)}) / ${rival.median.toFixed(1)} ms (${rivalName})${ci ? `, 95% interval ${ci[0].toFixed(2)}–${ci[1].toFixed(2)}` : ""}; on CPU time: ${cpu}`,
  };
}
