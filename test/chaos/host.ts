/**
 * What the chaos suite compares on the host, limited to what its own state and
 * data roots made: other engineers run nsbox on this machine at the same time,
 * and the bridge nsbox0 and nftables table are shared by every nsbox user, so
 * only this suite's containers count (their ids, collected as they appear),
 * never the bridge itself or another root's objects.
 */
import { type FSWatcher, mkdirSync, readdirSync, readFileSync, readlinkSync, watch } from "node:fs";
import { join } from "node:path";
import { nsboxCgroupDirs } from "../helpers/cgroup.ts";
import { idsInState } from "../helpers/lifecycle.ts";
import { nsboxRules, readNetState } from "../helpers/net.ts";
import { ls, lsRecursive, type NsboxContext } from "../helpers/nsbox.ts";

const ID = /^[0-9a-f]{64}$/;

/**
 * Every container id this suite's roots ever held: the state root and the data
 * root's containers/ are watched (a SIGKILLed nsbox may leave a cgroup or a veth
 * of an id whose state dir is already gone), and scanned on sync().
 */
export class Ids {
  readonly all = new Set<string>();
  private readonly watchers: FSWatcher[] = [];

  constructor(private readonly ctx: NsboxContext) {
    const containers = join(ctx.dataRoot, "containers");
    mkdirSync(ctx.stateRoot, { recursive: true, mode: 0o711 });
    mkdirSync(containers, { recursive: true, mode: 0o700 });
    for (const dir of [ctx.stateRoot, containers]) {
      this.watchers.push(
        watch(dir, (_ev, file) => {
          if (file && ID.test(file)) this.all.add(file);
          else if (file?.startsWith(".rm-")) this.all.add(file.slice(4, 68));
        }),
      );
    }
  }

  /** Adds what the roots hold now (and ids seen elsewhere, e.g. printed by run -d). */
  sync(...more: string[]): Set<string> {
    for (const id of idsInState(this.ctx.stateRoot)) this.all.add(id);
    for (const e of ls(join(this.ctx.dataRoot, "containers"))) if (ID.test(e)) this.all.add(e);
    for (const id of more) if (ID.test(id)) this.all.add(id);
    return this.all;
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
  }
}

export type HostSnapshot = {
  /** mountinfo lines naming the suite's directory or one of its containers */
  mounts: string[];
  /** host ends of veth pairs of the suite's containers (nsb<12 hex>) */
  links: string[];
  /** rules of nsbox's nftables table that belong to the suite's containers */
  nft: string[];
  /** nsbox-<id> cgroup directories of the suite's containers, in every hierarchy */
  cgroups: string[];
  /** everything below the state root */
  state: string[];
  /** everything below the data root's containers/ (layers) */
  layers: string[];
  /** processes of the suite: command line or cwd/root in its directory, or in one of its containers' cgroups */
  processes: string[];
  /** addresses, ports and owner records of the shared network state that belong to the suite */
  allocations: string[];
};

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function link(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}

/** Live (non-zombie) processes that belong to the suite, as "pid: command (why)". */
export function suiteProcesses(tmp: string, ids: Set<string>): string[] {
  const out: string[] = [];
  const inTmp = (p: string) => p === tmp || p.startsWith(`${tmp}/`);
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const stat = read(`/proc/${e}/stat`);
    const st = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    if (!stat || st === "Z" || st === "X") continue;
    const cmd = read(`/proc/${e}/cmdline`).replaceAll("\0", " ").trim();
    let why = "";
    if (cmd.includes(tmp)) why = "command line";
    else if (inTmp(link(`/proc/${e}/cwd`))) why = "cwd";
    else if (inTmp(link(`/proc/${e}/root`))) why = "root";
    else {
      const m = /nsbox-([0-9a-f]{64})/.exec(read(`/proc/${e}/cgroup`));
      if (m && ids.has(m[1] as string)) why = `cgroup of ${(m[1] as string).slice(0, 12)}`;
    }
    if (why) out.push(`${e}: ${cmd.slice(0, 300)} (${why})`);
  }
  return out.sort();
}

