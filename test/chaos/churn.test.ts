/**
 * Chaos, part a: parallel churn. Workers run detached containers (--net none
 * and the bridge), read their logs, exec into them, stop and remove them, while
 * a checker compares `nsbox ps` with the kernel. Checked all along:
 *   - ps matches the kernel: a container ps calls running has a live PID 1 in
 *     its own cgroup; one that is known to be running, exited (with which code)
 *     or removed is listed so;
 *   - logs are exact: each container prints a seeded sequence (see output.ts);
 *   - exec prints exactly what its command printed, with its exit code; an exec
 *     racing the container's stop says, in one line, that it is not running;
 *   - no address is given to two live containers at once: the kernel's view
 *     (the addresses in each container's namespace) and the network state agree;
 *   - a removed container leaves nothing, and at the end the host is as before.
 * Every decision comes from the seeded generator (see rng.ts), one stream per
 * container, so a seed replays the same commands; the interleaving is the
 * machine's.
 */
import { beforeAll, expect, test } from "bun:test";
import { inspectOne, parsePs, pidAlive, removeAll, settledLeftovers } from "../helpers/lifecycle.ts";
import { readNetState } from "../helpers/net.ts";
import { useNsbox } from "../helpers/nsbox.ts";
import { startTimeOf } from "../helpers/proc.ts";
import { compareHost, type HostSnapshot, hostSnapshot, Ids, stderrProblems } from "./host.ts";
import { firstDiff, localAddresses, type Script, sequenceScript, textLines } from "./output.ts";
import { chaosRng, type Rng } from "./rng.ts";
import { cgroupOf, fibTrieOf, isInitOf, show } from "./run.ts";

const ctx = useNsbox("chaos-churn");
const rng = chaosRng("churn");
/** Containers started at once at the beginning, alive through the churn, removed by one rm -f at the end. */
const BURST = 16;
/** Workers, each running containers one after another through their whole life. */
const WORKERS = 6;
const PER_WORKER = 16;

type Stable = "running" | "exited" | "removed";
interface Ctr {
  id: string;
  label: string;
  ref: string;
  net: "none" | "bridge";
  script: Script;
  /** undefined while a command changes it (then ps may show either side) */
  stable: Stable | undefined;
  exitCode?: number;
}

const model = new Map<string, Ctr>();
const problems: string[] = [];
const unknownInPs = new Set<string>();
const counts = { runs: 0, execs: 0, racedExecs: 0, logs: 0, ps: 0, stops: 0, rms: 0, psComparisons: 0, addressesSeen: 0 };
let ids: Ids;
let before: HostSnapshot;

const problem = (what: string) => problems.push(what);

beforeAll(() => {
  ids = new Ids(ctx);
  before = hostSnapshot(ctx, ids);
});
// before useNsbox removes the roots and prunes the bridge (a plain afterAll would run after that)
ctx.beforeCleanup(async () => {
  await removeAll(ctx);
  ids?.close();
});

/** Polls `logs` until the container printed END (and its stderr is complete), then compares. */
async function checkLogs(c: Ctr, extraStdout: string[] = [], waitForEnd = true): Promise<void> {
  const want = [...c.script.stdout, ...extraStdout];
  const args = ["logs", c.ref];
  let last = { out: [] as string[], err: [] as string[], shown: "" };
  const end = Date.now() + (waitForEnd ? 20000 : 0);
  for (;;) {
    const r = await ctx.nsbox(args);
    counts.logs++;
    if (r.code !== 0) {
      problem(`${c.label}: logs failed: ${show(args, r)}`);
      return;
    }
    last = { out: textLines(r.stdout), err: textLines(r.stderr), shown: show(args, r) };
    const complete = last.out.length >= want.length && last.err.length >= c.script.stderr.length;
    if (complete || Date.now() > end) break;
    await Bun.sleep(100);
  }
  if (last.out.join("\n") !== want.join("\n")) problem(`${c.label}: logs stdout differs: ${firstDiff(last.out, want)}`);
  if (last.err.join("\n") !== c.script.stderr.join("\n")) problem(`${c.label}: logs stderr differs: ${firstDiff(last.err, c.script.stderr)}`);
}

