/**
 * `make bench` = `bun bench/run.ts [SECTION...] [--runs N] [--warmup N] [--mem-runs N] [--nsbox PATH]`
 *
 * Runs the benchmark sections (all, or the ones named), prints each section's
 * table, and writes bench/results.md with the host, the versions and every
 * table, ready to paste into the README. Sections not run this time are kept
 * from the previous results.md (marked so), and so is its hand-written
 * "History (kept across runs)" part at the end. Every number
 * is nsbox against crun, runc and bwrap measured in the same run, as ratios.
 *
 * Exit status: 0 when every section ran (or was skipped for a missing nsbox
 * feature) and nothing was left behind; 1 otherwise.
 */
import { readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import {
  type BenchContext,
  BenchError,
  cleanupContext,
  DEFAULT_NSBOX,
  exec,
  makeContext,
  type Options,
  REPO,
  renderMarkdown,
  renderTargetsMarkdown,
  renderTargetsText,
  renderText,
  type SectionResult,
} from "./lib.ts";

/**
 * The sections, in order. To add one: write bench/NAME.ts exporting
 * `async function run(ctx: BenchContext): Promise<SectionResult>` (see
 * start.ts), and add `{ name, file }` here.
 */
export const SECTIONS: { name: string; file: string }[] = [
  { name: "start", file: "./start.ts" },
  { name: "limits", file: "./limits.ts" },
  { name: "exec", file: "./exec.ts" },
  { name: "idle", file: "./idle.ts" },
  { name: "foreground", file: "./foreground.ts" },
  { name: "net", file: "./net.ts" },
  { name: "security", file: "./security.ts" },
  { name: "images", file: "./images.ts" },
  { name: "image-store", file: "./image-store.ts" },
  { name: "rootless", file: "./rootless.ts" },
  { name: "oci", file: "./oci.ts" },
  // placeholders for sections still being written elsewhere, e.g.:
  // { name: "tar", file: "./tar.ts" },
];

interface SectionModule {
  run(ctx: BenchContext): Promise<SectionResult>;
}

const USAGE = `usage: bun bench/run.ts [SECTION...] [--runs N] [--warmup N] [--mem-runs N] [--nsbox PATH]
sections: ${SECTIONS.map((s) => s.name).join(", ")} (default: all)`;

/** Defaults sized for a 2-core machine: the whole `make bench` stays well under five minutes. */
function parseArgs(argv: string[]): { opts: Options; names: string[] } {
  const opts: Options = { runs: 100, warmup: 5, memRuns: 15, nsbox: DEFAULT_NSBOX };
  let memRunsGiven = false;
  const names: string[] = [];
  const count = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new BenchError(`${flag} needs a whole number of at least ${min}, got "${v ?? ""}"\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (flag === "--runs") opts.runs = count(flag, value(), 2);
    else if (flag === "--warmup") opts.warmup = count(flag, value(), 0);
    else if (flag === "--mem-runs") {
      opts.memRuns = count(flag, value(), 1);
      memRunsGiven = true;
    } else if (flag === "--nsbox") opts.nsbox = value() ?? "";
    else if (a.startsWith("-")) throw new BenchError(`unknown flag ${a}\n${USAGE}`);
    else if (!SECTIONS.some((s) => s.name === a)) throw new BenchError(`unknown section "${a}"\n${USAGE}`);
    else names.push(a);
  }
  // a short --runs (a quick look) also shortens the memory runs, which are not timed by hyperfine
  if (!memRunsGiven) opts.memRuns = Math.min(opts.memRuns, opts.runs);
  return { opts, names: names.length ? names : SECTIONS.map((s) => s.name) };
}

function firstLine(argv: string[]): string {
  const r = exec(argv);
  return (r.stdout || r.stderr).trim().split("\n")[0] ?? "?";
}

/** The facts a reader needs to compare results.md from different machines. */
function hostFacts(ctx: BenchContext): string[] {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "?";
  // the tree the measured binary was built in (--nsbox may point into another checkout than this bench's)
  const git = exec(["git", "-C", dirname(realpathSync(ctx.opts.nsbox)), "describe", "--always", "--dirty"]).stdout.trim();
  return [
    `date: ${new Date().toISOString()}`,
    `kernel: ${firstLine(["uname", "-sr"])}`,
    `CPU: ${cpu} (${cpus().length} cores)`,
    `cgroups: ${ctx.wrapper.umountUnified ? "hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified, unmounted inside the wrapper)" : "no hybrid unified mount"}; bench cgroup ${ctx.cgroups.parent}`,
    `nsbox: ${firstLine([ctx.opts.nsbox, "--version"])}${git ? ` (${ctx.opts.nsbox}, built ${statSync(ctx.opts.nsbox).mtime.toISOString()} in git ${git})` : ` (${ctx.opts.nsbox})`}`,
    `crun: ${firstLine(["crun", "--version"])}`,
    `runc: ${firstLine(["runc", "--version"])}`,
    `bwrap: ${firstLine(["bwrap", "--version"])}`,
    `hyperfine: ${firstLine(["hyperfine", "--version"])}; bun ${Bun.version}`,
    `runs: ${ctx.opts.runs} per contender (warm-up ${ctx.opts.warmup} per round), memory runs: ${ctx.opts.memRuns}`,
    `load average at start: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} (other work on the host skews the numbers)`,
  ];
}

function sectionText(r: SectionResult): string {
  if (r.skipped) return `${r.title}\n  ${r.skipped}`;
  const targets = r.targets?.length ? [renderTargetsText(r.targets)] : [];
  const blocks = (r.blocks ?? []).map((b) => [b.title, ...b.text.split("\n").map((l) => `    ${l}`)].join("\n"));
  return [...r.tables.map(renderText), ...targets, ...r.notes.map((n) => `  - ${n}`), ...blocks].join("\n");
}

function sectionMarkdown(r: SectionResult): string {
  const targets = r.targets?.length ? ["", renderTargetsMarkdown(r.targets)] : [];
  const blocks = (r.blocks ?? []).flatMap((b) => ["", `**${b.title}**`, "", "```", b.text, "```"]);
  const body = r.skipped ? [r.skipped] : [...r.tables.map(renderMarkdown), ...targets, "", ...r.notes.map((n) => `- ${n}`), ...blocks];
  return [`## ${r.title}`, "", ...body].join("\n");
}

/**
 * The part of bench/results.md that a run keeps: from this heading to the end
 * (written by hand: before/after numbers and traces, what was tried and what
 * it moved), so that rewriting the measured sections does not lose it.
 */
const KEPT_HEADING = "## History (kept across runs)";

function readOld(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function keptPart(old: string): string {
  const at = old.indexOf(`\n${KEPT_HEADING}\n`);
  return at < 0 ? "" : old.slice(at + 1);
}

const KEPT_MARK = "_not measured in this run: kept from";

/**
 * The sections of the previous results.md that this run did not measure, by
 * title: a run of a few sections (`bun bench/run.ts start`) does not drop the
 * others' tables, and says where each kept one came from.
 */
async function keptSections(old: string, measured: Set<string>): Promise<Map<string, string>> {
  const date = /^- date: (.*)$/m.exec(old)?.[1] ?? "an earlier run";
  const at = old.indexOf(`\n${KEPT_HEADING}\n`);
  const byTitle = new Map<string, string>();
  for (const part of (at < 0 ? old : old.slice(0, at)).split(/\n(?=## )/).slice(1)) {
    const [heading, ...rest] = part.trimEnd().split("\n");
    byTitle.set((heading ?? "").slice(3), rest.join("\n"));
  }
  const out = new Map<string, string>();
  for (const s of SECTIONS) {
    if (measured.has(s.name)) continue;
    const title = ((await import(s.file)) as { title?: string }).title;
    const body = title === undefined ? undefined : byTitle.get(title);
    if (body === undefined) continue;
    const marked = body.includes(KEPT_MARK) ? body : `\n${KEPT_MARK} the results.md of ${date}_\n${body}`;
    out.set(s.name, `## ${title}\n${marked}`);
  }
  return out;
}

async function runSection(ctx: BenchContext, name: string): Promise<SectionResult> {
  const entry = SECTIONS.find((s) => s.name === name) as { name: string; file: string };
  const mod = (await import(entry.file)) as Partial<SectionModule>;
  if (typeof mod.run !== "function") throw new BenchError(`bench/${entry.file} does not export run(ctx)`);
  return mod.run(ctx);
}

/** Set by SIGINT/SIGTERM. Measuring is synchronous, so the flag is looked at between sections; clean-up runs in main's finally. */
let interrupted = false;

async function main(argv: string[]): Promise<number> {
  const { opts, names } = parseArgs(argv);
  const ctx = makeContext(opts);
  let failed = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const md: string[] = [];
  const sections = new Map<string, string>();
  try {
    const facts = hostFacts(ctx);
    console.log(facts.join("\n"));
    md.push("# nsbox benchmarks", "", ...facts.map((f) => `- ${f}`));
    for (const name of names) {
      await Bun.sleep(0); // lets a pending signal handler run
      if (interrupted) break;
      const started = performance.now();
      console.log(`\n== ${name}`);
      let result: SectionResult;
      try {
        result = await runSection(ctx, name);
      } catch (e) {
        if (!(e instanceof BenchError)) throw e;
        failed = true;
        result = { title: name, tables: [], notes: [], skipped: `FAILED: ${e.message}` };
      }
      console.log(sectionText(result));
      console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
      sections.set(name, sectionMarkdown(result));
    }
  } finally {
    const problems = cleanupContext(ctx);
    for (const p of problems) console.error(`bench: ${p}`);
    if (problems.some((p) => !p.startsWith("note:"))) failed = true;
  }
  await Bun.sleep(0);
  if (interrupted) {
    console.error("bench: interrupted (cleaned up; bench/results.md not written)");
    return 130;
  }
  const file = join(REPO, "bench/results.md");
  const old = readOld(file);
  const kept = await keptSections(old, new Set(sections.keys()));
  for (const s of SECTIONS) {
    const text = sections.get(s.name) ?? kept.get(s.name);
    if (text) md.push("", text);
  }
  const history = keptPart(old);
  writeFileSync(file, `${md.join("\n")}\n${history ? `\n${history}` : ""}`);
  console.log(`\nwrote ${file}`);
  return failed ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof BenchError)) throw e;
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
}
