/**
 * Manifests and indexes: OCI image index / docker manifest list (one entry per
 * platform), OCI image manifest / docker schema 2 (a config and layers).
 * Docker schema 1 is refused: it was deprecated in 2017 and carries no config.
 */
import { fail } from "../../errors.ts";
import { checkDigest } from "./digest.ts";

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** What nsbox asks for, in order of preference. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(", ");

/** Manifests and configs are small; a larger one is refused before it fills memory (containerd's bound). */
export const MANIFEST_MAX = 4 << 20;
export const CONFIG_MAX = 8 << 20;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export type Parsed =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "manifest"; mediaType: string; config: Descriptor; layers: Descriptor[] };

function descriptor(d: unknown, what: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (!o || typeof o !== "object") fail(`${what} is not a descriptor object`);
  const digest = checkDigest(o.digest, what);
  if (typeof o.size !== "number" || !Number.isSafeInteger(o.size) || o.size < 0) fail(`${what} (${digest}) has no valid size`);
  if (typeof o.mediaType !== "string") fail(`${what} (${digest}) has no mediaType`);
  return { mediaType: o.mediaType, digest, size: o.size, platform: o.platform };
}

/** Parses manifest bytes; the media type comes from the document, else from Content-Type. */
export function parseManifest(bytes: Uint8Array, contentType: string | null, what: string): Parsed {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("not an object");
  } catch (e) {
    fail(`the manifest of ${what} is not JSON (${(e as Error).message})`);
  }
  const mediaType = (typeof doc.mediaType === "string" ? doc.mediaType : contentType?.split(";")[0]?.trim()) ?? "";
  if (mediaType === MEDIA.dockerSchema1 || mediaType === MEDIA.dockerSchema1Signed || doc.schemaVersion === 1)
    fail(`${what} is a docker schema 1 image, which nsbox does not pull (deprecated since 2017): push it again with a current docker, podman or skopeo`);
  if (Array.isArray(doc.manifests)) {
    return { kind: "index", mediaType, manifests: doc.manifests.map((m, i) => descriptor(m, `entry ${i} of the index of ${what}`)) };
  }
  if (doc.config !== undefined && Array.isArray(doc.layers)) {
    return {
      kind: "manifest",
      mediaType,
      config: descriptor(doc.config, `the config of ${what}`),
      layers: doc.layers.map((l, i) => descriptor(l, `layer ${i + 1} of ${what}`)),
    };
  }
  fail(`the manifest of ${what} (${mediaType || "no media type"}) is neither an image index nor an image manifest`);
}

const GOARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

/** The platform nsbox runs on: linux/amd64, or linux/arm64/v8. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  return architecture === "arm64" ? { os: "linux", architecture, variant: "v8" } : { os: "linux", architecture };
}

/** "os/arch[/variant]" -> Platform; a bad one is a one-line error. */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p)))
    fail(`invalid --platform "${text}": use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8`);
  const [os, arch, variant] = parts as [string, string, string?];
  const architecture = arch === "x86_64" ? "amd64" : arch === "aarch64" ? "arm64" : arch;
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function platformString(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/**
 * The index entry for a platform. The variant must match when one is asked for,
 * except that arm64's "v8" is also its default (an entry without a variant).
 */
export function choosePlatform(manifests: Descriptor[], want: Platform, what: string): Descriptor {
  const variantOf = (p: Platform) => p.variant || (p.architecture === "arm64" ? "v8" : "");
  const candidates = manifests.filter((m) => m.platform?.os === want.os && m.platform.architecture === want.architecture);
  const exact = candidates.find((m) => !want.variant || variantOf(m.platform as Platform) === variantOf(want));
  if (exact) return exact;
  // attestation manifests (buildx) are listed as unknown/unknown: not platforms a user can ask for
  const offered = [...new Set(manifests.filter((m) => m.platform && m.platform.os !== "unknown").map((m) => platformString(m.platform as Platform)))];
  fail(`no ${platformString(want)} image in ${what}; it has: ${offered.length ? offered.join(", ") : "no platform listed"}`);
}
