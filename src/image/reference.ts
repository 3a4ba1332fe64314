/**
 * Image references as docker parses them (github.com/distribution/reference):
 *
 *   alpine                    -> docker.io/library/alpine:latest
 *   user/x                    -> docker.io/user/x:latest
 *   host:5000/team/x:1.0      -> host:5000/team/x:1.0
 *   x@sha256:<64 hex>         -> docker.io/library/x@sha256:...
 *   x:tag@sha256:<64 hex>     -> the digest decides what is pulled; the tag is kept for display
 *
 * The first component is a registry host when it has a "." or a ":" or is
 * "localhost" (or has upper-case letters, which a repository path never has).
 *
 * Where docker.io is fetched from: registry-1.docker.io, unless a mirror is set
 * by NSBOX_REGISTRY_MIRROR=HOST[:PORT], or by the first of
 * /etc/nsbox/registries.json and ~/.config/nsbox/registries.json that exists:
 *   { "mirrors": { "docker.io": "mirror.example.com:5000" } }
 * (the environment wins over the files; only docker.io can be mirrored today).
 */

import { fail } from "../errors.ts";
import { existsSync, readFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";

export const DOCKER_HUB = "docker.io";
/** The host docker.io's API really lives at. */
export const DOCKER_HUB_API = "registry-1.docker.io";
const NAME_MAX = 255;

// distribution/reference's grammar, piece by piece
const alnum = "[a-z0-9]+";
const separator = "(?:[_.]|__|[-]+)";
const pathComponent = `${alnum}(?:${separator}${alnum})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const ipv6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const domain = `(?:${domainName}|${ipv6})(?::[0-9]+)?`;
const PATH_RE = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const DOMAIN_RE = new RegExp(`^${domain}$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const DIGEST_LENGTHS: Record<string, number> = { sha256: 64, sha512: 128 };

export class Reference {
  constructor(
    /** the registry as written, e.g. "docker.io", "localhost:5000" */
    readonly domain: string,
    /** the repository path, e.g. "library/alpine" */
    readonly path: string,
    /** the tag; "latest" when neither a tag nor a digest was given */
    readonly tag: string | undefined,
    /** "sha256:<hex>" when given */
    readonly digest: string | undefined,
  ) {}

  /** domain/path, e.g. docker.io/library/alpine */
  get name(): string {
    return `${this.domain}/${this.path}`;
  }

  /** The name as docker shows it: "alpine", "user/x", "host:5000/x". */
  get familiarName(): string {
    if (this.domain !== DOCKER_HUB) return this.name;
    return this.path.startsWith("library/") && this.path.split("/").length === 2 ? this.path.slice("library/".length) : this.path;
  }

  /** What the manifest is fetched by: the digest when there is one, else the tag. */
  get manifestRef(): string {
    return this.digest ?? this.tag ?? "latest";
  }

  /** The familiar form, for messages: "alpine:3.20", "host:5000/x@sha256:...". */
  toString(): string {
    return this.familiarName + (this.tag ? `:${this.tag}` : "") + (this.digest ? `@${this.digest}` : "");
  }

  /** The fully qualified form, for the store: "docker.io/library/alpine:3.20". */
  fullString(): string {
    return this.name + (this.tag ? `:${this.tag}` : "") + (this.digest ? `@${this.digest}` : "");
  }
}

/** Parses an image reference with docker's rules; a bad one is a one-line error naming it. */
export function parseReference(text: string): Reference {
  const bad = (why: string): never => fail(`invalid image reference "${text}": ${why}`);
  if (text === "") bad("it is empty");
  // a name, a tag and a digest fit in 255 + 129 + 136: longer text is refused before any pattern runs
  if (text.length > 520) bad(`it is ${text.length} characters long`);
  if (/^[a-f0-9]{64}$/.test(text)) bad("a 64-character hexadecimal string is an image id, not a name (write sha256:... after a name and @)");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(digest, bad);
  }
  // a ":" after the last "/" starts the tag (a ":" before it is a port)
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) bad(`the tag "${tag}" must be 1 to 128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
  }
  if (rest === "") bad("the repository name is missing");
  let domainPart = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  if (slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first)) {
    domainPart = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domainPart)) bad(`"${domainPart}" is not a registry host (letters, digits, "-" and "." with an optional :PORT)`);
  }
  if (domainPart === "index.docker.io") domainPart = DOCKER_HUB;
  if (domainPart === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;
  if (path.toLowerCase() !== path) bad("the repository name must be lowercase");
  const full = `${domainPart}/${path}`;
  if (full.length > NAME_MAX) bad(`the repository name is ${full.length} characters long, more than ${NAME_MAX}`);
  if (!PATH_RE.test(path)) bad(`"${path}" is not a repository name (lowercase letters and digits, separated by "/", ".", "_", "__" or "-")`);
  if (!tag && !digest) tag = "latest";
  return new Reference(domainPart, path, tag, digest);
}

function checkDigest(digest: string, bad: (why: string) => never) {
  if (!DIGEST_RE.test(digest)) bad(`"${digest}" is not a digest (ALGORITHM:HEX, e.g. sha256: and 64 hexadecimal digits)`);
  const [alg, hex] = digest.split(":") as [string, string];
  const want = DIGEST_LENGTHS[alg];
  if (want === undefined) bad(`the digest algorithm "${alg}" is not supported (sha256 or sha512)`);
  if (hex.length !== want) bad(`a ${alg} digest has ${want} hexadecimal digits, "${digest}" has ${hex.length}`);
  if (hex !== hex.toLowerCase()) bad(`the digest "${digest}" must be lowercase hexadecimal`);
}

/** registries.json: where docker.io is mirrored, if anywhere. */
function configuredMirror(env: NodeJS.ProcessEnv): string | undefined {
  if (env.NSBOX_REGISTRY_MIRROR) return env.NSBOX_REGISTRY_MIRROR;
  const files = ["/etc/nsbox/registries.json", join(env.HOME || process.getBuiltinModule("node:os").homedir(), ".config/nsbox/registries.json")];
  for (const file of files) {
    if (!existsSync(file)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      fail(`${file} is not valid JSON (${(e as Error).message}): expected {"mirrors": {"docker.io": "HOST[:PORT]"}}`);
    }
    const mirror = (parsed as { mirrors?: Record<string, unknown> })?.mirrors?.[DOCKER_HUB];
    if (mirror === undefined) return undefined;
    if (typeof mirror !== "string" || !DOMAIN_RE.test(mirror)) fail(`${file}: mirrors."docker.io" must be a HOST[:PORT] string`);
    return mirror;
  }
  return undefined;
}

/** The host:port whose /v2/ API serves this reference. */
export function registryHost(ref: Reference, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.domain !== DOCKER_HUB) return ref.domain;
  const mirror = configuredMirror(env);
  if (mirror === undefined) return DOCKER_HUB_API;
  if (!DOMAIN_RE.test(mirror)) fail(`NSBOX_REGISTRY_MIRROR="${mirror}" is not a HOST[:PORT]`);
  return mirror;
}

/** localhost, 127.0.0.0/8 and ::1: where plain http is allowed without --tls-verify=false (as docker and podman). */
export function isLocalHost(host: string): boolean {
  const h = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host === "::1" ? host : host.replace(/:[0-9]+$/, "");
  return h === "localhost" || h === "::1" || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(h);
}
