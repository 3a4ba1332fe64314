/**
 * GET /v2/NAME/manifests/REF, bounded in size and verified: by the digest asked
 * for, else by the registry's Docker-Content-Digest header when it sends one.
 */
import { fail } from "../../errors.ts";
import type { RegistryClient } from "./client.ts";
import { digestOf } from "./digest.ts";
import { MANIFEST_ACCEPT, MANIFEST_MAX, type Parsed, parseManifest } from "./manifest.ts";

export interface FetchedManifest {
  bytes: Uint8Array;
  digest: string;
  parsed: Parsed;
}

/** `ref` is a tag or a digest; `what` names the image in messages ("alpine:3.20"). */
export async function getManifest(client: RegistryClient, ref: string, what: string): Promise<FetchedManifest> {
  const res = await client.get(`/v2/${client.repository}/manifests/${ref}`, { accept: MANIFEST_ACCEPT });
  if (res.status === 404) await client.statusError(res, `${what} not found`);
  if (!res.ok) await client.statusError(res, `the manifest of ${what}`);
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MANIFEST_MAX) fail(`the manifest of ${what} is ${declared} bytes, more than nsbox accepts (${MANIFEST_MAX})`);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > MANIFEST_MAX) fail(`the manifest of ${what} is more than ${MANIFEST_MAX} bytes, more than nsbox accepts`);
    parts.push(chunk.slice());
  }
  const bytes = Buffer.concat(parts);
  let digest: string;
  if (ref.includes(":")) {
    digest = digestOf(bytes, ref.startsWith("sha512:") ? "sha512" : "sha256");
    if (digest !== ref) fail(`the manifest of ${what}: digest mismatch, the registry sent content that hashes to ${digest}`);
  } else {
    digest = digestOf(bytes);
    const header = res.headers.get("docker-content-digest");
    if (header?.startsWith("sha256:") && header !== digest)
      fail(`the manifest of ${what}: digest mismatch, the registry announced ${header} but sent ${digest}`);
  }
  return { bytes, digest, parsed: parseManifest(bytes, res.headers.get("content-type"), what) };
}
