import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Bytes } from "../../src/image/digest.ts";
import { normalizeName } from "../../src/image/names.ts";
import { ImageStore } from "../../src/image/store.ts";
import { applyImageConfig } from "../../src/image/use.ts";
import { isRootfsPath } from "../../src/rootfs/prepare.ts";

const dir = mkdtempSync(join(tmpdir(), "nsbox-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const store = new ImageStore(join(dir, "images"));
const enc = (s: string) => new TextEncoder().encode(s);

describe("blobs", () => {
  test("a verified blob is renamed into place; a second write is skipped", async () => {
    const data = enc("hello layer");
    const d = sha256Bytes(data);
    expect(await store.writeBlob(d, data.length, async (w) => w(data))).toBe(true);
    expect(store.hasBlob(d)).toBe(true);
    let called = false;
    expect(
      await store.writeBlob(d, data.length, async () => {
        called = true;
      }),
    ).toBe(false);
    expect(called).toBe(false);
  });

  test("a digest mismatch, a truncated or an overlong blob leave nothing behind", async () => {
    const data = enc("something");
    const wrong = sha256Bytes("else");
    await expect(store.writeBlob(wrong, data.length, async (w) => w(data))).rejects.toThrow(/does not match its digest/);
    await expect(store.writeBlob(sha256Bytes(data), data.length + 5, async (w) => w(data))).rejects.toThrow(/truncated: 9 of 14 bytes/);
    await expect(store.writeBlob(sha256Bytes(data), 3, async (w) => w(data))).rejects.toThrow(/longer than its declared size 3/);
    await expect(
      store.writeBlob(sha256Bytes(data), data.length, async () => {
        throw new Error("connection reset");
      }),
    ).rejects.toThrow(/connection reset/);
    expect(store.hasBlob(wrong)).toBe(false);
    expect(store.hasBlob(sha256Bytes(data))).toBe(false);
    expect(readdirSync(join(store.dir, "tmp"))).toEqual([]);
  });

  test("concurrent writers of one blob: one writes, the others find it done", async () => {
    const data = enc("x".repeat(100000));
    const d = sha256Bytes(data);
    let produced = 0;
    const results = await Promise.all(
      [1, 2, 3].map(() =>
        store.writeBlob(d, data.length, async (w) => {
          produced++;
          for (let i = 0; i < data.length; i += 1000) {
            w(data.subarray(i, i + 1000));
            await Bun.sleep(0);
          }
        }),
      ),
    );
    expect(results.filter(Boolean).length).toBe(1);
    expect(produced).toBe(1);
  });

  test("digests that could escape the store are refused", () => {
    expect(() => store.blobPath("sha256:../../etc/passwd")).toThrow(/invalid blob digest/);
    expect(store.hasBlob("sha512:abc")).toBe(false);
  });
});

describe("images", () => {
  test("record, find by name, id, prefix and digest, tag and remove", async () => {
    const layer = enc("not really a tar");
    const layerDigest = sha256Bytes(layer);
    await store.writeBlob(layerDigest, layer.length, async (w) => w(layer));
    const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layerDigest] }, config: { Cmd: ["sh"] } });
    const configDigest = sha256Bytes(config);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
    });
    const manifestDigest = sha256Bytes(manifest);
    const rec = await store.recordImage({ reference: "example.com/app:1", manifestDigest, manifest, configDigest, config });
    expect(rec.id).toBe(configDigest);
    expect(rec.repoDigests).toEqual([`example.com/app@${manifestDigest}`]);
    expect(store.find("example.com/app:1")?.id).toBe(rec.id);
    expect(store.find(rec.id)?.id).toBe(rec.id);
    expect(store.find(rec.id.slice(7, 19))?.id).toBe(rec.id);
    expect(store.find(`example.com/app@${manifestDigest}`)?.id).toBe(rec.id);
    expect(store.find("example.com/app:2")).toBeUndefined();
    await store.tag(rec.id, "mine");
    expect(store.namesOf(rec.id)).toEqual(["docker.io/library/mine:latest", "example.com/app:1"]);
    // a name goes alone while the image has others
    expect(await store.remove("mine", { force: false, inUse: () => [] })).toEqual({ untagged: ["docker.io/library/mine:latest"] });
    await expect(store.remove(rec.id, { force: false, inUse: () => ["c1"] })).rejects.toThrow(/used by container c1/);
    const gone = await store.remove(rec.id, { force: false, inUse: () => [] });
    expect(gone.deleted).toBe(rec.id);
    const pruned = await store.prune({ inUse: () => [], keepLayers: new Set() });
    expect(pruned.blobs).toBeGreaterThanOrEqual(3);
    expect(existsSync(store.blobPath(layerDigest))).toBe(false);
  });

  test("a config that is not JSON is refused and not recorded", async () => {
    const config = "{not json";
    await expect(store.recordImage({ manifestDigest: sha256Bytes("{}"), manifest: "{}", configDigest: sha256Bytes(config), config })).rejects.toThrow(
      /is not valid JSON/,
    );
    expect(store.images()).toEqual([]);
  });
});

describe("names", () => {
  test("completed as docker does", () => {
    expect(normalizeName("alpine")).toBe("docker.io/library/alpine:latest");
    expect(normalizeName("me/app:2")).toBe("docker.io/me/app:2");
    expect(normalizeName("localhost:5000/x")).toBe("localhost:5000/x:latest");
    expect(normalizeName("quay.io/a/b@sha256:" + "a".repeat(64))).toBe(`quay.io/a/b@sha256:${"a".repeat(64)}`);
  });
});

describe("docker's rules for an image's config", () => {
  const cfg = { Entrypoint: ["/entry"], Cmd: ["default"], Env: ["A=1"], User: "app", WorkingDir: "/srv", StopSignal: "SIGQUIT" };
  test("by default: Entrypoint + Cmd, the image's user and working directory", () => {
    expect(applyImageConfig(cfg, { cmd: [] })).toEqual({
      args: ["/entry", "default"],
      entrypoint: ["/entry"],
      env: ["A=1"],
      user: "app",
      workdir: "/srv",
      stopSignal: "SIGQUIT",
    });
  });
  test('a command replaces Cmd; --entrypoint replaces Entrypoint and drops Cmd; "" clears it', () => {
    expect(applyImageConfig(cfg, { cmd: ["x", "y"] }).args).toEqual(["/entry", "x", "y"]);
    expect(applyImageConfig(cfg, { cmd: [], entrypoint: "/other" }).args).toEqual(["/other"]);
    expect(applyImageConfig(cfg, { cmd: ["z"], entrypoint: "" }).args).toEqual(["z"]);
    expect(applyImageConfig(cfg, { cmd: [], user: "0", workdir: "/tmp" })).toMatchObject({ user: "0", workdir: "/tmp" });
  });
  test("no config (a rootfs path): the command as given", () => {
    expect(applyImageConfig(undefined, { cmd: ["sh"] })).toMatchObject({ args: ["sh"], env: [], user: undefined, workdir: undefined });
  });
});

describe("path or image reference", () => {
  test.each([
    ["/abs", true],
    ["./rel", true],
    ["../up", true],
    ["rootfs.tar.gz", true],
    ["alpine", false],
    ["alpine:3.20", false],
    ["localhost:5000/app@sha256:" + "a".repeat(64), false],
  ])("%s -> path %p", (arg, path) => {
    expect(isRootfsPath(arg)).toBe(path);
  });
});
