/**
 * Image names as docker completes them, for the store's tags index: "alpine" ->
 * docker.io/library/alpine:latest, "me/app" -> docker.io/me/app:latest,
 * "host:5000/app" -> host:5000/app:latest. The first component is a registry when
 * it has a "." or a ":" or is "localhost" (docker's rule).
 */
import { fail } from "../errors.ts";

/** A full name: registry/repository:tag or registry/repository@sha256:... */
export function normalizeName(ref: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._:/@-]*$/.test(ref) || ref.length > 512)
    fail(`invalid image name "${ref}": use [REGISTRY/]REPOSITORY[:TAG] or ...@sha256:DIGEST (lower-case letters, digits, . _ - /)`);
  let name = ref;
  let suffix = "";
  const at = name.indexOf("@");
  if (at >= 0) {
    suffix = name.slice(at);
    name = name.slice(0, at);
  } else {
    const slash = name.lastIndexOf("/");
    const colon = name.lastIndexOf(":");
    if (colon > slash) {
      suffix = name.slice(colon);
      name = name.slice(0, colon);
    } else suffix = ":latest";
  }
  const first = name.split("/")[0] as string;
  const hasRegistry = name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (!hasRegistry) name = name.includes("/") ? `docker.io/${name}` : `docker.io/library/${name}`;
  if (name !== name.toLowerCase()) fail(`invalid image name "${ref}": repository names must be lower-case`);
  return name + suffix;
}

/** The repository part of a full name (without :tag or @digest). */
export function repositoryOf(full: string): string {
  const at = full.indexOf("@");
  if (at >= 0) return full.slice(0, at);
  const slash = full.lastIndexOf("/");
  const colon = full.lastIndexOf(":");
  return colon > slash ? full.slice(0, colon) : full;
}

/** The tag of a full name ("" for a digest reference). */
export function tagOf(full: string): string {
  if (full.includes("@")) return "";
  const slash = full.lastIndexOf("/");
  const colon = full.lastIndexOf(":");
  return colon > slash ? full.slice(colon + 1) : "latest";
}
