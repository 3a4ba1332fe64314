/**
 * Rootless: a user with /etc/subuid and /etc/subgid ranges runs every lifecycle
 * command; owners cross the mapping as the host sees them; rm leaves nothing in
 * the user's directories or /run; what needs root is refused in one clear line.
 * Run as root: the user is made for the run (helpers/rootless.ts).
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NSBOX, waitUntil } from "../helpers/nsbox.ts";
import { subuidLines, useTestUser } from "../helpers/rootless.ts";

const u = useTestUser("lc", { ranges: true });

const ok = async (args: string[]) => {
  const r = await u.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} as ${u.name}: exit ${r.code}: ${r.stderr}`);
  return r;
};

/** Nothing of this container in the user's roots, nor in /run/nsbox. */
function expectGone(id: string) {
  expect(existsSync(join(u.dataRoot, "containers", id))).toBe(false);
  expect(existsSync(join(u.stateRoot, id))).toBe(false);
  expect(existsSync(join("/run/nsbox", id))).toBe(false);
}

describe("rootless lifecycle", () => {
  test("run: root inside is the user outside, ids 1.. are the subordinate range; the exit code comes through", async () => {
    const r = await u.nsbox(["run", "--net", "none", u.rootfs, "sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; exit 3"]);
    expect(r.code).toBe(3);
    const lines = r.stdout.split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines[0]).toBe("0");
    expect(lines).toContain(`0 ${u.uid} 1`);
    expect(lines).toContain(`1 ${u.sub?.start} 65536`);
    expect(lines).toContain(`0 ${u.gid} 1`);
    expect(r.stderr).toBe("");
  });

  test("run -d, ps, logs, exec, inspect, stop, rm: all as the user, nothing left after rm", async () => {
    const id = (
      await ok(["run", "-d", "--name", "web", "--net", "none", u.rootfs, "sh", "-c", "echo hello; trap 'exit 0' TERM; while :; do sleep 0.1; done"])
    ).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await ok(["ps"])).stdout).toContain("web");
    await waitUntil(async () => (await ok(["logs", "web"])).stdout === "hello\n", 10000);
    const ex = await ok(["exec", "web", "sh", "-c", "id -u; id -g"]);
    expect(ex.stdout).toBe("0\n0\n");
    const ex1000 = await ok(["exec", "-u", "1000:1000", "web", "id", "-u"]);
    expect(ex1000.stdout).toBe("1000\n");
    const info = JSON.parse((await ok(["inspect", "web"])).stdout)[0];
    expect(info.State.Running).toBe(true);
    expect(info.Cgroup).toBeNull();
    await ok(["stop", "-t", "5", "web"]);
    const after = JSON.parse((await ok(["inspect", "web"])).stdout)[0];
    expect(after.State.ExitCode).toBe(0);
    await ok(["rm", "web"]);
    expect((await ok(["ps", "-a"])).stdout).not.toContain("web");
    expectGone(id);
    // its state lives in /tmp/nsbox-UID (no XDG_RUNTIME_DIR), mode 0700
    expect(statSync(u.stateRoot).mode & 0o777).toBe(0o700);
    expect(statSync(u.stateRoot).uid).toBe(u.uid);
  });

  test("XDG_RUNTIME_DIR and XDG_DATA_HOME move the state and data roots (mode 0700)", async () => {
    const run = join(u.home, "xdg-run");
    const data = join(u.home, "xdg-data");
    await u.sh(["mkdir", "-m", "700", run, data]);
    const env = { XDG_RUNTIME_DIR: run, XDG_DATA_HOME: data };
    const id = (await u.nsbox(["run", "-d", "--net", "none", u.rootfs, "sleep", "30"], { env })).stdout.trim();
    expect(existsSync(join(run, "nsbox", id))).toBe(true);
    expect(existsSync(join(data, "nsbox", "containers", id))).toBe(true);
    expect(statSync(join(data, "nsbox")).mode & 0o777).toBe(0o700);
    // the default roots do not know it
    expect((await ok(["ps", "-aq"])).stdout).not.toContain(id);
    expect((await u.nsbox(["rm", "-f", id], { env })).code).toBe(0);
    expect(existsSync(join(run, "nsbox", id))).toBe(false);
    expect(existsSync(join(data, "nsbox", "containers", id))).toBe(false);
  });

  test("files across the mapping, seen from the host: root's are the user's, uid 1000's the range's; rm removes both", async () => {
    const vol = join(u.home, "vol");
    await u.sh(["mkdir", "-p", vol]);
    const id = (
      await ok([
        "run",
        "-d",
        "--net",
        "none",
        "-v",
        `${vol}:/vol`,
        u.rootfs,
        "sh",
        "-c",
        "touch /vol/by-root; touch /vol/by-1000; chown 1000:1000 /vol/by-1000; mkdir -p /deep/a/b; touch /deep/a/b/f; chown -R 1000:1000 /deep; chmod 700 /deep/a; echo done; sleep 60",
      ])
    ).stdout.trim();
    await waitUntil(async () => (await ok(["logs", id])).stdout === "done\n", 10000);
    expect(statSync(join(vol, "by-root")).uid).toBe(u.uid);
    expect(statSync(join(vol, "by-1000")).uid).toBe((u.sub?.start ?? 0) + 999);
    expect(statSync(join(vol, "by-1000")).gid).toBe((u.sub?.start ?? 0) + 999);
    // the overlay's upper layer holds a tree of the range's uid 1000 that the user cannot enter
    const upper = join(u.dataRoot, "containers", id, "upper", "deep");
    expect(statSync(upper).uid).toBe((u.sub?.start ?? 0) + 999);
    const denied = await u.sh(["ls", join(upper, "a")]);
    expect(denied.code).not.toBe(0);
    await ok(["rm", "-f", id]);
    expectGone(id);
  });

  test("a tarball's owners are kept through the mapping (root -> the user, 1000 -> the range)", async () => {
    // built by root, readable by the user
    const dir = mkdtempSync(join(tmpdir(), "nsbox-rootless-tar-"));
    try {
      chmodSync(dir, 0o755);
      const tree = join(dir, "tree");
      mkdirSync(join(tree, "home/u"), { recursive: true });
      writeFileSync(join(tree, "home/u/file"), "x");
      const tarball = join(dir, "rootfs.tar");
      const t = Bun.spawnSync(["tar", "-C", u.rootfs, "--owner=0", "--group=0", "-cf", tarball, "."]);
      expect(t.exitCode).toBe(0);
      const t2 = Bun.spawnSync(["tar", "-C", tree, "--owner=1000", "--group=1000", "-rf", tarball, "./home"]);
      expect(t2.exitCode).toBe(0);
      chmodSync(tarball, 0o644);
      const r = await ok(["run", "--net", "none", tarball, "sh", "-c", "stat -c '%u %g' /home/u/file /bin/busybox"]);
      expect(r.stdout).toBe("1000 1000\n0 0\n");
      // one cache per mapping: the user's only one here
      const cache = join(u.dataRoot, "rootfs", readdirSync(join(u.dataRoot, "rootfs")).find((n) => n.startsWith("idmap-")) as string);
      const digest = readdirSync(cache).find((n) => /^[0-9a-f]{64}$/.test(n)) as string;
      expect(statSync(join(cache, digest, "home/u/file")).uid).toBe((u.sub?.start ?? 0) + 999);
      expect(statSync(join(cache, digest, "bin/busybox")).uid).toBe(u.uid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("security defaults apply inside: docker's capabilities, seccomp, masked paths", async () => {
    const script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname || echo ro";
    const r = await ok(["run", "--net", "none", u.rootfs, "sh", "-c", script]);
    expect(r.stdout).toContain("CapEff:\t00000000a80425fb");
    expect(r.stdout).toContain("Seccomp:\t2");
    // masked: /dev/null is bound over /proc/keys; /proc/sys is read-only
    expect(r.stdout).toContain("\n0\nro\n");
  });

  test("what needs root is refused in one line, before anything is made", async () => {
    const before = readdirSync(join(u.dataRoot, "containers"));
    const bridge = await u.nsbox(["run", "--net", "bridge", u.rootfs, "true"]);
    expect(bridge.code).toBe(125);
    expect(bridge.stderr).toMatch(/^nsbox: --net bridge needs root.*--net pasta or --net slirp4netns.*--net none.*--net host\n$/);
    const mem = await u.nsbox(["run", "--net", "none", "-m", "64m", u.rootfs, "true"]);
    expect(mem.code).toBe(125);
    expect(mem.stderr).toMatch(/^nsbox: --memory: a rootless container gets limits only in a cgroup delegated to you.*(hybrid|not delegated).*\n$/);
    const parent = await u.nsbox(["run", "--net", "none", "--cgroup-parent", "/mine", u.rootfs, "true"]);
    expect(parent.code).toBe(125);
    const userns = await u.nsbox(["run", "--userns=100000:10", "--net", "none", u.rootfs, "true"]);
    expect(userns.stderr).toMatch(/^nsbox: --userns 100000:10 needs root/);
    const rule = await u.nsbox(["run", "--net", "none", "--device-cgroup-rule", "c 1:3 rwm", u.rootfs, "true"]);
    expect(rule.stderr).toMatch(/^nsbox: --device-cgroup-rule needs the devices cgroup/);
    expect(readdirSync(join(u.dataRoot, "containers"))).toEqual(before);
    // no cgroup was made for the user anywhere
    const find = Bun.spawnSync(["find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", "nsbox-*", "-user", String(u.uid)], { stdout: "pipe", stderr: "ignore" });
    expect(find.stdout.toString()).toBe("");
  });

  test("the user's subuid lines exist while the test runs (and are removed after)", () => {
    expect(subuidLines(u.name).length).toBe(1);
    expect(NSBOX).toBeTruthy();
  });
});
