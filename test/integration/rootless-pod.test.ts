/**
 * Rootless pods: a user creates a pod (its pause made in the user's user
 * namespace), runs members that join the pod's user, uts, ipc and net
 * namespaces, lists, inspects, stops and removes it; nothing of it is left.
 * Run as root: the user is made for the run (helpers/rootless.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntil } from "../helpers/nsbox.ts";
import { openTunNode, processesOf, useTestUser } from "../helpers/rootless.ts";

const u = useTestUser("pod", { ranges: true });

const ok = async (args: string[]) => {
  const r = await u.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} as ${u.name}: exit ${r.code}: ${r.stderr}`);
  return r;
};

const alive = (pid: number) => existsSync(`/proc/${pid}`);

describe("rootless pods", () => {
  test("pod create --net none, two members share the pod's uts/ipc/net; pod ps, inspect, stop; pod rm -f leaves nothing", async () => {
    const podId = (await ok(["pod", "create", "--name", "p1", "--net", "none"])).stdout.trim();
    expect(podId).toMatch(/^[0-9a-f]{64}$/);
    const info = JSON.parse((await ok(["pod", "inspect", "p1"])).stdout)[0];
    const infraPid: number = info.InfraPid;
    expect(infraPid).toBeGreaterThan(0);
    // the pause belongs to the user, in a user namespace of its own
    expect(statSync(`/proc/${infraPid}`).uid).toBe(u.uid);
    expect(readlinkSync(`/proc/${infraPid}/ns/user`)).not.toBe(readlinkSync("/proc/self/ns/user"));

    const loop = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
    const a = (await ok(["run", "-d", "--name", "a", "--pod", "p1", u.rootfs, "sh", "-c", loop])).stdout.trim();
    const b = (await ok(["run", "-d", "--name", "b", "--pod", "p1", u.rootfs, "sh", "-c", loop])).stdout.trim();
    const facts = async (c: string) =>
      (await ok(["exec", c, "sh", "-c", "hostname; for n in net ipc uts user; do readlink /proc/self/ns/$n; done; id -u"])).stdout;
    const fa = await facts("a");
    expect(fa).toBe(await facts("b"));
    const lines = fa.trim().split("\n");
    expect(lines[0]).toBe("p1");
    expect(lines[5]).toBe("0");
    // the same namespaces as the pause's
    expect(lines[1]).toBe(readlinkSync(`/proc/${infraPid}/ns/net`));
    expect(lines[4]).toBe(readlinkSync(`/proc/${infraPid}/ns/user`));
    expect(lines[2]).toBe(readlinkSync(`/proc/${infraPid}/ns/ipc`));
    expect(lines[3]).toBe(readlinkSync(`/proc/${infraPid}/ns/uts`));

    const ps = (await ok(["pod", "ps"])).stdout;
    expect(ps).toContain("p1");
    expect(ps).toMatch(/Running/);
    const j = JSON.parse((await ok(["pod", "ps", "--format", "json"])).stdout.trim().split("\n")[0] as string);
    expect(j.Containers.map((c: { Name: string }) => c.Name).sort()).toEqual(["a", "b"]);
    const pids = [infraPid];
    for (const c of ["a", "b"]) pids.push(JSON.parse((await ok(["inspect", c])).stdout)[0].State.Pid);

    await ok(["pod", "stop", "-t", "5", "p1"]);
    const stopped = JSON.parse((await ok(["pod", "inspect", "p1"])).stdout)[0];
    expect(stopped.State).toBe("Exited");
    for (const p of pids) await waitUntil(() => !alive(p), 10000);

    await ok(["pod", "rm", "-f", "p1"]);
    expect((await ok(["pod", "ps"])).stdout).not.toContain("p1");
    expect((await ok(["ps", "-a"])).stdout.trim().split("\n").length).toBe(1);
    for (const id of [podId, a, b]) {
      expect(existsSync(join(u.dataRoot, "containers", id))).toBe(false);
      expect(existsSync(join(u.stateRoot, id))).toBe(false);
    }
    expect(existsSync(join(u.stateRoot, "pods", "p1"))).toBe(false);
    // no process of the user is left (the pause, members, their monitors), zombies aside: exited, init reaps them
    const live = (e: string) => {
      try {
        return statSync(`/proc/${e}`).uid === u.uid && readFileSync(`/proc/${e}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
      } catch {
        return false;
      }
    };
    expect(readdirSync("/proc").filter((e) => /^\d+$/.test(e) && live(e))).toEqual([]);
  }, 120000);

  test("pod rm -f of a running pod kills its members and the pause", async () => {
    await ok(["pod", "create", "--name", "p2", "--net", "none"]);
    await ok(["run", "-d", "--name", "c", "--pod", "p2", u.rootfs, "sleep", "1000"]);
    const infraPid: number = JSON.parse((await ok(["pod", "inspect", "p2"])).stdout)[0].InfraPid;
    const cPid: number = JSON.parse((await ok(["inspect", "c"])).stdout)[0].State.Pid;
    await ok(["pod", "rm", "-f", "p2"]);
    for (const p of [infraPid, cPid]) await waitUntil(() => !alive(p), 10000);
    expect((await ok(["pod", "ps"])).stdout).not.toContain("p2");
    expect((await ok(["ps", "-a"])).stdout.trim().split("\n").length).toBe(1);
  }, 120000);

  test("a member that exits on its own is recorded (its monitor's clean-up runs in the pod's user namespace)", async () => {
    await ok(["pod", "create", "--name", "p4", "--net", "none"]);
    await ok(["run", "-d", "--name", "quick", "--pod", "p4", u.rootfs, "sh", "-c", "exit 7"]);
    await waitUntil(async () => JSON.parse((await ok(["inspect", "quick"])).stdout)[0].State.Running === false, 10000);
    expect(JSON.parse((await ok(["inspect", "quick"])).stdout)[0].State.ExitCode).toBe(7);
    const r = await u.nsbox(["run", "--pod", "p4", u.rootfs, "sh", "-c", "hostname; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("p4\n");
    await ok(["pod", "rm", "-f", "p4"]);
    expect((await ok(["ps", "-a"])).stdout.trim().split("\n").length).toBe(1);
  }, 60000);

  test("--share pid: a member sees the pause as PID 1", async () => {
    await ok(["pod", "create", "--name", "p5", "--net", "none", "--share", "net,ipc,uts,pid"]);
    const r = await u.nsbox(["run", "--pod", "p5", u.rootfs, "sh", "-c", "cat /proc/1/cmdline; echo"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("pause");
    await ok(["pod", "rm", "-f", "p5"]);
  }, 60000);

  test("--net with --pod is refused in one line", async () => {
    await ok(["pod", "create", "--name", "p3", "--net", "none"]);
    const r = await u.nsbox(["run", "--pod", "p3", "--net", "none", u.rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("cannot be combined with --pod");
    await ok(["pod", "rm", "-f", "p3"]);
  }, 60000);
});

// The pod's user-mode stack: a tun node of the test's own, bound over /dev/net/tun
// in a mount namespace the test makes (as rootless-network.test.ts does).
const TOOLS = ["pasta", "slirp4netns", "passt.avx2", "passt"];
let dir = "";
let tun = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nsbox-rootless-pod-"));
  chmodSync(dir, 0o755);
  tun = openTunNode(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const tool of ["pasta", "slirp4netns"])
  describe.if(Bun.which(tool) !== null)(`a rootless pod's network through ${tool}`, () => {
    test("pod create -p: a member's server answers on the host's loopback; pod rm -f ends the stack", async () => {
      const port = 20000 + ((process.pid + (tool === "pasta" ? 101 : 211)) % 20000);
      const name = `web-${tool}`;
      const c = await u.nsbox(["pod", "create", "--name", name, "--net", tool, "-p", `127.0.0.1:${port}:80`], { tun });
      expect(c.stderr).toBe("");
      expect(c.code).toBe(0);
      const r = await u.nsbox(
        ["run", "-d", "--pod", name, u.rootfs, "sh", "-c", `mkdir /www; echo from-${tool} > /www/index.html; exec httpd -f -p 80 -h /www`],
        { tun },
      );
      expect(r.code).toBe(0);
      const body = await waitUntil(async () => {
        try {
          return await (await fetch(`http://127.0.0.1:${port}/`)).text();
        } catch {
          return undefined;
        }
      }, 10000);
      expect(body).toBe(`from-${tool}\n`);
      expect((await u.nsbox(["pod", "rm", "-f", name])).code).toBe(0);
      await waitUntil(() => processesOf(u.uid, TOOLS).length === 0, 5000);
    }, 60000);
  });
