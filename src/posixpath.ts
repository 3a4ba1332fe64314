/**
 * The POSIX path functions nsbox uses (join, dirname, basename, resolve,
 * isAbsolute, normalize), with node:path's results for the same inputs
 * (test/unit/posixpath.test.ts compares them on a table of inputs).
 *
 * Why not node:path: importing it makes Bun load its built-in module at every
 * start. Without it `nsbox --version` was 0.7-0.8 ms faster (two runs of 81
 * alternated pairs) and run's "main -> command loaded" 1.35-1.85 ms shorter,
 * with 0.2-0.35 MiB less peak RSS (bench/results.md, "what was tried").
 */

/** `.` and `..` resolved, repeated slashes folded; a trailing slash kept (node's normalize). */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.charCodeAt(0) === 47;
  const trailing = path.charCodeAt(path.length - 1) === 47;
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else out.push(seg);
  }
  let joined = out.join("/");
  if (joined === "" && !absolute) joined = ".";
  if (joined !== "" && trailing) joined += "/";
  return absolute ? `/${joined}` : joined;
}

/** The parts joined with `/` and normalized; empty parts ignored; "." for nothing (node's join). */
export function join(...parts: string[]): string {
  let joined = "";
  for (const p of parts) if (p !== "") joined = joined === "" ? p : `${joined}/${p}`;
  return joined === "" ? "." : normalize(joined);
}

/** An absolute path: the parts from the right until one is absolute, on top of the current directory (node's resolve). */
export function resolve(...parts: string[]): string {
  let resolved = "";
  for (let i = parts.length - 1; i >= -1 && resolved.charCodeAt(0) !== 47; i--) {
    const p = i >= 0 ? (parts[i] as string) : process.cwd();
    if (p !== "") resolved = resolved === "" ? p : `${p}/${resolved}`;
  }
  const n = normalize(resolved);
  // normalize keeps a trailing slash; resolve never returns one (but "/" itself)
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

export function isAbsolute(path: string): boolean {
  return path.charCodeAt(0) === 47;
}

/** The path without its last component; trailing slashes ignored (node's dirname). */
export function dirname(path: string): string {
  if (path === "") return ".";
  const rooted = path.charCodeAt(0) === 47;
  let end = -1;
  let sawName = false;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path.charCodeAt(i) === 47) {
      if (sawName) {
        end = i;
        break;
      }
    } else sawName = true;
  }
  if (end === -1) return rooted ? "/" : ".";
  if (rooted && end === 1) return "//";
  return path.slice(0, end);
}

/** The last component; trailing slashes ignored (node's basename without a suffix). */
export function basename(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 47) end--;
  const start = path.lastIndexOf("/", end - 1) + 1;
  return path.slice(start, end);
}
