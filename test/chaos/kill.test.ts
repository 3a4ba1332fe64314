/**
 * Chaos, part b: SIGKILL of the nsbox CLI at random moments of run, run -d,
 * exec, stop, rm, pod create and pod rm (delays from a seeded distribution),
 * and now and then of a container's monitor or PID 1, a few at a time, in
 * rounds. A PID 1 must end with its monitor. After every batch, `ps` must still tell the
 * truth (a container it calls running has a live PID 1 in its cgroup); after
 * every round the host is repaired as a user would (ps -a, rm -f of every
 * container, pod rm -f of every pod, network prune) and compared with a
 * snapshot taken before the first round: mounts, veths, nft rules, cgroups,
 * state and layer dirs, processes, network allocations (the suite's own only:
 * see host.ts).
 */

import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inspectOne, leftoversOf, parsePs, pidAlive, removeAll } from "../helpers/lifecycle.ts";
import { freePort } from "../helpers/net.ts";
import { ls, type RunResult, tryKill, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { stateLetter } from "../helpers/proc.ts";
import { compareHost, type HostSnapshot, hostSnapshot, Ids, stderrProblems } from "./host.ts";
import { chaosRng, type Rng } from "./rng.ts";
import { cgroupOf, isInitOf, show } from "./run.ts";

const ctx = useNsbox("chaos-kill");
const rng = chaosRng("kill");
/** 12 rounds of 14 commands, most of them killed before they finish: more than 100 SIGKILLs. */
const ROUNDS = 12;
const KILLS_PER_ROUND = 14;
/** Killed commands running at once. */
const BATCH = 3;

const OPS = ["run", "run -d", "exec", "stop", "rm -f", "pod create", "pod rm -f"] as const;
type Op = (typeof OPS)[number];
/** Not the CLI: a detached container's monitor, or its PID 1 (what a crash or the OOM killer would do). */
const PROCS = ["monitor", "pid 1"] as const;
type Proc = (typeof PROCS)[number];

const problems: string[] = [];
/** containers whose PID 1 outlived their SIGKILLed monitor (it must end with it: issue 10 point 6) */
const outlivedMonitor: string[] = [];
/** what was still there when rm -f and pod rm -f of the repair returned (they return when what they removed is gone) */
const notGoneAtOnce: string[] = [];
const stats = { killed: 0, finishedFirst: 0, byOp: {} as Record<string, number> };
let ids: Ids;
let before: HostSnapshot;

beforeAll(() => {
  ids = new Ids(ctx);
  before = hostSnapshot(ctx, ids);
});
// before useNsbox removes the roots and prunes the bridge (a plain afterAll would run after that)
ctx.beforeCleanup(async () => {
  await removeAll(ctx);
  const pods = await ctx.nsbox(["pod", "ps", "--format", "json"]);
  for (const l of pods.stdout.split("\n").filter(Boolean)) await ctx.nsbox(["pod", "rm", "-f", (JSON.parse(l) as { Id: string }).Id]);
  ids?.close();
});

/** Milliseconds before the SIGKILL: early (parsing, locks), middle (creation), late (waiting, clean-up). */
function killDelay(r: Rng): number {
  return r.weighted([
    [4, r.int(0, 40)],
    [4, r.int(40, 200)],
    [2, r.int(200, 700)],
  ]);
}

async function must(args: string[], why: string): Promise<RunResult> {
  const r = await ctx.nsbox(args);
  if (r.code !== 0) problems.push(`${why}: ${show(args, r)}`);
  return r;
}

interface Fixtures {
  containers: string[];
  pods: string[];
}

/** Containers and a pod for the round's commands to work on (not killed themselves). */
async function fixtures(r: Rng, round: number): Promise<Fixtures> {
  const made = await Promise.all(
    Array.from({ length: 3 }, async (_, i) => {
      const net = r.chance(0.5) ? "bridge" : "none";
      // sleep as PID 1 ignores SIGTERM (stop waits, then SIGKILL); the trap answers it at once
      const cmd = i % 2 ? ["sleep", "600"] : ["sh", "-c", "trap 'exit 143' TERM; sleep 600 & wait", `chaos-kill-${round}-${i}`];
      const res = await must(["run", "-d", "--net", net, ctx.rootfs, ...cmd], `round ${round}: fixture container ${i}`);
      return res.stdout.trim();
    }),
  );
  const pod = await must(["pod", "create", "--net", r.chance(0.5) ? "bridge" : "none"], `round ${round}: fixture pod`);
  const containers = made.filter((id) => /^[0-9a-f]{64}$/.test(id));
  const pods = /^[0-9a-f]{64}$/.test(pod.stdout.trim()) ? [pod.stdout.trim()] : [];
  ids.sync(...containers, ...pods);
  return { containers, pods };
}

function argsFor(op: Op, r: Rng, f: Fixtures): string[] {
  const net = r.chance(0.5) ? "bridge" : "none";
  const publish = net === "bridge" && r.chance(0.3) ? ["-p", `${freePort()}:80`] : [];
  const name = r.chance(0.3) ? ["--name", `k${r.word(6, 10)}`] : [];
  const target = (list: string[]) => (list.length ? r.pick(list) : "nosuchcontainer");
  switch (op) {
    case "run":
      return ["run", "--net", net, ...name, ctx.rootfs, "sh", "-c", "echo hi; sleep 0.3"];
    case "run -d":
      return ["run", "-d", "--net", net, ...publish, ...name, ctx.rootfs, "sleep", "600"];
    case "exec":
      return ["exec", target(f.containers), "sh", "-c", "sleep 0.5; echo done"];
    case "stop":
      return ["stop", "-t", "1", target(f.containers)];
    case "rm -f":
      return ["rm", "-f", target(f.containers)];
    case "pod create":
      return ["pod", "create", "--net", net, ...publish, ...(r.chance(0.3) ? ["--name", `kp${r.word(6, 10)}`] : [])];
    case "pod rm -f":
      return ["pod", "rm", "-f", target(f.pods)];
  }
}

/** Starts the command and SIGKILLs it after delayMs (if it is still running). */
async function killedAt(args: string[], delayMs: number, label: string): Promise<void> {
  const p = ctx.start(args, { input: "", timeoutMs: 60000 });
  await Promise.race([p.result(), Bun.sleep(delayMs)]);
  const running = p.proc.exitCode === null && p.proc.signalCode === null;
  if (running) tryKill(p.pid, "SIGKILL");
  const res = await p.result();
  if (running && res.signal === "SIGKILL") stats.killed++;
  else {
    stats.finishedFirst++;
    // it ended on its own: then it must have ended well, or said why in nsbox's words
    const bad = stderrProblems(res.stderr);
    if (res.code !== 0 && bad.length) problems.push(`${label}: finished before its SIGKILL with ${bad.join(", ")}: ${show(args, res)}`);
  }
  for (const id of res.stdout.split("\n")) ids.sync(id.trim());
}

/** A process as the kernel shows it, for a failure message. */
function whatIs(pid: number): string {
  const read = (f: string) => {
    try {
      return readFileSync(`/proc/${pid}/${f}`, "utf8");
    } catch {
      return "(gone)";
    }
  };
  const stat = read("stat");
  return `pid ${pid}: state ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]}, command ${JSON.stringify(read("cmdline").replaceAll("\0", " "))}, cgroups ${JSON.stringify(
    read("cgroup")
      .split("\n")
      .filter((l) => l.includes("nsbox")),
  )}`;
}

/** SIGKILL of a fixture's monitor or PID 1 after delayMs; a PID 1 must not outlive its monitor. */
async function killProcessOf(id: string, which: Proc, delayMs: number, label: string): Promise<void> {
  let ins: Awaited<ReturnType<typeof inspectOne>>;
  try {
    ins = await inspectOne(ctx, id);
  } catch {
    return; // removed by an earlier command of the round
  }
  const pid = which === "monitor" ? ins.State.MonitorPid : ins.State.Pid;
  const init = ins.State.Pid;
  if (!ins.State.Running || !pid) return;
  await Bun.sleep(delayMs);
  // the pids were read from nsbox: only kill what is still that container's
  if (!isInitOf(init, id)) return;
  tryKill(pid, "SIGKILL");
  stats.killed++;
  // an exiting PID 1 leaves its cgroup at once, but may wait for its namespace's zombies to be reaped by the host's init
  const runs = () => pidAlive(init) && cgroupOf(init).includes(`nsbox-${id}`);
  if (which === "monitor" && !(await waitUntil(() => !runs(), 500)))
    outlivedMonitor.push(`${label}: PID 1 (${init}) of ${id.slice(0, 12)} still runs 0.5 s after its monitor (${pid}) was killed`);
}

/** After a kill: ps works, says nothing on stderr, and every container it calls running has a live PID 1 in its cgroup. */
async function psTellsTheTruth(label: string): Promise<void> {
  const args = ["ps", "-a", "--format", "json", "--no-trunc"];
  const r = await ctx.nsbox(args);
  if (r.code !== 0 || r.stderr !== "") {
    problems.push(`${label}: ps after the kill: ${show(args, r)}`);
    return;
  }
  const entries = parsePs(r.stdout);
  ids.sync(...entries.map((e) => e.ID));
  const lying = (e: (typeof entries)[number]) => e.State === "running" && !isInitOf(e.Pid, e.ID);
  const suspects = entries.filter(lying);
  if (!suspects.length) return;
  // A PID 1 may have died just after ps looked: a second ps must then see it
  await Bun.sleep(300);
  const again = parsePs((await ctx.nsbox(args)).stdout);
  for (const e of again.filter(lying))
    if (suspects.some((s) => s.ID === e.ID))
      problems.push(
        `${label}: ps says ${e.ID.slice(0, 12)} is running with pid ${e.Pid}, which is not a live process in its cgroup (twice): ${whatIs(e.Pid)}; ${JSON.stringify(e)}`,
      );
}

/** what the repair's last rm -f said on stderr (for the report of what it left) */
let lastRmErrors = "";

/** rm -f of every container: each one it names as removed is gone when it returns. */
async function removeContainers(label: string): Promise<void> {
  const all = await ctx.nsbox(["ps", "-a", "-q", "--no-trunc"]);
  const ctrs = all.stdout.split("\n").filter(Boolean);
  ids.sync(...ctrs);
  if (!ctrs.length) return;
  const rm = await ctx.nsbox(["rm", "-f", ...ctrs]);
  lastRmErrors = rm.stderr.trim();
  // a pod's infra container may be refused (the pod goes with pod rm): said in nsbox's words, one line per refusal
  const bad = stderrProblems(rm.stderr, ctrs.length);
  if ((rm.code !== 0 && rm.code !== 125) || bad.length) problems.push(`${label}: repair: ${bad.join(", ")}: ${show(["rm", "-f", "..."], rm)}`);
  for (const id of rm.stdout.split("\n").filter(Boolean)) {
    const left = leftoversOf(ctx, id);
    if (left.length) notGoneAtOnce.push(`${label}: rm -f returned, and ${id.slice(0, 12)} still has ${left.join("; ")}`);
  }
}

/** pod rm -f of every pod: each pod it names as removed is gone (infra container, name) when it returns. */
async function removePods(label: string): Promise<void> {
  const listed = await ctx.nsbox(["pod", "ps", "--format", "json"]);
  if (listed.code !== 0) problems.push(`${label}: repair: ${show(["pod", "ps", "--format", "json"], listed)}`);
  const pods = listed.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { Id: string; Name: string });
  if (!pods.length) return;
  ids.sync(...pods.map((p) => p.Id));
  const args = ["pod", "rm", "-f", ...pods.map((p) => p.Id)];
  const prm = await ctx.nsbox(args);
  if (prm.code !== 0 || prm.stderr !== "") problems.push(`${label}: repair: ${show(args, prm)}`);
  for (const p of pods) {
    if (!prm.stdout.split("\n").includes(p.Id)) continue;
    const left = leftoversOf(ctx, p.Id);
    if (ls(join(ctx.stateRoot, "pods")).includes(p.Name)) left.push(`its name ${p.Name} in ${join(ctx.stateRoot, "pods")}`);
    if (left.length) notGoneAtOnce.push(`${label}: pod rm -f returned, and pod ${p.Id.slice(0, 12)} still has ${left.join("; ")}`);
  }
}

