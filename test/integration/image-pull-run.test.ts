/**
 * `nsbox run IMAGE` pulls on first use, as docker does (--pull missing, the
 * default), or never, or always; from docker-registry on 127.0.0.1 holding an
 * image built offline here. The registry client itself is tested in registry-*.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { storeContents, tarOf, writeLayout } from "../helpers/images.ts";
import { useNsbox } from "../helpers/nsbox.ts";
import { missingTools, push, type Registry, startRegistry } from "../helpers/registry.ts";

const ctx = useNsbox("image-pull-run");
let registry: Registry | undefined;
let ref = "";

beforeAll(async () => {
  const missing = missingTools();
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run .ci/setup --test`);
  const layout = ctx.mkdir("layout");
  writeLayout(layout, { layers: [{ tar: tarOf(ctx.rootfs, join(ctx.tmp, "bb.tar")), gzip: true }], name: "t", config: { Cmd: ["echo", "pulled"] } });
  registry = await startRegistry(ctx.mkdir("registry"));
  await push(registry, `${layout}:t`, "test/pulled:1");
  ref = `localhost:${registry.port}/test/pulled:1`;
}, 60000);

afterAll(async () => {
  await registry?.stop();
});

describe("run IMAGE and --pull", () => {
  test("never: an image not in the store is an error, and nothing is fetched", async () => {
    const r = await ctx.run(["--net", "none", "--pull", "never", ref]);
    expect([r.code, r.stderr]).toEqual([
      125,
      `nsbox: no image "${ref}" in the store and --pull never: pull it first (nsbox pull ${ref}) or import it (nsbox image import FILE)\n`,
    ]);
    expect(storeContents(ctx.dataRoot).blobs).toEqual([]);
  });

  test("missing (the default): pulled on first use, then run from the store", async () => {
    const first = await ctx.run(["--net", "none", ref]);
    expect([first.code, first.stdout]).toEqual([0, "pulled\n"]);
    const blobs = storeContents(ctx.dataRoot).blobs;
    expect(blobs.length).toBe(3);
    await registry?.stop();
    registry = undefined;
    // the registry is gone: the image comes from the store
    const again = await ctx.run(["--net", "none", ref]);
    expect([again.code, again.stdout, again.stderr]).toEqual([0, "pulled\n", ""]);
    // always: asks the registry first, so without one it fails, naming it
    const always = await ctx.run(["--net", "none", "--pull", "always", ref]);
    expect(always.code).toBe(125);
    expect(always.stderr).toMatch(/^nsbox: [^\n]*localhost:\d+[^\n]*\n$/);
  });
});
