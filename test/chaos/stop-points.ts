/**
 * Every named step (NSBOX_TRACE_STOP, src/trace.ts) of run -d, pod create, rm -f
 * and pod rm -f, interrupted there for sure: nsbox stops itself at the step, and
 * is SIGKILLed (or, for a creation, meets an rm -f of its container before it
 * goes on). Then the user's repair (ps -a, rm -f, pod rm -f); whatever process
 * of this run is left (a monitor, its cleanup, a container) is a leak.
 * Not a test file: run it by hand, with dist/nsbox built:
 *
 *   bun test/chaos/stop-points.ts [REPEATS]
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readOr, stateLetter } from "../helpers/proc.ts";

const NSBOX = resolve(import.meta.dir, "../../dist/nsbox");
const REPEATS = Number(process.argv[2] ?? 1);
const tmp = mkdtempSync(join(tmpdir(), "nsbox-stop-points-"));
const stateRoot = join(tmp, "state");
const env = { ...process.env, NSBOX_ROOT: join(tmp, "data"), NSBOX_STATE: stateRoot } as Record<string, string>;
delete env.NSBOX_DEBUG;
delete env.NSBOX_TRACE;
delete env.NSBOX_TRACE_STOP;
const rootfs = join(tmp, "rootfs");

async function nsbox(args: string[], extra: Record<string, string> = {}) {
  const p = Bun.spawn([NSBOX, ...args], { env: { ...env, ...extra }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, out, err };
}

/** Starts nsbox stopping at point; resolves when it is stopped there (true) or ended first (false). */
async function startStopped(args: string[], point: string) {
  const p = Bun.spawn([NSBOX, ...args], { env: { ...env, NSBOX_TRACE_STOP: point }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const out = new Response(p.stdout).text();
  for (let i = 0; i < 3000 && p.exitCode === null; i++) {
    if (stateLetter(p.pid) === "T") return { p, out, stopped: true };
    await Bun.sleep(5);
  }
  return { p, out, stopped: false };
}

const ids = new Set<string>();
const syncIds = () => {
  for (const n of readdirSync(stateRoot)) if (/^[0-9a-f]{64}$/.test(n)) ids.add(n);
};

function leftovers(): string[] {
  const out: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const st = stateLetter(Number(e));
    if (st === "Z" || st === "") continue;
    const cmd = readOr(`/proc/${e}/cmdline`).replaceAll("\0", " ").trim();
    const m = /nsbox-([0-9a-f]{64})/.exec(readOr(`/proc/${e}/cgroup`));
    if (cmd.includes(tmp) || (m && ids.has(m[1] as string))) out.push(`${e} ${cmd.slice(0, 120)}${m ? " (in a container's cgroup)" : ""}`);
  }
  return out;
}

async function podIds(): Promise<string[]> {
  const r = await nsbox(["pod", "ps", "--format", "json"]);
  return r.out
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { Id: string }).Id);
}

async function repair() {
  await nsbox(["ps", "-a"]);
  syncIds();
  const all = (await nsbox(["ps", "-aq", "--no-trunc"])).out.split("\n").filter(Boolean);
  if (all.length) await nsbox(["rm", "-f", ...all]);
  const pods = await podIds();
  if (pods.length) await nsbox(["pod", "rm", "-f", ...pods]);
}

async function leaked(label: string): Promise<boolean> {
  let left = leftovers();
  for (let i = 0; i < 30 && left.length; i++) {
    await Bun.sleep(100);
    left = leftovers();
  }
  const records = (await nsbox(["ps", "-aq", "--no-trunc"])).out.trim();
  if (!left.length) return false;
  console.log(`LEAK ${label}: containers listed [${records.replace(/\n/g, " ")}]; processes ${JSON.stringify(left)}`);
  for (const l of left) {
    try {
      process.kill(Number(l.split(" ")[0]), "SIGKILL");
    } catch {
      // gone
    }
  }
  await Bun.sleep(300);
  await repair();
  return true;
}

const CREATE_POINTS = ["state created", "programs built", "spawned", "child created", "container started", "state running"];
const RM_POINTS = ["rm: init killed", "rm: keeper ended"];
const creations: Record<string, string[]> = {
  "run -d": ["run", "-d", "--net", "none", "ROOTFS", "sleep", "600"],
  "pod create": ["pod", "create", "--net", "none"],
};

if ((await nsbox(["rootfs", "busybox", rootfs])).code !== 0) throw new Error("rootfs busybox failed");
const results: Record<string, string> = {};
let leaks = 0;
for (let rep = 0; rep < REPEATS; rep++) {
  for (const [what, args0] of Object.entries(creations)) {
    const args = args0.map((a) => (a === "ROOTFS" ? rootfs : a));
    for (const point of CREATE_POINTS) {
      // 1. SIGKILLed at the step, then the repair
      const k = await startStopped(args, point);
      k.p.kill("SIGKILL");
      await k.p.exited;
      syncIds();
      await repair();
      let label = `${what} killed at "${point}"${k.stopped ? "" : " (never reached)"}`;
      let bad = await leaked(label);
      leaks += Number(bad);
      results[label] = bad ? "LEAK" : "ok";
      // 2. rm -f (or pod rm -f) of the container while its creator waits at the step, then the creator goes on
      const c = await startStopped(args, point);
      syncIds();
      const fresh = [...ids].filter((id) => readdirSync(stateRoot).includes(id));
      if (what === "run -d" && fresh.length !== 1) console.log(`(${fresh.length} containers in the state at "${point}")`);
      const targets = what === "pod create" ? await podIds() : fresh;
      const rmArgs = [...(what === "pod create" ? ["pod", "rm", "-f"] : ["rm", "-f"]), ...targets];
      const rm = targets.length ? nsbox(rmArgs) : Promise.resolve({ code: -1, out: "", err: "nothing to remove" });
      await Bun.sleep(300);
      c.p.kill("SIGCONT");
      await c.p.exited;
      const rmr = await rm;
      syncIds();
      label = `${what} stopped at "${point}"${c.stopped ? "" : " (never reached)"}, ${what === "pod create" ? "pod rm -f" : "rm -f"} meanwhile (exit ${rmr.code}), then it went on (exit ${c.p.exitCode})`;
      bad = await leaked(label);
      // the repair only after the check: what rm -f said it removed must be gone
      await repair();
      bad = bad || (await leaked(`${label}, after the repair`));
      leaks += Number(bad);
      results[label] = bad ? "LEAK" : "ok";
    }
  }
  for (const point of RM_POINTS) {
    for (const verb of ["rm", "pod rm"]) {
      const made = verb === "rm" ? await nsbox(["run", "-d", "--net", "none", rootfs, "sleep", "600"]) : await nsbox(["pod", "create", "--net", "none"]);
      syncIds();
      const k = await startStopped([...verb.split(" "), "-f", made.out.trim()], point);
      k.p.kill("SIGKILL");
      await k.p.exited;
      await repair();
      const label = `${verb} -f killed at "${point}"${k.stopped ? "" : " (never reached)"}`;
      const bad = await leaked(label);
      leaks += Number(bad);
      results[label] = bad ? "LEAK" : "ok";
    }
  }
}
for (const [k, v] of Object.entries(results)) console.log(`${v.padEnd(4)} ${k}`);
console.log(`stop-points: ${leaks} leaks in ${REPEATS} repeat(s) of ${Object.keys(results).length} cases`);
await nsbox(["network", "prune"]);
rmSync(tmp, { recursive: true, force: true });
