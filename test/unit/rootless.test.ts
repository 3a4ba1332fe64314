/** Rootless mode's pure parts: /etc/subuid parsing, mappings, the user-mode network's command lines, kernel and cgroup checks. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NsboxError } from "../../src/errors.ts";
import { delegatedParent } from "../../src/rootless/cgroup.ts";
import { mappedSize, rootlessMapping, subRangeFor } from "../../src/rootless/identity.ts";
import { needsHelpers } from "../../src/rootless/idmap.ts";
import { userNetArgv } from "../../src/rootless/network.ts";
import { checkOverlayKernel } from "../../src/rootless/spec.ts";

describe("subRangeFor (/etc/subuid lines)", () => {
  const text = "# comment\nalice:100000:65536\n1001:200000:1000\nbob:0:65536\ncarol:300000:abc\ndave:4294967000:65536\nalice:500000:10\n";
  test("by name, the first line wins", () => expect(subRangeFor(text, "alice", 1000)).toEqual({ start: 100000, count: 65536 }));
  test("by numeric uid, as newuidmap matches", () => expect(subRangeFor(text, "nobody-named", 1001)).toEqual({ start: 200000, count: 1000 }));
  test("ranges at 0, malformed or past 32 bits are skipped", () => {
    expect(subRangeFor(text, "bob", 5)).toBeUndefined();
    expect(subRangeFor(text, "carol", 6)).toBeUndefined();
    expect(subRangeFor(text, "dave", 7)).toBeUndefined();
  });
  test("no line: undefined", () => expect(subRangeFor(text, "eve", 9)).toBeUndefined());
});

describe("mappings", () => {
  test("mappedSize counts ids from 0 without a gap", () => {
    expect(mappedSize([{ containerID: 0, hostID: 1000, size: 1 }])).toBe(1);
    expect(
      mappedSize([
        { containerID: 1, hostID: 100000, size: 65536 },
        { containerID: 0, hostID: 1000, size: 1 },
      ]),
    ).toBe(65537);
    expect(mappedSize([{ containerID: 5, hostID: 1000, size: 1 }])).toBe(0);
  });

  test("rootlessMapping: with both ranges, 0 -> the caller and 1.. -> the range; without, the caller alone and why", () => {
    const dir = mkdtempSync(join(tmpdir(), "nsbox-unit-subuid-"));
    try {
      const uid = process.getuid?.() ?? 0;
      const subuid = join(dir, "subuid");
      const subgid = join(dir, "subgid");
      writeFileSync(subuid, `${uid}:300000:65536\n`);
      writeFileSync(subgid, `${uid}:400000:65536\n`);
      const m = rootlessMapping({ subuid, subgid });
      if (Bun.which("newuidmap")) {
        expect(m.ranges).toBe(true);
        expect(m.uid).toEqual([
          { containerID: 0, hostID: uid, size: 1 },
          { containerID: 1, hostID: 300000, size: 65536 },
        ]);
        expect(m.gid[1]).toEqual({ containerID: 1, hostID: 400000, size: 65536 });
        expect(needsHelpers(m.uid, m.gid)).toBe(true);
      }
      const none = rootlessMapping({ subuid: join(dir, "missing"), subgid });
      expect(none.ranges).toBe(false);
      expect(none.uid).toEqual([{ containerID: 0, hostID: uid, size: 1 }]);
      expect(none.reason).toContain(join(dir, "missing"));
      expect(needsHelpers(none.uid, none.gid)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("user-mode network command lines", () => {
  const ports = [
    { hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" as const },
    { hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53, protocol: "udp" as const },
  ];
  test("pasta: only the published ports in, none of the host's out, the gateway not the host's loopback", () => {
    expect(userNetArgv("pasta", "/usr/bin/pasta", 42, ports)).toEqual([
      "/usr/bin/pasta",
      "--config-net",
      "--quiet",
      "--foreground",
      "--no-map-gw",
      "-t",
      "8080:80",
      "-u",
      "127.0.0.1/5353:53",
      "-T",
      "none",
      "-U",
      "none",
      "42",
    ]);
    expect(userNetArgv("pasta", "pasta", 7, [])).toContain("none");
  });
  test("slirp4netns: configured, host loopback closed", () => {
    expect(userNetArgv("slirp4netns", "/usr/bin/slirp4netns", 42, [])).toEqual([
      "/usr/bin/slirp4netns",
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      "42",
      "tap0",
    ]);
    // -p: the API socket, on which nsbox asks for each port once it runs
    expect(userNetArgv("slirp4netns", "slirp4netns", 42, [], "/tmp/x/slirp.sock").slice(4, 6)).toEqual(["--api-socket", "/tmp/x/slirp.sock"]);
  });
});

describe("checks", () => {
  test("overlay in a user namespace needs 5.11+: older kernels are named in the error", () => {
    expect(() => checkOverlayKernel("5.10.0-28-amd64")).toThrow(/Linux 5.11 or later .* this kernel is 5.10.0-28-amd64/);
    expect(() => checkOverlayKernel("4.19.0")).toThrow(NsboxError);
    for (const ok of ["5.11.0", "6.1.0-18-amd64", "6.18.44-fc-v857", "10.0"]) expect(() => checkOverlayKernel(ok)).not.toThrow();
  });

  test("delegatedParent: v1 or hybrid hosts delegate nothing, and say what would", () => {
    const hybrid = delegatedParent(undefined, { mode: "hybrid", v2Mount: "/sys/fs/cgroup/unified", v1Mounts: new Map([["memory", "/m"]]), v1Own: new Map() });
    expect(hybrid.dir).toBeUndefined();
    expect(hybrid.why).toMatch(/hybrid \(v1 controllers\), which cannot be delegated.*cgroup v2 only/);
  });

  test("delegatedParent: on v2, the parent of nsbox's own cgroup when writable (or --cgroup-parent)", () => {
    const mount = mkdtempSync(join(tmpdir(), "nsbox-unit-cg-"));
    try {
      mkdirSync(join(mount, "user"));
      for (const f of ["cgroup.procs", "cgroup.subtree_control"]) writeFileSync(join(mount, "user", f), "");
      const host = { mode: "v2" as const, v2Mount: mount, v2Own: "/user/shell", v1Mounts: new Map(), v1Own: new Map() };
      expect(delegatedParent(undefined, host).dir).toBe(join(mount, "user"));
      const missing = delegatedParent("/elsewhere", host);
      expect(missing.dir).toBeUndefined();
      expect(missing.why).toContain(`the cgroup ${join(mount, "elsewhere")} is not delegated to you`);
    } finally {
      rmSync(mount, { recursive: true, force: true });
    }
  });
});
