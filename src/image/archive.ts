/**
 * `image import`: images from the archives docker and podman write, into the store.
 *
 *   docker-archive   `docker save` / `podman save`: manifest.json ([{Config, RepoTags, Layers}])
 *                    with the config and layer tars beside it
 *   oci-archive      a tar of an OCI image layout
 *   OCI layout dir   oci-layout, index.json, blobs/sha256/...
 *
 * An archive is first unpacked with the safe extractor into the store's tmp/ (so
 * a hostile archive is refused as any tarball is). Every blob is then copied in
 * with its digest verified, every layer unpacked (which refuses unsafe entries),
 * and only then is the image recorded: a failure removes what this import added,
 * so a bad archive leaves nothing in the store.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { fail, NsboxError } from "../errors.ts";
import { join, normalize } from "../posixpath.ts";
import { checkHeader } from "../rootfs/tar/format.ts";
import { removeTree } from "../rootless/storage.ts";
import { digestHex, isDigest, sha256Bytes, sha256File } from "./digest.ts";
import { normalizeName } from "./names.ts";
import type { Descriptor, ImageRecord, ImageStore } from "./store.ts";

export const MEDIA = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
} as const;

export const REF_NAME = "org.opencontainers.image.ref.name";

/** One image found in an archive, before it enters the store. */
interface Found {
  names: string[];
  manifest: string;
  manifestDigest: string;
  configDigest: string;
  layers: Descriptor[];
  /** where each blob of the image is, by digest */
  files: Map<string, string>;
}

export interface ImportOptions {
  /** a name for the image (when the archive holds exactly one) */
  name?: string;
  progress?: (text: string) => void;
}