/** The suite's share of the host, now. */
export function hostSnapshot(ctx: NsboxContext, ids: Ids): HostSnapshot {
  const known = ids.sync();
  const short = new Set([...known].map((id) => id.slice(0, 12)));
  const mine = (id: string) => known.has(id);
  const net = readNetState();
  const mountinfo = read("/proc/self/mountinfo").split("\n").filter(Boolean);
  return {
    mounts: mountinfo.filter((l) => l.includes(ctx.tmp) || [...known].some((id) => l.includes(id))).sort(),
    links: ls("/sys/class/net").filter((n) => /^nsb[0-9a-f]{12}$/.test(n) && short.has(n.slice(3))),
    nft: nsboxRules()
      .filter((r) => r.comment && mine(r.comment.replace(/^nsbox:/, "")))
      .map((r) => `${r.chain} ${r.comment}${r.dport ? ` dport ${r.dport}` : ""}`)
      .sort(),
    cgroups: nsboxCgroupDirs().filter((d) => mine(d.slice(d.lastIndexOf("nsbox-") + 6))),
    // names/ and pods/ stay once made (empty): what they hold counts; seccomp/ is a
    // cache of compiled filters (one file per profile and capability set, kept on purpose)
    state: lsRecursive(ctx.stateRoot).filter((e) => e !== "names" && e !== "pods" && e !== "seccomp" && !e.startsWith("seccomp/")),
    layers: lsRecursive(join(ctx.dataRoot, "containers")),
    processes: suiteProcesses(ctx.tmp, known),
    allocations: [
      ...Object.entries(net.addresses)
        .filter(([, id]) => mine(id) || net.owners[id] === ctx.stateRoot)
        .map(([ip, id]) => `address ${ip} -> ${id.slice(0, 12)}`),
      ...Object.entries(net.ports)
        .filter(([, id]) => mine(id) || net.owners[id] === ctx.stateRoot)
        .map(([k, id]) => `port ${k} -> ${id.slice(0, 12)}`),
      ...Object.entries(net.owners)
        .filter(([id, root]) => mine(id) || root === ctx.stateRoot)
        .map(([id]) => `owner record of ${id.slice(0, 12)}`),
    ].sort(),
  };
}

/** What each list of `now` has that `before` had not (empty object: nothing). */
export function added(before: HostSnapshot, now: HostSnapshot): Partial<HostSnapshot> {
  const out: Partial<HostSnapshot> = {};
  for (const k of Object.keys(now) as (keyof HostSnapshot)[]) {
    const was = new Set(before[k]);
    const extra = now[k].filter((x) => !was.has(x));
    if (extra.length) out[k] = extra;
  }
  return out;
}

/**
 * Polls until nothing was added since `before` or settleMs passes; returns what
 * was added at the first look ("atOnce") and at the last ("settled").
 */
export async function compareHost(
  ctx: NsboxContext,
  ids: Ids,
  before: HostSnapshot,
  settleMs = 10000,
): Promise<{ atOnce: Partial<HostSnapshot>; settled: Partial<HostSnapshot> }> {
  const atOnce = added(before, hostSnapshot(ctx, ids));
  let settled = atOnce;
  const end = Date.now() + settleMs;
  while (Object.keys(settled).length && Date.now() < end) {
    await Bun.sleep(200);
    settled = added(before, hostSnapshot(ctx, ids));
  }
  return { atOnce, settled };
}

/** Control bytes (C0 but newline, DEL, C1) in text. */
export const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/**
 * What is wrong with an nsbox command's stderr (empty: nothing): each line is
 * "nsbox: ..." with no control bytes, no stack trace, no raw error of Bun or
 * of the kernel (ENOENT: ..., ESRCH: ...), at most maxErrors error lines.
 */
export function stderrProblems(stderr: string, maxErrors = 1): string[] {
  const out: string[] = [];
  const lines = stderr.split("\n").filter((l, i, a) => l !== "" || i < a.length - 1);
  let errors = 0;
  for (const l of lines) {
    if (CONTROL.test(l)) out.push(`control byte in ${JSON.stringify(l.slice(0, 200))}`);
    if (/^\s+at /.test(l) || /^\s*at .*:\d+:\d+\)?$/.test(l)) out.push(`stack trace line ${JSON.stringify(l.slice(0, 200))}`);
    if (/^error: |\b(TypeError|RangeError|ReferenceError|SyntaxError|AggregateError)\b|Out of memory|panic|Bun v\d/.test(l))
      out.push(`internal error ${JSON.stringify(l.slice(0, 200))}`);
    if (/\bE[A-Z]{2,}: [a-z]/.test(l)) out.push(`raw system error ${JSON.stringify(l.slice(0, 200))}`);
    if (!l.startsWith("nsbox: ")) out.push(`not an nsbox line: ${JSON.stringify(l.slice(0, 200))}`);
    else if (!l.startsWith("nsbox: warning: ")) errors++;
  }
  if (errors > maxErrors) out.push(`${errors} error lines (at most ${maxErrors} expected)`);
  return out;
}
