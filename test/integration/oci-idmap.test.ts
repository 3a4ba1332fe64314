/**
 * OCI idmapped mounts (mounts[].uidMappings/gidMappings, the idmap and ridmap
 * options): files owned by one uid on disk show with another in the container,
 * with and without a user namespace, and the disk keeps its owners. A
 * filesystem the kernel cannot idmap is refused in one line naming the mount.
 */
import { describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useNsbox } from "../helpers/nsbox.ts";
import { type Config, makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("ociidmap");
const h = ociHarness(ctx);

/** A host dir with f owned by 1000:1000 and g by root; and the mount points in the rootfs (a user namespace's root may not make them there). */
function hostDir(name: string, ...mountPoints: string[]): string {
  for (const m of mountPoints) mkdirSync(join(ctx.rootfs, m), { recursive: true });
  const d = join(ctx.tmp, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "f"), "f");
  chownSync(join(d, "f"), 1000, 1000);
  writeFileSync(join(d, "g"), "g");
  return d;
}

async function seen(id: string, script: string, edit: (c: Config) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  const b = makeBundle(ctx, id, (c) => {
    c.process.args = ["sh", "-c", script];
    edit(c);
  });
  return h.oci(["run", "--bundle", b, id]);
}

const userns = (c: Config) => {
  c.linux.namespaces.push({ type: "user" });
  c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.resources = {};
};

describe("idmapped bind mounts", () => {
  test("without a user namespace: the mount's mappings alone; ro applies; the disk keeps its owners", async () => {
    const d = hostDir("plain");
    const r = await seen("plain", "stat -c '%u:%g' /mnt/data/f /mnt/data/g; touch /mnt/data/new 2>/dev/null || echo read-only", (c) => {
      c.mounts.push({
        destination: "/mnt/data",
        type: "bind",
        source: d,
        options: ["rbind", "ro"],
        uidMappings: [{ containerID: 1000, hostID: 2000, size: 1 }],
        gidMappings: [{ containerID: 1000, hostID: 3000, size: 1 }],
      });
    });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    // g (root's) has no mapping in this idmap: the overflow id
    expect(r.stdout).toBe("2000:3000\n65534:65534\nread-only\n");
    expect(statSync(join(d, "f")).uid).toBe(1000);
  });

  test("with a user namespace: the mount's own mappings, and a bare idmap taking the container's", async () => {
    const d = hostDir("userns", "mnt/own", "mnt/bare");
    const r = await seen("userns", "stat -c '%u:%g' /mnt/own/f /mnt/bare/f /mnt/bare/g; echo hi > /mnt/bare/made && stat -c '%u' /mnt/bare/made", (c) => {
      userns(c);
      c.mounts.push(
        {
          destination: "/mnt/own",
          type: "bind",
          source: d,
          options: ["rbind"],
          uidMappings: [{ containerID: 1000, hostID: 100000, size: 1 }],
          gidMappings: [{ containerID: 1000, hostID: 100000, size: 1 }],
        },
        { destination: "/mnt/bare", type: "bind", source: d, options: ["rbind", "idmap"] },
      );
    });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    // own: disk 1000 is host 100000, the container's root; bare: disk ids are the container's ids
    expect(r.stdout).toBe("0:0\n1000:1000\n0:0\n0\n");
    // written by the container's root through the idmap: root's on disk, not 100000's
    expect(statSync(join(d, "made")).uid).toBe(0);
  });

  test("ridmap with rbind and idmap with a plain bind", async () => {
    const d = hostDir("rec");
    const r = await seen("rec", "stat -c '%u' /mnt/r/f /mnt/i/f", (c) => {
      c.mounts.push(
        {
          destination: "/mnt/r",
          type: "bind",
          source: d,
          options: ["rbind", "ridmap"],
          uidMappings: [{ containerID: 1000, hostID: 4000, size: 1 }],
          gidMappings: [{ containerID: 1000, hostID: 4000, size: 1 }],
        },
        {
          destination: "/mnt/i",
          type: "bind",
          source: d,
          options: ["bind", "idmap"],
          uidMappings: [{ containerID: 1000, hostID: 5000, size: 1 }],
          gidMappings: [{ containerID: 1000, hostID: 5000, size: 1 }],
        },
      );
    });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe("4000\n5000\n");
  });

  test("crun's idmap=uids=...;gids=... option, @ relative to the container's mappings", async () => {
    const d = hostDir("crun", "mnt/crun");
    // disk 1000 -> the container's 0 (host 100000); disk 0 -> host 7 (no id inside: the overflow id)
    const r = await seen("crunopt", "stat -c '%u:%g' /mnt/crun/f /mnt/crun/g", (c) => {
      userns(c);
      c.mounts.push({ destination: "/mnt/crun", type: "bind", source: d, options: ["rbind", "idmap=uids=@1000-0-1#0-7-1;gids=@1000-0-1"] });
    });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe("0:0\n65534:65534\n");
  });

  test("a filesystem without idmapped mounts is refused in one line naming the mount; nothing is left", async () => {
    const r = await seen("noidmap", "true", (c) => {
      c.mounts.push({
        destination: "/mnt/proc",
        type: "bind",
        source: "/proc",
        options: ["bind"],
        uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
        gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      });
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("mounts[");
    expect(r.stderr).toContain("cannot idmap /proc for /mnt/proc: its filesystem does not support idmapped mounts");
    expect(existsSync(join(h.root, "noidmap")) ? readdirSync(join(h.root, "noidmap")) : []).toEqual([]);
  });
});
