/**
 * For the OCI tests: bundles made with `nsbox spec` on the busybox rootfs, and
 * nsbox run with runc's command line under a private --root. The runtime's
 * stdout/stderr go to files, not pipes: a created container inherits them and
 * keeps them open, as it does under conmon, so a pipe would never end.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NSBOX, type NsboxContext } from "./nsbox.ts";

// biome-ignore lint/suspicious/noExplicitAny: config.json is edited freely by the tests
export type Config = any;

export interface OciResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface OciHarness {
  /** the runtime's --root */
  root: string;
  /** a scratch dir of this file */
  dir: string;
  oci: (args: string[], o?: { env?: Record<string, string>; before?: string[] }) => Promise<OciResult>;
}

let serial = 0;

export function ociHarness(ctx: NsboxContext): OciHarness {
  const dir = join(ctx.tmp, "oci");
  const root = join(dir, "root");
  mkdirSync(root, { recursive: true });
  const oci: OciHarness["oci"] = async (args, o = {}) => {
    const n = serial++;
    const out = join(dir, `stdout-${n}`);
    const err = join(dir, `stderr-${n}`);
    const p = Bun.spawn([NSBOX, ...(o.before ?? []), "--root", root, ...args], {
      stdin: "ignore",
      stdout: Bun.file(out),
      stderr: Bun.file(err),
      env: { ...process.env, ...(o.env ?? {}) },
    });
    const code = await p.exited;
    const read = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");
    return { code, stdout: read(out), stderr: read(err) };
  };
  ctx.beforeCleanup(async () => {
    // a failed test may leave containers: take them down before the files go
    for (const id of existsSync(root) ? readdirSync(root) : []) await oci(["delete", "--force", id]);
  });
  return { root, dir, oci };
}

/** A bundle dir with `nsbox spec`'s config.json on the shared busybox rootfs, edited by fn. */
export function makeBundle(ctx: NsboxContext, name: string, fn: (c: Config) => void = () => {}): string {
  const b = join(ctx.tmp, "oci", "bundles", name);
  mkdirSync(b, { recursive: true });
  const r = Bun.spawnSync([NSBOX, "spec", "--bundle", b], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`nsbox spec failed: ${r.stderr.toString()}`);
  const c = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
  c.root = { path: ctx.rootfs, readonly: true };
  c.process.terminal = false;
  c.process.args = ["sleep", "100"];
  c.annotations = { "org.test": "yes" };
  fn(c);
  writeFileSync(join(b, "config.json"), JSON.stringify(c));
  return b;
}

/** The cgroup dirs (nsbox-oci-ROOTTAG-ID) a container of this id has in the hierarchies of this process. */
export function cgroupDirsOf(id: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/cgroup", "utf8").split("\n").filter(Boolean)) {
    const [, ctrls, path] = line.split(":") as [string, string, string];
    for (const c of ctrls === "" ? ["unified"] : ctrls.split(",").map((x) => x.replace(/^name=/, ""))) {
      const dir = join("/sys/fs/cgroup", c, path);
      for (const e of existsSync(dir) ? readdirSync(dir) : []) if (/^nsbox-oci-[0-9a-f]{8}-/.test(e) && e.endsWith(`-${id}`)) out.push(join(dir, e));
    }
  }
  return out;
}
