/**
 * Pods: an infra container (the pause shim) holds the namespaces its members
 * join. Members talk over 127.0.0.1, share the hostname and SysV IPC (and, with
 * --share pid, see each other's processes under the pause as PID 1); `nsbox ns`,
 * `pod inspect` and /proc agree on the shared inodes; a port published on the pod
 * reaches a member; the pause stays tiny; stop, rm and rm -f give everything
 * back. Traffic goes only to this file's containers, its client namespace and
 * 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  ClientNs,
  freePort,
  heldBy,
  inodeOf,
  NOTHING_HELD,
  netAdded,
  netSnapshot,
  nsLink,
  parentOf,
  pssKiB,
  readNetState,
  retry,
  sh,
  useNetTests,
  vethName,
} from "../helpers/net.ts";
import { cmdlineOf, isOneNsboxLine, lines, procStatus, type RunOptions, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("pod-basics");
const net = useNetTests(ctx);
let client: ClientNs;
beforeAll(() => {
  client = ClientNs.create();
});
afterAll(() => client?.destroy());

interface PodJson {
  Id: string;
  Name: string;
  Created: string;
  State: string;
  InfraContainerId: string;
  InfraPid: number;
  Hostname: string;
  SharedNamespaces: { Type: string; Inode: number | null }[];
  Network: { mode: string; ip?: string; ports: unknown[] } | null;
  Ports: string;
  Containers: { Id: string; Name: string; Status: string }[];
}

async function podInspect(ref: string): Promise<PodJson> {
  const r = await ctx.nsbox(["pod", "inspect", ref]);
  if (r.code !== 0) throw new Error(`pod inspect ${ref}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as PodJson[])[0] as PodJson;
}

async function podCreate(args: string[]): Promise<string> {
  const r = await ctx.nsbox(["pod", "create", ...args]);
  if (r.code !== 0) throw new Error(`pod create ${args.join(" ")}: ${r.stderr}`);
  const id = r.stdout.trim();
  if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`pod create printed ${JSON.stringify(r.stdout)}`);
  net.ids.add(id);
  return id;
}

async function podPs(): Promise<PodJson[]> {
  const r = await ctx.nsbox(["pod", "ps", "--format", "json"]);
  return lines(r.stdout).map((l) => JSON.parse(l) as PodJson);
}

/** Host pids of every process whose pid namespace is `pidns` (a /proc/PID/ns/pid link). */
function pidsInNs(pidns: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    if (nsLink(Number(e), "pid") === pidns) out.push(Number(e));
  }
  return out;
}

const HTTPD = ["sh", "-c", "mkdir -p /www && echo pod-hello > /www/index.html && exec httpd -f -p 8080 -h /www"];