export async function importImages(store: ImageStore, source: string, opts: ImportOptions = {}): Promise<ImageRecord[]> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(source);
  } catch {
    fail(`cannot import "${source}": no such file or directory (give a docker-archive or oci-archive tarball, or an OCI layout directory)`);
  }
  let dir = source;
  let tmp: string | undefined;
  if (st.isFile()) {
    // refused before the store is touched: a file that is no tarball must not make the store's directories
    if (!looksLikeTar(source))
      fail(
        `cannot import "${source}": not a readable image archive: it starts with neither a tar header nor gzip or zstd (give a docker-archive or oci-archive tarball, or an OCI layout directory)`,
      );
    tmp = store.tmpPath("import");
    mkdirSync(tmp, { mode: 0o700 });
    dir = tmp;
    const { extractTar, TarError } = await import("../rootfs/tar.ts");
    try {
      opts.progress?.(`reading ${source}`);
      await extractTar(source, tmp, { sameOwner: false });
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (e instanceof TarError) fail(`cannot import "${source}": not a readable image archive: ${e.message}`);
      throw e;
    }
  } else if (!st.isDirectory()) fail(`cannot import "${source}": neither a file nor a directory`);
  const added = { blobs: [] as string[], layers: [] as string[] };
  try {
    const found = existsSync(join(dir, "manifest.json"))
      ? await readDockerArchive(dir, source)
      : existsSync(join(dir, "index.json"))
        ? readOciLayout(dir, source)
        : fail(`cannot import "${source}": it holds neither manifest.json (docker-archive) nor index.json (OCI layout)`);
    if (found.length === 0) fail(`cannot import "${source}": the archive lists no image`);
    if (opts.name !== undefined && found.length > 1) fail(`cannot name the image: "${source}" holds ${found.length} images`);
    const records: ImageRecord[] = [];
    for (const img of found) records.push(await storeOne(store, img, source, added, opts));
    return records;
  } catch (e) {
    // leave the store as it was: what this import added goes, unless an image now uses it
    const used = new Set(store.images().flatMap((r) => [r.configDigest, r.manifestDigest, ...r.layers.map((l) => l.digest)]));
    for (const d of added.layers) if (!used.has(d)) removeTree(store.layerDir(d));
    for (const d of added.blobs) if (!used.has(d)) rmSync(store.blobPath(d), { force: true });
    throw e;
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** A tar, or a gzip or zstd stream (which the extractor checks further), from its first block. */
function looksLikeTar(file: string): boolean {
  const head = Buffer.alloc(512);
  let n = 0;
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    n = readSync(fd, head, 0, 512, 0);
  } catch (e) {
    fail(`cannot import "${file}": ${(e as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true;
  if (n >= 4 && head.readUInt32BE(0) === 0x28b52ffd) return true;
  return n === 512 && checkHeader(head) === "ok";
}

async function storeOne(
  store: ImageStore,
  img: Found,
  source: string,
  added: { blobs: string[]; layers: string[] },
  opts: ImportOptions,
): Promise<ImageRecord> {
  for (const d of [img.configDigest, ...img.layers.map((l) => l.digest)]) {
    const file = img.files.get(d);
    if (!file || !existsSync(file)) fail(`cannot import "${source}": blob ${d} is missing from the archive`);
    if (await copyBlob(store, file, d, source)) added.blobs.push(d);
  }
  // the config must be an image config (JSON) before anything runs from it
  store.imageConfigOf(img.configDigest);
  for (const [i, l] of img.layers.entries()) {
    if (existsSync(store.layerDir(l.digest))) continue;
    opts.progress?.(`unpacking layer ${i + 1}/${img.layers.length} ${l.digest.slice(7, 19)} (${l.size} bytes)`);
    added.layers.push(l.digest);
    await store.unpackLayers({ layers: [l] } as ImageRecord);
  }
  const names = opts.name !== undefined ? [opts.name] : img.names;
  const rec = await store.recordImage({
    reference: names[0],
    manifestDigest: img.manifestDigest,
    manifest: img.manifest,
    configDigest: img.configDigest,
    layers: img.layers,
  });
  for (const n of names.slice(1)) await store.tag(rec.id, n);
  return rec;
}

/** Copies a file into the store as a blob, its digest checked; true when it was not there. */
async function copyBlob(store: ImageStore, file: string, digest: string, source: string): Promise<boolean> {
  try {
    return await store.writeBlob(digest, statSync(file).size, async (write) => {
      const fd = openSync(file, "r");
      const buf = Buffer.alloc(1 << 20);
      try {
        for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) write(buf.subarray(0, n));
      } finally {
        closeSync(fd);
      }
    });
  } catch (e) {
    if (e instanceof NsboxError) fail(`cannot import "${source}": ${e.message}`);
    throw e;
  }
}

/** A path inside the archive, never outside it (the names come from the archive). */
function inside(dir: string, rel: unknown, source: string, what: string): string {
  if (typeof rel !== "string" || rel === "" || rel.startsWith("/") || normalize(rel).startsWith(".."))
    fail(`cannot import "${source}": ${what} ${JSON.stringify(rel)} is not a path inside the archive`);
  return join(dir, rel);
}

function readJsonFile(path: string, source: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    fail(`cannot import "${source}": ${what} is missing`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`cannot import "${source}": ${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** gzip and zstd by their magic numbers, as the layer media type needs. */
function layerMediaType(file: string, base: string): string {
  const fd = openSync(file, "r");
  const head = Buffer.alloc(4);
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  if (head[0] === 0x1f && head[1] === 0x8b) return `${base}+gzip`;
  if (head.readUInt32BE(0) === 0x28b52ffd) return `${base}+zstd`;
  return base;
}

async function readDockerArchive(dir: string, source: string): Promise<Found[]> {
  const list = readJsonFile(join(dir, "manifest.json"), source, "manifest.json");
  if (!Array.isArray(list)) fail(`cannot import "${source}": manifest.json is not a list of images`);
  const out: Found[] = [];
  const hashes = new Map<string, string>();
  for (const [i, entry] of (list as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]).entries()) {
    const what = `manifest.json entry ${i + 1}`;
    const configFile = inside(dir, entry?.Config, source, `the Config of ${what}`);
    if (!existsSync(configFile)) fail(`cannot import "${source}": the config of ${what} is missing from the archive`);
    const layerFiles = Array.isArray(entry?.Layers) ? (entry.Layers as unknown[]).map((l) => inside(dir, l, source, `a layer of ${what}`)) : [];
    const files = new Map<string, string>();
    const configDigest = await sha256File(configFile);
    files.set(configDigest, configFile);
    const layers: Descriptor[] = [];
    for (const f of layerFiles) {
      if (!existsSync(f)) fail(`cannot import "${source}": layer ${JSON.stringify(f.slice(dir.length + 1))} is missing from the archive`);
      let digest = hashes.get(f);
      if (!digest) {
        digest = await sha256File(f);
        hashes.set(f, digest);
      }
      files.set(digest, f);
      layers.push({ mediaType: layerMediaType(f, MEDIA.ociLayer), digest, size: statSync(f).size });
    }
    // docker-archive has no manifest: make the OCI one that describes the same blobs
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: statSync(configFile).size },
      layers,
    });
    const tags = Array.isArray(entry?.RepoTags) ? (entry.RepoTags as unknown[]).filter((t): t is string => typeof t === "string") : [];
    out.push({ names: tags.map((t) => normalizeName(t)), manifest, manifestDigest: sha256Bytes(manifest), configDigest, layers, files });
  }
  return out;
}

