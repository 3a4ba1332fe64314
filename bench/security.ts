/**
 * Section "security": what docker's security defaults (capabilities, the
 * seccomp filter nsbox compiles itself, masked paths, device rules) cost.
 *
 *  1. start-to-exit of `run ROOTFS /bin/true` with the defaults against
 *     --privileged and against seccomp=unconfined, nsbox and crun (crun's own
 *     `crun spec` defaults with and without the same seccomp profile) in one
 *     hyperfine run;
 *  2. the filter's cost per system call, timed inside the container by
 *     bench/getppid.c (so start-up is not in it): nsbox with its default
 *     profile against seccomp=unconfined, and crun with that same resolved
 *     profile in config.json (crun compiles it with libseccomp) against crun
 *     without one.
 */
import { chmodSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CAPS } from "../src/security/capabilities.ts";
import { compileSeccomp, defaultSeccomp, type LinuxSeccomp } from "../src/security/seccomp/index.ts";
import { nativeArch } from "../src/security/seccomp-policy.ts";
import {
  type Arg,
  type BenchContext,
  BenchError,
  exec,
  hyperfine,
  makeBundle,
  median,
  mustExec,
  mustRunOnce,
  nsboxArgv,
  RATIO_NOTE,
  REPO,
  runtimeArgv,
  type SectionResult,
  type Stats,
} from "./lib.ts";

export const title = "cost of the security defaults (capabilities, seccomp, masked paths, devices)";

const TRUE = ["/bin/true"];
const UNCONFINED = ["--security-opt", "seccomp=unconfined"];
/** getppid() and personality() calls per container run, each (bench/getppid.c splits them into blocks) */
const CALLS = 1_000_000;

/** Why the section cannot run here, or undefined. */
function missing(ctx: BenchContext): string | undefined {
  if (!Bun.which("crun")) return "skipped: crun is not installed (the filter's cost is measured against crun's)";
  if (!ctx.nsboxHas("privileged") || !ctx.nsboxHas("security-opt")) return "skipped: this nsbox has no --privileged/--security-opt (rebuild it: make build)";
  if (!Bun.which("gcc")) return "skipped: gcc is not installed (it builds bench/getppid.c; apt-get install -y gcc libc6-dev)";
  return undefined;
}

/**
 * docker's default profile as nsbox resolves it for its default capabilities,
 * in OCI linux.seccomp form (what crun gets too), and nsbox's filter for it.
 * Straight from the compiler: nsbox's cache of compiled filters lives in its
 * state root, which the bench leaves to the containers (ctx.env).
 */
function defaultProfile(): { profile: LinuxSeccomp; insns: number } {
  const arch = nativeArch();
  const { unknown: _, ...profile } = defaultSeccomp({ caps: [...DEFAULT_CAPS], arch });
  // config.json is JSON: an argument value past 2^53 (a bigint here) would need the exact digits, which JSON.stringify cannot write
  JSON.stringify(profile, (_k, v) => {
    if (typeof v === "bigint") throw new BenchError(`docker's profile has the argument value ${v}, which the bench cannot write into crun's config.json`);
    return v;
  });
  return { profile, insns: compileSeccomp(profile, arch).filter.length / 8 };
}

// ---------------------------------------------------------------- 1. start-to-exit

interface StartResult {
  table: SectionResult["tables"][number];
  spread: string;
  target: string;
}

