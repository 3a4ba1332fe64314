/**
 * Section "limits": start-to-exit latency of `run ROOTFS /bin/true` with a
 * 64 MiB memory limit and a 64-process pids limit: nsbox (--memory 64m
 * --pids-limit 64) against crun and runc with the same linux.resources and the
 * same kind of nested cgroup path. bwrap has no cgroup limits: n/a.
 *
 * Issue 14's target here: (nsbox − hello) / crun at most 1.0, the hello world
 * (bench/hello.ts) measured in the same hyperfine call.
 *
 * nsbox's --memory/--pids-limit are new: when this nsbox does not know them
 * (exit 125, "unknown flag") the section is skipped, not failed.
 */

import { aboveBunTarget, hello, helloNote } from "./hello.ts";
import {
  type Arg,
  type BenchContext,
  type Column,
  hyperfine,
  makeBundle,
  met,
  mounts,
  mustRunOnce,
  nsboxArgv,
  RATIO_NOTE,
  type Resources,
  roundsNote,
  runOnce,
  runtimeArgv,
  type SectionResult,
  type Stats,
} from "./lib.ts";

export const title = "start latency with limits (--memory 64m --pids-limit 64)";

const MEMORY = 64 * 1024 * 1024;
const PIDS = 64;
// --net none: the network crun's default config.json gives (a new netns with only lo)
const NSBOX_FLAGS = ["--net", "none", "--memory", "64m", "--pids-limit", String(PIDS)];
const LIMITED = ["nsbox", "crun", "runc"] as const;

type Limited = (typeof LIMITED)[number];

function argvFor(ctx: BenchContext, who: Limited, args: string[]): Arg[] {
  if (who === "nsbox") return nsboxArgv(ctx, NSBOX_FLAGS, args);
  const res: Resources = { memoryBytes: MEMORY, pids: PIDS };
  return runtimeArgv(ctx, who, makeBundle(ctx, who, { args, resources: res, cgroupsPath: ctx.cgroups.next() }));
}

/** Why nsbox cannot run this section, or undefined when it can. Other failures are real failures. */
function nsboxMissingFlags(ctx: BenchContext): string | undefined {
  const r = runOnce(ctx, nsboxArgv(ctx, NSBOX_FLAGS, ["/bin/true"]));
  if (r.code === 125 && /unknown flag/.test(r.stderr)) return `nsbox has no --memory/--pids-limit yet (${r.stderr.trim()})`;
  return undefined;
}

/**
 * The limits as the container sees them in its own cgroup (a private cgroup
 * namespace in all three): proves that each contender really set them, so the
 * latencies compare equal work. Inside the wrapper the host looks like cgroup
 * v1 when it has v1 controllers (the unified mount is gone), else v2.
 */
function checkLimits(ctx: BenchContext, who: Limited): string {
  const v1 = mounts().some((m) => m.fstype === "cgroup" && m.point === "/sys/fs/cgroup/memory");
  const files = v1 ? ["/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max"] : ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"];
  const out = mustRunOnce(ctx, who, argvFor(ctx, who, ["/bin/cat", ...files]))
    .stdout.trim()
    .split(/\s+/);
  const ok = out[0] === String(MEMORY) && out[1] === String(PIDS);
  return ok ? `${who}: limits seen inside (${out.join(", ")})` : `WARNING ${who}: limits inside are ${out.join(", ")}, expected ${MEMORY}, ${PIDS}`;
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const missing = nsboxMissingFlags(ctx);
  if (missing) return { title, tables: [], notes: [], skipped: `skipped: ${missing}` };

  const checks = LIMITED.map((who) => checkLimits(ctx, who));
  const h = hello(ctx);
  const cmds: { name: Column; argv: Arg[] }[] = [
    ...LIMITED.map((name) => ({ name, argv: argvFor(ctx, name, ["/bin/true"]) })),
    { name: "hello", argv: [h.bin] },
  ];
  const lat = hyperfine(ctx, cmds);
  const values: Partial<Record<Column, number>> = {};
  const spread: string[] = [];
  for (const { name: c } of cmds) {
    const s = lat.get(c);
    if (!s) continue;
    values[c] = s.median;
    spread.push(`${c} ${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`);
  }
  const s = (c: Column) => lat.get(c) as Stats;
  const target = aboveBunTarget("limits: (nsbox − hello) / crun", s("nsbox"), s("hello"), s("crun"), "crun with the same limits");
  const runc = ((s("nsbox").median - s("hello").median) / s("runc").median).toFixed(2);
  return {
    title,
    tables: [
      {
        title: `run --memory 64m --pids-limit 64 ROOTFS /bin/true: ${roundsNote(ctx)}`,
        rows: [{ metric: "latency, median (ms)", values, digits: 1 }],
      },
    ],
    targets: [target],
    notes: [
      RATIO_NOTE,
      `issue 14: ${target.what} = ${target.value.toFixed(2)}, target ≤ ${target.limit}: ${met(target) ? "met" : "NOT met"}; against runc: ${runc}`,
      helloNote(h),
      `latency mean ± stddev (ms): ${spread.join(", ")}`,
      "bwrap: n/a (no cgroup limits)",
      ...checks,
    ],
  };
}
