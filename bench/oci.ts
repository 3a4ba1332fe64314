/**
 * Section "oci": nsbox as an OCI runtime (the runc command line of issue 12).
 *
 *  1. `nsbox run --bundle B ID` against `crun run` and `runc run` on the very
 *     same bundle (runc's default config.json with /bin/true, our cgroup path
 *     and a cgroup namespace, as in the start section): start-to-exit of an
 *     OCI container through each runtime's own CLI;
 *  2. `podman --runtime R run --rm IMAGE /bin/true` for R = nsbox, crun, runc:
 *     what a podman user sees, conmon and podman's own work included (podman
 *     kept in its own temp dirs and sandbox: test/helpers/oci-podman.ts).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { IMAGE, Podman, RUN_FLAGS } from "../test/helpers/oci-podman.ts";
import {
  type Arg,
  type BenchContext,
  BenchError,
  type Contender,
  exec,
  hyperfine,
  makeBundle,
  mustRunOnce,
  RATIO_NOTE,
  type Row,
  roundsNote,
  type SectionResult,
} from "./lib.ts";

export const title = "nsbox as an OCI runtime: `run --bundle` against crun and runc, and under podman";

const ARGS = ["/bin/true"];
/** podman runs cost ~10x a bare runtime's: fewer of them keep the section near a minute */
const PODMAN_RUNS = 20;

type Oci = Exclude<Contender, "bwrap">;
const OCI: Oci[] = ["nsbox", "crun", "runc"];

/** nsbox speaks the runc command line (the oci branch): `nsbox features` prints the runtime-spec features document. */
function nsboxHasOci(ctx: BenchContext): boolean {
  const r = exec([ctx.opts.nsbox, "features"]);
  return r.code === 0 && r.stdout.includes("ociVersionMax");
}

function bundleRuns(ctx: BenchContext): { row: Row; spread: string } {
  // one bundle for all three (runc's spec: the strictest reader)
  const bundle = makeBundle(ctx, "runc", { args: ARGS, cgroupsPath: ctx.cgroups.next() });
  const nsboxState = join(ctx.tmp, "nsbox-oci-state");
  mkdirSync(nsboxState, { recursive: true });
  const roots: Record<Oci, string> = { nsbox: nsboxState, crun: ctx.stateDir("crun"), runc: ctx.stateDir("runc") };
  const bin: Record<Oci, string> = { nsbox: ctx.opts.nsbox, crun: "crun", runc: "runc" };
  const argv = (c: Oci): Arg[] => [bin[c], "--root", roots[c], "run", "--bundle", bundle, { sh: `nsbox-bench-oci-${c}-$$` }];
  for (const c of OCI) mustRunOnce(ctx, `${c} run --bundle`, argv(c));
  const lat = hyperfine(
    ctx,
    OCI.map((c) => ({ name: c, argv: argv(c) })),
  );
  const values: Partial<Record<Contender, number>> = {};
  const spread: string[] = [];
  for (const c of OCI) {
    const s = lat.get(c);
    if (!s) continue;
    values[c] = s.median;
    spread.push(`${c} ${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`);
  }
  return { row: { metric: "run --bundle B ID, median (ms)", values, digits: 1 }, spread: spread.join(", ") };
}

async function podmanRuns(ctx: BenchContext): Promise<{ row?: Row; note: string }> {
  const missing = ["podman", "conmon"].filter((t) => !Bun.which(t));
  if (missing.length) return { note: `podman: not measured (${missing.join(" and ")} not installed: .ci/setup --bench)` };
  // one podman store for the three: only --runtime differs between the commands (nsbox: by the name containers.conf gives it)
  const p = new Podman("nsbox", ctx.opts.nsbox);
  let failure: unknown;
  let result: { row?: Row; note: string } | undefined;
  try {
    await p.setup(ctx.rootfs);
    const argv = (c: Oci): string[] => p.argv(["run", "--rm", ...RUN_FLAGS, IMAGE, ...ARGS], c);
    for (const c of OCI) {
      const r = exec(argv(c));
      if (r.code !== 0) throw new BenchError(`podman --runtime ${c} run --rm failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
    const lat = hyperfine(
      ctx,
      OCI.map((c) => ({ name: c, argv: argv(c) })),
      Math.min(ctx.opts.runs, PODMAN_RUNS),
    );
    const values: Partial<Record<Contender, number>> = {};
    const spread: string[] = [];
    for (const c of OCI) {
      const s = lat.get(c);
      if (!s) continue;
      values[c] = s.median;
      spread.push(`${c} ${s.mean.toFixed(0)} ± ${s.stddev.toFixed(0)}`);
    }
    const version = exec(["podman", "--version"]).stdout.trim();
    result = {
      row: { metric: "podman run --rm IMAGE /bin/true, median (ms)", values, digits: 0 },
      note: `podman: ${version}, conmon, cgroupfs, --network none, overlay storage in a temp dir; ${Math.min(ctx.opts.runs, PODMAN_RUNS)} runs each; mean ± stddev (ms): ${spread.join(", ")}`,
    };
  } catch (e) {
    failure = e;
  }
  const left = await p.teardown();
  if (failure) throw failure;
  if (left.length) throw new BenchError(`podman left things behind: ${left.join("; ")}`);
  return result as { row?: Row; note: string };
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  if (!nsboxHasOci(ctx))
    return {
      title,
      tables: [],
      notes: [],
      skipped: `skipped: ${ctx.opts.nsbox} has no OCI runtime command line (\`nsbox features\` fails): build the oci branch`,
    };
  const b = bundleRuns(ctx);
  const pm = await podmanRuns(ctx);
  const rows = [b.row, ...(pm.row ? [pm.row] : [])];
  return {
    title,
    tables: [{ title: `OCI runtime CLI: run --bundle, ${roundsNote(ctx)}`, rows }],
    notes: [
      RATIO_NOTE,
      `run --bundle mean ± stddev (ms): ${b.spread}`,
      "run --bundle: one bundle (runc spec's config.json, /bin/true, a cgroup below the bench's, a cgroup namespace added) for the three, each with its own --root; all through the same unshare -m wrapper as the other sections",
      pm.note,
      "bwrap has no OCI command line: n/a",
    ],
  };
}
