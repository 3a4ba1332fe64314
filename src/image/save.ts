/**
 * `image save`: an image from the store as an archive that docker and podman load.
 *
 *   oci-archive     a tar of an OCI image layout: the blobs exactly as stored
 *   docker-archive  manifest.json + <config hex>.json + <diff id>/layer.tar, the
 *                   layers uncompressed (as `docker save` writes them; docker's
 *                   loader checks them against the config's diff_ids)
 *
 * The archive is written to a temporary name beside the target and renamed when
 * complete: an interrupted save never leaves a truncated archive under its name.
 */
import { closeSync, createReadStream, createWriteStream, openSync, renameSync, rmSync, statSync } from "node:fs";
import { fail, sysMessage } from "../errors.ts";
import { dirname, join } from "../posixpath.ts";
import { randomHex } from "../state/random.ts";
import { MEDIA, REF_NAME } from "./archive.ts";
import { digestHex, sha256File } from "./digest.ts";
import type { ImageRecord, ImageStore } from "./store.ts";
import { TarWriter } from "./tarwriter.ts";

export type SaveFormat = "docker-archive" | "oci-archive";

export async function saveImage(store: ImageStore, rec: ImageRecord, names: string[], out: string, format: SaveFormat): Promise<void> {
  const tmp = join(dirname(out), `.${randomHex(6)}.nsbox-save`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx", 0o644);
  } catch (e) {
    // the cause only: the path in Node's text is the temporary file beside the archive
    fail(`cannot write "${out}": ${sysMessage(e)}`);
  }
  const scratch: string[] = [];
  try {
    const tar = new TarWriter(fd);
    if (format === "oci-archive") writeOci(store, rec, names, tar);
    else await writeDocker(store, rec, names, tar, scratch);
    tar.end();
    closeSync(fd);
    renameSync(tmp, out);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOSPC") fail(`no space left on the device of "${out}": the partial archive was removed`);
    // e.g. renaming onto a directory (EISDIR): one line naming the archive, not Node's text
    if (code && (e as NodeJS.ErrnoException).syscall === "rename") fail(`cannot write "${out}": ${sysMessage(e)}`);
    throw e;
  } finally {
    for (const s of scratch) rmSync(s, { force: true });
  }
}

function writeOci(store: ImageStore, rec: ImageRecord, names: string[], tar: TarWriter): void {
  const manifestSize = statSync(store.blobPath(rec.manifestDigest)).size;
  const annotations: Record<string, string> = {};
  if (names[0]) {
    annotations[REF_NAME] = names[0];
    annotations["io.containerd.image.name"] = names[0];
  }
  tar.bytes("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  tar.bytes(
    "index.json",
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [{ mediaType: rec.manifestMediaType, digest: rec.manifestDigest, size: manifestSize, ...(names[0] ? { annotations } : {}) }],
    }),
  );
  tar.dir("blobs");
  tar.dir("blobs/sha256");
  const seen = new Set<string>();
  for (const d of [rec.manifestDigest, rec.configDigest, ...rec.layers.map((l) => l.digest)]) {
    if (seen.has(d)) continue;
    seen.add(d);
    const p = store.blobPath(d);
    tar.file(`blobs/sha256/${digestHex(d)}`, p, statSync(p).size);
  }
}

async function writeDocker(store: ImageStore, rec: ImageRecord, names: string[], tar: TarWriter, scratch: string[]): Promise<void> {
  const configName = `${digestHex(rec.configDigest)}.json`;
  const layerNames = rec.diffIds.map((d) => `${digestHex(d)}/layer.tar`);
  tar.bytes("manifest.json", JSON.stringify([{ Config: configName, RepoTags: names.map(familiar), Layers: layerNames }]));
  const cfg = store.blobPath(rec.configDigest);
  tar.file(configName, cfg, statSync(cfg).size);
  const seen = new Set<string>();
  for (const [i, l] of rec.layers.entries()) {
    const diffId = rec.diffIds[i] as string;
    if (seen.has(diffId)) continue;
    seen.add(diffId);
    let file = store.blobPath(l.digest);
    if (l.digest !== diffId) {
      // compressed in the store: docker-archive wants the tar itself
      file = store.tmpPath("save");
      scratch.push(file);
      const gz = l.mediaType.endsWith("+gzip") || l.mediaType.endsWith(".tar.gzip");
      // loaded here, not imported: node:stream and node:zlib cost ~5 ms to evaluate, on every start otherwise
      const { pipeline } = process.getBuiltinModule("node:stream/promises");
      const { createGunzip, createZstdDecompress } = process.getBuiltinModule("node:zlib");
      await pipeline(createReadStream(store.blobPath(l.digest)), gz ? createGunzip() : createZstdDecompress(), createWriteStream(file));
      const got = await sha256File(file);
      if (got !== diffId) fail(`layer ${l.digest} does not uncompress to its diff id ${diffId} (got ${got}): the image is corrupt`);
    }
    tar.dir(digestHex(diffId));
    tar.file(layerNames[i] as string, file, statSync(file).size);
  }
}

/** docker.io/library/alpine:3 -> alpine:3, as docker writes RepoTags. */
function familiar(name: string): string {
  return name.replace(/^docker\.io\/library\/(?=[^/]+$)/, "").replace(/^docker\.io\//, "");
}
