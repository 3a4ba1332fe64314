/**
 * The image store makes its directories on its first write, never on a read or
 * on bad input (issue 11: `run BAD-REF` left ROOT/images/... behind).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importImages } from "../../src/image/archive.ts";
import { sha256Bytes } from "../../src/image/digest.ts";
import { ImageStore } from "../../src/image/store.ts";

const base = mkdtempSync(join(tmpdir(), "nsbox-store-lazy-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

test("opening, reading, pruning and failing lookups leave no store directory", async () => {
  const dir = join(base, "read", "images");
  const store = new ImageStore(dir);
  expect(store.images()).toEqual([]);
  expect(store.find("alpine")).toBeUndefined();
  expect(store.find("abc123")).toBeUndefined();
  expect(() => store.mustFind("nosuch")).toThrow(/no image "nosuch"/);
  expect(store.tags()).toEqual({});
  expect(store.usage()).toEqual({ blobs: 0, layers: 0, total: 0 });
  expect(await store.prune({ inUse: () => [], keepLayers: new Set() })).toEqual({ images: [], layers: 0, blobs: 0, bytes: 0 });
  await expect(store.remove("nosuch", { force: true, inUse: () => [] })).rejects.toThrow(/no image/);
  store.clearTemps();
  expect(existsSync(join(base, "read"))).toBe(false);
});

test("a file that is no tarball, or a directory that is no layout, is refused before the store is made", async () => {
  const dir = join(base, "import", "images");
  const store = new ImageStore(dir);
  const bogus = join(base, "bogus.tar");
  writeFileSync(bogus, "not a tarball\n");
  const empty = join(base, "empty-dir");
  mkdirSync(empty);
  await expect(importImages(store, bogus)).rejects.toThrow(/not a readable image archive/);
  await expect(importImages(store, empty)).rejects.toThrow(/neither manifest.json/);
  await expect(importImages(store, join(base, "nope"))).rejects.toThrow(/no such file/);
  expect(existsSync(join(base, "import"))).toBe(false);
});

test("the first write makes the layout", async () => {
  const dir = join(base, "write", "images");
  const store = new ImageStore(dir);
  const data = new TextEncoder().encode("a blob");
  expect(await store.writeBlob(sha256Bytes(data), data.length, async (w) => w(data))).toBe(true);
  for (const d of ["blobs/sha256", "layers", "sizes", "l", "images", "locks", "tmp"]) expect(existsSync(join(dir, d))).toBe(true);
  expect(store.hasBlob(sha256Bytes(data))).toBe(true);
});
