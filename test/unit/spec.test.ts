import { describe, expect, test } from "bun:test";
import { MS, mountFlags } from "../../src/config/mountopts.ts";
import { containerPath, mergeEnv, parseEnv, parseTmpfs, parseVolume, resolveUser } from "../../src/config/parse.ts";
import { parseResources } from "../../src/config/resources.ts";
import { parseCpuList, parseSize } from "../../src/config/units.ts";

describe("units", () => {
  test("sizes are binary multiples, as docker's", () => {
    expect(parseSize("64m", "--memory")).toBe(64 * 1024 * 1024);
    expect(parseSize("1g", "--memory")).toBe(1024 ** 3);
    expect(parseSize("512k", "--memory")).toBe(512 * 1024);
    expect(parseSize("100", "--memory")).toBe(100);
    expect(parseSize("1.5G", "--memory")).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize("abc", "--memory")).toThrow(/invalid --memory "abc"/);
  });
  test("cpu lists", () => {
    expect(parseCpuList("0-2,4", "x")).toEqual([0, 1, 2, 4]);
    expect(() => parseCpuList("3-1", "x")).toThrow(/backwards/);
  });
});

describe("resources", () => {
  test("docker flags become OCI resources", () => {
    const r = parseResources({ memory: "64m", memorySwap: "128m", cpus: "0.5", pidsLimit: "20", cpuShares: "512" });
    expect(r).toEqual({ memory: { limit: 64 << 20, swap: 128 << 20 }, cpu: { quota: 50000, period: 100000, shares: 512 }, pids: { limit: 20 } });
  });
  test("values the kernel would refuse are refused first", () => {
    expect(() => parseResources({ memory: "1k" })).toThrow(/minimum is 6m/);
    expect(() => parseResources({ cpus: "-1" })).toThrow(/invalid --cpus/);
    expect(() => parseResources({ cpus: "99" })).toThrow(/CPU/);
    expect(() => parseResources({ cpusetCpus: "99" })).toThrow(/does not exist/);
    expect(() => parseResources({ pidsLimit: "0" })).toThrow(/--pids-limit/);
    expect(() => parseResources({ memorySwap: "1g" })).toThrow(/needs --memory/);
    expect(() => parseResources({ memory: "64m", memorySwap: "32m" })).toThrow(/cannot be below/);
  });
  test("no flags, no resources", () => {
    expect(parseResources({})).toBeUndefined();
  });
});

describe("volumes, tmpfs, paths, env, users", () => {
  test("volumes", () => {
    expect(parseVolume("/data:/mnt/x:ro")).toEqual({ destination: "/mnt/x", type: "bind", source: "/data", options: ["rbind", "ro", "nosuid", "nodev"] });
    expect(() => parseVolume("data:/x")).toThrow(/must be absolute/);
    expect(() => parseVolume("/a:/b:rx")).toThrow(/mode must be ro or rw/);
  });
  test("tmpfs options are checked", () => {
    expect(parseTmpfs("/run:size=1m").options).toContain("size=1m");
    expect(() => parseTmpfs("/run:size=oops")).toThrow(/invalid --tmpfs option/);
  });
  test("container paths never climb", () => {
    expect(containerPath("/a/../../etc//x/.", "-w")).toBe("/etc/x");
    expect(() => containerPath("rel", "-w")).toThrow(/absolute/);
  });
  test("env", () => {
    expect(parseEnv(["A=1", "HOME"], { HOME: "/h" })).toEqual(["A=1", "HOME=/h"]);
    expect(() => parseEnv(["1X=2"], {})).toThrow(/invalid --env/);
    expect(mergeEnv(["A=1", "B=2"], ["A=3"])).toEqual(["A=3", "B=2"]);
  });
  test("users by number or by name from the rootfs", () => {
    const passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n";
    const group = "root:x:0:\nwww:x:34:\nadm:x:4:www\n";
    expect(resolveUser("1000:1000", passwd, group)).toEqual({ uid: 1000, gid: 1000, home: undefined, additionalGids: [] });
    expect(resolveUser("www", passwd, group)).toEqual({ uid: 33, gid: 34, home: "/var/www", additionalGids: [4] });
    expect(() => resolveUser("nobody", passwd, group)).toThrow(/no user "nobody"/);
    expect(() => resolveUser("1:2:3", passwd, group)).toThrow(/invalid --user/);
  });
  test("mount options", () => {
    expect(mountFlags(["rbind", "ro", "nosuid"])).toEqual({ flags: MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID, data: "" });
    expect(mountFlags(["nosuid", "mode=755", "size=1m"])).toEqual({ flags: MS.NOSUID, data: "mode=755,size=1m" });
  });
});