function startCost(ctx: BenchContext, profile: object): StartResult {
  const cmds: { name: string; argv: Arg[] }[] = [
    { name: "nsbox default", argv: nsboxArgv(ctx, ["--net", "none"], TRUE) },
    { name: "nsbox privileged", argv: nsboxArgv(ctx, ["--net", "none", "--privileged"], TRUE) },
    { name: "nsbox unconfined", argv: nsboxArgv(ctx, ["--net", "none", ...UNCONFINED], TRUE) },
    { name: "crun profile", argv: runtimeArgv(ctx, "crun", makeBundle(ctx, "crun", { args: TRUE, cgroupsPath: ctx.cgroups.next(), seccomp: profile })) },
    { name: "crun no seccomp", argv: runtimeArgv(ctx, "crun", makeBundle(ctx, "crun", { args: TRUE, cgroupsPath: ctx.cgroups.next() })) },
  ];
  // One plain run each first: a contender that cannot start here fails with its own message, not hyperfine's.
  for (const c of cmds) mustRunOnce(ctx, c.name, c.argv);
  const s = hyperfine(ctx, cmds);
  const get = (name: string) => s.get(name) as Stats;
  const [def, priv, unc] = [get("nsbox default"), get("nsbox privileged"), get("nsbox unconfined")];
  const [cp, cn] = [get("crun profile"), get("crun no seccomp")];
  const added = (def.median / priv.median - 1) * 100;
  const addedCpu = ((def.cpu ?? 0) / (priv.cpu ?? 1) - 1) * 100;
  return {
    table: {
      title: `run --net none ROOTFS /bin/true: ${ctx.opts.runs} runs each, the five commands in one hyperfine run (interleaved rounds, ${ctx.opts.warmup} warm-up each)`,
      rows: [
        { metric: "defaults, median (ms)", values: { nsbox: def.median, crun: cp.median }, digits: 1 },
        { metric: "seccomp=unconfined, median (ms)", values: { nsbox: unc.median, crun: cn.median }, digits: 1 },
        { metric: "--privileged, median (ms)", values: { nsbox: priv.median }, digits: 1 },
        { metric: "defaults / --privileged", values: { nsbox: def.median / priv.median }, digits: 3 },
        { metric: "defaults / seccomp=unconfined", values: { nsbox: def.median / unc.median, crun: cp.median / cn.median }, digits: 3 },
        { metric: "CPU (user+sys), defaults, mean (ms)", values: { nsbox: def.cpu, crun: cp.cpu }, digits: 1 },
        { metric: "CPU (user+sys), seccomp=unconfined, mean (ms)", values: { nsbox: unc.cpu, crun: cn.cpu }, digits: 1 },
        { metric: "CPU (user+sys), --privileged, mean (ms)", values: { nsbox: priv.cpu }, digits: 1 },
        { metric: "CPU, defaults / --privileged", values: { nsbox: (def.cpu ?? 0) / (priv.cpu ?? 1) }, digits: 3 },
      ],
    },
    spread: [...s].map(([name, x]) => `${name} ${x.mean.toFixed(1)} ± ${x.stddev.toFixed(1)}`).join(", "),
    target: `the security steps add ${added.toFixed(1)}% to nsbox's median wall time (target: at most 5%${added <= 5 ? "" : ", over it"}) and ${addedCpu.toFixed(1)}% to its CPU time`,
  };
}

// ---------------------------------------------------------------- 2. per-syscall cost

/** ns per call: CPU time of the probe's thread, and wall-clock time */
interface Cost {
  cpu: number;
  wall: number;
}

interface Probe {
  seccomp: string;
  getppid: Cost;
  personality: Cost;
}

/** Builds bench/getppid.c (static: the rootfs has no libc); returns the binary, or why it could not be built. */
function buildProbe(ctx: BenchContext): { bin: string } | { skipped: string } {
  const bin = join(ctx.tmp, "getppid");
  const r = exec(["gcc", "-static", "-O2", "-o", bin, join(REPO, "bench/getppid.c")]);
  if (r.code !== 0) return { skipped: `skipped: gcc -static cannot build bench/getppid.c (apt-get install -y libc6-dev): ${r.stderr.trim().split("\n")[0]}` };
  return { bin };
}

/** A private copy of the rootfs with the probe at /getppid (the shared rootfs is never written). */
function probeRootfs(ctx: BenchContext, bin: string): string {
  const rootfs = join(ctx.tmp, "rootfs-security");
  mustExec(["cp", "-a", ctx.rootfs, rootfs]);
  copyFileSync(bin, join(rootfs, "getppid"));
  chmodSync(join(rootfs, "getppid"), 0o755);
  return rootfs;
}

function parseProbe(name: string, stdout: string): Probe {
  const kv = new Map(stdout.split("\n").map((l) => [l.split(" ")[0] ?? "", l.split(" ").slice(1)]));
  const cost = (key: string): Cost => {
    const [cpu, wall] = (kv.get(key) ?? []).map(Number);
    if (!(cpu && cpu > 0 && wall && wall > 0)) throw new BenchError(`${name}: bench/getppid.c printed ${JSON.stringify(stdout)}`);
    return { cpu, wall };
  };
  return { seccomp: (kv.get("seccomp") ?? []).join(" "), getppid: cost("getppid"), personality: cost("personality") };
}

interface SyscallResult {
  table: SectionResult["tables"][number];
  modes: string;
  wall: string;
}

