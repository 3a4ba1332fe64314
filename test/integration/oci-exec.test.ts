/**
 * OCI exec as containerd's shim calls it (`exec --process FILE --detach
 * --pid-file P ID`) and as a user does (`exec ID ARGS`), with the container's
 * namespaces, cgroup and process settings; bad --process files; and the
 * dispatch rule that tells runc's command lines from nsbox's own.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NSBOX, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("ociexec");
const h = ociHarness(ctx);

async function running(id: string, edit: Parameters<typeof makeBundle>[2] = () => {}) {
  const b = makeBundle(ctx, id, (c) => {
    c.process.args = ["sleep", "1000"];
    c.process.env.push("FROM_CONFIG=yes");
    c.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"] });
    edit(c);
  });
  const r = await h.oci(["run", "-d", "--bundle", b, id]);
  expect([r.code, r.stderr]).toEqual([0, ""]);
  return b;
}

describe("exec", () => {
  test("ARGS: the container's namespaces, env and user; the exit code", async () => {
    await running("ex1");
    const r = await h.oci(["exec", "ex1", "sh", "-c", 'echo "$(hostname) $FROM_CONFIG $(id -u)"; cat /proc/1/cmdline | tr "\\0" " "; exit 7']);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("runc yes 0\nsleep 1000 ");
    const u = await h.oci(["exec", "--user", "1000:1000", "--env", "X=1", "--cwd", "/tmp", "ex1", "sh", "-c", 'echo "$(id -u):$(id -g) $X $(pwd)"']);
    expect([u.code, u.stdout]).toEqual([0, "1000:1000 1 /tmp\n"]);
    // in the container's cgroup: the root of its cgroup namespace (elsewhere it would show a /.. path)
    const cg = await h.oci(["exec", "ex1", "cat", "/proc/self/cgroup"]);
    expect(cg.stdout).toContain(":memory:/\n");
    expect((await h.oci(["delete", "-f", "ex1"])).code).toBe(0);
  });

  test("into a container without a mount namespace: the exec is chrooted into its root too", async () => {
    await running("exnomnt", (c) => {
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== "mount");
      c.mounts = [];
      c.linux.maskedPaths = [];
      c.linux.readonlyPaths = [];
    });
    // the rootfs's /proc is an empty directory (the host's would list processes), and its busybox is its /bin/sh
    const r = await h.oci(["exec", "exnomnt", "sh", "-c", "ls /proc | wc -l; readlink /bin/sh"]);
    expect([r.code, r.stderr, r.stdout]).toEqual([0, "", `0\n${readlinkSync(join(ctx.rootfs, "bin/sh"))}\n`]);
    expect((await h.oci(["delete", "-f", "exnomnt"])).code).toBe(0);
  });

  test("--process FILE --detach --pid-file, as containerd's shim", async () => {
    await running("ex2");
    const pf = join(h.dir, "ex2.json");
    const pidFile = join(h.dir, "ex2.pid");
    writeFileSync(pf, JSON.stringify({ args: ["sh", "-c", "echo $FOO > /tmp/out; exec sleep 1000"], env: ["FOO=bar"], cwd: "/", user: { uid: 0, gid: 0 } }));
    const r = await h.oci(["exec", "--process", pf, "--detach", "--pid-file", pidFile, "ex2"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    await waitUntil(() => existsSync(`/proc/${pid}/root/tmp/out`), 5000);
    expect(readFileSync(`/proc/${pid}/root/tmp/out`, "utf8")).toBe("bar\n");
    // the exec'd process is not nsbox's: nsbox has exited, the process lives on
    // (once the shell's exec is through: during it cmdline reads empty)
    await waitUntil(() => readFileSync(`/proc/${pid}/cmdline`, "utf8") === "sleep\u00001000\u0000", 5000);
    expect((await h.oci(["delete", "-f", "ex2"])).code).toBe(0);
    await waitUntil(() => !existsSync(`/proc/${pid}/cmdline`) || readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z"), 5000);
  });

  test("bad --process files and stopped containers: one line, exit 1", async () => {
    await running("ex3");
    const notJson = join(h.dir, "bad.json");
    writeFileSync(notJson, "{bad");
    const noArgs = join(h.dir, "noargs.json");
    writeFileSync(noArgs, JSON.stringify({ cwd: "/" }));
    const cases: [string[], string][] = [
      [["exec", "--process", notJson, "ex3"], `nsbox: exec --process ${notJson}: ${notJson} is not valid JSON (line 1, column 2)`],
      [["exec", "--process", noArgs, "ex3"], `nsbox: exec --process ${noArgs}: args is missing or empty: say what to run`],
      [["exec", "--process", join(h.dir, "none.json"), "ex3"], `nsbox: exec --process ${join(h.dir, "none.json")}: cannot read it`],
      [["exec", "ex3"], "nsbox: exec needs a command (ARGS after the id) or --process FILE"],
      [["exec", "ex3", "/no/such"], "/no/such"],
    ];
    for (const [args, want] of cases) {
      const r = await h.oci(args);
      expect([args, r.code]).toEqual([args, 1]);
      expect(r.stderr).toMatch(/^nsbox: [^\n]+\n$/);
      expect(r.stderr).toContain(want);
    }
    expect((await h.oci(["kill", "ex3", "KILL"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await h.oci(["state", "ex3"])).stdout).status === "stopped", 5000);
    const r = await h.oci(["exec", "ex3", "true"]);
    expect([r.code, r.stderr]).toEqual([1, "nsbox: cannot exec in container ex3: it is stopped\n"]);
    expect((await h.oci(["delete", "ex3"])).code).toBe(0);
  });
});

describe("the dispatch rule", () => {
  test("runc's command lines and nsbox's own are told apart without a wrapper", async () => {
    // nsbox's own run and exec are unchanged
    const own = await ctx.nsbox(["run", "--net", "none", ctx.rootfs, "echo", "docker-style"]);
    expect([own.code, own.stdout]).toEqual([0, "docker-style\n"]);
    // --version: runc's shape, with the spec version
    const v = Bun.spawnSync([NSBOX, "--log", "/dev/null", "--version"]);
    expect(v.stdout.toString()).toMatch(/^nsbox version [^\n]+\nspec: 1\.2\.0\n$/);
    // `features` and `spec` exist only in the runc syntax
    const f = JSON.parse(Bun.spawnSync([NSBOX, "features"]).stdout.toString());
    expect(f).toMatchObject({ ociVersionMin: "1.0.0", ociVersionMax: "1.2.0" });
    // `kill ID SIGNAL` with no runc flag, as runtime-tools calls it: runc's when ID is an OCI container of --root
    await running("dk");
    const k = await h.oci(["kill", "dk", "KILL"]);
    expect([k.code, k.stderr]).toEqual([0, ""]);
    await waitUntil(async () => JSON.parse((await h.oci(["state", "dk"])).stdout).status === "stopped", 5000);
    expect((await h.oci(["delete", "dk"])).code).toBe(0);
    // under the name runc (make install's link), every command line is runc's
    const link = join(h.dir, "runc");
    Bun.spawnSync(["ln", "-s", NSBOX, link]);
    const l = Bun.spawnSync([link, "--root", h.root, "list", "--format", "json"]);
    expect(l.exitCode).toBe(0);
    expect(Array.isArray(JSON.parse(l.stdout.toString()))).toBe(true);
  });
});
