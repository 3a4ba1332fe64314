/**
 * Content digests ("sha256:<hex>", "sha512:<hex>"): checked while bytes stream,
 * so nothing unverified is ever renamed into the store.
 */
import { fail } from "../../errors.ts";

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** Refuses a digest nsbox cannot verify, or one that could escape a path (the store names files by digest). */
export function checkDigest(digest: unknown, what: string): string {
  if (typeof digest !== "string") fail(`${what} has no digest`);
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(digest);
  if (!m || m[2]?.length !== HEX_LENGTH[m[1] as string]) fail(`${what} has the digest "${digest}", which is not sha256:<64 hex> or sha512:<128 hex>`);
  return digest;
}

/** An incremental hash of one blob, compared with its declared digest at the end. */
export class DigestVerifier {
  private hasher: Bun.CryptoHasher;
  private algorithm: "sha256" | "sha512";
  bytes = 0;

  constructor(readonly expected: string) {
    this.algorithm = expected.startsWith("sha512:") ? "sha512" : "sha256";
    this.hasher = new Bun.CryptoHasher(this.algorithm);
  }

  update(chunk: Uint8Array) {
    this.hasher.update(chunk);
    this.bytes += chunk.byteLength;
  }

  get actual(): string {
    return `${this.algorithm}:${this.hasher.digest("hex")}`;
  }

  /** Throws a one-line error when the bytes seen so far do not hash to the expected digest. */
  verify(what: string) {
    const actual = this.actual;
    if (actual !== this.expected) fail(`${what}: digest mismatch, the registry sent content that hashes to ${actual}`);
  }
}

export function digestOf(bytes: Uint8Array, algorithm: "sha256" | "sha512" = "sha256"): string {
  return `${algorithm}:${new Bun.CryptoHasher(algorithm).update(bytes).digest("hex")}`;
}

/** "sha256:0123456789ab...": 12 hex digits, as docker shows ids. */
export function shortDigest(digest: string): string {
  return (digest.split(":")[1] ?? digest).slice(0, 12);
}
