/**
 * nsbox pull against a real registry (docker-registry on 127.0.0.1, images built
 * with umoci and pushed with skopeo): manifests, indexes and platforms, digests,
 * 64 layers, a killed pull resumed, two pulls of one image at once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isOneNsboxLine, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import {
  addRandomImage,
  buildTestLayout,
  missingTools,
  push,
  type Registry,
  type RegistryProxy,
  startProxy,
  startRegistry,
  storeBlobs,
  storeTemps,
  type TestLayout,
} from "../helpers/registry.ts";

const ctx = useNsbox("registry-pull");
let reg: Registry;
let layout: TestLayout;
let proxy: RegistryProxy;
const missing = missingTools();

beforeAll(async () => {
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run .ci/setup --test`);
  layout = buildTestLayout(ctx.mkdir("images"), ctx.rootfs);
  addRandomImage(layout.dir, "big", 3, 2, ctx.mkdir("random"));
  reg = await startRegistry(ctx.mkdir("registry"));
  for (const t of ["base", "multi", "config", "many", "big"]) await push(reg, `${layout.dir}:${t}`, `test/${t}:1`);
  await push(reg, `${layout.dir}:index`, "test/index:1", { all: true });
  await push(reg, `${layout.dir}:foreign`, "test/foreign:1", { all: true });
  // docker's media types: a schema 2 manifest, and a manifest list
  await push(reg, `${layout.dir}:base`, "docker/base:1", { format: "v2s2" });
  await push(reg, `${layout.dir}:index`, "docker/index:1", { all: true, format: "v2s2" });
  // what `nsbox pull busybox:1` means: docker.io/library/busybox, here through a mirror
  await push(reg, `${layout.dir}:base`, "library/busybox:1");
  proxy = startProxy(reg.host);
}, 120000);

afterAll(async () => {
  proxy?.stop();
  await reg?.stop();
});

/** Every blob in the store hashes to its name: nothing partial or unverified was kept. */
function blobsAreWhole(): void {
  const dir = join(ctx.dataRoot, "images/blobs/sha256");
  for (const hex of readdirSync(dir))
    expect(
      createHash("sha256")
        .update(readFileSync(join(dir, hex)))
        .digest("hex"),
    ).toBe(hex);
}

function manifestBlobs(tag: string): { config: string; layers: string[] } {
  const m = JSON.parse(readFileSync(join(layout.dir, "blobs/sha256", layout.manifestOf(tag).slice(7)), "utf8"));
  return { config: m.config.digest, layers: m.layers.map((l: { digest: string }) => l.digest) };
}

