/**
 * Image names as the store's tags index keeps them: fully qualified, as docker
 * completes them (image/reference.ts): "alpine" -> docker.io/library/alpine:latest,
 * "me/app" -> docker.io/me/app:latest, "host:5000/app" -> host:5000/app:latest.
 */
import { parseReference } from "./reference.ts";

/** A full name: registry/repository:tag, or registry/repository@sha256:... when a digest is given. */
export function normalizeName(ref: string): string {
  const r = parseReference(ref);
  return r.digest ? `${r.name}@${r.digest}` : `${r.name}:${r.tag ?? "latest"}`;
}
