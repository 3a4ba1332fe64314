/**
 * Rootless images: a user imports an OCI layout (what pull stores, without a
 * registry) and runs it. Layers are unpacked inside the user's namespace: the
 * archive's owners go through the mapping (uid 0 -> the user, 1234 -> its range),
 * OCI whiteouts become overlayfs's with the user.overlay.opaque xattr (the
 * overlay is mounted with userxattr), and prune removes layers whatever ids own
 * their files. Layouts are built by root in a directory the user can read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sh, tarOf, writeLayout } from "../helpers/images.ts";
import { buildTestLayout, missingTools, push, type Registry, startRegistry } from "../helpers/registry.ts";
import { useTestUser } from "../helpers/rootless.ts";

const u = useTestUser("img", { ranges: true });
const IMG = "rootless-test:1";
let dir = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nsbox-rootless-img-"));
  chmodSync(dir, 0o755);
  // the base layer: the user's busybox (its files are uid 0 in the archive) and files of uid 1234
  const s1 = join(dir, "base");
  sh(["cp", "-a", u.rootfs, s1]);
  sh(["chown", "-R", "0:0", s1]);
  for (const d of ["data", "opq", "svc"]) mkdirSync(join(s1, d));
  writeFileSync(join(s1, "data/keep"), "old\n");
  writeFileSync(join(s1, "data/gone"), "gone\n");
  writeFileSync(join(s1, "opq/lower"), "l\n");
  writeFileSync(join(s1, "svc/secret"), "s\n");
  chownSync(join(s1, "svc/secret"), 1234, 1234);
  chownSync(join(s1, "svc"), 1234, 1234);
  chmodSync(join(s1, "svc"), 0o700);
  const s2 = join(dir, "top");
  for (const d of ["data", "opq"]) mkdirSync(join(s2, d), { recursive: true });
  writeFileSync(join(s2, "data/.wh.gone"), "");
  writeFileSync(join(s2, "data/keep"), "new\n");
  writeFileSync(join(s2, "opq/.wh..wh..opq"), "");
  writeFileSync(join(s2, "opq/new"), "n\n");
  const layout = join(dir, "layout");
  writeLayout(layout, {
    layers: [{ tar: tarOf(s1, join(dir, "base.tar")), gzip: true }, { tar: tarOf(s2, join(dir, "top.tar")) }],
    config: { Cmd: ["sh"], Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
  });
  sh(["chmod", "-R", "a+rX", dir]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ok = async (args: string[]) => {
  const r = await u.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} as ${u.name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

describe("rootless images", () => {
  test("import and run: whiteouts, opaque directories and owners as the image has them", async () => {
    await ok(["image", "import", join(dir, "layout"), IMG]);
    const out = await ok([
      "run",
      "--net",
      "none",
      IMG,
      "sh",
      "-c",
      "ls /data; cat /data/keep; ls /opq; stat -c '%u %g %a' /svc /svc/secret /bin/busybox; cat /svc/secret",
    ]);
    expect(out).toBe("keep\nnew\nnew\n1234 1234 700\n1234 1234 644\n0 0 755\ns\n");
    // on the host: root's files are the user's, uid 1234's the range's 1234th id
    const layers = join(u.dataRoot, "images", "layers");
    const owners = readdirSync(layers).map((l) => {
      try {
        return statSync(join(layers, l, "svc")).uid;
      } catch {
        return -1;
      }
    });
    expect(owners).toContain((u.sub?.start ?? 0) + 1233);
    const busybox = readdirSync(layers).map((l) => {
      try {
        return statSync(join(layers, l, "bin/busybox")).uid;
      } catch {
        return -1;
      }
    });
    expect(busybox).toContain(u.uid);
  });

  test("rm and prune remove the layers, even directories of subordinate ids the user cannot enter", async () => {
    await ok(["image", "rm", IMG]);
    await ok(["image", "prune"]);
    expect(readdirSync(join(u.dataRoot, "images", "layers"))).toEqual([]);
    expect(readdirSync(join(u.dataRoot, "images", "tmp"))).toEqual([]);
  });
});

describe.if(missingTools().length === 0)("rootless pull", () => {
  let reg: Registry | undefined;
  afterAll(async () => {
    await reg?.stop();
  });

  test("a user pulls from a registry (on 127.0.0.1) and runs the image", async () => {
    const images = join(dir, "pulled");
    mkdirSync(images);
    const layout = buildTestLayout(images, u.rootfs);
    reg = await startRegistry(join(dir, "registry"));
    await push(reg, `${layout.dir}:base`, "test/base:1");
    await ok(["pull", "-q", `${reg.host}/test/base:1`]);
    expect(await ok(["run", "--net", "none", `${reg.host}/test/base:1`, "id", "-u"])).toBe("0\n");
    await ok(["image", "rm", `${reg.host}/test/base:1`]);
    await ok(["image", "prune"]);
    expect(readdirSync(join(u.dataRoot, "images", "layers"))).toEqual([]);
  });
});
