/**
 * Digests as the OCI image spec writes them ("sha256:<64 hex>"). Only sha256 is
 * accepted: the store names files after the hex, so anything else (a slash, "..")
 * must never reach a path.
 */
import { fail } from "../errors.ts";

const DIGEST = /^sha256:([a-f0-9]{64})$/;

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/** The hex of a digest, or a clear error naming what carried it. */
export function digestHex(digest: string, what = "digest"): string {
  const m = DIGEST.exec(digest);
  if (!m) fail(`invalid ${what} "${digest}": expected sha256:<64 hex digits>`);
  return m[1] as string;
}

export function sha256Bytes(data: string | Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
}

export async function sha256File(path: string): Promise<string> {
  // node:fs's streams, loaded here: run IMAGE reads the store without them (2-4 ms of a start)
  const { createReadStream } = await import("node:fs");
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return `sha256:${h.digest("hex")}`;
}
