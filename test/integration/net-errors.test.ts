/**
 * Network flags with bad input: each is refused with one line "nsbox: ...",
 * exit 125, and leaves nothing behind: no container state dir, no address or
 * port reservation of this file's state root, no veth and no nft rule that the
 * network state does not know (what a failed run would orphan).
 *
 * (-p 300.0.0.1:8080:80 is in net-sandbox.test.ts: nsbox hands that address to
 * nft, which looks it up as a host name, so it runs where nothing routes.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { freePort, netAdded, netSnapshot, readNetState, useNetTests } from "../helpers/net.ts";
import { isOneNsboxLine, type RunOptions, type RunResult, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("net-errors");
const net = useNetTests(ctx);

/** Runs nsbox args; expects exit code, one "nsbox: " line mentioning `mention`, nothing on stdout, and nothing left. */
async function expectError(args: string[], mention: string | RegExp, opts?: RunOptions & { code?: number }): Promise<RunResult> {
  const snap = () => netSnapshot(ctx.stateRoot);
  const before = snap();
  const r = await ctx.nsbox(args, opts);
  const left = await netAdded(before, snap);
  expect({ code: r.code, stdout: r.stdout, oneLine: isOneNsboxLine(r.stderr), stderr: r.stderr, left }).toEqual({
    code: opts?.code ?? 125,
    stdout: "",
    oneLine: true,
    stderr: expect.stringMatching(mention),
    left: {},
  });
  return r;
}

const run = (flags: string[]) => ["run", ...flags, ctx.rootfs, "true"];

describe("invalid subnets", () => {
  for (const [subnet, why] of [
    ["10.88.0.0/33", /prefix/],
    ["300.1.1.0/24", /invalid subnet "300\.1\.1\.0\/24"/],
    ["10.88.0.1/16", /host bits/],
    ["10.88.0.0", /invalid subnet/],
    ["127.0.0.0/8", /reserved/],
  ] as const) {
    test(`--subnet ${subnet}`, async () => {
      await expectError(run(["--subnet", subnet]), why);
    });
  }

  test("NSBOX_SUBNET=10.88.0.0/33 (the environment's subnet is checked the same way)", async () => {
    await expectError(run([]), /invalid subnet "10\.88\.0\.0\/33"/, { env: { NSBOX_SUBNET: "10.88.0.0/33" } });
  });

  test("pod create --subnet 300.1.1.0/24", async () => {
    await expectError(["pod", "create", "--subnet", "300.1.1.0/24"], /invalid subnet/);
  });
});

describe("invalid ports", () => {
  for (const [p, why] of [
    ["0:80", /host port 0 is outside 1-65535/],
    ["70000:80", /host port 70000 is outside 1-65535/],
    ["8080:0", /container port 0 is outside 1-65535/],
    ["8080:65536", /container port 65536 is outside/],
    ["-1:80", /./],
    ["http:80", /not a number/],
    ["80", /HOSTPORT:CONTAINERPORT/],
    ["8080:80/sctp", /tcp or udp/],
  ] as const) {
    test(`-p ${p}`, async () => {
      await expectError(run(["-p", p]), why);
    });
  }
});