async function checkExec(c: Ctr, r: Rng, n: number): Promise<void> {
  const a = r.int(0, 100000);
  const b = r.int(0, 100000);
  const code = r.pick([0, 0, 0, 1, 3, 42]);
  const tag = `x${n}${r.word(2, 8)}`;
  const flags = r.chance(0.3) ? ["-e", `CHAOS_V=${tag}`] : [];
  const script = flags.length ? 'echo "$0 $(( $1 * $2 ))"; echo "err$CHAOS_V" >&2; exit $3' : 'echo "$0 $(( $1 * $2 ))"; echo "err$0" >&2; exit $3';
  const args = ["exec", ...flags, c.ref, "sh", "-c", script, tag, String(a), String(b), String(code)];
  const res = await ctx.nsbox(args);
  counts.execs++;
  if (res.code !== code || res.stdout !== `${tag} ${a * b}\n` || res.stderr !== `err${tag}\n`) problem(`${c.label}: exec: ${show(args, res)}`);
}

/** An exec started while the container is being stopped: it runs, or it says in one line that the container is not running. */
async function racedExec(c: Ctr, delayMs: number): Promise<void> {
  await Bun.sleep(delayMs);
  const args = ["exec", c.ref, "echo", "ok"];
  const r = await ctx.nsbox(args);
  counts.racedExecs++;
  if (r.code === 0 && r.stdout === "ok\n" && r.stderr === "") return;
  // the exec'd process killed with the container's namespace: nothing to say
  if (r.code === 137 && r.stderr === "") return;
  if (r.code === 125 && r.stdout === "" && stderrProblems(r.stderr).length === 0 && /not running|no such container|is exiting|has exited/.test(r.stderr))
    return;
  problem(`${c.label}: exec racing stop: ${show(args, r)}`);
}

/** run -d of a container printing its sequence; undefined (and a problem) when it fails. */
async function start(label: string, stream: string, r: Rng, selfExit: boolean, exitCode: number): Promise<Ctr | undefined> {
  const net = r.chance(0.4) ? "bridge" : "none";
  const lines = r.weighted([
    [6, r.int(0, 40)],
    [3, r.int(40, 400)],
    [1, r.int(1000, 3000)],
  ]);
  const script = sequenceScript(r.int(1, 2 ** 31 - 1), lines, r.word(0, 100), `chaos-${stream.replaceAll("/", "-")}`, selfExit ? exitCode : undefined);
  const name = r.chance(0.5) ? `ch-${stream.replaceAll("/", "-")}-${r.word(3, 6)}` : undefined;
  const flags = ["-d", "--net", net];
  if (name) flags.push("--name", name);
  if (r.chance(0.2)) flags.push("--init");
  if (r.chance(0.2)) flags.push("--memory", "64m", "--pids-limit", "64");
  const args = ["run", ...flags, ctx.rootfs, ...script.argv];
  const res = await ctx.nsbox(args);
  counts.runs++;
  const id = res.stdout.trim();
  if (res.code !== 0 || !/^[0-9a-f]{64}$/.test(id) || res.stdout !== `${id}\n` || res.stderr !== "") {
    problem(`${label}: run -d: ${show(args, res)}`);
    return undefined;
  }
  ids.sync(id);
  const c: Ctr = {
    id,
    label: `${label} (${id.slice(0, 12)}, seed stream churn/${stream})`,
    ref: name ?? (r.chance(0.5) ? id : id.slice(0, 12)),
    net,
    script,
    stable: "running",
  };
  model.set(id, c);
  return c;
}

