/**
 * A focused stress of the windows where a detached container's monitor could
 * outlive its record (issue: the kill test's round 2): SIGKILL of `run -d`,
 * `rm -f`, `stop` or `pod create` after a random delay, then the user's repair
 * (ps -a, rm -f and pod rm -f of everything); then every process still naming
 * this stress's state root
 * (a monitor, or the nsbox cleanup it became) or in one of its containers'
 * cgroups is a leak. Not a test (bun test does not pick it up): run it by hand,
 *
 *   bun test/chaos/stress-monitor.ts [ITERATIONS] [SEED]
 *
 * with dist/nsbox built (or NSBOX_BIN=another build). It prints each leak with the op and delay that made it
 * and a count per op at the end; it kills what leaked (its own objects only).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Rng } from "./rng.ts";

const NSBOX = process.env.NSBOX_BIN ?? resolve(import.meta.dir, "../../dist/nsbox");
const N = Number(process.argv[2] ?? 100);
const seed = Number(process.argv[3] ?? Math.floor(Math.random() * 2 ** 32));
const rng = new Rng(seed, "stress-monitor");
const random = () => rng.next();
const int = (lo: number, hi: number) => rng.int(lo, hi - 1);

const tmp = mkdtempSync(join(tmpdir(), "nsbox-stress-monitor-"));
const env = { ...process.env, NSBOX_ROOT: join(tmp, "data"), NSBOX_STATE: join(tmp, "state") } as Record<string, string>;
delete env.NSBOX_DEBUG;
delete env.NSBOX_TRACE;
const rootfs = join(tmp, "rootfs");

async function nsbox(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([NSBOX, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, out, err };
}

/** Starts nsbox and SIGKILLs it after ms; true if the kill landed before it ended. */
async function killedAfter(args: string[], ms: number): Promise<{ killed: boolean; out: string }> {
  const p = Bun.spawn([NSBOX, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const out = new Response(p.stdout).text();
  await Promise.race([p.exited, Bun.sleep(ms)]);
  const killed = p.exitCode === null;
  if (killed) p.kill("SIGKILL");
  await p.exited;
  return { killed, out: await out };
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
};
const cgroups = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch {
    return "";
  }
};

/** Processes of this stress: naming its directory (monitors, cleanups), or in a cgroup of one of its containers. */
function ours(ids: Set<string>): { pid: number; what: string }[] {
  const out: { pid: number; what: string }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const cmd = cmdline(pid);
    const cg = cgroups(pid);
    const inCg = [...ids].some((id) => cg.includes(`nsbox-${id}`));
    if (cmd.includes(tmp) || inCg) out.push({ pid, what: `${cmd.slice(0, 160)}${inCg ? " (in a container's cgroup)" : ""}` });
  }
  return out;
}

const ids = new Set<string>();
function syncIds() {
  try {
    for (const n of readdirSync(env.NSBOX_STATE as string)) if (/^[0-9a-f]{64}$/.test(n)) ids.add(n);
  } catch {
    // not yet
  }
}

const mk = await nsbox(["rootfs", "busybox", rootfs]);
if (mk.code !== 0) throw new Error(`rootfs: ${mk.err}`);
console.log(`stress-monitor: ${N} iterations, seed ${seed}, ${tmp}`);

const OPS = ["run -d", "rm -f", "stop", "pod create"] as const;
const leaks: Record<string, number> = {};
const tried: Record<string, number> = {};
for (let i = 0; i < N; i++) {
  const op = OPS[i % OPS.length] as (typeof OPS)[number];
  const net = random() < 0.5 ? "none" : "bridge";
  const delay = random() < 0.5 ? int(0, 60) : int(60, 400);
  let target = "";
  if (op === "rm -f" || op === "stop") {
    const r = await nsbox(["run", "-d", "--net", net, rootfs, "sleep", "600"]);
    target = r.out.trim();
    ids.add(target);
  }
  const args = {
    "run -d": ["run", "-d", "--net", net, rootfs, "sleep", "600"],
    "rm -f": ["rm", "-f", target],
    stop: ["stop", "-t", "1", target],
    "pod create": ["pod", "create", "--net", net],
  }[op];
  const k = await killedAfter(args, delay);
  for (const l of k.out.split("\n")) if (/^[0-9a-f]{64}$/.test(l.trim())) ids.add(l.trim());
  syncIds();
  // the user's repair
  await nsbox(["ps", "-a"]);
  syncIds();
  const all = (await nsbox(["ps", "-aq", "--no-trunc"])).out.split("\n").filter(Boolean);
  if (all.length) await nsbox(["rm", "-f", ...all]);
  const pods = (await nsbox(["pod", "ps", "--format", "json"])).out.split("\n").filter(Boolean);
  if (pods.length) await nsbox(["pod", "rm", "-f", ...pods.map((l) => (JSON.parse(l) as { Id: string }).Id)]);
  const left = (await nsbox(["ps", "-aq", "--no-trunc"])).out.trim();
  // what the repair left (a monitor's cleanup may take a moment to end: give it 2 s)
  let procs = ours(ids);
  for (let t = 0; t < 20 && procs.length; t++) {
    await Bun.sleep(100);
    procs = ours(ids);
  }
  const label = `${op}${k.killed ? "" : " (finished first)"} at ${delay} ms --net ${net}`;
  tried[op] = (tried[op] ?? 0) + 1;
  if (procs.length || left) {
    leaks[op] = (leaks[op] ?? 0) + 1;
    console.log(`LEAK #${i} ${label}: containers left [${left.replace(/\n/g, " ")}]; processes ${JSON.stringify(procs)}`);
    for (const p of procs) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await Bun.sleep(200);
    await nsbox(["ps", "-a"]);
  }
}
console.log(`stress-monitor: seed ${seed}: tried ${JSON.stringify(tried)}, leaks ${JSON.stringify(leaks)}`);
await nsbox(["network", "prune"]);
rmSync(tmp, { recursive: true, force: true });
