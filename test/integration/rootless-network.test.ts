/**
 * Rootless networks: pasta (the default when installed) and slirp4netns give a
 * container an interface with a default route, started with it and ended with
 * it, named in inspect; both publish -p ports on the host's loopback. On a
 * host whose /dev/net/tun is closed to users, a default run falls back to
 * --net none with a note and an explicit --net pasta is refused in one line.
 * Tests that need the tools use a tun node of their own, bound over
 * /dev/net/tun in a mount namespace the test makes (never on the host itself).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntil } from "../helpers/nsbox.ts";
import { openTunNode, processesOf, useTestUser } from "../helpers/rootless.ts";

const u = useTestUser("net", { ranges: true });
const have = (tool: string) => Bun.which(tool) !== null;

let dir = "";
let tun = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nsbox-rootless-net-"));
  chmodSync(dir, 0o755);
  tun = openTunNode(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOOLS = ["pasta", "slirp4netns", "passt.avx2", "passt"];

describe.if(have("pasta"))("pasta", () => {
  test("the default network as a user: eth0 with a default route; inspect names pasta; it ends with the container", async () => {
    const r = await u.nsbox(["run", u.rootfs, "sh", "-c", "ip route | grep -c '^default'"], { tun });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1\n");
    const id = (await u.nsbox(["run", "-d", u.rootfs, "sleep", "60"], { tun })).stdout.trim();
    const info = JSON.parse((await u.nsbox(["inspect", id])).stdout)[0];
    expect(info.Network.userNet.tool).toBe("pasta");
    expect(processesOf(u.uid, TOOLS)).toContain(info.Network.userNet.pid);
    expect((await u.nsbox(["rm", "-f", id])).code).toBe(0);
    await waitUntil(() => processesOf(u.uid, TOOLS).length === 0, 5000);
  });

  test("-p publishes a port on the host through pasta", async () => {
    const port = 20000 + (process.pid % 20000);
    const id = (
      await u.nsbox(
        ["run", "-d", "-p", `127.0.0.1:${port}:80`, u.rootfs, "sh", "-c", "mkdir /www; echo from-the-container > /www/index.html; exec httpd -f -p 80 -h /www"],
        { tun },
      )
    ).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const body = await waitUntil(async () => {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/`)).text();
      } catch {
        return undefined;
      }
    }, 10000);
    expect(body).toBe("from-the-container\n");
    expect((await u.nsbox(["rm", "-f", id])).code).toBe(0);
    await waitUntil(() => processesOf(u.uid, TOOLS).length === 0, 5000);
  });
});

describe.if(have("slirp4netns"))("slirp4netns", () => {
  test("--net slirp4netns: tap0 at 10.0.2.100, a default route via 10.0.2.2, gone with the container", async () => {
    const r = await u.nsbox(
      ["run", "--net", "slirp4netns", u.rootfs, "sh", "-c", "ip -4 addr show tap0 | grep -o '10.0.2.100/24'; ip route | grep '^default'"],
      { tun },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("10.0.2.100/24\ndefault via 10.0.2.2 dev tap0 \n");
    await waitUntil(() => processesOf(u.uid, TOOLS).length === 0, 5000);
  });

  test("-p publishes a port on the host's loopback through slirp4netns' API socket", async () => {
    const port = 20000 + ((process.pid + 7919) % 20000);
    const id = (
      await u.nsbox(
        [
          "run",
          "-d",
          "--net",
          "slirp4netns",
          "-p",
          `127.0.0.1:${port}:80`,
          u.rootfs,
          "sh",
          "-c",
          "mkdir /www; echo through-slirp > /www/index.html; exec httpd -f -p 80 -h /www",
        ],
        { tun },
      )
    ).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const body = await waitUntil(async () => {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/`)).text();
      } catch {
        return undefined;
      }
    }, 10000);
    expect(body).toBe("through-slirp\n");
    expect((await u.nsbox(["rm", "-f", id])).code).toBe(0);
    await waitUntil(() => processesOf(u.uid, TOOLS).length === 0, 5000);
    // the port is free again
    await waitUntil(async () => {
      try {
        await fetch(`http://127.0.0.1:${port}/`);
        return undefined;
      } catch {
        return true;
      }
    }, 5000);
  });
});

describe("without the tools' needs", () => {
  // (as root the test could open it whatever its mode: the mode bits tell what a user may)
  const tunOpenToUsers = (statSync("/dev/net/tun").mode & 0o006) === 0o006;
  test.if(have("pasta") && !tunOpenToUsers)("a host whose /dev/net/tun a user cannot open: default --net none with a note, --net pasta refused", async () => {
    const r = await u.nsbox(["run", u.rootfs, "sh", "-c", "ip route | wc -l"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("0\n");
    expect(r.stderr).toMatch(/^nsbox: rootless containers get --net none: pasta needs \/dev\/net\/tun open to you.*chmod 0666/);
    const again = await u.nsbox(["run", u.rootfs, "true"]);
    expect(again.stderr).toBe("");
    const explicit = await u.nsbox(["run", "--net", "pasta", u.rootfs, "true"]);
    expect(explicit.code).toBe(125);
    expect(explicit.stderr).toMatch(/^nsbox: --net pasta: pasta needs \/dev\/net\/tun/);
  });

  test("--net bridge names the options a user has", async () => {
    const r = await u.nsbox(["run", "--net", "bridge", u.rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(
      "nsbox: --net bridge needs root (a bridge, veths and NAT rules on the host): as a user, use --net pasta or --net slirp4netns (packages passt, slirp4netns) for outbound traffic and -p, --net none, or --net host\n",
    );
  });
});