/**
 * The repair a user would do, checked: every command works and says nothing
 * unexpected. Pods go first in some rounds and last in others: rm -f of every
 * container then meets the pods' infra containers, which it may refuse (then
 * pod rm -f removes the pod) or remove with their pod, consistently.
 */
async function repair(label: string, podsFirst: boolean): Promise<void> {
  const ps = await ctx.nsbox(["ps", "-a"]);
  if (ps.code !== 0 || ps.stderr !== "") problems.push(`${label}: repair: ${show(["ps", "-a"], ps)}`);
  if (podsFirst) await removePods(label);
  await removeContainers(label);
  if (!podsFirst) await removePods(label);
  const prune = await ctx.nsbox(["network", "prune"]);
  const bad = stderrProblems(prune.stderr, 1000);
  if (prune.code !== 0 || bad.length) problems.push(`${label}: repair: ${bad.join(", ")}: ${show(["network", "prune"], prune)}`);
  const left = await ctx.nsbox(["ps", "-a", "-q", "--no-trunc"]);
  const leftPods = await ctx.nsbox(["pod", "ps", "--format", "json"]);
  if (left.stdout !== "") {
    const ins = await ctx.nsbox([
      "inspect",
      "--format",
      "{{.Id}} {{.Name}} {{.State.Status}} pod={{.Pod}} {{json .Config.nsbox.infra}}",
      ...left.stdout.trim().split("\n"),
    ]);
    problems.push(`${label}: containers left after the repair (${lastRmErrors || "rm -f said nothing"}): ${ins.stdout.trim().split("\n").join(", ")}`);
  }
  if (leftPods.stdout !== "") problems.push(`${label}: pods left after the repair: ${leftPods.stdout.trim()}`);
}