describe("a pod sharing net, ipc and uts (the default)", () => {
  let podId = "";
  let hp = 0;
  let web = "";
  let cli = "";
  let infraPid = 0;

  beforeAll(async () => {
    hp = freePort();
    podId = await podCreate(["--name", "web", "--hostname", "web-host", "-p", `${hp}:8080`]);
  });

  test("pod create prints the id; pod ps and ps show the pod and its infra container running the pause", async () => {
    const pods = await podPs();
    const p = pods.find((x) => x.Name === "web");
    expect(p).toMatchObject({ Id: podId, State: "Running (no containers)", Hostname: "web-host", Containers: [] });
    const table = await ctx.nsbox(["pod", "ps"]);
    expect(lines(table.stdout)[0]).toMatch(/^POD ID\s+NAME\s+STATUS/);
    expect(lines(table.stdout).find((l) => l.startsWith(podId.slice(0, 12)))).toMatch(
      /web\s+Running \(no containers\).*net,ipc,uts\s+0\.0\.0\.0:\d+->8080\/tcp\s+0$/,
    );
    const infra = await net.inspect("web-infra");
    expect(infra.Id).toBe(podId);
    infraPid = infra.State.Pid;
    expect(cmdlineOf(infraPid)).toEqual(["nsbox-pause"]);
    // PID 1 of its own pid namespace
    expect(procStatus(infraPid)?.NSpid?.split(/\s+/).pop()).toBe("1");
  });

  test("members talk over 127.0.0.1: httpd in one, wget in the other", async () => {
    web = await net.runD(["--pod", "web", "--name", "web-httpd", ctx.rootfs, ...HTTPD]);
    cli = await net.runD(["--pod", "web", "--name", "web-cli", ctx.rootfs, "sleep", "300"]);
    const got = await retry(async () => (await net.exec("web-cli", ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"])).stdout);
    expect(got).toBe("pod-hello\n");
    // a container outside the pod has its own 127.0.0.1, where nothing listens
    const outsider = await ctx.nsbox(["run", "--net", "none", ctx.rootfs, "wget", "-q", "-T", "2", "-O", "-", "http://127.0.0.1:8080/index.html"]);
    expect(outsider.code).not.toBe(0);
    expect(outsider.stdout).toBe("");
  });

  test("members share the hostname, which is the pod's", async () => {
    for (const m of ["web-httpd", "web-cli"]) {
      expect(await net.mustExec(m, ["hostname"])).toBe("web-host\n");
      expect(await net.mustExec(m, ["cat", "/etc/hostname"])).toBe("web-host\n");
    }
    expect((await podInspect("web")).Hostname).toBe("web-host");
    // and the infra's uts namespace is where that name lives
    expect(sh(["nsenter", `--uts=/proc/${infraPid}/ns/uts`, "hostname"]).stdout).toBe("web-host\n");
  });

  test("members share SysV IPC: a shared memory segment made in one is read in the other (and not outside the pod)", async () => {
    const key = `0x${(0x4e530000 + Math.floor(Math.random() * 0xffff)).toString(16)}`;
    const text = `shm-${process.pid}`;
    await net.mustExec("web-httpd", ["nbxtool", "shm-put", key, text]);
    expect(await net.mustExec("web-cli", ["nbxtool", "shm-get", key])).toBe(`${text}\n`);
    const keyDec = String(Number(key));
    const inPod = await net.mustExec("web-cli", ["cat", "/proc/sysvipc/shm"]);
    expect(inPod.split("\n").some((l) => l.trim().split(/\s+/)[0] === keyDec)).toBe(true);
    // seen from the host through the infra's ipc namespace too
    const viaInfra = sh(["nsenter", `--ipc=/proc/${infraPid}/ns/ipc`, "cat", "/proc/sysvipc/shm"]).stdout;
    expect(viaInfra.split("\n").some((l) => l.trim().split(/\s+/)[0] === keyDec)).toBe(true);
    // not in the host's ipc namespace, not in a container outside the pod
    expect(
      readFileSync("/proc/sysvipc/shm", "utf8")
        .split("\n")
        .some((l) => l.trim().split(/\s+/)[0] === keyDec),
    ).toBe(false);
    const outsider = await ctx.nsbox(["run", "--net", "none", ctx.rootfs, "nbxtool", "shm-get", key]);
    expect(outsider.code).not.toBe(0);
  });

  test("without --share pid, each member has its own pid namespace: ps does not show the other's processes", async () => {
    const ps = await net.mustExec("web-cli", ["ps", "-o", "pid,comm"]);
    expect(ps).not.toContain("httpd");
    expect(ps).not.toContain("nsbox-pause");
  });

  test("nsbox ns: members' net, ipc and uts are the infra's (same inodes as readlink /proc/<infra pid>/ns/*), pid and mnt are not", async () => {
    for (const m of ["web-httpd", "web-cli"]) {
      const r = await ctx.nsbox(["ns", m, "--format", "json"]);
      const rows = JSON.parse(r.stdout) as { type: string; inode: number; pid: number; sharedWith: string[] }[];
      const memberPid = (await net.inspect(m)).State.Pid;
      for (const type of ["net", "ipc", "uts"]) {
        const row = rows.find((x) => x.type === type);
        expect(row?.inode).toBe(inodeOf(nsLink(infraPid, type)));
        expect(nsLink(memberPid, type)).toBe(nsLink(infraPid, type) as string);
        expect(row?.sharedWith).toEqual(expect.arrayContaining(["web-infra", m === "web-cli" ? "web-httpd" : "web-cli"]));
      }
      for (const type of ["pid", "mnt"]) {
        expect(rows.find((x) => x.type === type)?.inode).not.toBe(inodeOf(nsLink(infraPid, type)));
      }
    }
    // the table form names the sharers
    const table = await ctx.nsbox(["ns", "web-cli"]);
    expect(lines(table.stdout).find((l) => l.startsWith("net "))).toMatch(/web-infra/);
  });

  test("pod inspect: the JSON shape, inodes of the infra's namespaces, members, ports", async () => {
    const p = await podInspect("web");
    expect(Object.keys(p).sort()).toEqual(
      ["Containers", "Created", "Hostname", "Id", "InfraContainerId", "InfraPid", "Name", "Network", "Ports", "SharedNamespaces", "State"].sort(),
    );
    expect(p).toMatchObject({ Id: podId, Name: "web", State: "Running", InfraContainerId: podId, InfraPid: infraPid, Ports: `0.0.0.0:${hp}->8080/tcp` });
    expect(Number.isNaN(Date.parse(p.Created))).toBe(false);
    expect(p.SharedNamespaces).toEqual(["net", "ipc", "uts"].map((t) => ({ Type: t, Inode: inodeOf(nsLink(infraPid, t)) })));
    expect(p.Containers.map((c) => [c.Id, c.Name]).sort()).toEqual(
      [
        [web, "web-httpd"],
        [cli, "web-cli"],
      ].sort(),
    );
    for (const c of p.Containers) expect(c.Status).toMatch(/^Up /);
    expect(p.Network?.mode).toBe("bridge");
    expect(readNetState().addresses[p.Network?.ip as string]).toBe(podId);
    // several pods at once: one object each
    const two = await ctx.nsbox(["pod", "inspect", "web", podId.slice(0, 12)]);
    expect((JSON.parse(two.stdout) as PodJson[]).map((x) => x.Id)).toEqual([podId, podId]);
    // --format: a template, once per pod (the infra's PID is what nsenter -t needs)
    const tpl = await ctx.nsbox(["pod", "inspect", "--format", "{{.Name}} {{.InfraPid}} {{json .SharedNamespaces}}", "web"]);
    expect(tpl.stdout).toBe(`web ${p.InfraPid} ${JSON.stringify(p.SharedNamespaces)}\n`);
    // ps -f pod=NAME (or its id): the pod's members
    const members = lines((await ctx.nsbox(["ps", "-q", "--no-trunc", "-f", "pod=web"])).stdout).sort();
    expect(members).toEqual([web, cli].sort());
    expect(lines((await ctx.nsbox(["ps", "-q", "--no-trunc", "-f", `pod=${podId.slice(0, 12)}`])).stdout).sort()).toEqual(members);
  });

  test("the pod's published port reaches the member's server, from a client namespace and from 127.0.0.1", async () => {
    const req = "GET /index.html HTTP/1.0\r\n\r\n";
    const nc = (ip: string) => [`${ctx.rootfs}/bin/busybox`, "nc", "-w", "2", ip, String(hp)];
    const fromClient = await retry(() => client.exec(nc(client.hostIp), { input: req, timeoutMs: 5000 }).stdout, 8000);
    expect(fromClient).toMatch(/^HTTP\/1\.[01] 200/);
    expect(fromClient).toContain("pod-hello");
    const fromHost = await retry(() => sh(nc("127.0.0.1"), { input: req, timeoutMs: 5000 }).stdout, 8000);
    expect(fromHost).toContain("pod-hello");
  });

  test("the pause is tiny: PSS of the infra process and of its monitor well under 1 MiB", () => {
    const monitor = parentOf(infraPid);
    expect(cmdlineOf(monitor)[0]).toBe("nsbox-monitor");
    const pause = pssKiB(infraPid);
    const mon = pssKiB(monitor);
    expect({ pauseUnder256KiB: pause < 256, monitorUnder256KiB: mon < 256 }).toEqual({ pauseUnder256KiB: true, monitorUnder256KiB: true });
  });

  test("pod stop: members and infra exit (the pause with 0 on SIGTERM), the network is given back; pod rm removes the rest", async () => {
    const r = await ctx.nsbox(["pod", "stop", "-t", "2", "web"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const p = (await podPs()).find((x) => x.Name === "web");
    expect(p?.State).toBe("Exited");
    expect(p?.InfraPid).toBe(0);
    expect((await net.inspect("web-infra")).State).toMatchObject({ Status: "exited", ExitCode: 0 });
    for (const m of ["web-httpd", "web-cli"]) expect((await net.inspect(m)).State.Status).toBe("exited");
    // exited: no veth, no address, no rule any more (the state dirs stay until rm)
    const held = heldBy([podId, web, cli], ctx.stateRoot);
    expect({ veths: held.veths, addresses: held.addresses, ports: held.ports, rules: held.rules }).toEqual({ veths: [], addresses: [], ports: [], rules: [] });
    const conn = sh([`${ctx.rootfs}/bin/busybox`, "nc", "-w", "2", "127.0.0.1", String(hp)], { input: "", timeoutMs: 5000 });
    expect(conn.stdout).toBe("");

    const rm = await ctx.nsbox(["pod", "rm", "web"]);
    expect({ code: rm.code, stdout: rm.stdout, stderr: rm.stderr }).toEqual({ code: 0, stdout: "web\n", stderr: "" });
    expect((await podPs()).find((x) => x.Name === "web")).toBeUndefined();
    expect((await ctx.nsbox(["ps", "-aq", "--no-trunc"])).stdout.split("\n")).not.toEqual(expect.arrayContaining([podId]));
    expect(heldBy([podId, web, cli], ctx.stateRoot)).toEqual(NOTHING_HELD);
    // the name is free again
    const again = await podCreate(["--name", "web", "--net", "none"]);
    expect((await ctx.nsbox(["pod", "rm", "-f", "web"])).code).toBe(0);
    expect(heldBy([again], ctx.stateRoot)).toEqual(NOTHING_HELD);
  });
});

describe("a pod sharing pid too", () => {
  let podId = "";
  let infraPid = 0;
  const members: string[] = [];

  beforeAll(async () => {
    podId = await podCreate(["--name", "pids", "--share", "net,ipc,uts,pid"]);
    infraPid = (await podInspect("pids")).InfraPid;
    members.push(await net.runD(["--pod", "pids", "--name", "pids-a", ctx.rootfs, "sleep", "1234"]));
    members.push(await net.runD(["--pod", "pids", "--name", "pids-b", ctx.rootfs, "sleep", "300"]));
  });

  test("members see each other's processes; the pause is PID 1", async () => {
    const ps = await net.mustExec("pids-b", ["ps", "-o", "pid,args"]);
    expect(ps).toContain("sleep 1234");
    expect(lines(ps).find((l) => /^\s*1\s/.test(l))).toMatch(/^\s*1\s+nsbox-pause$/);
    expect(await net.mustExec("pids-a", ["cat", "/proc/1/comm"])).toBe("nsbox-pause\n");
    expect(nsLink((await net.inspect("pids-a")).State.Pid, "pid")).toBe(nsLink(infraPid, "pid") as string);
    expect((await podInspect("pids")).SharedNamespaces.map((s) => s.Type)).toEqual(["net", "ipc", "uts", "pid"]);
  });

  test("an orphan is re-parented to the pause, which reaps it when it exits (no zombie)", async () => {
    // the subshell exits at once, leaving its sleep without a parent
    await net.mustExec("pids-b", ["sh", "-c", "(sleep 1.5 >/dev/null 2>&1 &); exit 0"]);
    const pidns = nsLink(infraPid, "pid") as string;
    const orphan = await waitUntil(() => pidsInNs(pidns).find((p) => cmdlineOf(p).join(" ") === "sleep 1.5"), 3000);
    expect(orphan).toBeDefined();
    expect(parentOf(orphan as number)).toBe(infraPid);
    const reaped = await waitUntil(() => !existsSync(`/proc/${orphan}`), 6000);
    expect(reaped).toBe(true);
    const zombies = pidsInNs(pidns).filter((p) => procStatus(p)?.State?.startsWith("Z"));
    expect(zombies).toEqual([]);
  });

  test("pod rm without -f refuses a running pod (one line, 125, nothing touched)", async () => {
    const r = await ctx.nsbox(["pod", "rm", "pids"]);
    expect({ code: r.code, oneLine: isOneNsboxLine(r.stderr), msg: r.stderr }).toEqual({
      code: 125,
      oneLine: true,
      msg: expect.stringMatching(/is running.*pod rm -f/),
    });
    expect((await podInspect("pids")).State).toBe("Running");
  });

  test("pod rm -f of a running pod removes its members and its infra, and gives everything back", async () => {
    const r = await ctx.nsbox(["pod", "rm", "-f", "pids"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect((await podPs()).find((x) => x.Name === "pids")).toBeUndefined();
    const left = (await ctx.nsbox(["ps", "-aq", "--no-trunc"])).stdout.split("\n").filter(Boolean);
    for (const id of [podId, ...members]) expect(left).not.toContain(id);
    expect(heldBy([podId, ...members], ctx.stateRoot)).toEqual(NOTHING_HELD);
    expect(existsSync(`/proc/${infraPid}`)).toBe(false);
    expect(sh(["ip", "link", "show", vethName(podId)]).code).not.toBe(0);
  });
});

describe("other pod networks and shares", () => {
  test("pod create --net host: members are in the host's network namespace", async () => {
    await podCreate(["--name", "hostnet", "--net", "host"]);
    const r = await ctx.nsbox(["run", "--pod", "hostnet", ctx.rootfs, "readlink", "/proc/self/ns/net"]);
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: `${nsLink("self", "net")}\n` });
    expect((await ctx.nsbox(["pod", "rm", "-f", "hostnet"])).code).toBe(0);
  });

  test("pod create --net none: members have only lo, UP", async () => {
    const id = await podCreate(["--name", "nonet", "--net", "none"]);
    const r = await ctx.nsbox(["run", "--pod", "nonet", ctx.rootfs, "ip", "-o", "link", "show"]);
    expect(r.code).toBe(0);
    expect(lines(r.stdout).length).toBe(1);
    expect(r.stdout).toMatch(/^1: lo: <[^>]*\bUP\b/);
    expect((await ctx.nsbox(["pod", "rm", "-f", "nonet"])).code).toBe(0);
    expect(heldBy([id], ctx.stateRoot)).toEqual(NOTHING_HELD);
  });

  test("--share net (only): members share the network but keep hostnames and ipc of their own", async () => {
    const id = await podCreate(["--name", "netonly", "--share", "net", "--hostname", "netonly-host"]);
    const infraPid = (await podInspect("netonly")).InfraPid;
    const m = await net.runD(["--pod", "netonly", ctx.rootfs, "sleep", "60"]);
    const pid = (await net.inspect(m)).State.Pid;
    expect(nsLink(pid, "net")).toBe(nsLink(infraPid, "net") as string);
    expect(nsLink(pid, "uts")).not.toBe(nsLink(infraPid, "uts") as string);
    expect(nsLink(pid, "ipc")).not.toBe(nsLink(infraPid, "ipc") as string);
    expect(await net.mustExec(m, ["hostname"])).not.toBe("netonly-host\n");
    expect((await podInspect("netonly")).SharedNamespaces.map((x) => x.Type)).toEqual(["net"]);
    expect((await ctx.nsbox(["pod", "rm", "-f", "netonly"])).code).toBe(0);
    expect(heldBy([id, m], ctx.stateRoot)).toEqual(NOTHING_HELD);
  });

  // Regression test (a bug found by this suite, fixed in src/): `nsbox rm -f <pod>-infra` is accepted while members run: the
  // pod vanishes from pod ps (pod rm then says "no such pod"), and its member is
  // left running with only lo, in no pod. podman refuses to remove an infra
  // container on its own.
  test("rm -f of a pod's infra container while a member runs is refused (one line, 125), the pod stays", async () => {
    const id = await podCreate(["--name", "infra-rm"]);
    const m = await net.runD(["--pod", "infra-rm", "--name", "infra-rm-member", ctx.rootfs, "sleep", "60"]);
    try {
      const r = await ctx.nsbox(["rm", "-f", "infra-rm-infra"]);
      const pod = (await podPs()).find((p) => p.Name === "infra-rm");
      const member = (await net.inspect(m)).State.Status;
      expect({ code: r.code, oneLine: isOneNsboxLine(r.stderr), podState: pod?.State, member }).toEqual({
        code: 125,
        oneLine: true,
        podState: "Running",
        member: "running",
      });
    } finally {
      await ctx.nsbox(["pod", "rm", "-f", "infra-rm"]);
      await ctx.nsbox(["rm", "-f", m, id]);
    }
  });
});

describe("bad input", () => {
  let stopped = "";
  beforeAll(async () => {
    await podCreate(["--name", "bad-target"]);
    stopped = await podCreate(["--name", "stopped-pod", "--net", "none"]);
    await ctx.nsbox(["pod", "stop", "stopped-pod"]);
  });
  afterAll(async () => {
    await ctx.nsbox(["pod", "rm", "-f", "bad-target", "stopped-pod"]);
  });

  async function expectError(args: string[], mention: RegExp, opts?: RunOptions): Promise<void> {
    const snap = () => netSnapshot(ctx.stateRoot);
    const before = snap();
    const podsBefore = (await podPs()).map((p) => `${p.Name} ${p.State}`);
    const r = await ctx.nsbox(args, opts);
    const left = await netAdded(before, snap);
    const podsAfter = (await podPs()).map((p) => `${p.Name} ${p.State}`);
    expect({ code: r.code, stdout: r.stdout, oneLine: isOneNsboxLine(r.stderr), msg: r.stderr, left, pods: podsAfter }).toEqual({
      code: 125,
      stdout: "",
      oneLine: true,
      msg: expect.stringMatching(mention),
      left: {},
      pods: podsBefore,
    });
  }

  const run = (flags: string[]) => ["run", ...flags, ctx.rootfs, "true"];

  test("--pod nope", () => expectError(run(["--pod", "nope"]), /no such pod: nope/));
  test("--pod P --net host", () => expectError(run(["--pod", "bad-target", "--net", "host"]), /--net host cannot be combined with --pod/));
  test("--pod P --net bridge", () => expectError(run(["--pod", "bad-target", "--net", "bridge"]), /cannot be combined with --pod/));
  test("--pod P --net container:X", () => expectError(run(["--pod", "bad-target", "--net", "container:x"]), /cannot be combined with --pod/));
  test("--pod P -p 8080:80", () => expectError(run(["--pod", "bad-target", "-p", "8080:80"]), /-p cannot be used with --pod/));
  test("--pod P --hostname other (the pod shares its hostname)", () =>
    expectError(run(["--pod", "bad-target", "--hostname", "other"]), /--hostname cannot be used with --pod/));
  test("--pod of a stopped pod", () => expectError(run(["--pod", "stopped-pod"]), /not running/));
  test("pod create --share ipc,uts (no net)", () => expectError(["pod", "create", "--share", "ipc,uts"], /must include net/));
  test("pod create --share net,mnt", () => expectError(["pod", "create", "--share", "net,mnt"], /invalid --share "mnt"/));
  test("pod create --name of an existing pod", () => expectError(["pod", "create", "--name", "bad-target"], /already exists/));
  test("pod create --name with a bad character", () => expectError(["pod", "create", "--name", "a/b"], /invalid --name/));
  test("pod create --net container:x", () => expectError(["pod", "create", "--net", "container:x"], /invalid --net/));
  test("pod create -p 0:80", () => expectError(["pod", "create", "-p", "0:80"], /outside 1-65535/));
  test("pod inspect / stop / rm of an unknown pod", async () => {
    for (const a of ["inspect", "stop", "rm"]) await expectError(["pod", a, "nope"], /no such pod: nope/);
  });
  test("the stopped pod is still listed as Exited (and is removable)", async () => {
    expect((await podPs()).find((p) => p.Id === stopped)?.State).toBe("Exited");
  });
});
