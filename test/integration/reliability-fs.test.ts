/**
 * Filesystem errors on the rootfs, volumes, state and data roots (issue 10,
 * point 7): a relative ROOTFS hidden by a mount printed the raw `ENOENT: no
 * such file or directory, lstat './rootfs'`. Each case: exit 125, one nsbox
 * sentence naming the path as given (and the flag it came from) and the cause,
 * never Node's "ECODE: ..., syscall 'path'" form. The mounts are made in a
 * private mount namespace of the test's own (unshare -m), never on the host.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { isOneNsboxLine, type RunOptions, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("rel-fs");
const RAW = /\b(ENOENT|EROFS|ELOOP|EACCES|ENOTDIR): |, (lstat|stat|open|mkdir|realpath) '/;

/** nsbox run in a private mount namespace, after the shell commands in `setup`. */
const inPrivateMounts = (setup: string): RunOptions => ({
  prefix: ["unshare", "-m", "--propagation", "private", "sh", "-c", `${setup} && exec "$0" "$@"`],
});

async function sentence(args: string[], opts: RunOptions | undefined, ...mentions: string[]) {
  const r = await ctx.nsbox(args, opts);
  expect({ code: r.code, oneLine: isOneNsboxLine(r.stderr), raw: RAW.test(r.stderr) }).toEqual({ code: 125, oneLine: true, raw: false });
  for (const m of mentions) expect(r.stderr).toContain(m);
}

let hide = "";
let ro = "";
beforeAll(() => {
  hide = ctx.mkdir("hide");
  mkdirSync(join(hide, "work"));
  cpSync(ctx.rootfs, join(hide, "work/rootfs"), { recursive: true, verbatimSymlinks: true });
  ro = ctx.mkdir("ro");
  symlinkSync("loop", join(ctx.tmp, "loop"));
});

describe("rootfs", () => {
  test("a relative rootfs hidden by a mount over the directory nsbox runs in", async () => {
    const opts = { ...inPrivateMounts(`cd ${hide}/work && mount -t tmpfs none ${hide}`), cwd: ctx.tmp };
    await sentence(["run", "--net", "none", "./rootfs", "true"], opts, 'rootfs "./rootfs"', "no such file or directory", "hidden by a mount");
  });
  test("a rootfs that is a symbolic link loop", async () => {
    await sentence(["run", "--net", "none", join(ctx.tmp, "loop"), "true"], undefined, `rootfs "${join(ctx.tmp, "loop")}": cannot look up`, "symbolic link");
  });
});

describe("volumes", () => {
  test("a host path that is a symbolic link loop is not called missing", async () => {
    const v = `${join(ctx.tmp, "loop")}:/x`;
    await sentence(["run", "--net", "none", "-v", v, ctx.rootfs, "true"], undefined, `invalid --volume "${v}"`, "symbolic link");
  });
});

describe("state and data roots", () => {
  const mountRo = `mount -t tmpfs -o ro none ${join(ctx.tmp, "ro")}`;
  test("--state on a read-only filesystem", async () => {
    await sentence(
      ["--state", join(ro, "s"), "run", "--net", "none", ctx.rootfs, "true"],
      inPrivateMounts(mountRo),
      `the state root ${join(ro, "s")} (--state)`,
      "read-only",
    );
  });
  test("NSBOX_STATE on a read-only filesystem names the variable", async () => {
    await sentence(
      ["run", "-d", "--net", "none", ctx.rootfs, "true"],
      { ...inPrivateMounts(mountRo), env: { NSBOX_STATE: join(ro, "s") } },
      `the state root ${join(ro, "s")} (NSBOX_STATE)`,
      "read-only",
    );
  });
  test("--root on a read-only filesystem (state elsewhere)", async () => {
    await sentence(
      ["--root", join(ro, "d"), "--state", join(ctx.tmp, "state2"), "run", "--net", "none", ctx.rootfs, "true"],
      inPrivateMounts(mountRo),
      `the data root ${join(ro, "d")} (--root)`,
      "read-only",
    );
  });
});
