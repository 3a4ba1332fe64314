/**
 * A rootless user's files: tarballs extracted with their owners through the
 * mapping, and trees a container wrote removed whoever owns their files.
 *
 * Outside the user namespace, files owned by subordinate ids are not the
 * caller's: a directory a container's uid 1000 made cannot be emptied by the
 * caller, and the caller cannot chown to those ids. Inside a namespace with the
 * same mapping the caller is root over all of them, so both jobs run there.
 */

import { NsboxError } from "../errors.ts";
import { removeAfterExit } from "../native/exit.ts";
import { chmodSync, lstatSync, readdirSync, renameSync, rmSync } from "../native/fs.ts";
import { basename, dirname, join } from "../posixpath.ts";
import { isRootless, rootlessMapping } from "./identity.ts";
import { runInUserns } from "./userns-run.ts";

const clean = (stderr: string) =>
  stderr
    .split("\n")
    .map((l) => l.replace(/^nsbox: (error: )?/, ""))
    .join("; ");

/**
 * Extracts a tarball for a rootless user into dest (empty). With subordinate
 * ranges, inside the user namespace: root-owned files become the caller's, uid
 * N's the range's N-th id. Without, as the caller: every file is the caller's
 * (root's inside), as with `unshare -r`. An image layer (layer: true) gets
 * overlayfs's whiteouts for the OCI ones.
 */
export async function extractAsUser(tarball: string, dest: string, layer = false): Promise<void> {
  const m = rootlessMapping();
  if (!m.ranges) {
    const { extractTar } = await import("../rootfs/tar.ts");
    return extractTar(tarball, dest, { sameOwner: false, whiteouts: layer ? "overlay" : undefined });
  }
  const r = runInUserns(m.uid, m.gid, [layer ? "extract-layer" : "extract", tarball, dest]);
  if (r.code !== 0) {
    const { TarError } = await import("../rootfs/tar.ts");
    throw new TarError(clean(r.stderr) || `extraction failed (exit status ${r.code})`);
  }
}

/**
 * rm -rf path, for trees a container may have written: as root, or a rootless
 * user whose own rights suffice, directly; otherwise again inside the user
 * namespace, where the subordinate ids' files are removable too.
 */
export function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!isRootless() || (code !== "EACCES" && code !== "EPERM")) throw e;
  }
  // Most often only directories of the caller's own are closed (overlay leaves
  // its work/work at mode 000): opening them is cheaper than a user namespace.
  if (tryOpenOwnDirs(path)) {
    try {
      rmSync(path, { recursive: true, force: true });
      return;
    } catch {
      // files of subordinate ids: inside the namespace
    }
  }
  const m = rootlessMapping();
  const r = runInUserns(m.uid, m.gid, ["rm", path]);
  if (r.code !== 0) throw new NsboxError(`cannot remove ${path}: ${clean(r.stderr) || `exit status ${r.code}`}`);
}

/**
 * removeTree for an nsbox about to exit (a foreground run's cleanup): path is
 * renamed to .rm-<name> beside it, which nothing reads (the reconcile removes
 * such leftovers), and removed after the exit by the exit keeper
 * (src/native/exit.ts), which needs no user namespace: so only as root.
 */
export function removeTreeAfterExit(path: string): void {
  if (isRootless() || !removeAfterExit(path, join(dirname(path), `.rm-${basename(path)}`))) removeTree(path);
}

function tryOpenOwnDirs(path: string): boolean {
  try {
    return openOwnDirs(path);
  } catch {
    return false; // something in the way that is not ours: the namespace will do
  }
}

/** chmod u+rwx every directory of the caller's under path that it cannot read; false when one is someone else's. */
function openOwnDirs(path: string, depth = 0): boolean {
  const uid = process.getuid?.();
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return true; // gone
  }
  if (!st.isDirectory()) return true;
  if (st.uid !== uid) return false;
  if ((st.mode & 0o700) !== 0o700) chmodSync(path, (st.mode & 0o7777) | 0o700);
  if (depth > 64) return false;
  let all = true;
  for (const name of readdirSync(path)) all = openOwnDirs(join(path, name), depth + 1) && all;
  return all;
}

/**
 * rename(2) of a directory tree into place. Moving a directory to another parent
 * rewrites its "..", which needs write permission on it: rootless, a tree whose
 * top belongs to a subordinate id (an archive's "./" of uid 1000) moves only
 * inside the user namespace.
 */
export function renameTree(from: string, to: string): void {
  try {
    renameSync(from, to);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!isRootless() || (code !== "EACCES" && code !== "EPERM")) throw e;
  }
  const m = rootlessMapping();
  const r = runInUserns(m.uid, m.gid, ["mv", from, to]);
  if (r.code !== 0) throw Object.assign(new Error(`cannot move ${from} to ${to}: ${clean(r.stderr) || `exit status ${r.code}`}`), { code: "EEXIST" });
}
