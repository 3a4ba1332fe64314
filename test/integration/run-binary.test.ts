/**
 * dist/nsbox is one self-contained executable: it needs no bun or node on PATH,
 * no C headers, compiler or libc6-dev (its helper is built at build time and
 * embedded, like its shim), no particular working directory or file name,
 * and it runs on a minimal Debian with no development packages at all.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { HOST_NOTE, NSBOX, removalsDone, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("binary");

/** The container must print 1 for `echo $$` (its PID 1 is the shell). */
const PID1 = ["sh", "-c", "echo $$"];

function copyBinary(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, name);
  copyFileSync(NSBOX, bin);
  return bin;
}

const libDir = `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`;

describe("the binary alone", () => {
  test("no bun or node on PATH (PATH=/nonexistent, empty environment)", async () => {
    const bin = copyBinary(join(ctx.tmp, "alone"), "nsbox");
    const r = await ctx.run([ctx.rootfs, ...PID1], { bin, cleanEnv: true, env: { PATH: "/nonexistent" } });
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "1\n", err: "" });
  });

  test("PATH with only a few busybox tools (no bun, node, cc, tcc, gcc)", async () => {
    const tools = join(ctx.tmp, "tools");
    mkdirSync(tools);
    for (const t of ["sh", "ls", "cat", "true"]) symlinkSync("/bin/busybox", join(tools, t));
    for (const t of ["bun", "node", "cc", "gcc", "tcc"]) expect(Bun.which(t, { PATH: tools })).toBeNull();
    const bin = copyBinary(join(ctx.tmp, "alone2"), "nsbox");
    const r = await ctx.run([ctx.rootfs, ...PID1], { bin, cleanEnv: true, env: { PATH: tools } });
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "1\n", err: "" });
  });

  test("tarball rootfs (.tar.gz, .tar.zst) with no tar, gzip or zstd on PATH", async () => {
    const bin = copyBinary(join(ctx.tmp, "notools"), "nsbox");
    for (const [ext, flags] of [
      [".tar.gz", ["-czf"]],
      [".tar.zst", ["--zstd", "-cf"]],
    ] as const) {
      const tb = join(ctx.tmp, `notools${ext}`);
      const t = Bun.spawnSync(["tar", "-C", ctx.rootfs, ...flags, tb, "."]);
      expect(t.exitCode).toBe(0);
      const r = await ctx.run([tb, ...PID1], { bin, cleanEnv: true, env: { PATH: "/nonexistent" } });
      expect({ ext, code: r.code, out: r.stdout, err: r.stderr }).toEqual({ ext, code: 0, out: "1\n", err: "" });
    }
  });

  test("from any working directory: / and a temporary directory", async () => {
    const elsewhere = ctx.mkdir("cwd-elsewhere");
    const [root, tmp] = await Promise.all([ctx.run([ctx.rootfs, ...PID1], { cwd: "/" }), ctx.run([ctx.rootfs, ...PID1], { cwd: elsewhere })]);
    expect([root.stdout, tmp.stdout]).toEqual(["1\n", "1\n"]);
    expect([root.code, tmp.code]).toEqual([0, 0]);
    // nsbox wrote nothing into its working directory
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  test("as a copy with another name in another directory", async () => {
    const bin = copyBinary(join(ctx.tmp, "xyz"), "other-name");
    const r = await ctx.run([ctx.rootfs, ...PID1], { bin, cwd: join(ctx.tmp, "xyz") });
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "1\n", err: "" });
  });

  test("through a symlink with another name", async () => {
    const dir = ctx.mkdir("link");
    const link = join(dir, "box");
    symlinkSync(copyBinary(join(ctx.tmp, "link-target"), "nsbox"), link);
    const r = await ctx.run([ctx.rootfs, ...PID1], { bin: link, cleanEnv: true, env: { PATH: "/nonexistent" } });
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "1\n", err: "" });
  });

  test("without C headers and without libc6-dev's files", async () => {
    const ov = ctx.mkdir("libc-overlay");
    mkdirSync(join(ov, "upper"));
    mkdirSync(join(ov, "work"));
    // libc6-dev's files in the library directory (dpkg's list when there is one)
    const hide = new Set(["libc.so", "libc.a", "libc_nonshared.a", "crt1.o", "crti.o", "crtn.o", "Scrt1.o"]);
    const dpkg = Bun.spawnSync(["dpkg", "-L", "libc6-dev"], { stdout: "pipe", stderr: "ignore" });
    if (dpkg.exitCode === 0)
      for (const f of dpkg.stdout.toString().split("\n"))
        if (f.startsWith(`${libDir}/`) && !f.slice(libDir.length + 1).includes("/")) hide.add(f.slice(libDir.length + 1));
    const names = [...hide].filter((n) => existsSync(join(libDir, n)));
    expect(names).toContain("libc.so");
    const bin = copyBinary(join(ctx.tmp, "nolibcdev"), "nsbox");
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    // whiteouts (0:0 character devices) in the upper layer hide those files
    const script = [
      "set -e",
      ...names.map((n) => `mknod ${q(join(ov, "upper", n))} c 0 0`),
      "mount -t tmpfs none /usr/include",
      `mount -t overlay overlay -o lowerdir=${libDir},upperdir=${q(join(ov, "upper"))},workdir=${q(join(ov, "work"))} ${libDir}`,
      `test -z "$(ls -A /usr/include)"`,
      ...names.map((n) => `test ! -e ${q(join(libDir, n))}`),
      // libc.so.6 itself is still there: it is not libc6-dev
      `test -e ${libDir}/libc.so.6`,
      "echo hidden >&2",
      `exec ${q(bin)} run ${q(ctx.rootfs)} sh -c 'echo $$'`,
    ].join("\n");
    const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", script], {
      env: ctx.env({ PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }),
      stdout: "pipe",
      stderr: "pipe",
      timeout: 30000,
    });
    expect({ code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() }).toEqual({ code: 0, out: "1\n", err: "hidden\n" });
    // the host's view is untouched
    expect(existsSync(join(libDir, "libc.so"))).toBe(true);
  });
});

