/**
 * Section "exec": latency of running /bin/true inside a running container,
 * measured from outside: `nsbox exec ID /bin/true` against `crun exec ID
 * /bin/true` (a crun container made with `crun run -d` from an OCI bundle over
 * the same rootfs) and against `nsenter -t PID -a /bin/true` into the nsbox
 * container's PID 1 (the floor: setns into every namespace and exec, no cgroup
 * join, no user or environment set-up, no waiting for the process's exit status
 * by a runtime).
 *
 * Issue 14's target here: (nsbox exec − hello) / crun exec at most 1.0, the
 * hello world (bench/hello.ts) measured in the same hyperfine call.
 *
 * All of them go through the same wrapper as every other contender (see
 * lib.ts), in one hyperfine run, in interleaved rounds.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { aboveBunTarget, hello, helloNote } from "./hello.ts";
import {
  type Arg,
  type BenchContext,
  BenchError,
  exec,
  hyperfine,
  makeBundle,
  met,
  mustRunOnce,
  nsboxArgv,
  RATIO_NOTE,
  roundsNote,
  runOnce,
  type SectionResult,
  type Stats,
  shq,
  wrapCommand,
} from "./lib.ts";
import { medianTrace, TRACE_RUNS } from "./trace.ts";

export const title = "exec latency: `exec CONTAINER /bin/true` into a running container";

const IDLE = ["sleep", "3600"];

interface NsboxInspect {
  State: { Running: boolean; Pid: number };
}

/** A detached nsbox container (made through the wrapper, as the other contenders' containers are): its id and PID 1. */
function startNsbox(ctx: BenchContext): { id: string; pid: number } {
  const id = mustRunOnce(ctx, "nsbox run -d", nsboxArgv(ctx, ["-d", "--net", "none"], IDLE)).stdout.trim();
  if (!/^[0-9a-f]{64}$/.test(id)) throw new BenchError(`nsbox run -d printed ${JSON.stringify(id)}, not a container id`);
  const r = exec([ctx.opts.nsbox, `--root=${ctx.nsboxRoot}`, "inspect", id], { env: ctx.env });
  const info = (JSON.parse(r.stdout || "[]") as NsboxInspect[])[0];
  if (r.code !== 0 || !info?.State.Running || !info.State.Pid)
    throw new BenchError(`nsbox inspect ${id} failed or the container is not running: ${r.stderr.trim()}`);
  return { id, pid: info.State.Pid };
}