/** The container's whole life, decided by its own stream r. */
async function lifecycle(w: number, n: number, r: Rng): Promise<void> {
  const selfExit = r.chance(0.3);
  const exitCode = r.int(0, 120);
  const c = await start(`worker ${w} container ${n}`, `worker${w}/c${n}`, r, selfExit, exitCode);
  if (!c) return;
  const id = c.id;

  if (selfExit) {
    c.stable = undefined;
    const wr = await ctx.nsbox(["wait", c.ref]);
    if (wr.code !== 0 || wr.stdout !== `${exitCode}\n`) problem(`${c.label}: wait: ${show(["wait", c.ref], wr)}`);
    c.exitCode = exitCode;
    c.stable = "exited";
    await checkLogs(c);
  } else {
    await checkLogs(c);
    const execs = r.int(0, 6);
    for (let i = 0; i < execs; i++) await checkExec(c, r.fork(`exec${i}`), i);
    if (c.script.stderr.length === 0 && r.chance(0.3)) {
      const tail = r.int(0, 5);
      const tr = await ctx.nsbox(["logs", "--tail", String(tail), c.ref]);
      counts.logs++;
      const want = tail === 0 ? [] : c.script.stdout.slice(-tail);
      if (tr.code !== 0 || tr.stdout !== want.map((l) => `${l}\n`).join(""))
        problem(`${c.label}: logs --tail ${tail}: ${show(["logs", "--tail", String(tail), c.ref], tr)}`);
    }
    const ending = r.weighted([
      [2, "stop"],
      [1, "race"],
      [1, "rm -f"],
    ] as const);
    if (ending === "rm -f") {
      const init = await inspectOne(ctx, c.ref)
        .then((e) => ({ pid: e.State.Pid, start: startTimeOf(e.State.Pid) }))
        .catch(() => undefined);
      c.stable = undefined;
      const rr = await ctx.nsbox(["rm", "-f", c.ref]);
      counts.rms++;
      if (rr.code !== 0 || rr.stdout !== `${c.ref}\n` || rr.stderr !== "")
        problem(`${c.label}: rm -f of a running container: ${show(["rm", "-f", c.ref], rr)}`);
      // not even as a zombie: its monitor reaps it before rm ends the monitor (else the
      // host's init would, here up to 1.8 s later)
      if (init?.start !== undefined && startTimeOf(init.pid) === init.start) problem(`${c.label}: its PID 1 (${init.pid}) outlived rm -f`);
      c.stable = "removed";
      const left = await settledLeftovers(ctx, id, undefined, 10000);
      if (left.length) problem(`${c.label}: left after rm -f: ${left.join("; ")}`);
      return;
    }
    c.stable = undefined;
    const t = String(r.pick([1, 2, 10]));
    const stopping = ctx.nsbox(["stop", "-t", t, c.ref]);
    const raced = ending === "race" ? racedExec(c, r.int(0, 60)) : Promise.resolve();
    const [sr] = await Promise.all([stopping, raced]);
    counts.stops++;
    if (sr.code !== 0 || sr.stdout !== `${c.ref}\n` || sr.stderr !== "") problem(`${c.label}: stop: ${show(["stop", "-t", t, c.ref], sr)}`);
    c.exitCode = 143;
    c.stable = "exited";
    await checkLogs(c, ["TERM"], false);
  }
  const ins = await inspectOne(ctx, c.ref).catch((e: Error) => {
    problem(`${c.label}: inspect: ${e.message}`);
    return undefined;
  });
  if (ins && (ins.State.Status !== "exited" || ins.State.ExitCode !== c.exitCode))
    problem(`${c.label}: inspect says ${ins.State.Status} (${ins.State.ExitCode}), expected exited (${c.exitCode})`);
  c.stable = undefined;
  const rmArgs = r.chance(0.5) ? ["rm", c.ref] : ["rm", "-f", c.ref];
  const rr = await ctx.nsbox(rmArgs);
  counts.rms++;
  if (rr.code !== 0 || rr.stdout !== `${c.ref}\n` || rr.stderr !== "") problem(`${c.label}: rm: ${show(rmArgs, rr)}`);
  c.stable = "removed";
  const left = await settledLeftovers(ctx, id, undefined, 10000);
  if (left.length) problem(`${c.label}: left after rm: ${left.join("; ")}`);
}

