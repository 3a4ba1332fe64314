/**
 * The security settings from docker's flags (src/security/): capability names
 * and sets, --security-opt, and what --privileged turns off. The kernel side
 * (what a container really holds) is in test/integration/security-*.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { allCaps, capHex, capMask, capName, DEFAULT_CAPS, privilegedCaps, processCaps, resolveCaps } from "../../src/security/capabilities.ts";
import { parseSecurityOpts } from "../../src/security/options.ts";
import { securityFromFlags } from "../../src/security/policy.ts";
import { removeTempDirs, tempDir } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

describe("capabilities", () => {
  test("docker's default set is CapEff 00000000a80425fb", () => {
    expect(capHex(DEFAULT_CAPS)).toBe("00000000a80425fb");
  });
  test("names with or without CAP_, in any case", () => {
    expect(capName("net_admin", "--cap-add")).toBe("CAP_NET_ADMIN");
    expect(capName("CAP_SYS_ADMIN", "--cap-add")).toBe("CAP_SYS_ADMIN");
    expect(capName("Cap_Chown", "--cap-add")).toBe("CAP_CHOWN");
    expect(capName("all", "--cap-drop")).toBe("ALL");
  });
  test("an unknown name is refused, naming it and the flag", () => {
    expect(() => capName("NET_ADMINN", "--cap-add")).toThrow('--cap-add "NET_ADMINN": no such capability');
    expect(() => capName("", "--cap-drop")).toThrow("no such capability");
  });
  test("add, drop and ALL as docker combines them", () => {
    expect(resolveCaps({})).toEqual(allCaps().filter((c) => DEFAULT_CAPS.includes(c)));
    expect(resolveCaps({ drop: ["ALL"] })).toEqual([]);
    expect(resolveCaps({ drop: ["ALL"], add: ["chown"] })).toEqual(["CAP_CHOWN"]);
    expect(resolveCaps({ add: ["SYS_ADMIN"] })).toContain("CAP_SYS_ADMIN");
    expect(resolveCaps({ drop: ["CHOWN", "net_raw"] })).not.toContain("CAP_CHOWN");
    expect(resolveCaps({ add: ["ALL"] })).toEqual(privilegedCaps());
    expect(resolveCaps({ privileged: true, drop: ["ALL"] })).toEqual(privilegedCaps());
    // nsbox holds them all but what this host took from every process (CAP_SYS_RESOURCE on some)
    expect(privilegedCaps().length).toBeGreaterThan(allCaps().length - 3);
  });
  test("root holds the set; another user only its bounding set; never inheritable or ambient", () => {
    expect(processCaps(["CAP_CHOWN"], 0)).toEqual({
      bounding: ["CAP_CHOWN"],
      effective: ["CAP_CHOWN"],
      permitted: ["CAP_CHOWN"],
      inheritable: [],
      ambient: [],
    });
    expect(processCaps(["CAP_CHOWN"], 1000)).toEqual({ bounding: ["CAP_CHOWN"], effective: [], permitted: [], inheritable: [], ambient: [] });
  });
  test("masks split into the words the helper reads", () => {
    expect(capMask(["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"])).toEqual([1, 1 << 8]);
  });
});

describe("--security-opt", () => {
  test("the defaults", () => {
    expect(parseSecurityOpts([])).toEqual({ noNewPrivileges: false, seccomp: { mode: "default" }, systemPaths: true, notes: [] });
  });
  test("no-new-privileges, with or without a value, = or :", () => {
    expect(parseSecurityOpts(["no-new-privileges"]).noNewPrivileges).toBe(true);
    expect(parseSecurityOpts(["no-new-privileges=true"]).noNewPrivileges).toBe(true);
    expect(parseSecurityOpts(["no-new-privileges:true"]).noNewPrivileges).toBe(true);
    expect(parseSecurityOpts(["no-new-privileges=false"]).noNewPrivileges).toBe(false);
    expect(() => parseSecurityOpts(["no-new-privileges=maybe"])).toThrow("true or false");
  });
  test("seccomp=unconfined, a profile file, a missing file", () => {
    expect(parseSecurityOpts(["seccomp=unconfined"]).seccomp).toEqual({ mode: "unconfined" });
    const dir = tempDir("nsbox-sec-");
    writeFileSync(join(dir, "p.json"), "{}");
    expect(parseSecurityOpts([`seccomp=${dir}/p.json`]).seccomp).toEqual({ mode: "profile", path: `${dir}/p.json`, text: "{}" });
    expect(() => parseSecurityOpts([`seccomp=${dir}/none.json`])).toThrow("cannot read the profile (no such file)");
  });
  test("systempaths=unconfined; label and apparmor accepted with a note; anything else refused by name", () => {
    expect(parseSecurityOpts(["systempaths=unconfined"]).systemPaths).toBe(false);
    expect(parseSecurityOpts(["label=type:svirt_t"]).notes).toHaveLength(1);
    expect(parseSecurityOpts(["apparmor=docker-default"]).notes).toHaveLength(1);
    expect(parseSecurityOpts(["label=disable"]).notes).toHaveLength(0);
    expect(() => parseSecurityOpts(["selinux=x"])).toThrow('unknown --security-opt "selinux=x"');
    expect(() => parseSecurityOpts(["systempaths=confined"])).toThrow("systempaths=unconfined");
  });
});

describe("what the flags add up to", () => {
  const base = { privileged: false, capAdd: [], capDrop: [], securityOpt: [], uid: 0 };
  test("defaults: docker's caps, a seccomp filter, masked and read-only paths", async () => {
    const s = await securityFromFlags(base);
    expect(s.caps).toHaveLength(14);
    expect(s.seccomp?.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(s.maskedPaths).toContain("/proc/kcore");
    expect(s.readonlyPaths).toContain("/proc/sys");
    expect(s.noNewPrivileges).toBe(false);
  });
  test("--privileged: every capability, no filter, no masked paths", async () => {
    const s = await securityFromFlags({ ...base, privileged: true });
    expect(s.caps).toEqual(privilegedCaps());
    expect(s.seccomp).toBeUndefined();
    expect(s.maskedPaths).toEqual([]);
    expect(s.readonlyPaths).toEqual([]);
  });
  test("seccomp=unconfined keeps the rest; systempaths=unconfined keeps the filter", async () => {
    const a = await securityFromFlags({ ...base, securityOpt: ["seccomp=unconfined"] });
    expect(a.seccomp).toBeUndefined();
    expect(a.maskedPaths.length).toBeGreaterThan(0);
    const b = await securityFromFlags({ ...base, securityOpt: ["systempaths=unconfined"] });
    expect(b.seccomp).toBeDefined();
    expect(b.maskedPaths).toEqual([]);
  });
});
