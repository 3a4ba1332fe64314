/**
 * OCI layer whiteouts (image-spec layer.md) turned into overlayfs's own: an
 * entry `DIR/.wh.NAME` says "NAME is deleted in this layer", which overlayfs
 * spells as a 0/0 character device named NAME; `DIR/.wh..wh..opq` says "DIR
 * hides the content of the layers below", which overlayfs spells as the xattr
 * trusted.overlay.opaque="y" on DIR. Other `.wh..wh.*` names are aufs's own
 * bookkeeping (hard link directories and the like), skipped as containerd does.
 */
import { refuse } from "./policy.ts";

export const WH_PREFIX = ".wh.";
export const WH_OPAQUE = ".wh..wh..opq";
export const OPAQUE_XATTR = "trusted.overlay.opaque";

/** What an entry is under the overlay whiteout rules. */
export type Whiteout =
  | { kind: "none" }
  /** delete `path` (the name without ".wh.") */
  | { kind: "whiteout"; path: string }
  /** mark `dir` opaque */
  | { kind: "opaque"; dir: string }
  /** aufs metadata: write nothing */
  | { kind: "skip" };

/**
 * Classifies a normalised entry path; `raw` is the name as stored, for messages.
 * Refuses names that would turn into something unsafe or meaningless.
 */
export function classifyWhiteout(path: string, raw: string): Whiteout {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "" : path.slice(0, slash);
  const base = path.slice(slash + 1);
  // A whiteout is never a directory in the layer: nothing can be below one.
  if (dir.startsWith(WH_PREFIX) || dir.includes(`/${WH_PREFIX}`)) refuse(raw, "a parent of it is a whiteout (.wh.*)");
  if (!base.startsWith(WH_PREFIX)) return { kind: "none" };
  if (base === WH_OPAQUE) return { kind: "opaque", dir };
  if (base.startsWith(`${WH_PREFIX}${WH_PREFIX}`)) return { kind: "skip" };
  const name = base.slice(WH_PREFIX.length);
  if (name === "" || name === "." || name === "..") refuse(raw, `it is a whiteout of ${JSON.stringify(name)}, which names no file`);
  return { kind: "whiteout", path: dir === "" ? name : `${dir}/${name}` };
}