type Seen = Map<string, { stable: Stable | undefined; exitCode?: number }>;
const stableNow = (): Seen => new Map([...model].map(([id, c]) => [id, { stable: c.stable, exitCode: c.exitCode }]));

/** One look: ps against the model and the kernel, and the addresses of live containers. */
async function psCheck(): Promise<void> {
  const was = stableNow();
  const args = ["ps", "-a", "--format", "json", "--no-trunc"];
  const r = await ctx.nsbox(args);
  counts.ps++;
  const is = stableNow();
  if (r.code !== 0 || r.stderr !== "") {
    problem(`ps failed: ${show(args, r)}`);
    return;
  }
  const entries = parsePs(r.stdout);
  const steady = (id: string): Stable | undefined => {
    const a = was.get(id);
    const b = is.get(id);
    return a?.stable && a.stable === b?.stable ? a.stable : undefined;
  };
  const live = new Map<string, { pid: number; ips: string[] }>();
  for (const e of entries) {
    const c = model.get(e.ID);
    if (!c) {
      unknownInPs.add(e.ID);
      continue;
    }
    if (e.State !== "running") continue;
    const inCgroup = () => pidAlive(e.Pid) && cgroupOf(e.Pid).includes(`nsbox-${e.ID}`);
    if (!isInitOf(e.Pid, e.ID)) {
      if (steady(e.ID) === "running") problem(`${c.label}: ps says running with pid ${e.Pid}, which is not a live process in its cgroup`);
      continue;
    }
    const ips = localAddresses(fibTrieOf(e.Pid));
    if (inCgroup()) live.set(e.ID, { pid: e.Pid, ips });
  }
  for (const [id, s] of was) {
    const st = steady(id);
    if (!st) continue;
    const c = model.get(id) as Ctr;
    const e = entries.find((x) => x.ID === id);
    counts.psComparisons++;
    if (st === "running" && (e?.State !== "running" || !e.Status.startsWith("Up")))
      problem(`${c.label}: running, but ps says ${e ? `${e.State} (${e.Status})` : "nothing"}`);
    if (st === "exited" && (e?.State !== "exited" || e.ExitCode !== s.exitCode || !e.Status.startsWith(`Exited (${s.exitCode})`)))
      problem(`${c.label}: exited with ${s.exitCode}, but ps says ${e ? `${e.State} ${e.ExitCode} (${e.Status})` : "nothing"}`);
    if (st === "removed" && e) problem(`${c.label}: removed, but ps still lists it as ${e.State}`);
  }
  // Addresses: the kernel's view of each live container, then the network state, then alive again.
  const holders = new Map<string, string[]>();
  for (const [id, l] of live) {
    const c = model.get(id) as Ctr;
    const want = c.net === "bridge" ? 1 : 0;
    if (l.ips.length !== want && steady(id) === "running") problem(`${c.label}: --net ${c.net} container has addresses ${JSON.stringify(l.ips)}`);
    for (const ip of l.ips) holders.set(ip, [...(holders.get(ip) ?? []), id]);
    counts.addressesSeen += l.ips.length;
  }
  const netState = readNetState();
  const stillLive = (id: string) => {
    const l = live.get(id);
    return !!l && pidAlive(l.pid) && cgroupOf(l.pid).includes(`nsbox-${id}`);
  };
  for (const [ip, holding] of holders) {
    const alive = holding.filter(stillLive);
    if (alive.length > 1) problem(`address ${ip} is held by ${alive.length} live containers at once: ${alive.map((id) => model.get(id)?.label).join(", ")}`);
    for (const id of alive)
      if (netState.addresses[ip] !== id)
        problem(`${model.get(id)?.label}: holds ${ip}, which the network state gives to ${netState.addresses[ip]?.slice(0, 12) ?? "nobody"}`);
  }
}

