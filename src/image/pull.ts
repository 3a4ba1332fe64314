/**
 * nsbox pull: a reference -> the registry's manifest (an index resolved to this
 * platform) -> its config (verified, must be JSON) -> its layers, at most
 * PARALLEL at once, each streamed into the image store (src/image/store.ts),
 * which writes a temp file, checks digest and size, and renames it into place
 * under a per-blob lock. Blobs already in the store are skipped, so a pull that
 * was killed or failed resumes where it stopped; on any failure the other
 * downloads are stopped and their temp files removed before the error is told.
 */
import { fail, NsboxError } from "../errors.ts";
import { fullJit } from "../jit.ts";
import { credentialsFor } from "./auth.ts";
import { parseReference, type Reference, registryHost } from "./reference.ts";
import { downloadBlob, fetchSmallBlob } from "./registry/blob.ts";
import { RegistryClient } from "./registry/client.ts";
import { getManifest } from "./registry/get-manifest.ts";
import { CONFIG_MAX, choosePlatform, type Descriptor, hostPlatform, type Platform, parsePlatform, platformString } from "./registry/manifest.ts";
import { openStore } from "./store.ts";

export const PARALLEL = 3;

export interface PullOptions {
  /** "os/arch[/variant]"; default: the host's */
  platform?: string;
  /** false: any certificate, and plain http (as podman's --tls-verify=false) */
  tlsVerify?: boolean;
  quiet?: boolean;
  progress?: PullProgress;
}

/** What a progress display is told (src/image/progress.ts). */
export interface PullProgress {
  resolved?(ref: Reference, layers: Descriptor[]): void;
  layerStart?(layer: Descriptor): void;
  layerBytes?(layer: Descriptor, bytes: number): void;
  /** `existed`: the blob was already in the store */
  layerDone?(layer: Descriptor, existed: boolean): void;
  finish?(): void;
}

export interface PullResult {
  reference: Reference;
  /** the digest of the image manifest (for an index, the chosen platform's) */
  manifestDigest: string;
  /** the digest of the index when the reference named one */
  indexDigest?: string;
  configDigest: string;
  config: Record<string, unknown>;
  layers: { digest: string; size: number; mediaType: string }[];
  platform: Platform;
}

export async function pullImage(refText: string | Reference, opts: PullOptions = {}): Promise<PullResult> {
  fullJit();
  const ref = typeof refText === "string" ? parseReference(refText) : refText;
  const want = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
  const host = registryHost(ref);
  const abort = new AbortController();
  const client = new RegistryClient(host, ref.path, {
    tlsVerify: opts.tlsVerify,
    // by the host contacted: a mirror's own credentials (registry-1.docker.io is docker.io's)
    credentials: credentialsFor(host),
    signal: abort.signal,
    display: ref.toString(),
  });
  const what = ref.toString();
  const store = openStore();
  store.clearTemps();

  let top = await getManifest(client, ref.manifestRef, what);
  let indexDigest: string | undefined;
  if (top.parsed.kind === "index") {
    indexDigest = top.digest;
    const entry = choosePlatform(top.parsed.manifests, want, what);
    top = await getManifest(client, entry.digest, `${what} (${platformString(want)})`);
    if (top.parsed.kind !== "manifest") fail(`${what}: the ${platformString(want)} entry of its index is another index, which nsbox does not follow`);
  }
  const manifest = top.parsed;
  if (manifest.kind !== "manifest") throw new Error("unreachable");

  // the config first: small, and a bad one should stop the pull before any layer is fetched
  const configBytes = await fetchSmallBlob(client, manifest.config, CONFIG_MAX, `the config of ${what}`, abort.signal);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(new TextDecoder().decode(configBytes)) as Record<string, unknown>;
    if (!config || typeof config !== "object" || Array.isArray(config)) throw new Error("not a JSON object");
  } catch (e) {
    fail(`the image config of ${what} (${manifest.config.digest}) is not JSON (${(e as Error).message}): the image is corrupt`);
  }

  opts.progress?.resolved?.(ref, manifest.layers);
  await downloadLayers(manifest.layers, PARALLEL, abort, async (layer) => {
    if (store.hasBlob(layer.digest)) {
      opts.progress?.layerDone?.(layer, true);
      return;
    }
    opts.progress?.layerStart?.(layer);
    const index = manifest.layers.indexOf(layer) + 1;
    const wrote = await store.writeBlob(layer.digest, layer.size, async (writeChunk) => {
      await downloadBlob(client, layer, async (c) => writeChunk(c), {
        what: `layer ${index} of ${what}`,
        signal: abort.signal,
        onProgress: (n) => opts.progress?.layerBytes?.(layer, n),
      });
    });
    opts.progress?.layerDone?.(layer, !wrote);
  });

  await store.recordImage({
    reference: ref.digest ? `${ref.name}@${ref.digest}` : ref.fullString(),
    manifestDigest: top.digest,
    manifest: top.bytes,
    configDigest: manifest.config.digest,
    config: configBytes,
    layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
  });
  opts.progress?.finish?.();
  return {
    reference: ref,
    manifestDigest: top.digest,
    indexDigest,
    configDigest: manifest.config.digest,
    config,
    layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    platform: want,
  };
}

/**
 * Runs `one` over the layers, `parallel` at a time. The first failure aborts
 * the others, and is thrown only once every download has settled (so every
 * temp file is gone by then).
 */
async function downloadLayers(layers: Descriptor[], parallel: number, abort: AbortController, one: (l: Descriptor) => Promise<void>): Promise<void> {
  let next = 0;
  let first: unknown;
  const worker = async () => {
    while (first === undefined && next < layers.length) {
      const layer = layers[next++] as Descriptor;
      try {
        await one(layer);
      } catch (e) {
        if (first === undefined) {
          first = e;
          abort.abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, layers.length) }, worker));
  if (first !== undefined) throw first instanceof NsboxError ? first : new NsboxError(`pull failed: ${(first as Error).message ?? first}`);
}