function syscallCost(ctx: BenchContext, profile: object, bin: string): SyscallResult {
  const rootfs = probeRootfs(ctx, bin);
  const pctx = { ...ctx, rootfs };
  const args = ["/getppid", String(CALLS)];
  // filtered: the probe must see "Seccomp: 2" (a filter is loaded), else "Seccomp: 0" (none), or it measures the wrong thing
  const cmds: { name: string; filtered: boolean; argv: Arg[] }[] = [
    { name: "nsbox default", filtered: true, argv: nsboxArgv(pctx, ["--net", "none"], args) },
    { name: "nsbox unconfined", filtered: false, argv: nsboxArgv(pctx, ["--net", "none", ...UNCONFINED], args) },
    {
      name: "crun profile",
      filtered: true,
      argv: runtimeArgv(ctx, "crun", makeBundle(pctx, "crun", { args, cgroupsPath: ctx.cgroups.next(), seccomp: profile })),
    },
    {
      name: "crun no seccomp",
      filtered: false,
      argv: runtimeArgv(ctx, "crun", makeBundle(pctx, "crun", { args, cgroupsPath: ctx.cgroups.next() })),
    },
  ];
  // a few container runs, each timing 10^6 calls of each syscall inside; interleaved and rotated so that load from elsewhere hits all alike
  const reps = Math.min(11, Math.max(3, Math.floor(ctx.opts.runs / 3)));
  const got = new Map(cmds.map((c) => [c.name, [] as Probe[]]));
  const modes = new Map<string, string>();
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < cmds.length; i++) {
      const c = cmds[(i + r) % cmds.length] as (typeof cmds)[number];
      const p = parseProbe(c.name, mustRunOnce(ctx, c.name, c.argv).stdout);
      const mode = p.seccomp.split(" ")[0];
      if ((mode === "2") !== c.filtered)
        throw new BenchError(`${c.name}: the probe sees "Seccomp: ${p.seccomp}", expected ${c.filtered ? "a filter (mode 2)" : "none (mode 0)"}`);
      modes.set(c.name, p.seccomp);
      got.get(c.name)?.push(p);
    }
  }
  const ns = (name: string, key: "getppid" | "personality", clock: keyof Cost = "cpu") => median((got.get(name) ?? []).map((p) => p[key][clock]));
  const row = (metric: string, f: (c: "nsbox" | "crun") => number) => ({ metric, values: { nsbox: f("nsbox"), crun: f("crun") }, digits: 1 });
  const on = { nsbox: "nsbox default", crun: "crun profile" };
  const off = { nsbox: "nsbox unconfined", crun: "crun no seccomp" };
  const wall = (["getppid", "personality"] as const).map((k) => `${k} ${cmds.map((c) => `${c.name} ${ns(c.name, k, "wall").toFixed(1)}`).join(", ")}`);
  return {
    modes: [...modes].map(([name, m]) => `${name} ${m}`).join(", "),
    wall: wall.join("; "),
    table: {
      title: `ns per syscall (CPU time of the calling thread), timed inside the container: median of ${reps} container runs of ${CALLS} calls each; on the "added" rows nsbox/crun = nsbox's added cost / crun's (target: at most 1)`,
      rows: [
        row("getppid(), default profile (ns)", (c) => ns(on[c], "getppid")),
        row("getppid(), no filter (ns)", (c) => ns(off[c], "getppid")),
        row("getppid(): added by the filter (ns)", (c) => ns(on[c], "getppid") - ns(off[c], "getppid")),
        row("personality(0xffffffff), default profile (ns)", (c) => ns(on[c], "personality")),
        row("personality(0xffffffff), no filter (ns)", (c) => ns(off[c], "personality")),
        row("personality(0xffffffff): added by the filter (ns)", (c) => ns(on[c], "personality") - ns(off[c], "personality")),
      ],
    },
  };
}

// ---------------------------------------------------------------- the section

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const why = missing(ctx);
  if (why) return { title, tables: [], notes: [], skipped: why };
  const probe = buildProbe(ctx);
  if ("skipped" in probe) return { title, tables: [], notes: [], skipped: probe.skipped };
  const { profile, insns } = defaultProfile();
  const start = startCost(ctx, profile);
  const sys = syscallCost(ctx, profile, probe.bin);
  return {
    title,
    tables: [start.table, sys.table],
    notes: [
      RATIO_NOTE,
      start.target,
      `latency mean ± stddev (ms): ${start.spread}`,
      "nsbox keeps each compiled seccomp filter in its state root (keyed by profile, capabilities and kernel): the first run compiles it, the warm-up runs load it, as every run after the first on a real host does",
      "CPU: hyperfine's user+system time of the whole command (wrapper, runtime, container), which load from elsewhere on the host stretches less than the wall-clock medians",
      "defaults: nsbox's (docker's capabilities, seccomp profile, masked and read-only paths, device rules); crun's are `crun spec`'s (3 capabilities, masked paths, deny-all devices) plus nsbox's resolved docker profile in linux.seccomp; crun has no --privileged here (n/a)",
      `the seccomp profile: docker's default resolved by nsbox for docker's capabilities (${insns} BPF instructions in nsbox's compiled filter); crun gets the same profile and compiles it with libseccomp`,
      "getppid() is allowed unconditionally: since Linux 5.11 the kernel's seccomp action cache answers such a syscall without running the BPF program, so its added cost is the kernel's seccomp entry path alone, the same whatever the filter",
      "personality(0xffffffff) (a query that changes nothing) is allowed by docker's profile only for five argument values: no cache can answer it, the filter runs and compares the argument on every call, so its added cost is the BPF program's own",
      `the probe (bench/getppid.c, gcc -static -O2) times blocks of calls with CLOCK_THREAD_CPUTIME_ID (the syscall and the filter run in the thread's kernel time; other processes cannot stretch it) and checks /proc/self/status (Seccomp mode, filters): ${sys.modes}`,
      `the same calls by the wall clock (CLOCK_MONOTONIC, ns, median): ${sys.wall}`,
    ],
  };
}