test("parallel run -d / exec / logs / ps / stop / rm: ps matches the kernel, logs are exact, no address twice, nothing left", async () => {
  const started = Date.now();
  let done = false;
  const checker = (async () => {
    const cr = rng.fork("checker");
    while (!done) {
      await psCheck();
      await Bun.sleep(cr.int(50, 300));
    }
  })();
  const br = rng.fork("burst");
  const burst = (await Promise.all(Array.from({ length: BURST }, (_, i) => start(`burst container ${i}`, `burst/c${i}`, br.fork(`c${i}`), false, 0)))).filter(
    (c): c is Ctr => !!c,
  );
  for (const c of burst) await checkLogs(c);
  const workers = Array.from({ length: WORKERS }, async (_, w) => {
    const wr = rng.fork(`worker${w}`);
    for (let n = 0; n < PER_WORKER; n++) {
      try {
        await lifecycle(w, n, wr.fork(`c${n}`));
      } catch (e) {
        problem(`worker ${w} container ${n}: ${(e as Error).stack ?? e}`);
      }
    }
  });
  await Promise.all(workers);
  // the burst goes in one rm -f, while the checker still looks
  for (const c of burst) c.stable = undefined;
  const rmArgs = ["rm", "-f", ...burst.map((c) => c.ref)];
  const rr = await ctx.nsbox(rmArgs);
  if (rr.code !== 0 || rr.stdout !== burst.map((c) => `${c.ref}\n`).join("") || rr.stderr !== "") problem(`rm -f of the burst: ${show(rmArgs, rr)}`);
  for (const c of burst) c.stable = "removed";
  for (const c of burst) {
    const left = await settledLeftovers(ctx, c.id, undefined, 10000);
    if (left.length) problem(`${c.label}: left after rm -f: ${left.join("; ")}`);
  }
  done = true;
  await checker;
  await psCheck();
  for (const id of unknownInPs) if (!model.has(id)) problem(`ps listed ${id}, a container no worker made`);
  const left = await ctx.nsbox(["ps", "-a", "-q", "--no-trunc"]);
  if (left.stdout !== "") problem(`containers left after every worker removed its own: ${left.stdout.trim().split("\n").join(", ")}`);
  const host = await compareHost(ctx, ids, before);
  if (Object.keys(host.settled).length) problem(`the host is not as before: ${JSON.stringify(host.settled)}`);
  console.log(`churn: ${JSON.stringify(counts)} in ${((Date.now() - started) / 1000).toFixed(1)} s, ${problems.length} problems`);
  expect(problems).toEqual([]);
}, 300000);

test("a pod created while other pod commands run keeps its name", async () => {
  const lost: string[] = [];
  // pod ps tidies the names of pods whose infra container is gone: it must not take a pod being created for one
  for (let i = 0; i < 12; i++) {
    let creating = true;
    const look = async () => {
      while (creating) await ctx.nsbox(["pod", "ps"]);
    };
    const lookers = Promise.all([look(), look()]);
    const c = await ctx.nsbox(["pod", "create", "--net", "none"]);
    creating = false;
    await lookers;
    const id = c.stdout.trim();
    expect(c.code, show(["pod", "create", "--net", "none"], c)).toBe(0);
    ids.sync(id);
    const listed = await ctx.nsbox(["pod", "ps", "--format", "json"]);
    if (!listed.stdout.includes(id)) lost.push(`pod ${id.slice(0, 12)} is not listed by pod ps after pod create returned`);
    // by id, or (once its name is lost) through its infra container
    const rm = await ctx.nsbox(["pod", "rm", "-f", id]);
    if (rm.code !== 0) await ctx.nsbox(["rm", "-f", id]);
  }
  expect(lost).toEqual([]);
}, 120000);
