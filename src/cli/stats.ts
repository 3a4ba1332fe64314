/** `nsbox stats [--no-stream] [CONTAINER...]`: memory, CPU and pids from each container's cgroup. */
import { type CgroupStats, openCgroup } from "../cgroup/index.ts";
import { allViews, type ContainerView, mustView, reconcile } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { resolveRef } from "../state/store.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { bytes, table } from "./format.ts";

export const statsFlags = {
  containers: { type: "positional", description: "containers (default: every running one)", multiple: true },
  "no-stream": { type: "boolean", description: "print one sample and exit" },
  format: { type: "string", description: "table (default) or json", valueHint: "FORMAT" },
} satisfies FlagsDef;

export const statsCommand = defineCommand({
  meta: { name: "stats", description: "Show containers' resource usage from their cgroups" },
  args: () => toCitty(statsFlags),
});

interface Sample {
  v: ContainerView;
  s: CgroupStats;
  t: number;
}

function sample(views: ContainerView[]): Sample[] {
  return views.map((v) => ({ v, s: v.config.cgroup ? openCgroup(v.config.cgroup).stats() : {}, t: performance.now() }));
}

function rows(a: Sample[], b: Sample[]) {
  return b.map((x, i) => {
    const prev = a[i] as Sample;
    const dt = (x.t - prev.t) * 1e6; // ns
    const cpu = x.s.cpuNs !== undefined && prev.s.cpuNs !== undefined && dt > 0 ? ((x.s.cpuNs - prev.s.cpuNs) / dt) * 100 : undefined;
    const mem = x.s.memoryUsage;
    const lim = x.s.memoryLimit;
    return {
      id: x.v.id,
      name: x.v.config.name ?? "",
      cpuPercent: cpu === undefined ? null : Math.round(cpu * 100) / 100,
      memoryUsage: mem ?? null,
      memoryLimit: lim === undefined || !Number.isFinite(lim) ? null : lim,
      memoryPercent: mem !== undefined && lim !== undefined && Number.isFinite(lim) && lim > 0 ? Math.round((mem / lim) * 10000) / 100 : null,
      pids: x.s.pids ?? null,
      pidsLimit: x.s.pidsLimit === undefined || !Number.isFinite(x.s.pidsLimit) ? null : x.s.pidsLimit,
    };
  });
}

export async function stats(argv: string[]): Promise<number> {
  const p = parseFlags("stats", argv, statsFlags);
  const format = checkFormat(p.flags.format);
  await reconcile();
  const pick = () => (p.positionals.length ? p.positionals.map((r) => mustView(resolveRef(r))) : allViews().filter((v) => v.status === "running"));
  const once = bool(p.flags["no-stream"]);
  for (;;) {
    const views = pick();
    for (const v of views) if (v.status !== "running" && p.positionals.length) fail(`container ${v.config.name ?? v.id.slice(0, 12)} is not running`);
    const a = sample(views);
    await Bun.sleep(once ? 500 : 1000);
    const r = rows(a, sample(views));
    if (format === "json") for (const x of r) console.log(JSON.stringify(x));
    else {
      const out = table(
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"],
        r.map((x) => [
          x.id.slice(0, 12),
          x.name,
          x.cpuPercent === null ? "--" : `${x.cpuPercent.toFixed(2)}%`,
          `${bytes(x.memoryUsage ?? undefined)} / ${x.memoryLimit === null ? "unlimited" : bytes(x.memoryLimit)}`,
          x.memoryPercent === null ? "--" : `${x.memoryPercent.toFixed(2)}%`,
          x.pids === null ? "--" : String(x.pids),
        ]),
      );
      if (!once && process.stdout.isTTY) process.stdout.write("\x1b[2J\x1b[H");
      console.log(out);
    }
    if (once) return 0;
  }
}
