/**
 * The OCI runtime-tools validation suite against crun, runc and nsbox:
 *
 *   bun test/oci/runtime-tools.ts [--runtimes crun,runc,nsbox] [--nsbox PATH]
 *       [--only NAME,...] [--timeout SEC] [--budget SEC] [--parallel] [--markdown FILE]
 *
 * runtime-tools is not part of this repository, and this repository neither
 * fetches nor builds it: the harness runs the validation programs of a build
 * made beforehand (of commit 0105384, the last that Debian 12's Go 1.19 builds),
 * found in RUNTIME_TOOLS_DIR, else /var/cache/nsbox/runtime-tools-0105384: a
 * directory holding runtimetest and validation/NAME/NAME.t. Without one, it
 * prints one line saying so and exits 0.
 *
 * Each validation program runs in its own timeout, in its own sandbox (see
 * test/helpers/oci-sandbox.ts: private cgroups, cgroup and mount namespaces),
 * with its own runtime state root and TMPDIR (where it makes its bundles),
 * all removed afterwards. The runtime is a two-line wrapper that adds
 * `--root STATE` (RUNTIME must be one executable path).
 *
 * The runtimes take turns program by program; with --budget, no program starts
 * after that many seconds (the build not counted) and an incomplete run fails.
 * Prints ok / not ok per runtime and every failure of nsbox with its reason;
 * exits 1 when nsbox passes fewer than crun (the target of issue 12) or when
 * something was left behind.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Sandbox } from "../helpers/oci-sandbox.ts";
import { parseTap, type TapResult } from "../helpers/oci-tap.ts";

const REPO = resolve(import.meta.dir, "../..");
const COMMIT = "0105384";

interface Args {
  runtimes: string[];
  nsbox: string;
  only: string[];
  timeoutSec: number;
  /** stop starting programs after this many seconds (0: none), so that make test-oci stays bounded */
  budgetSec: number;
  /** the runtimes run the same program at the same time (each in its own sandbox): the suite takes the slowest's time, not the sum */
  parallel: boolean;
  markdown?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    runtimes: ["crun", "runc", "nsbox"],
    nsbox: process.env.NSBOX ?? join(REPO, "dist/nsbox"),
    only: [],
    timeoutSec: 60,
    budgetSec: 0,
    parallel: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) die(`${f} needs a value`);
      return x as string;
    };
    if (f === "--runtimes") a.runtimes = v().split(",").filter(Boolean);
    else if (f === "--nsbox") a.nsbox = resolve(v());
    else if (f === "--only") a.only = v().split(",").filter(Boolean);
    else if (f === "--timeout") a.timeoutSec = Number(v());
    else if (f === "--budget") a.budgetSec = Number(v());
    else if (f === "--parallel") a.parallel = true;
    else if (f === "--markdown") a.markdown = resolve(v());
    else die(`unknown argument ${f} (see the comment at the top of test/oci/runtime-tools.ts)`);
  }
  return a;
}

function die(msg: string): never {
  console.error(`runtime-tools: ${msg}`);
  process.exit(2);
}

function skip(reason: string): never {
  console.log(`runtime-tools: skipped: ${reason}`);
  process.exit(0);
}

const DEFAULT_DIR = `/var/cache/nsbox/runtime-tools-${COMMIT}`;

/** The prebuilt validation programs (see the top of this file), or undefined. */
export function findBuild(): string | undefined {
  const dir = process.env.RUNTIME_TOOLS_DIR || DEFAULT_DIR;
  return existsSync(join(dir, "runtimetest")) && existsSync(join(dir, "validation")) ? dir : undefined;
}

function run(argv: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? 137, out: r.stdout.toString() + r.stderr.toString() };
}

/** The validation programs of the build: validation/NAME/NAME.t. */
function programsIn(dir: string): string[] {
  return readdirSync(join(dir, "validation"))
    .filter((d) => existsSync(join(dir, "validation", d, `${d}.t`)))
    .sort();
}

/** The runtime's executable: crun and runc by name, nsbox by path. */
function runtimeBinary(name: string, a: Args): string | undefined {
  if (name === "nsbox") return existsSync(a.nsbox) ? a.nsbox : undefined;
  return Bun.which(name) ?? undefined;
}

interface ProgramResult extends TapResult {
  program: string;
  /** why the program printed no usable TAP (timeout, crash) */
  error?: string;
  ms: number;
}

