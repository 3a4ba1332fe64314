/**
 * The path policy of the extractor: names are normalised relative to dest, and
 * a name that is absolute or climbs out with ".." is refused before anything is
 * created for it. Paths are "binary strings" here (see below).
 */

export class TarError extends Error {
  override name = "TarError";
}

// ---------------------------------------------------------------------------
// Names. Inside this module a path is a "binary string": one char per byte of
// the name as stored (latin1 decoding), so names that are not valid UTF-8
// survive unchanged; fsPath() turns one back into bytes for the kernel.

/** A name as the user should see it in a message (JSON-quoted, UTF-8 decoded). */
export function show(name: string): string {
  return JSON.stringify(Buffer.from(name, "latin1").toString("utf8"));
}

export function refuse(name: string, why: string): never {
  throw new TarError(`refusing entry ${show(name)}: ${why}`);
}

/**
 * The name relative to dest, with "." components, repeated and trailing slashes
 * removed ("" is dest itself). `entry` is the entry the name belongs to, for
 * the message; `what` says which name of it this is.
 */
export function normalize(raw: string, entry: string, what = "it"): string {
  if (raw.includes("\0")) refuse(entry, `${what} contains a NUL byte`);
  if (raw.startsWith("/")) refuse(entry, what === "it" ? "it is an absolute path" : `${what} ${show(raw)} is an absolute path`);
  // Fast path for the common clean name: nothing starts with "." after a slash.
  if (raw.charCodeAt(0) !== 0x2e && !raw.includes("/.") && !raw.includes("//") && !raw.endsWith("/")) return raw;
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") refuse(entry, what === "it" ? 'it climbs out of the target with ".."' : `${what} ${show(raw)} climbs out of the target with ".."`);
    parts.push(part);
  }
  return parts.join("/");
}

/** True when a symlink target leaves its directory ("/" or a ".." component). */
export function leavesDir(target: string): boolean {
  return target.startsWith("/") || target === ".." || target.startsWith("../") || target.endsWith("/..") || target.includes("/../");
}

/** True when `path` is strictly below `dir` ("" is dest). */
export function isAncestor(dir: string, path: string): boolean {
  if (dir === "") return path !== "";
  return path.length > dir.length && path.charCodeAt(dir.length) === 0x2f && path.startsWith(dir);
}