test("SIGKILL of run, run -d, exec, stop, rm, pod create and pod rm at random moments: ps stays true, and the repair leaves the host as before", async () => {
  const started = Date.now();
  for (let round = 0; round < ROUNDS; round++) {
    const rr = rng.fork(`round${round}`);
    const f = await fixtures(rr.fork("fixtures"), round);
    const plan = Array.from({ length: KILLS_PER_ROUND }, (_, k) => {
      const r = rr.fork(`kill${k}`);
      const op: Op | Proc = r.chance(0.15) ? r.pick(PROCS) : r.pick(OPS);
      const target = f.containers.length ? r.pick(f.containers) : "";
      const args = (OPS as readonly string[]).includes(op) ? argsFor(op as Op, r, f) : [];
      return { op, args, target, delay: killDelay(r), label: `round ${round} kill ${k} (${op}, seed stream kill/round${round}/kill${k})` };
    });
    for (let i = 0; i < plan.length; i += BATCH) {
      const batch = plan.slice(i, i + BATCH);
      await Promise.all(
        batch.map((p) =>
          p.args.length ? killedAt(p.args, p.delay, `${p.label} after ${p.delay} ms`) : killProcessOf(p.target, p.op as Proc, p.delay, p.label),
        ),
      );
      for (const p of batch) stats.byOp[p.op] = (stats.byOp[p.op] ?? 0) + 1;
      await psTellsTheTruth(`round ${round} after ${batch.map((p) => `${p.op} killed at ${p.delay} ms`).join(", ")}`);
    }
    await repair(`round ${round}`, rr.chance(0.5));
    const host = await compareHost(ctx, ids, before);
    if (Object.keys(host.atOnce).length) notGoneAtOnce.push(`round ${round}: ${JSON.stringify(host.atOnce)}`);
    if (Object.keys(host.settled).length) {
      problems.push(`round ${round}: the host is not as before the first round, 10 s after the repair: ${JSON.stringify(host.settled)}`);
      break; // what is left would be blamed on every later round
    }
  }
  console.log(`kill: ${JSON.stringify(stats)} in ${((Date.now() - started) / 1000).toFixed(1)} s, ${problems.length} problems`);
  expect(problems).toEqual([]);
}, 400000);

