/**
 * Rootless isolation: a rootless container holds no capability of the initial
 * user namespace (read from the host in /proc/PID/status), runs as its user on
 * the host, and cannot write a root-owned file bound into it; a second user can
 * neither see nor stop nor exec into the first user's containers, nor make nsbox
 * reach a path it could not reach itself. The second user has no /etc/subuid
 * range: only its own id is mapped, and nsbox says once what that limits.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntil } from "../helpers/nsbox.ts";
import { procIdentity, useTestUser } from "../helpers/rootless.ts";

const a = useTestUser("ia", { ranges: true });
const b = useTestUser("ib", { ranges: false });

let hostDir = "";
beforeAll(() => {
  hostDir = mkdtempSync(join(tmpdir(), "nsbox-rootless-host-"));
  chmodSync(hostDir, 0o755);
  writeFileSync(join(hostDir, "root-file"), "root's\n", { mode: 0o644 });
  writeFileSync(join(hostDir, "root-secret"), "secret\n", { mode: 0o600 });
});
afterAll(() => rmSync(hostDir, { recursive: true, force: true }));

const must = async (u: typeof a, args: string[]) => {
  const r = await u.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} as ${u.name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

describe("no privilege on the host", () => {
  test("the container's process: the user's uid on the host, capabilities only in its own user namespace, none over host files", async () => {
    const id = (
      await must(a, [
        "run",
        "-d",
        "--net",
        "none",
        "-v",
        `${hostDir}/root-file:/root-file`,
        "-v",
        `${hostDir}/root-secret:/root-secret`,
        a.rootfs,
        "sh",
        "-c",
        "(echo x >> /root-file) 2>/dev/null && echo wrote || echo no-write; cat /root-secret 2>/dev/null || echo no-read; chmod 777 /root-file 2>/dev/null && echo chmod || echo no-chmod; echo done; sleep 60",
      ])
    ).trim();
    await waitUntil(async () => (await must(a, ["logs", id])).includes("done"), 10000);
    expect(await must(a, ["logs", id])).toBe("no-write\nno-read\nno-chmod\ndone\n");
    const info = JSON.parse(await must(a, ["inspect", id]))[0];
    const pid = info.State.Pid as number;
    const p = procIdentity(pid);
    // every uid (real, effective, saved, fs) is the user's on the host
    expect(p.uid).toEqual([a.uid, a.uid, a.uid, a.uid]);
    // its capabilities (docker's set) hold in its own user namespace, not the host's
    expect(p.capEff).toBe(0xa80425fbn);
    expect(p.userns).not.toBe(readlinkSync("/proc/self/ns/user"));
    // the monitor that keeps its log holds nothing at all
    const mon = procIdentity(info.State.MonitorPid as number);
    expect(mon.uid).toEqual([a.uid, a.uid, a.uid, a.uid]);
    expect(mon.capEff).toBe(0n);
    expect(mon.userns).toBe(readlinkSync("/proc/self/ns/user"));
    await must(a, ["rm", "-f", id]);
  });
});

describe("a user without /etc/subuid ranges", () => {
  test("only its own id is mapped: runs, says once what that limits, chown to other ids fails", async () => {
    const first = await b.nsbox(["run", "--net", "none", b.rootfs, "sh", "-c", "cat /proc/self/uid_map; chown 1000 /tmp 2>/dev/null || echo no-chown"]);
    expect(first.code).toBe(0);
    expect(first.stdout.replace(/[ \t]+/g, " ").trim()).toBe(`0 ${b.uid} 1\nno-chown`);
    expect(first.stderr).toMatch(/^nsbox: rootless without subordinate ids \(no range for nsbtib[^)]*\): only your uid is mapped/);
    const second = await b.nsbox(["run", "--net", "none", b.rootfs, "true"]);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe("");
    const dir = await b.nsbox(["run", "-d", "--net", "none", b.rootfs, "sh", "-c", "mkdir -p /w/x; touch /w/x/f; chmod 500 /w/x; sleep 30"]);
    const id = dir.stdout.trim();
    const ex = await b.nsbox(["exec", id, "id"]);
    expect(ex.stdout).toContain("uid=0(root) gid=0(root)");
    expect((await b.nsbox(["rm", "-f", id])).code).toBe(0);
    expect((await b.nsbox(["ps", "-aq"])).stdout).toBe("");
  });
});

describe("two users", () => {
  test("the second user neither sees, stops, execs into nor reads the first user's containers", async () => {
    const id = (await must(a, ["run", "-d", "--name", "mine", "--net", "none", a.rootfs, "sleep", "60"])).trim();
    const pid = JSON.parse(await must(a, ["inspect", id]))[0].State.Pid as number;
    expect(await must(b, ["ps", "-a"])).not.toContain(id.slice(0, 12));
    for (const args of [
      ["stop", id],
      ["exec", id, "true"],
      ["logs", id],
      ["inspect", id],
      ["rm", "-f", id],
      ["kill", "mine"],
    ]) {
      const r = await b.nsbox(args);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^nsbox: no such container/);
    }
    // pointing nsbox at the first user's state root does not help: it is closed to others
    const peek = await b.nsbox(["--state", a.stateRoot, "ps", "-a"]);
    expect(peek.code).toBe(125);
    expect(peek.stderr).toMatch(/permission denied/);
    // nor can the second user signal the container's processes
    const kill = await b.sh(["kill", "-9", String(pid)]);
    expect(kill.code).not.toBe(0);
    expect((await must(a, ["ps"])).includes("mine")).toBe(true);
    await must(a, ["rm", "-f", id]);
  });

  test("nsbox reaches no path the user could not: another user's private rootfs or volume", async () => {
    await a.sh(["mkdir", "-m", "700", join(a.home, "private")]);
    await a.sh(["touch", join(a.home, "private", "f")]);
    await a.sh(["cp", "-a", a.rootfs, join(a.home, "private", "rootfs")]);
    // the bind itself may be made, but the user namespace's root has no right over another user's files
    const vol = await b.nsbox(["run", "--net", "none", "-v", `${join(a.home, "private")}:/x`, b.rootfs, "sh", "-c", "ls /x 2>&1; touch /x/g 2>&1"]);
    expect(vol.stdout).toMatch(/Permission denied[\s\S]*Permission denied/);
    expect(vol.stdout).not.toContain("f\n");
    const rootfs = await b.nsbox(["run", "--net", "none", join(a.home, "private", "rootfs"), "true"]);
    expect(rootfs.code).toBe(125);
    expect(rootfs.stderr).toMatch(/^nsbox: .*(permission denied|does not exist)/i);
  });
});