describe("a host port that is already taken", () => {
  let hp = 0;
  let holder = "";
  beforeAll(async () => {
    hp = freePort();
    holder = await net.runD(["--name", "port-holder", "-p", `${hp}:80`, "-p", `${hp}:80/udp`, ctx.rootfs, "sleep", "120"]);
  });
  afterAll(async () => {
    await ctx.nsbox(["rm", "-f", holder]);
  });

  test("published by another container (tcp): names that container", async () => {
    await expectError(run(["-p", `${hp}:8080`]), new RegExp(`port ${hp}/tcp is already published by container ${holder.slice(0, 12)}`));
    // the holder keeps its port
    expect(readNetState().ports[`tcp/0.0.0.0/${hp}`]).toBe(holder);
  });

  test("published by another container (udp)", async () => {
    await expectError(run(["-p", `${hp}:53/udp`]), new RegExp(`port ${hp}/udp is already published by container ${holder.slice(0, 12)}`));
  });

  test("0.0.0.0:PORT is the same binding as PORT", async () => {
    await expectError(run(["-p", `0.0.0.0:${hp}:80`]), /already published/);
  });

  test("detached (-d) too, and by a pod", async () => {
    await expectError(["run", "-d", "-p", `${hp}:80`, ctx.rootfs, "sleep", "5"], /already published/);
    await expectError(["pod", "create", "-p", `${hp}:80`], /already published/);
    // the pod's name was not kept: pod ps lists nothing
    expect((await ctx.nsbox(["pod", "ps", "--format", "json"])).stdout).toBe("");
  });

  test("in use by a host listener the test opens (tcp on 127.0.0.1)", async () => {
    const port = freePort();
    const server = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      await expectError(run(["-p", `${port}:80`]), new RegExp(`port ${port}/tcp is already in use on the host`));
    } finally {
      server.stop(true);
    }
  });

  test("in use by a host socket the test opens (udp)", async () => {
    const port = freePort();
    const sock = await Bun.udpSocket({ hostname: "127.0.0.1", port });
    try {
      await expectError(run(["-p", `${port}:53/udp`]), new RegExp(`port ${port}/udp is already in use on the host`));
    } finally {
      sock.close();
    }
  });

  // Regression test (a bug found by this suite, fixed in src/): the same host port twice in one run is accepted; two DNAT
  // rules for one port are installed and the second one never gets a packet.
  test("the same host port twice in one run is refused", async () => {
    const port = freePort();
    await expectError(run(["-p", `${port}:80`, "-p", `${port}:81`]), /already|twice|more than once/);
  });

  // Regression test (a bug found by this suite, fixed in src/): 0.0.0.0:P (all addresses) and 127.0.0.1:P are different
  // keys in the port table, so a second container gets 127.0.0.1:P although the
  // first one's rule (fib daddr type local) already takes every local address.
  test("HOSTIP:PORT when another container publishes PORT on every address is refused", async () => {
    await expectError(run(["-p", `127.0.0.1:${hp}:80`]), /already published/);
  });
});

describe("network modes that cannot be", () => {
  test("--net container:nope", async () => {
    await expectError(run(["--net", "container:nope"]), /no such container: nope/);
  });

  test("--net container:X when X has exited", async () => {
    const r = await ctx.nsbox(["run", "-d", "--name", "exited-one", "--net", "none", ctx.rootfs, "true"]);
    expect(r.code).toBe(0);
    net.ids.add(r.stdout.trim());
    await Bun.sleep(300);
    await expectError(run(["--net", "container:exited-one"]), /not running/);
    await ctx.nsbox(["rm", "-f", "exited-one"]);
  });

  test("--net bogus", async () => {
    await expectError(run(["--net", "bogus"]), /invalid --net "bogus"/);
  });

  test("--pod nope", async () => {
    await expectError(run(["--pod", "nope"]), /no such pod: nope/);
  });

  test("--pod P --net host", async () => {
    await expectError(run(["--pod", "P", "--net", "host"]), /--net host cannot be combined with --pod/);
  });

  for (const mode of ["none", "host", "container:whatever"]) {
    test(`-p with --net ${mode}`, async () => {
      await expectError(run(["--net", mode, "-p", "8080:80"]), /-p needs --net bridge/);
    });
  }

  test("pod create --net none -p", async () => {
    await expectError(["pod", "create", "--net", "none", "-p", "8080:80"], /-p needs --net bridge/);
  });
});

describe("a failure after the network was set up gives it back", () => {
  for (const detach of [false, true]) {
    test(`a command that does not exist, with -p${detach ? " and -d" : ""}: exit 127, no address, port, rule or veth left`, async () => {
      const port = freePort();
      const args = ["run", ...(detach ? ["-d"] : []), "-p", `${port}:80`, ctx.rootfs, "/no/such/command"];
      await expectError(args, /no\/such\/command/, { code: 127 });
      expect(readNetState().ports[`tcp/0.0.0.0/${port}`]).toBeUndefined();
    });
  }
});
