/**
 * Section "start": start-to-exit latency and peak memory of `run ROOTFS
 * /bin/true` — the whole life of a container that does nothing, so what is
 * measured is the runtime's own cost: namespaces, mounts, cgroup, exec, wait,
 * tear-down. Beside them, issue 14's floor: a compiled Bun hello world
 * (bench/hello.ts) in the same hyperfine call, and the targets computed from
 * it; then NSBOX_TRACE=1 of a median run (bench/trace.ts).
 */

import { aboveBunTarget, hello, helloNote } from "./hello.ts";
import {
  type Arg,
  type BenchContext,
  bwrapArgv,
  CONTENDERS,
  type Column,
  type Contender,
  hyperfine,
  makeBundle,
  met,
  mustRunOnce,
  nsboxArgv,
  peakRssMiB,
  RATIO_NOTE,
  roundsNote,
  runtimeArgv,
  type SectionResult,
  type Stats,
  type Target,
} from "./lib.ts";
import { medianTrace, TRACE_RUNS } from "./trace.ts";

export const title = "start-to-exit latency and peak memory of `run ROOTFS /bin/true`";

const ARGS = ["/bin/true"];

/** The four contenders doing the same thing over the same rootfs, each with its own fresh cgroup path. */
export function contenders(ctx: BenchContext): Record<Contender, Arg[]> {
  return {
    // --net none: the network crun's and runc's default config.json gives (a new netns with lo)
    nsbox: nsboxArgv(ctx, ["--net", "none"], ARGS),
    crun: runtimeArgv(ctx, "crun", makeBundle(ctx, "crun", { args: ARGS, cgroupsPath: ctx.cgroups.next() })),
    runc: runtimeArgv(ctx, "runc", makeBundle(ctx, "runc", { args: ARGS, cgroupsPath: ctx.cgroups.next() })),
    bwrap: bwrapArgv(ctx, ARGS),
  };
}

const RSS_TARGET = 1.5;

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const cmds = contenders(ctx);
  const h = hello(ctx);
  const all: { name: Column; argv: Arg[] }[] = [...CONTENDERS.map((name) => ({ name, argv: cmds[name] })), { name: "hello", argv: [h.bin] }];
  // One plain run each first: a contender that cannot start here fails with its own message, not hyperfine's.
  for (const c of all) mustRunOnce(ctx, c.name, c.argv);

  const lat = hyperfine(ctx, all);
  const mem = peakRssMiB(ctx, all);
  const latency: Partial<Record<Column, number>> = {};
  const memory: Partial<Record<Column, number>> = {};
  const spread: string[] = [];
  for (const { name: c } of all) {
    const s = lat.get(c);
    if (s) {
      latency[c] = s.median;
      spread.push(`${c} ${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`);
    }
    memory[c] = mem.get(c);
  }
  const s = (c: Column) => lat.get(c) as Stats;
  const targets: Target[] = [
    aboveBunTarget("start: (nsbox − hello) / crun", s("nsbox"), s("hello"), s("crun"), "crun"),
    {
      what: "start: peak RSS nsbox / hello",
      value: (memory.nsbox ?? Number.NaN) / (memory.hello ?? Number.NaN),
      limit: RSS_TARGET,
      how: `medians: ${memory.nsbox?.toFixed(1)} / ${memory.hello?.toFixed(1)} MiB`,
    },
  ];
  const above = (c: Contender) => `${((s("nsbox").median - s("hello").median) / s(c).median).toFixed(2)} (${c})`;
  const trace = medianTrace(
    ctx,
    "nsbox run --net none ROOTFS /bin/true",
    cmds.nsbox,
    [
      { name: "hello", argv: [h.bin] },
      { name: "nsbox --version", argv: [ctx.opts.nsbox, "--version"] },
    ],
    Math.min(TRACE_RUNS, ctx.opts.runs),
    h.markedBin,
  );

  return {
    title,
    tables: [
      {
        title: `run ROOTFS /bin/true: ${roundsNote(ctx)}; memory: median of ${ctx.opts.memRuns}`,
        rows: [
          { metric: "latency, median (ms)", values: latency, digits: 1 },
          { metric: "peak RSS, median (MiB)", values: memory, digits: 1 },
        ],
      },
    ],
    targets,
    blocks: [trace.block],
    notes: [
      RATIO_NOTE,
      `issue 14: ${targets.map((t) => `${t.what} = ${t.value.toFixed(2)}, target ≤ ${t.limit}: ${met(t) ? "met" : "NOT met"}`).join("; ")}`,
      `(nsbox − hello) against the others: ${(["crun", "runc", "bwrap"] as const).map(above).join(", ")}`,
      helloNote(h),
      `latency mean ± stddev (ms): ${spread.join(", ")}`,
      "peak RSS: GNU time's %M, the largest single process of the run's process tree (ru_maxrss of waited-for children), not a sum; nsbox and the hello world are synced and dropped from the page cache before they are measured, as installed binaries (a binary just written maps ~5 MiB more and starts faster: see asInstalled in bench/lib.ts)",
      "all four run as `unshare -m sh -c '[umount /sys/fs/cgroup/unified &&] exec …'` (crun needs it on hybrid cgroup hosts); nsbox runs its rootfs through an overlay (writable), crun/runc bind it writable, bwrap read-only",
      "nsbox runs with --net none (a new network namespace with lo: what crun's and runc's default config.json gives); the bridge's cost is in the net section",
      ...trace.notes,
    ],
  };
}
