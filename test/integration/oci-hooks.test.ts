/**
 * createContainer hooks where the runtime-spec puts them: in the container's
 * namespaces, after its mounts and before pivot_root, found in the runtime's
 * filesystem; with the state on stdin and their timeout. A failure aborts
 * create and leaves nothing (process, state dir, cgroup).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { useNsbox } from "../helpers/nsbox.ts";
import { cgroupDirsOf, makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("ocihooks");
const h = ociHarness(ctx);

/** Still a process with this pid (other than a zombie)? */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

describe("createContainer hooks", () => {
  test("run in the container's mount and uts namespaces, its mounts made, before pivot_root, with the state on stdin", async () => {
    const out = join(ctx.tmp, "cc-out");
    mkdirSync(out);
    const rootfs = ctx.rootfs;
    // The hook records: its mount namespace and the container process's (pid from the
    // state on stdin), its hostname, whether the container's tmpfs is mounted under the
    // rootfs path (only the container's namespace has it) and whether the host's root is
    // still its root (the bundle's config.json at its host path: before pivot_root).
    const script = [
      "read -r s",
      `pid=$(echo "$s" | sed 's/.*"pid": *\\([0-9]*\\).*/\\1/')`,
      `echo "$s" > ${out}/state`,
      `readlink /proc/self/ns/mnt > ${out}/mine`,
      `readlink /proc/$pid/ns/mnt > ${out}/theirs`,
      `readlink /proc/self/ns/uts > ${out}/uts`,
      `grep -c " ${rootfs}/mnt/only " /proc/self/mountinfo > ${out}/mounted`,
      `test -e "$BUNDLE/config.json" && echo host-root > ${out}/root`,
    ].join("; ");
    const b = makeBundle(ctx, "cc", (c) => {
      c.mounts.push({ destination: "/mnt/only", type: "tmpfs", source: "tmpfs", options: ["size=1m"] });
      c.hooks = { createContainer: [{ path: "/bin/sh", args: ["sh", "-c", script], env: [`BUNDLE=${join(ctx.tmp, "oci", "bundles", "cc")}`], timeout: 10 }] };
    });
    const r = await h.oci(["create", "--bundle", b, "cc"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    const pid = JSON.parse((await h.oci(["state", "cc"])).stdout).pid;
    const read = (f: string) => readFileSync(join(out, f), "utf8").trim();
    expect(JSON.parse(read("state"))).toMatchObject({ id: "cc", status: "creating", pid, bundle: b });
    expect(read("mine")).toBe(read("theirs"));
    expect(read("mine")).toBe(readlinkSync(`/proc/${pid}/ns/mnt`));
    expect(read("mine")).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    expect(read("uts")).toBe(readlinkSync(`/proc/${pid}/ns/uts`));
    expect(read("uts")).not.toBe(readlinkSync("/proc/self/ns/uts"));
    expect(read("mounted")).toBe("1");
    expect(read("root")).toBe("host-root");
    // the host never had that tmpfs
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${rootfs}/mnt/only `);
    expect((await h.oci(["delete", "--force", "cc"])).code).toBe(0);
  });

  test("with a user namespace too (the hook joins it first)", async () => {
    const out = join(ctx.tmp, "ccu-out");
    mkdirSync(out);
    const b = makeBundle(ctx, "ccu", (c) => {
      c.process.args = ["true"];
      c.linux.namespaces.push({ type: "user" });
      c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux.resources = {};
      c.hooks = { createContainer: [{ path: "/bin/sh", args: ["sh", "-c", `cat /proc/self/uid_map > ${out}/map; readlink /proc/self/ns/mnt > ${out}/mnt`] }] };
    });
    // (the hook, root of the container's user namespace, writes to a dir of the host's root)
    Bun.spawnSync(["chmod", "777", out]);
    const r = await h.oci(["run", "--bundle", b, "ccu"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(readFileSync(join(out, "map"), "utf8").trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(readFileSync(join(out, "mnt"), "utf8").trim()).not.toBe(readlinkSync("/proc/self/ns/mnt"));
  });

  test("a failing one aborts create with its error; no process, state or cgroup is left", async () => {
    const pidFile = join(ctx.tmp, "ccfail-pid");
    const b = makeBundle(ctx, "ccfail", (c) => {
      c.hooks = {
        createContainer: [{ path: "/bin/sh", args: ["sh", "-c", `read -r s; echo "$s" | sed 's/.*"pid": *\\([0-9]*\\).*/\\1/' > ${pidFile}; exit 4`] }],
      };
    });
    const r = await h.oci(["create", "--bundle", b, "ccfail"]);
    expect([r.code, r.stderr]).toEqual([1, "nsbox: createContainer hook 0 (/bin/sh) failed: exit status 4\n"]);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(h.root, "ccfail"))).toBe(false);
    expect(cgroupDirsOf("ccfail")).toEqual([]);
  });

  test("one past its timeout is killed and fails create", async () => {
    const b = makeBundle(ctx, "ccslow", (c) => {
      c.hooks = { createContainer: [{ path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }] };
    });
    const r = await h.oci(["create", "--bundle", b, "ccslow"]);
    expect([r.code, r.stderr]).toEqual([1, "nsbox: createContainer hook 0 (/bin/sleep) failed: timed out after 1s\n"]);
    expect(existsSync(join(h.root, "ccslow"))).toBe(false);
    expect(cgroupDirsOf("ccslow")).toEqual([]);
  });

  test("a path that does not exist in the runtime's filesystem fails create", async () => {
    const b = makeBundle(ctx, "ccmissing", (c) => {
      c.hooks = { createContainer: [{ path: "/no/such/hook" }] };
    });
    const r = await h.oci(["create", "--bundle", b, "ccmissing"]);
    expect([r.code, r.stderr]).toEqual([1, "nsbox: createContainer hook 0 (/no/such/hook) failed: cannot open it: ENOENT\n"]);
    expect(existsSync(join(h.root, "ccmissing"))).toBe(false);
  });
});
