/**
 * Blob downloads: streamed, hashed as they arrive, bounded by the declared size,
 * and resumed after a dropped connection.
 *
 * A connection closed mid-blob (or a body that ends early) is retried up to
 * RETRIES times with a growing pause; the retry asks for the rest with a Range
 * request, and when the registry ignores Range (200 instead of 206) the bytes
 * already written are skipped in the new stream. A digest mismatch or a body
 * larger than declared is not retried: the registry sent wrong content.
 */
import { fail, NsboxError } from "../../errors.ts";
import { netReason, type RegistryClient } from "./client.ts";
import { DigestVerifier } from "./digest.ts";
import type { Descriptor } from "./manifest.ts";

export const RETRIES = 3;
const BACKOFF_MS = 250;
/** Silence on a blob's connection longer than this ends the attempt (then retried). */
const STALL_MS = 60_000;

/** Thrown for a body that ended before its declared size: retried like a dropped connection. */
class ShortBody extends Error {}

/** The writer failed (a full disk): never retried. */
class WriteFailed extends Error {
  constructor(readonly error: unknown) {
    super("write failed");
  }
}

export interface BlobOptions {
  /** "layer 2 of alpine:3.20" */
  what: string;
  signal?: AbortSignal;
  /** called with the bytes written so far */
  onProgress?: (bytes: number) => void;
  retries?: number;
}

/** Downloads one blob into `write`, verified; throws a one-line NsboxError on failure. */
export async function downloadBlob(client: RegistryClient, desc: Descriptor, write: (chunk: Uint8Array) => Promise<void>, opts: BlobOptions): Promise<void> {
  const verifier = new DigestVerifier(desc.digest);
  const retries = opts.retries ?? RETRIES;
  const what = `${opts.what} (${desc.digest})`;
  for (let attempt = 0; ; attempt++) {
    try {
      await attemptOnce(client, desc, verifier, write, what, opts);
      verifier.verify(what);
      return;
    } catch (e) {
      // the store's own error (ENOSPC...) goes up as it came, for the store to state it
      if (e instanceof WriteFailed) throw e.error;
      if (e instanceof NsboxError || opts.signal?.aborted) throw e;
      const why = e instanceof ShortBody ? e.message : `the connection failed after ${verifier.bytes} of ${desc.size} bytes (${netReason(e)})`;
      if (attempt >= retries) fail(`${what}: ${why}; gave up after ${retries} retries`);
      await Bun.sleep(BACKOFF_MS * 2 ** attempt);
    }
  }
}

async function attemptOnce(
  client: RegistryClient,
  desc: Descriptor,
  verifier: DigestVerifier,
  write: (chunk: Uint8Array) => Promise<void>,
  what: string,
  opts: BlobOptions,
): Promise<void> {
  // a registry that stops sending without closing the connection: this attempt ends after STALL_MS of silence
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let stalled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      ac.abort();
    }, STALL_MS);
  };
  watch();
  try {
    await streamOnce(client, desc, verifier, write, what, opts, ac.signal, watch);
  } catch (e) {
    if (stalled && !(e instanceof NsboxError)) throw new ShortBody(`no data for ${STALL_MS / 1000} s after ${verifier.bytes} of ${desc.size} bytes`);
    throw e;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

async function streamOnce(
  client: RegistryClient,
  desc: Descriptor,
  verifier: DigestVerifier,
  write: (chunk: Uint8Array) => Promise<void>,
  what: string,
  opts: BlobOptions,
  signal: AbortSignal,
  alive: () => void,
): Promise<void> {
  const have = verifier.bytes;
  const res = await client.get(`/v2/${client.repository}/blobs/${desc.digest}`, have > 0 ? { range: `bytes=${have}-` } : {}, signal);
  if (res.status === 404) {
    await res.body?.cancel().catch(() => {});
    fail(`${what}: blob unknown to ${client.host} (404): the image in the registry is incomplete`);
  }
  if (res.status === 416) {
    // the rest was asked for and the registry has no more: its copy is shorter than the manifest says
    await res.body?.cancel().catch(() => {});
    fail(`${what}: truncated: the registry has only ${have} of ${desc.size} bytes`);
  }
  if (res.status !== 200 && res.status !== 206) await client.statusError(res, what);
  let skip = 0;
  if (have > 0 && res.status === 200) skip = have;
  if (res.status === 206) {
    const start = Number(/bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1]);
    if (start !== have) skip = Number.isInteger(start) && start < have ? have - start : fail(`${what}: the registry resumed at byte ${start}, not ${have}`);
  }
  if (!res.body) throw new ShortBody(`the registry sent no body`);
  for await (const raw of res.body as unknown as AsyncIterable<Uint8Array>) {
    alive();
    let chunk = raw;
    if (skip > 0) {
      const n = Math.min(skip, chunk.byteLength);
      skip -= n;
      chunk = chunk.subarray(n);
      if (chunk.byteLength === 0) continue;
    }
    if (verifier.bytes + chunk.byteLength > desc.size) fail(`${what}: the registry sent more than the declared ${desc.size} bytes`);
    verifier.update(chunk);
    try {
      await write(chunk);
    } catch (e) {
      throw new WriteFailed(e);
    }
    opts.onProgress?.(verifier.bytes);
  }
  if (verifier.bytes < desc.size) throw new ShortBody(`truncated: the registry sent ${verifier.bytes} of ${desc.size} bytes`);
}

/** A small blob (a config) read into memory, verified, bounded by `max`. */
export async function fetchSmallBlob(client: RegistryClient, desc: Descriptor, max: number, what: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (desc.size > max) fail(`${what} (${desc.digest}) declares ${desc.size} bytes, more than nsbox accepts (${max})`);
  const parts: Uint8Array[] = [];
  await downloadBlob(
    client,
    desc,
    async (c) => {
      parts.push(c.slice());
    },
    { what, signal },
  );
  return Buffer.concat(parts);
}
