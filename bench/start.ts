/**
 * Section "start": start-to-exit latency and peak memory of `run ROOTFS
 * /bin/true` — the whole life of a container that does nothing, so what is
 * measured is the runtime's own cost: namespaces, mounts, cgroup, exec, wait,
 * tear-down.
 */
import {
  type Arg,
  type BenchContext,
  bwrapArgv,
  CONTENDERS,
  type Contender,
  hyperfine,
  makeBundle,
  mustRunOnce,
  nsboxArgv,
  peakRssMiB,
  RATIO_NOTE,
  runtimeArgv,
  type SectionResult,
} from "./lib.ts";

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

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const cmds = contenders(ctx);
  // One plain run each first: a contender that cannot start here fails with its own message, not hyperfine's.
  for (const c of CONTENDERS) mustRunOnce(ctx, c, cmds[c]);

  const list = CONTENDERS.map((name) => ({ name, argv: cmds[name] }));
  const lat = hyperfine(ctx, list);
  const mem = peakRssMiB(ctx, list);
  const latency: Partial<Record<Contender, number>> = {};
  const memory: Partial<Record<Contender, number>> = {};
  const spread: string[] = [];
  for (const c of CONTENDERS) {
    const s = lat.get(c);
    if (s) {
      latency[c] = s.median;
      spread.push(`${c} ${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`);
    }
    memory[c] = mem.get(c);
  }

  return {
    title,
    tables: [
      {
        title: `run ROOTFS /bin/true: ${ctx.opts.runs} runs (in rounds, each after ${ctx.opts.warmup} warm-up); memory: median of ${ctx.opts.memRuns}`,
        rows: [
          { metric: "latency, median (ms)", values: latency, digits: 1 },
          { metric: "peak RSS, median (MiB)", values: memory, digits: 1 },
        ],
      },
    ],
    notes: [
      RATIO_NOTE,
      `latency mean ± stddev (ms): ${spread.join(", ")}`,
      "peak RSS: GNU time's %M, the largest single process of the run's process tree (ru_maxrss of waited-for children), not a sum",
      "all four run as `unshare -m sh -c '[umount /sys/fs/cgroup/unified &&] exec …'` (crun needs it on hybrid cgroup hosts); nsbox runs its rootfs through an overlay (writable), crun/runc bind it writable, bwrap read-only",
      "nsbox runs with --net none (a new network namespace with lo: what crun's and runc's default config.json gives); the bridge's cost is in the net section",
    ],
  };
}
