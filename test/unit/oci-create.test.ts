/** The OCI create's changes to the container's program: --no-pivot and the createContainer hooks' stop. */
import { describe, expect, test } from "bun:test";
import { buildPrograms } from "../../src/container/plan.ts";
import { C } from "../../src/native/program.ts";
import { parseConfig } from "../../src/oci/config.ts";
import { hostPseudoMounts, noPivot } from "../../src/oci/create.ts";
import { hookSyncPoint } from "../../src/oci/hooks.ts";

function program(edit: (c: ReturnType<typeof JSON.parse>) => void = () => {}) {
  const c = {
    ociVersion: "1.2.0",
    root: { path: "/" },
    process: { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } },
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    linux: { namespaces: [{ type: "mount" }, { type: "pid" }] },
  };
  edit(c);
  const { spec } = parseConfig(c, "/");
  return buildPrograms({ spec, lowerDir: "/", upperDir: "", workDir: "", mergedDir: "/", joinFds: {}, stdio: [-1, -1, -1], oci: { waitFd: 9, keepFds: 0 } }).c;
}
const codes = (c: { code: number; fields: unknown[] }[]) => c.map((op) => (op.code === C.SYNC ? `sync${op.fields.join("")}` : op.code));

describe("--no-pivot", () => {
  test("pivot_root becomes the move of the root onto / and a chroot", () => {
    const c = program();
    noPivot(c);
    expect(c.some((op) => op.code === C.PIVOT)).toBe(false);
    expect(c.filter((op) => op.code === C.MOVEROOT)).toHaveLength(1);
  });

  test("the host's proc and sysfs are detached right before the move, after the createContainer hooks' stop (as runc)", () => {
    const c = program();
    hookSyncPoint(c);
    noPivot(c, ["/proc", "/sys"]);
    const k = codes(c);
    const move = k.indexOf(C.MOVEROOT);
    expect(k.slice(move - 3, move + 1)).toEqual(["sync11", C.UNMOUNTHOST, C.UNMOUNTHOST, C.MOVEROOT]);
    expect(c.filter((op) => op.code === C.UNMOUNTHOST).map((op) => op.fields)).toEqual([["/proc"], ["/sys"]]);
  });

  test("which mounts: full proc and sysfs mounts outside the rootfs, in mountinfo's order, paths unescaped", () => {
    const info = [
      "22 1 0:21 / /proc rw,nosuid - proc proc rw",
      "23 1 0:22 / /sys rw - sysfs sysfs rw",
      "24 23 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro",
      "25 22 0:24 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw",
      "26 1 0:21 /sys /mnt/procsys rw - proc proc rw", // not the filesystem's root: left, as runc
      "27 1 0:25 / /srv/my\\040proc rw - proc proc rw",
      "28 1 0:26 / /b/rootfs/proc rw - proc proc rw", // the container's own
      "29 1 0:27 / /b/rootfs2/sys rw - sysfs sysfs rw", // beside the rootfs, not in it
      "",
    ].join("\n");
    expect(hostPseudoMounts(info, "/b/rootfs")).toEqual(["/proc", "/sys", "/srv/my proc", "/b/rootfs2/sys"]);
    expect(hostPseudoMounts(info, "/")).toEqual([]);
  });
});

describe("the createContainer hooks' stop", () => {
  test("without a user namespace: the GO awaited after pivot_root moves before the stop, after the mounts", () => {
    const c = program();
    hookSyncPoint(c);
    const k = codes(c);
    const pivot = k.indexOf(C.PIVOT);
    expect(k.slice(pivot - 2, pivot + 1)).toEqual(["sync01", "sync11", C.PIVOT]);
    expect(k.filter((x) => typeof x === "string")).toEqual(["sync10", "sync01", "sync11"]);
    expect(k.lastIndexOf(C.MOUNT)).toBeLessThan(pivot);
  });

  test("with a user namespace: one more stop before pivot_root", () => {
    const c = program((x) => {
      x.linux.namespaces.push({ type: "user" });
      x.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
      x.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    });
    hookSyncPoint(c);
    const k = codes(c);
    expect(k.filter((x) => typeof x === "string")).toEqual(["sync11", "sync11"]);
    expect(k[k.indexOf(C.PIVOT) - 1]).toBe("sync11");
  });

  test("without a mount namespace: before the chroot", () => {
    const c = program((x) => {
      x.linux.namespaces = [];
      x.mounts = [];
    });
    hookSyncPoint(c);
    const k = codes(c);
    expect(k[k.indexOf(C.CHROOT) - 1]).toBe("sync11");
  });
});