function readOciLayout(dir: string, source: string): Found[] {
  const index = readJsonFile(join(dir, "index.json"), source, "index.json") as { manifests?: (Descriptor & { annotations?: Record<string, string> })[] };
  if (!Array.isArray(index?.manifests)) fail(`cannot import "${source}": index.json has no manifests list`);
  const blob = (d: string) => join(dir, "blobs", "sha256", digestHex(d, `digest in ${source}`));
  const out: Found[] = [];
  const visit = (desc: Descriptor & { annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }, name: string | undefined) => {
    if (!isDigest(desc?.digest ?? "")) fail(`cannot import "${source}": a descriptor has no sha256 digest`);
    if (desc.mediaType === MEDIA.ociIndex || desc.mediaType === MEDIA.dockerList) {
      const sub = readJsonFile(blob(desc.digest), source, `index ${desc.digest}`) as { manifests?: Descriptor[] };
      const host = hostArch();
      const pick = (sub.manifests ?? []).find((m) => (m as { platform?: { architecture?: string } }).platform?.architecture === host) ?? sub.manifests?.[0];
      if (pick) visit(pick, name);
      return;
    }
    const text = readFileSync(blob(desc.digest), "utf8");
    let m: { config?: Descriptor; layers?: Descriptor[] };
    try {
      m = JSON.parse(text);
    } catch (e) {
      fail(`cannot import "${source}": manifest ${desc.digest} is not valid JSON (${(e as Error).message})`);
    }
    if (!m.config || !Array.isArray(m.layers)) fail(`cannot import "${source}": manifest ${desc.digest} has no config or no layers`);
    const files = new Map<string, string>();
    for (const d of [m.config, ...m.layers]) files.set(d.digest, blob(d.digest));
    out.push({
      names: name ? [name] : [],
      manifest: text,
      manifestDigest: desc.digest,
      configDigest: m.config.digest,
      layers: m.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      files,
    });
  };
  for (const d of index.manifests) visit(d, refName(d.annotations));
  return out;
}

/**
 * A name from a layout's annotations: containerd's full image name, or a ref.name
 * that is a full name (podman writes those). A bare tag ("latest", as skopeo's
 * oci:DIR:TAG writes) names no repository: the image is then imported untagged
 * unless a NAME is given.
 */
function refName(ann: Record<string, string> | undefined): string | undefined {
  const full = ann?.["io.containerd.image.name"] ?? ann?.[REF_NAME];
  if (!full || !/[/:]/.test(full)) return undefined;
  try {
    return normalizeName(full);
  } catch {
    return undefined;
  }
}

export function hostArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}