async function runProgram(BUILD: string, program: string, bin: string, timeoutSec: number): Promise<ProgramResult> {
  const work = mkdtempSync(join(tmpdir(), "nsbox-ocitest-rt-"));
  const state = join(work, "state");
  const tmp = join(work, "tmp");
  mkdirSync(state);
  mkdirSync(tmp);
  // mkdtemp's 0700 would keep a user namespace's root (linux_uid_mappings) out of the bundle
  chmodSync(work, 0o755);
  chmodSync(tmp, 0o755);
  const wrapper = join(work, "runtime");
  writeFileSync(wrapper, `#!/bin/sh\nexec ${shq(bin)} --root ${shq(state)} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const sandbox = new Sandbox();
  const started = Date.now();
  const proc = Bun.spawn(sandbox.argv([join(BUILD, "validation", program, `${program}.t`)]), {
    cwd: BUILD,
    env: { ...process.env, RUNTIME: wrapper, TMPDIR: tmp },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutSec * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(timer);
  const ms = Date.now() - started;
  const left = await sandbox.destroy();
  rmSync(work, { recursive: true, force: true });
  const tap = parseTap(out);
  // a failure without a YAML reason: the program's stderr (the runtime's message it relays) says why
  const why = err.trim().split("\n").slice(-2).join(" / ").slice(0, 300);
  for (const f of tap.failures) if (!f.reason && why) f.reason = `stderr: ${why}`;
  const r: ProgramResult = { ...tap, program, ms };
  const lastErr = (n: number) => err.trim().split("\n").slice(-n).join(" / ").slice(0, 300);
  if (timedOut) r.error = `timed out after ${timeoutSec} s`;
  else if (tap.ok + tap.notOk === 0 && tap.planned === 0) {
    // prestart_fail, poststop... print no test lines: an empty plan passes, a YAML diagnostic is their failure
    if (/^\s+---/m.test(out))
      r.error = `${out
        .replace(/^TAP version \d+$|^1\.\.0$/gm, "")
        .replace(/\s+/g, " ")
        .trim()
        .slice(0, 300)} ${lastErr(2)}`.trim();
  } else if (tap.ok + tap.notOk === 0) r.error = `no TAP (exit ${proc.exitCode}): ${lastErr(3)}`;
  else if (tap.planned !== undefined && tap.ok + tap.notOk < tap.planned)
    r.error = `stopped after ${tap.ok + tap.notOk} of ${tap.planned} (exit ${proc.exitCode}): ${lastErr(2)}`;
  if (r.error) {
    r.notOk++;
    r.failures.push({ line: "(the program)", reason: r.error });
  }
  if (left.length) throw new Error(`cgroups left behind after ${program}: ${left.join(", ")}`);
  return r;
}

function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export interface SuiteResult {
  runtime: string;
  version: string;
  programs: ProgramResult[];
  ok: number;
  notOk: number;
  skipped: number;
  seconds: number;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) skip("needs root (containers, mounts, cgroups)");
  const BUILD = findBuild();
  if (!BUILD)
    skip(
      `no runtime-tools build (set RUNTIME_TOOLS_DIR to a directory holding runtimetest and validation/*/*.t of commit ${COMMIT}; default ${DEFAULT_DIR}): the validation suite is not run`,
    );
  let programs = programsIn(BUILD);
  if (a.only.length) programs = programs.filter((p) => a.only.includes(p));
  const suites: SuiteResult[] = [];
  // the runtimes take turns program by program: load from elsewhere on the host, and a
  // budget that runs out, hit them alike
  const rts: { name: string; bin: string; version: string; results: ProgramResult[]; ms: number }[] = [];
  for (const name of a.runtimes) {
    const bin = runtimeBinary(name, a);
    if (!bin) console.log(`runtime-tools: ${name}: not installed, not run`);
    else rts.push({ name, bin, version: run([bin, "--version"]).out.split("\n")[0]?.trim() ?? "", results: [], ms: 0 });
  }
  const started = Date.now();
  let done = 0;
  for (const p of programs) {
    if (a.budgetSec && Date.now() - started > a.budgetSec * 1000) break;
    const one = async (rt: (typeof rts)[number]) => {
      const r = await runProgram(BUILD, p, rt.bin, a.timeoutSec);
      rt.results.push(r);
      rt.ms += r.ms;
      if (process.env.VERBOSE) console.log(`  ${rt.name} ${p}: ${r.ok} ok, ${r.notOk} not ok (${r.ms} ms)${r.error ? ` ${r.error}` : ""}`);
    };
    if (a.parallel) await Promise.all(rts.map(one));
    else for (const rt of rts) await one(rt);
    done++;
  }
  for (const rt of rts) {
    const s: SuiteResult = {
      runtime: rt.name,
      version: rt.version,
      programs: rt.results,
      ok: rt.results.reduce((n, r) => n + r.ok, 0),
      notOk: rt.results.reduce((n, r) => n + r.notOk, 0),
      skipped: rt.results.reduce((n, r) => n + r.skipped, 0),
      seconds: rt.ms / 1000,
    };
    suites.push(s);
    console.log(
      `runtime-tools: ${rt.name} (${rt.version}): ${s.ok} ok (${s.skipped} of them skips), ${s.notOk} not ok, ${done} programs in ${s.seconds.toFixed(0)} s`,
    );
  }
  const incomplete = done < programs.length;
  if (incomplete) console.log(`runtime-tools: the ${a.budgetSec} s budget ran out after ${done} of ${programs.length} programs (the counts cover those)`);
  const md = markdown(suites);
  if (a.markdown) writeFileSync(a.markdown, md);
  const nsbox = suites.find((s) => s.runtime === "nsbox");
  const crun = suites.find((s) => s.runtime === "crun");
  if (nsbox) {
    for (const p of nsbox.programs) for (const f of p.failures) console.log(`  nsbox not ok: ${p.program}: ${f.line}: ${f.reason}`);
  }
  if (nsbox && crun && nsbox.ok < crun.ok) {
    console.log(`runtime-tools: FAILED: nsbox passes ${nsbox.ok}, fewer than crun's ${crun.ok}`);
    process.exit(1);
  }
  if (incomplete) process.exit(1);
}

/** The results table and nsbox's failures, as bench/results.md and the README take them. */
function markdown(suites: SuiteResult[]): string {
  const out = ["| runtime | ok | of which skipped | not ok | programs | time |", "| --- | ---: | ---: | ---: | ---: | ---: |"];
  for (const s of suites) out.push(`| ${s.runtime} (${s.version}) | ${s.ok} | ${s.skipped} | ${s.notOk} | ${s.programs.length} | ${s.seconds.toFixed(0)} s |`);
  for (const s of suites) {
    const fails = s.programs.flatMap((p) => p.failures.map((f) => `- ${p.program}: ${f.line}: ${f.reason}`));
    out.push("", `**${s.runtime}: ${fails.length ? "not ok" : "no failures"}**`, "", ...fails);
  }
  return `${out.join("\n")}\n`;
}

if (import.meta.main) await main();
