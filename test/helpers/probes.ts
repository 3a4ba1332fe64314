/**
 * The small static C programs of test/probes/, built at test time (gcc is a test
 * dependency): busybox has no applet for most of the syscalls the security tests
 * make, and a static binary runs in any rootfs.
 *
 * Each probe is built once per test file, into a private temporary directory
 * that the file removes with removeProbes, then copied into a rootfs (probeInto) where the
 * container runs it as /probes/NAME.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { NsboxContext } from "./nsbox.ts";

export const PROBES_SRC = resolve(import.meta.dir, "../probes");
/** Where probeInto puts them inside the rootfs. */
export const PROBES_DIR = "/probes";

let buildDir: string | undefined;
const built = new Map<string, string>();

function dir(): string {
  buildDir ??= mkdtempSync(join(tmpdir(), "nsbox-probes-"));
  return buildDir;
}

/** Removes the built probes (call from the test file's cleanup, e.g. ctx.beforeCleanup(removeProbes)). */
export function removeProbes(): void {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  buildDir = undefined;
  built.clear();
}

/** The path of the built probe NAME (test/probes/NAME.c), building it on first use. */
export function probe(name: string): string {
  const have = built.get(name);
  if (have) return have;
  // built beforehand where there is no compiler (the cgroup v2 VM: test/vm/run.sh)
  const prebuilt = process.env.NSBOX_TEST_PROBES && join(process.env.NSBOX_TEST_PROBES, name);
  if (prebuilt && existsSync(prebuilt)) {
    built.set(name, prebuilt);
    return prebuilt;
  }
  const src = join(PROBES_SRC, `${name}.c`);
  if (!existsSync(src)) throw new Error(`no probe ${src}`);
  const out = join(dir(), name);
  const r = Bun.spawnSync(["gcc", "-static", "-O2", "-Wall", "-o", out, src], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0)
    throw new Error(`gcc -static -O2 -o ${out} ${src} failed (gcc and the static libc, libc6-dev, are test dependencies): ${r.stderr.toString()}`);
  built.set(name, out);
  return out;
}

/**
 * Copies probes into ROOTFS/probes (mode 0755, or the given mode: 0o4755 makes a
 * setuid-root program). Returns their paths inside the container.
 */
export function probeInto(rootfs: string, names: string[], mode = 0o755): string[] {
  mkdirSync(join(rootfs, PROBES_DIR), { recursive: true, mode: 0o755 });
  return names.map((n) => {
    const dest = join(rootfs, PROBES_DIR, n);
    copyFileSync(probe(n), dest);
    chownSync(dest, 0, 0);
    chmodSync(dest, mode);
    return `${PROBES_DIR}/${n}`;
  });
}

/** `run --net none FLAGS ROOTFS sh -c SCRIPT` in ctx's rootfs: its stdout, which must come with exit 0. */
export async function runInside(ctx: NsboxContext, script: string, flags: string[] = []): Promise<string> {
  const r = await ctx.run(["--net", "none", ...flags, ctx.rootfs, "sh", "-c", script]);
  if (r.code !== 0)
    throw new Error(
      `run ${flags.join(" ")} sh -c ${JSON.stringify(script)}: exit ${r.code}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`,
    );
  return r.stdout;
}
