/**
 * `nsbox run IMAGE`: images imported from OCI layouts built here from the
 * busybox rootfs, run, and checked from inside: the files are exactly the
 * image's (whiteouts, opaque directories, modes, owners, hard links), its
 * config applied with docker's rules, layers shared, 64 layers stacked, and
 * rm/prune/save/export on the store.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { chownSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sh, storeContents, tarOf, writeLayout } from "../helpers/images.ts";
import { lines, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("image-run");
const IMG = "img/layers:1";

let base = "";
let top = "";

/** stage -> tar, with files written as path -> content (a trailing / makes a directory) */
function stage(name: string, files: Record<string, string>): string {
  const dir = ctx.mkdir(`stage-${name}`);
  for (const [p, content] of Object.entries(files)) {
    const full = join(dir, p);
    if (p.endsWith("/")) mkdirSync(full, { recursive: true });
    else {
      mkdirSync(join(full, ".."), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return dir;
}

async function nsboxOk(args: string[]): Promise<string> {
  const r = await ctx.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} -> ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  // the base layer: busybox plus files of known modes, owners and links
  const s1 = ctx.mkdir("stage-base");
  cpSync(ctx.rootfs, s1, { recursive: true, verbatimSymlinks: true });
  for (const d of ["data", "opq/sub", "modes", "hl"]) mkdirSync(join(s1, d), { recursive: true });
  writeFileSync(join(s1, "data/keep"), "old\n");
  writeFileSync(join(s1, "data/gone"), "gone\n");
  writeFileSync(join(s1, "opq/lower1"), "1\n");
  writeFileSync(join(s1, "opq/sub/lower2"), "2\n");
  writeFileSync(join(s1, "modes/suid"), "");
  sh(["chmod", "4755", join(s1, "modes/suid")]);
  writeFileSync(join(s1, "modes/ro"), "");
  sh(["chmod", "0400", join(s1, "modes/ro")]);
  mkdirSync(join(s1, "modes/sticky"));
  sh(["chmod", "1777", join(s1, "modes/sticky")]);
  writeFileSync(join(s1, "owned"), "");
  chownSync(join(s1, "owned"), 1234, 5678);
  writeFileSync(join(s1, "hl/a"), "x\n");
  linkSync(join(s1, "hl/a"), join(s1, "hl/b"));
  base = tarOf(s1, join(ctx.tmp, "base.tar"));
  // the top layer: a whiteout, a changed file, an opaque directory with one new file
  const s2 = stage("top", { "data/.wh.gone": "", "data/keep": "new\n", "opq/.wh..wh..opq": "", "opq/new": "n\n" });
  top = tarOf(s2, join(ctx.tmp, "top.tar"));
  const layout = ctx.mkdir("layout-a");
  writeLayout(layout, {
    layers: [{ tar: base }, { tar: top, gzip: true }],
    config: {
      Entrypoint: ["/bin/sh", "-c"],
      Cmd: ["echo default $FOO"],
      Env: ["FOO=from-image", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
      WorkingDir: "/work",
      User: "1234:5678",
      Labels: { "org.example": "yes" },
      StopSignal: "SIGQUIT",
    },
  });
  await nsboxOk(["image", "import", layout, IMG]);
}, 120000);

/** sh -c script in the image (its entrypoint), with extra run flags */
async function inImage(script: string, flags: string[] = []): Promise<string> {
  const r = await ctx.run(["--net", "none", ...flags, IMG, script]);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe("files are exactly the image's", () => {
  test("a whiteout hides the lower file; a changed file is the top one's; an opaque directory has no lower content", async () => {
    expect(await inImage("ls -A /data; cat /data/keep; ls -A /opq")).toBe("keep\nnew\nnew\n");
  });

  test("modes, owners and hard links as in the layer", async () => {
    const out = await inImage('stat -c "%a %u:%g %n" /modes/suid /modes/ro /modes/sticky /owned; stat -c %i /hl/a /hl/b');
    const [suid, ro, sticky, owned, ia, ib] = lines(out);
    expect([suid, ro, sticky, owned]).toEqual(["4755 0:0 /modes/suid", "400 0:0 /modes/ro", "1777 0:0 /modes/sticky", "644 1234:5678 /owned"]);
    expect(ia).toBe(ib as string);
  });

  test("nothing is copied: the container's overlay stacks the store's layers", async () => {
    const st = storeContents(ctx.dataRoot);
    expect(st.layers.length).toBe(2);
    // the layer dirs hold overlayfs whiteouts, not OCI ones
    const layerTop = readdirSync(join(ctx.dataRoot, "images/layers")).map((d) => join(ctx.dataRoot, "images/layers", d, "data"));
    expect(layerTop.some((d) => existsSync(join(d, ".wh.gone")))).toBe(false);
    expect(st.tmp).toEqual([]);
  });
});

describe("the image's config, with docker's rules", () => {
  test("Entrypoint + Cmd, Env, WorkingDir and User by default", async () => {
    const r = await ctx.run(["--net", "none", IMG]);
    expect([r.code, r.stdout]).toEqual([0, "default from-image\n"]);
    expect(await inImage("id -u; id -g; pwd; echo $PATH")).toBe("1234\n5678\n/work\n/usr/sbin:/usr/bin:/sbin:/bin\n");
  });

  test("a command replaces Cmd; -e, -u, -w override; --entrypoint replaces Entrypoint and drops Cmd", async () => {
    expect(await inImage("echo $FOO $BAR; id -u; pwd", ["-e", "FOO=x", "-e", "BAR=y", "-u", "0", "-w", "/tmp"])).toBe("x y\n0\n/tmp\n");
    const r = await ctx.run(["--net", "none", "--entrypoint", "/bin/echo", IMG, "a", "b"]);
    expect(r.stdout).toBe("a b\n");
    const bare = await ctx.run(["--net", "none", "--entrypoint", "/bin/true", IMG]);
    expect([bare.code, bare.stdout]).toEqual([0, ""]);
  });

  test("inspect: docker's Image, Config and the image's StopSignal; ps shows the image", async () => {
    const script = "trap 'exit 3' QUIT; sleep 30 & wait";
    const id = (await nsboxOk(["run", "-d", "--net", "none", "--name", "ins", IMG, script])).trim();
    const j = JSON.parse(await nsboxOk(["inspect", "ins"]))[0];
    const img = JSON.parse(await nsboxOk(["image", "inspect", IMG]))[0];
    expect(j.Image).toBe(img.Id);
    expect(j.Config).toMatchObject({ Image: IMG, Entrypoint: ["/bin/sh", "-c"], Cmd: [script], WorkingDir: "/work", User: "1234:5678" });
    expect(j.Config.Labels).toEqual({ "org.example": "yes" });
    expect(j.Config.Env).toContain("FOO=from-image");
    expect(j.Config.StopSignal).toBe("SIGQUIT");
    expect(await nsboxOk(["inspect", "-f", "{{.NetworkSettings.IPAddress}}|{{.HostConfig.NetworkMode}}|{{.State.Status}}", "ins"])).toBe("|none|running\n");
    const ps = JSON.parse(lines(await nsboxOk(["ps", "--format", "json"]))[0] as string);
    expect([ps.ID, ps.Image]).toEqual([id, IMG]);
    // stop sends the image's SIGQUIT, which the script traps (it has no SIGTERM trap)
    await nsboxOk(["stop", "-t", "20", "ins"]);
    expect(await nsboxOk(["inspect", "-f", "{{.State.ExitCode}}", "ins"])).toBe("3\n");
    await nsboxOk(["rm", "ins"]);
  });
});

describe("the store", () => {
  test("images sharing a base share its layer on disk", async () => {
    const s3 = stage("b", { "b-only": "b\n" });
    const layout = ctx.mkdir("layout-b");
    writeLayout(layout, { layers: [{ tar: base }, { tar: tarOf(s3, join(ctx.tmp, "b.tar")) }], config: { Cmd: ["cat", "/b-only"] } });
    await nsboxOk(["image", "import", layout, "img/b:1"]);
    expect(storeContents(ctx.dataRoot).layers.length).toBe(3);
    const r = await ctx.run(["--net", "none", "img/b:1"]);
    expect(r.stdout).toBe("b\n");
    const df = JSON.parse(await nsboxOk(["image", "df", "--format", "json"]));
    expect(df.Images).toBe(2);
  });

  test("rm is refused while a container uses the image (rm -f is not); prune removes what no image or container uses", async () => {
    await nsboxOk(["run", "-d", "--net", "none", "--name", "user-b", "img/b:1", "sleep", "30"]);
    const refused = await ctx.nsbox(["image", "rm", "img/b:1"]);
    expect(refused.code).toBe(125);
    expect(refused.stderr).toBe("nsbox: image img/b:1 is used by container user-b: remove it first, or use -f\n");
    // rmi -f: the image goes, but the container keeps its layers through prune
    expect(await nsboxOk(["rmi", "-f", "img/b:1"])).toContain("Deleted: sha256:");
    const before = storeContents(ctx.dataRoot);
    expect(await nsboxOk(["image", "prune"])).toContain("Removed 0 layers and 3 blobs");
    expect((await ctx.nsbox(["exec", "user-b", "cat", "/b-only"])).stdout).toBe("b\n");
    await nsboxOk(["rm", "-f", "user-b"]);
    expect(await nsboxOk(["image", "prune"])).toContain("Removed 1 layer and 0 blobs");
    expect(storeContents(ctx.dataRoot).layers.length).toBe(before.layers.length - 1);
    // the base layer stays: img/layers:1 uses it
    expect((await ctx.run(["--net", "none", IMG])).stdout).toBe("default from-image\n");
  });

  test("a 64-layer image starts (its lowerdir option would not fit a page with full paths)", async () => {
    const layers = [{ tar: base }];
    for (let i = 1; i < 64; i++) layers.push({ tar: tarOf(stage(`deep-${i}`, { [`layers/f${i}`]: `${i}\n` }), join(ctx.tmp, `deep-${i}.tar`)) });
    const layout = ctx.mkdir("layout-deep");
    writeLayout(layout, { layers, config: { Cmd: ["sh", "-c", "ls /layers | wc -l; cat /layers/f1 /layers/f63"] } });
    await nsboxOk(["image", "import", "-q", layout, "img/deep:64"]);
    const r = await ctx.run(["--net", "none", "img/deep:64"]);
    expect([r.code, r.stdout.replace(/ +/g, "")]).toEqual([0, "63\n1\n63\n"]);
    await nsboxOk(["rmi", "img/deep:64"]);
    await nsboxOk(["image", "prune"]);
  }, 120000);

  test("save (docker-archive and oci-archive) and import again: the same image, the same files", async () => {
    const id = JSON.parse(await nsboxOk(["image", "inspect", IMG]))[0].Id;
    for (const format of ["docker-archive", "oci-archive"]) {
      const file = join(ctx.tmp, `saved-${format}.tar`);
      await nsboxOk(["image", "save", IMG, "-o", file, "--format", format]);
      await nsboxOk(["rmi", IMG]);
      await nsboxOk(["image", "prune"]);
      expect(storeContents(ctx.dataRoot).images).toEqual([]);
      expect(await nsboxOk(["image", "import", file])).toBe(`Loaded image: ${id} docker.io/${IMG}\n`);
      expect(await inImage("ls -A /data /opq; cat /data/keep")).toBe("/data:\nkeep\n\n/opq:\nnew\nnew\n");
    }
  });

  test("export: a running container's files as a tar, its own changes included", async () => {
    await nsboxOk(["run", "-d", "--net", "none", "-u", "0", "--name", "exp", IMG, "echo mine > /data/mine; rm /data/keep; sleep 30"]);
    const file = join(ctx.tmp, "export.tar");
    expect(await waitUntil(async () => (await ctx.nsbox(["exec", "exp", "ls", "/data"])).stdout === "mine\n")).toBe(true);
    await nsboxOk(["export", "exp", "-o", file]);
    const names = lines(sh(["tar", "-tf", file]));
    expect(names.filter((n) => n.startsWith("data/") || n.startsWith("opq/"))).toEqual(["data/", "data/mine", "opq/", "opq/new"]);
    // mounted filesystems are mount points only
    expect(names.filter((n) => n.startsWith("proc/"))).toEqual(["proc/"]);
    expect(names).toContain("hl/b");
    expect(sh(["tar", "-tvf", file, "hl/b"])).toContain("link to hl/a");
    await nsboxOk(["rm", "-f", "exp"]);
    const gone = await ctx.nsbox(["export", "exp", "-o", file]);
    expect(gone.code).toBe(125);
  });
});

describe("path or reference", () => {
  test("./x, /x and existing paths are paths; other words are image references", async () => {
    const missing = await ctx.run(["./no-such-dir", "true"]);
    expect(missing.stderr).toMatch(/^nsbox: rootfs "\.\/no-such-dir" does not exist/);
    const ref = await ctx.run(["--pull", "never", "no-such-image:1", "true"]);
    expect([ref.code, ref.stderr]).toEqual([
      125,
      'nsbox: no image "no-such-image:1" in the store and --pull never: pull it first (nsbox pull no-such-image:1) or import it (nsbox image import FILE)\n',
    ]);
    const bad = await ctx.run(["--pull", "sometimes", IMG]);
    expect(bad.stderr).toBe('nsbox: invalid --pull "sometimes": use missing (default), always or never\n');
  });
});