/**
 * nsbox inside a minimal Debian (mmdebstrap --variant=minbase bookworm): no
 * compiler, no headers, no libc6-dev, no bun. Built once and cached.
 */
const CACHE = "/var/cache/nsbox-test/minbase.tar";

function minbaseTarball(): { path?: string; reason?: string } {
  if (existsSync(CACHE) && statSync(CACHE).size > 10 << 20) return { path: CACHE };
  if (!Bun.which("mmdebstrap")) return { reason: "mmdebstrap is not installed" };
  mkdirSync("/var/cache/nsbox-test", { recursive: true });
  const tmp = `/var/cache/nsbox-test/minbase.tmp-${process.pid}.tar`;
  const r = Bun.spawnSync(["mmdebstrap", "--quiet", "--variant=minbase", "bookworm", tmp], { stdout: "pipe", stderr: "pipe", timeout: 240000 });
  if (r.exitCode !== 0 || !existsSync(tmp)) {
    rmSync(tmp, { force: true });
    const why = r.stderr.toString().trim().split("\n").slice(-3).join(" / ");
    return { reason: `mmdebstrap failed (no network or no mirror?): ${why}` };
  }
  renameSync(tmp, CACHE);
  return { path: CACHE };
}

describe("inside a minimal Debian (minbase)", () => {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  let root = "";
  let skipReason = "";

  beforeAll(() => {
    const tb = minbaseTarball();
    if (!tb.path) {
      skipReason = tb.reason ?? "no minbase tarball";
      return;
    }
    root = ctx.mkdir("minbase");
    const x = Bun.spawnSync(["tar", "-C", root, "-xpf", tb.path], { stderr: "pipe" });
    if (x.exitCode !== 0) throw new Error(`tar -x of ${tb.path} failed: ${x.stderr.toString()}`);
    copyFileSync(NSBOX, join(root, "nsbox"));
    const cp = Bun.spawnSync(["cp", "-a", ctx.rootfs, join(root, "bb")]);
    if (cp.exitCode !== 0) throw new Error("cp -a of the busybox rootfs failed");
  }, 300000);

  /** Runs /nsbox ARGS chrooted into the minbase tree (its own mount namespace, /proc, /sys, /dev). */
  function inChroot(nsboxArgs: string) {
    // The new root must be a mount point for pivot_root (as a real system's / is).
    const script = [
      "set -e",
      `mount --bind ${q(root)} ${q(root)}`,
      `mount -t proc proc ${q(`${root}/proc`)}`,
      `mount --rbind /sys ${q(`${root}/sys`)}`,
      `mount --rbind /dev ${q(`${root}/dev`)}`,
      `exec chroot ${q(root)} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NSBOX_ROOT=/var/lib/nsbox-test NSBOX_STATE=/run/nsbox-test /nsbox ${nsboxArgs}`,
    ].join("\n");
    const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", script], { stdout: "pipe", stderr: "pipe", timeout: 60000 });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  }

  test("it is a system without compilers, headers, libc6-dev, bun or node", () => {
    if (skipReason) {
      console.warn(`skipped: ${skipReason}`);
      return;
    }
    for (const f of ["usr/include/stdio.h", "usr/bin/gcc", "usr/bin/cc", "usr/bin/tcc", "usr/bin/bun", "usr/bin/node", `${libDir.slice(1)}/libc.so`])
      expect(existsSync(join(root, f))).toBe(false);
    expect(readFileSync(join(root, "etc/debian_version"), "utf8")).toMatch(/^12\./);
  });

  test("chroot DIR /nsbox run --net none /bb sh -c 'echo $$' prints 1", async () => {
    if (skipReason) {
      console.warn(`skipped: ${skipReason}`);
      return;
    }
    const r = inChroot(`run --net none /bb /bin/sh -c 'echo $$; head -1 /etc/passwd'`);
    expect(r).toEqual({ code: 0, out: "1\nroot:x:0:0:root:/root:/bin/sh\n", err: "" });
    // the layers nsbox made inside the chroot are gone again (once its exit keeper is done)
    expect(await removalsDone({ NSBOX_ROOT: join(root, "var/lib/nsbox-test"), NSBOX_STATE: join(root, "run/nsbox-test") })).toEqual([]);
    expect(readdirSync(join(root, "var/lib/nsbox-test/containers"))).toEqual([]);
  });

  test("chroot DIR /nsbox run /bb sh -c 'echo $$' (default flags) prints 1", () => {
    if (skipReason) {
      console.warn(`skipped: ${skipReason}`);
      return;
    }
    const r = inChroot(`run /bb /bin/sh -c 'echo $$'`);
    // minbase has no nft: the default bridge network falls back to --net none, and says so in one line
    const err = r.err.replace(HOST_NOTE, "");
    expect({ code: r.code, out: r.out }).toEqual({ code: 0, out: "1\n" });
    expect(err === "" || /^nsbox: warning: no nft command \(package nftables\)[^\n]*\n$/.test(err)).toBe(true);
  });
});