describe("pull", () => {
  test("an image: its manifest, config and layer in the store, verified; progress lines; the id", async () => {
    const r = await ctx.nsbox(["pull", `${reg.host}/test/base:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const want = manifestBlobs("base");
    expect(r.stdout).toContain(`pulling ${reg.host}/test/base:1 (1 layer)`);
    expect(r.stdout).toContain(`${want.layers[0]?.slice(7, 19)}: pulled`);
    expect(r.stdout).toContain(`digest: ${layout.manifestOf("base")}`);
    expect(r.stdout).toContain(`image: ${want.config}`);
    const blobs = storeBlobs(ctx.dataRoot);
    for (const d of [want.config, ...want.layers, layout.manifestOf("base")]) expect(blobs).toContain(d.slice(7));
    blobsAreWhole();
    expect(storeTemps(ctx.dataRoot)).toEqual([]);
  });

  test("-q prints only the image id; a second pull finds every layer", async () => {
    const r = await ctx.nsbox(["pull", "-q", `${reg.host}/test/base:1`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${manifestBlobs("base").config}\n`);
    const again = await ctx.nsbox(["pull", `${reg.host}/test/base:1`]);
    expect(again.stdout).toContain("already exists");
    expect(again.stdout).not.toContain("pulled");
  });

  test("by digest, and a multi-layer image (whiteout and opaque layers kept as blobs)", async () => {
    const r = await ctx.nsbox(["pull", "-q", `${reg.host}/test/multi@${layout.manifestOf("multi")}`]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(manifestBlobs("multi").config);
    const blobs = storeBlobs(ctx.dataRoot);
    for (const d of manifestBlobs("multi").layers) expect(blobs).toContain(d.slice(7));
    expect(manifestBlobs("multi").layers.length).toBe(5);
  });

  test("an index: this machine's platform by default, --platform picks another, an absent one is named", async () => {
    const host = process.arch === "arm64" ? "arm64" : "amd64";
    const other = host === "arm64" ? "amd64" : "arm64";
    const tags: Record<string, string> = { amd64: "base", arm64: "base-arm64" };
    const def = await ctx.nsbox(["pull", "-q", `${reg.host}/test/index:1`]);
    expect(def.stderr).toBe("");
    expect(def.stdout.trim()).toBe(manifestBlobs(tags[host] as string).config);
    const picked = await ctx.nsbox(["pull", "-q", "--platform", `linux/${other}`, `${reg.host}/test/index:1`]);
    expect(picked.stdout.trim()).toBe(manifestBlobs(tags[other] as string).config);
    const cfg = JSON.parse(readFileSync(join(ctx.dataRoot, "images/blobs/sha256", picked.stdout.trim().slice(7)), "utf8"));
    expect(cfg.architecture).toBe(other);
    const absent = await ctx.nsbox(["pull", "--platform", "linux/riscv64", `${reg.host}/test/index:1`]);
    expect(absent.code).toBe(125);
    expect(absent.stderr).toBe(`nsbox: no linux/riscv64 image in ${reg.host}/test/index:1; it has: linux/amd64, linux/arm64/v8\n`);
    const foreign = await ctx.nsbox(["pull", `${reg.host}/test/foreign:1`]);
    expect(foreign.code).toBe(125);
    expect(foreign.stderr).toContain(`image in ${reg.host}/test/foreign:1; it has: linux/s390x, linux/ppc64le`);
    expect(isOneNsboxLine(foreign.stderr)).toBe(true);
    expect(storeTemps(ctx.dataRoot)).toEqual([]);
  });

  test("docker schema 2 manifests and manifest lists", async () => {
    const m = await fetch(`http://${reg.host}/v2/docker/base/manifests/1`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    expect(m.headers.get("content-type")).toBe("application/vnd.docker.distribution.manifest.v2+json");
    await m.body?.cancel();
    const one = await ctx.nsbox(["pull", "-q", `${reg.host}/docker/base:1`]);
    expect(one.stderr).toBe("");
    expect(one.code).toBe(0);
    const list = await ctx.nsbox(["pull", "-q", "--platform", "linux/arm64", `${reg.host}/docker/index:1`]);
    expect(list.stderr).toBe("");
    expect(list.code).toBe(0);
    const cfg = JSON.parse(readFileSync(join(ctx.dataRoot, "images/blobs/sha256", list.stdout.trim().slice(7)), "utf8"));
    expect(cfg.architecture).toBe("arm64");
  });

  test("docker.io names go to NSBOX_REGISTRY_MIRROR (no network outside the machine)", async () => {
    const r = await ctx.nsbox(["pull", "busybox:1"], { env: { NSBOX_REGISTRY_MIRROR: reg.host } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("pulling busybox:1 (1 layer)");
    expect(r.stdout).toContain("docker.io/library/busybox:1");
    const repos = JSON.parse(readFileSync(join(ctx.dataRoot, "images/repositories.json"), "utf8"));
    expect(Object.keys(repos.tags ?? repos)).toContain("docker.io/library/busybox:1");
  });

  test("64 layers", async () => {
    const r = await ctx.nsbox(["pull", `${reg.host}/test/many:1`], { timeoutMs: 120000 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const want = manifestBlobs("many");
    expect(want.layers.length).toBe(64);
    expect(r.stdout).toContain("(64 layers)");
    const blobs = storeBlobs(ctx.dataRoot);
    for (const d of want.layers) expect(blobs).toContain(d.slice(7));
    blobsAreWhole();
  }, 120000);

  test("a killed pull leaves no partial blob, and the next pull resumes from the complete ones", async () => {
    const layers = manifestBlobs("big").layers;
    // the last layer crawls through the proxy (~5 s for its 2 MiB): the kill lands with
    // the first two complete and the last one half written
    proxy.mode = { delayMs: 150, slowOnly: [layers[2] as string] };
    const p = ctx.start(["pull", `${proxy.host}/test/big:1`]);
    const complete = () => layers.filter((d) => storeBlobs(ctx.dataRoot).includes(d.slice(7)));
    await waitUntil(() => complete().length === 2 && storeTemps(ctx.dataRoot).length > 0, 20000);
    p.kill("SIGKILL");
    await p.result();
    const done = complete();
    expect(done).toEqual(layers.slice(0, 2));
    blobsAreWhole();
    proxy.mode = {};
    const r = await ctx.nsbox(["pull", `${proxy.host}/test/big:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter((l) => l.includes("already exists")).length).toBe(done.length);
    expect(complete().length).toBe(layers.length);
    blobsAreWhole();
    // the killed pull's temp file went at the start of the next pull
    expect(storeTemps(ctx.dataRoot)).toEqual([]);
  }, 60000);

  test("two pulls of one image at once both succeed, each blob written once", async () => {
    const layers = manifestBlobs("big").layers;
    const dir = join(ctx.dataRoot, "images/blobs/sha256");
    for (const d of layers) Bun.spawnSync(["rm", "-f", join(dir, d.slice(7))]);
    proxy.mode = { delayMs: 5 };
    const [a, b] = await Promise.all([ctx.nsbox(["pull", "-q", `${proxy.host}/test/big:1`]), ctx.nsbox(["pull", "-q", `${proxy.host}/test/big:1`])]);
    proxy.mode = {};
    expect(a.stderr + b.stderr).toBe("");
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.stdout).toBe(b.stdout);
    blobsAreWhole();
    for (const d of layers) expect(storeBlobs(ctx.dataRoot)).toContain(d.slice(7));
    expect(storeTemps(ctx.dataRoot)).toEqual([]);
  }, 60000);
});