/** The steps of a creation where nsbox can stop itself (NSBOX_TRACE_STOP, src/trace.ts), in their order. */
const CREATION_STEPS = ["state created", "programs built", "spawned", "child created", "container started", "state running"];

/**
 * The windows a random delay hits once in a hundred kills (a monitor spawned and
 * not yet in the state; a container that gave up before its monitor started),
 * hit every time: run -d and pod create SIGKILLed at each step of the creation,
 * then the repair, and the host must be as before.
 */
test("SIGKILL of run -d and pod create at each step of the creation: the repair leaves the host as before", async () => {
  const stepProblems: string[] = [];
  const start = hostSnapshot(ctx, ids); // (what a failed round above left is not blamed again)
  for (const step of CREATION_STEPS) {
    for (const args of [
      ["run", "-d", "--net", "none", ctx.rootfs, "sleep", "600"],
      ["pod", "create", "--net", "none"],
    ]) {
      const p = ctx.start(args, { input: "", timeoutMs: 30000, env: { NSBOX_TRACE_STOP: step } });
      const stopped = await waitUntil(() => stateLetter(p.pid) === "T" || p.proc.exitCode !== null, 20000);
      if (!stopped || stateLetter(p.pid) !== "T") stepProblems.push(`${args.slice(0, 2).join(" ")} never stopped at "${step}"`);
      tryKill(p.pid, "SIGKILL");
      await p.result();
      ids.sync();
    }
  }
  await repair("steps", true);
  const host = await compareHost(ctx, ids, start);
  if (Object.keys(host.settled).length) stepProblems.push(`the host is not as before, 10 s after the repair: ${JSON.stringify(host.settled)}`);
  expect([...stepProblems, ...problems.filter((p) => p.startsWith("steps: "))]).toEqual([]);
}, 120000);

test("the repair's rm -f and pod rm -f return when what they removed is gone (nothing settles afterwards)", () => {
  expect(notGoneAtOnce).toEqual([]);
});

test("a pod's name is free again as soon as pod rm returns", async () => {
  const name = `kname${rng.fork("pod-name").word(6, 6)}`;
  for (let i = 0; i < 2; i++) {
    const c = await ctx.nsbox(["pod", "create", "--net", "none", "--name", name]);
    expect(c.code, show(["pod", "create", "--net", "none", "--name", name], c)).toBe(0);
    const r = await ctx.nsbox(["pod", "rm", "-f", name]);
    expect(r.code, show(["pod", "rm", "-f", name], r)).toBe(0);
    expect(ls(join(ctx.stateRoot, "pods"))).not.toContain(name);
  }
});

test("a detached container ends at once when its monitor is SIGKILLed", () => {
  expect(outlivedMonitor).toEqual([]);
});
