/**
 * Interop with podman and umoci, offline: `nsbox image import` reads what
 * `podman save` writes (docker-archive and oci-archive) and what umoci builds;
 * `podman load` reads what `nsbox image save` writes, and podman runs it with
 * the same files (whiteouts and opaque directories included) and config.
 * podman keeps everything in the test's directory (see helpers/images.ts).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PODMAN_RUN, podman, sh, tarOf, writeLayout } from "../helpers/images.ts";
import { useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("image-interop");
let podDir = "";
let busyboxTar = "";

async function nsboxOk(args: string[]): Promise<string> {
  const r = await ctx.nsbox(args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} -> ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function podmanOk(args: string[]): string {
  const r = podman(podDir, args);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} -> ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  podDir = ctx.mkdir("podman");
  busyboxTar = tarOf(ctx.rootfs, join(ctx.tmp, "busybox.tar"));
}, 60000);

describe("podman save -> nsbox image import", () => {
  beforeAll(() => {
    podmanOk([
      "import",
      "--change",
      'CMD ["/bin/sh", "-c", "echo $GREETING from $(pwd)"]',
      "--change",
      "ENV GREETING=hello",
      "--change",
      "WORKDIR /srv",
      busyboxTar,
      "localhost/pod/bb:1",
    ]);
  }, 60000);

  for (const format of ["docker-archive", "oci-archive"]) {
    test(`${format}: imported under podman's name, run with its config`, async () => {
      const file = join(ctx.tmp, `podman-${format}.tar`);
      podmanOk(["save", "--format", format, "-o", file, "localhost/pod/bb:1"]);
      const out = await nsboxOk(["image", "import", file]);
      expect(out).toMatch(/^Loaded image: sha256:[0-9a-f]{64} localhost\/pod\/bb:1\n$/);
      const r = await ctx.run(["--net", "none", "localhost/pod/bb:1"]);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, "hello from /srv\n", ""]);
      await nsboxOk(["rmi", "localhost/pod/bb:1"]);
      await nsboxOk(["image", "prune"]);
    });
  }
});

describe("nsbox image save -> podman load", () => {
  beforeAll(async () => {
    // a two-layer image whose top layer deletes a file and makes a directory opaque
    const s1 = ctx.mkdir("stage-base");
    cpSync(ctx.rootfs, s1, { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(s1, "data"));
    mkdirSync(join(s1, "opq"));
    writeFileSync(join(s1, "data/gone"), "");
    writeFileSync(join(s1, "data/keep"), "");
    writeFileSync(join(s1, "opq/lower"), "");
    const s2 = ctx.mkdir("stage-top");
    mkdirSync(join(s2, "data"));
    mkdirSync(join(s2, "opq"));
    writeFileSync(join(s2, "data/.wh.gone"), "");
    writeFileSync(join(s2, "opq/.wh..wh..opq"), "");
    writeFileSync(join(s2, "opq/new"), "");
    const layout = ctx.mkdir("layout");
    writeLayout(layout, {
      layers: [{ tar: tarOf(s1, join(ctx.tmp, "base.tar")) }, { tar: tarOf(s2, join(ctx.tmp, "top.tar")), gzip: true }],
      config: { Cmd: ["/bin/sh", "-c", "ls -A /data /opq; echo $ANSWER"], Env: ["ANSWER=42", "PATH=/bin:/sbin"] },
    });
    await nsboxOk(["image", "import", layout, "localhost/ns/layered:1"]);
  }, 60000);

  for (const format of ["docker-archive", "oci-archive"]) {
    test(`${format}: podman loads it, sees its config, and runs the same files`, async () => {
      const file = join(ctx.tmp, `nsbox-${format}.tar`);
      await nsboxOk(["image", "save", "localhost/ns/layered:1", "-o", file, "--format", format]);
      const loaded = podmanOk(["load", "-q", "-i", file]);
      const name = /Loaded image[^:]*: (\S+)/.exec(loaded)?.[1] as string;
      expect(name).toBe("localhost/ns/layered:1");
      const cfg = JSON.parse(podmanOk(["image", "inspect", name]))[0].Config;
      expect(cfg.Cmd).toEqual(["/bin/sh", "-c", "ls -A /data /opq; echo $ANSWER"]);
      expect(cfg.Env).toContain("ANSWER=42");
      const ours = await ctx.run(["--net", "none", "localhost/ns/layered:1"]);
      const theirs = podmanOk(["run", "--rm", ...PODMAN_RUN, name]);
      expect(theirs).toBe("/data:\nkeep\n\n/opq:\nnew\n42\n");
      expect(ours.stdout).toBe(theirs);
      podmanOk(["rmi", "-f", name]);
    }, 120000);
  }
});

describe("umoci -> nsbox image import", () => {
  test("an OCI layout umoci built (its repack writes the whiteout of a deleted file)", async () => {
    const layout = join(ctx.tmp, "umoci-layout");
    const bundle = join(ctx.tmp, "umoci-bundle");
    sh(["umoci", "init", "--layout", layout]);
    sh(["umoci", "new", "--image", `${layout}:t`]);
    sh(["umoci", "unpack", "--image", `${layout}:t`, bundle]);
    cpSync(ctx.rootfs, join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(bundle, "rootfs/doomed"), "");
    sh(["umoci", "repack", "--image", `${layout}:t`, bundle]);
    rmSync(join(bundle, "rootfs/doomed"));
    sh(["umoci", "repack", "--image", `${layout}:t`, bundle]);
    sh(["umoci", "config", "--image", `${layout}:t`, "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", "ls /doomed || echo absent"]);
    await nsboxOk(["image", "import", layout, "localhost/umoci:t"]);
    const r = await ctx.run(["--net", "none", "localhost/umoci:t"]);
    expect(r.stdout).toBe("absent\n");
  }, 60000);
});