/** A detached crun container over the same rootfs (`crun run -d`, stdio to /dev/null: nothing holds the bench's pipes). */
function startCrun(ctx: BenchContext): string {
  const id = `nsbox-bench-crun-exec-${process.pid}`;
  const bundle = makeBundle(ctx, "crun", { args: IDLE, cgroupsPath: ctx.cgroups.next() });
  const errFile = join(ctx.tmp, "crun-run-d.stderr");
  const argv: Arg[] = ["crun", "--root", ctx.stateDir("crun"), "run", "--detach", "--bundle", bundle, id, { sh: `</dev/null >/dev/null 2>${shq(errFile)}` }];
  const r = runOnce(ctx, argv);
  if (r.code !== 0) {
    let err = "";
    try {
      err = readFileSync(errFile, "utf8").trim();
    } catch {
      // no output
    }
    throw new BenchError(`crun run -d failed (exit ${r.code}): ${err || r.stderr.trim()}\n  command: ${wrapCommand(ctx.wrapper, argv)}`);
  }
  return id;
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  let nsboxId = "";
  let crunId = "";
  try {
    const n = startNsbox(ctx);
    nsboxId = n.id;
    crunId = startCrun(ctx);
    const h = hello(ctx);
    const cmds: { name: string; argv: Arg[] }[] = [
      { name: "nsbox", argv: [ctx.opts.nsbox, "exec", nsboxId, "/bin/true"] }, // the roots from ctx.env, as for run (see nsboxArgv)
      { name: "crun", argv: ["crun", "--root", ctx.stateDir("crun"), "exec", crunId, "/bin/true"] },
      { name: "nsenter", argv: ["nsenter", "-t", String(n.pid), "-a", "/bin/true"] },
      { name: "hello", argv: [h.bin] },
    ];
    // One plain run each: a contender that cannot exec here fails with its own message.
    for (const c of cmds) mustRunOnce(ctx, `${c.name} exec`, c.argv);
    // nsenter really lands in the container: its /proc is the container's (PID 1 is sleep)
    const seen = mustRunOnce(ctx, "nsenter", ["nsenter", "-t", String(n.pid), "-a", "/bin/cat", "/proc/1/cmdline"]).stdout;
    if (seen.split("\0")[0] !== "sleep") throw new BenchError(`nsenter -t ${n.pid} -a did not enter the container (its PID 1 is ${JSON.stringify(seen)})`);

    const lat = hyperfine(ctx, cmds);
    const s = (name: string) => lat.get(name) as Stats;
    const ns = s("nsbox");
    const cr = s("crun");
    const ne = s("nsenter");
    const he = s("hello");
    const target = aboveBunTarget("exec: (nsbox exec − hello) / crun exec", ns, he, cr, "crun exec");
    const trace = medianTrace(
      ctx,
      "nsbox exec ID /bin/true",
      cmds[0]?.argv ?? [],
      [{ name: "hello", argv: [h.bin] }],
      Math.min(TRACE_RUNS, ctx.opts.runs),
      h.markedBin,
    );
    return {
      title,
      tables: [
        {
          title: `exec ID /bin/true into a running \`sleep 3600\` container: ${roundsNote(ctx)}`,
          rows: [{ metric: "exec latency, median (ms)", values: { nsbox: ns.median, crun: cr.median, hello: he.median }, digits: 2 }],
        },
      ],
      targets: [target],
      blocks: [trace.block],
      notes: [
        RATIO_NOTE,
        `issue 14: ${target.what} = ${target.value.toFixed(2)}, target ≤ ${target.limit}: ${met(target) ? "met" : "NOT met"}`,
        helloNote(h),
        `nsenter -t PID -a /bin/true into the same nsbox container, measured in the same hyperfine runs: median ${ne.median.toFixed(2)} ms; nsbox/nsenter = ${(ns.median / ne.median).toFixed(2)} (nsenter is the floor: setns and exec, no cgroup, user, environment or exit-status handling)`,
        `latency mean ± stddev (ms): nsbox ${ns.mean.toFixed(2)} ± ${ns.stddev.toFixed(2)}, crun ${cr.mean.toFixed(2)} ± ${cr.stddev.toFixed(2)}, nsenter ${ne.mean.toFixed(2)} ± ${ne.stddev.toFixed(2)}, hello ${he.mean.toFixed(2)} ± ${he.stddev.toFixed(2)}`,
        "nsbox exec joins user (when different), ipc, uts, net, cgroup, mnt and pid namespaces and the container's cgroup, and waits for the exit status; crun exec does the same from its OCI state; runc and bwrap: not measured (n/a)",
        ...trace.notes,
        "all of them run as `unshare -m sh -c '[umount /sys/fs/cgroup/unified &&] exec …'`, as in the other sections; the nsbox container is `run -d --net none`, the crun one has the spec's own network namespace (lo only)",
      ],
    };
  } finally {
    const problems: string[] = [];
    if (nsboxId) {
      const r = exec([ctx.opts.nsbox, `--root=${ctx.nsboxRoot}`, "rm", "-f", nsboxId], { env: ctx.env });
      if (r.code !== 0) problems.push(`nsbox rm -f ${nsboxId}: ${r.stderr.trim()}`);
    }
    if (crunId) {
      const r = runOnce(ctx, ["crun", "--root", ctx.stateDir("crun"), "delete", "--force", crunId]);
      if (r.code !== 0) problems.push(`crun delete --force ${crunId}: ${r.stderr.trim()}`);
    }
    for (const p of problems) console.error(`bench exec: ${p}`);
  }
}
