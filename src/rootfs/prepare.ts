/**
 * ROOTFS as the user gave it (a directory or a tarball) -> a directory to use as
 * the container's read-only base. Tarballs are extracted once into a cache keyed
 * by their content digest (see cache.ts).
 */

import { fail, sysMessage } from "../errors.ts";
import { some } from "../list.ts";
import { existsSync, readdirSync, realpathSync, statSync } from "../native/fs.ts";
import { fsErrorSentence, isFsError } from "../state/fserror.ts";

/** The tarballs a rootfs may be (extracted into the cache by ./cache.ts). */
export const TARBALL_SUFFIXES = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"];

/**
 * What `run` was given: a path (a rootfs directory or tarball) or an image
 * reference. "/x", "./x", "../x", "~/x", names ending in .tar, .tar.gz, .tgz,
 * .tar.zst, and anything that exists on disk are paths; everything else (alpine, alpine:3.20, host:5000/app@sha256:...) is an
 * image reference. `./alpine` runs the directory alpine even when an image
 * of that name exists.
 */
const PATH_STARTS = ["/", "./", "../", "~/"];

export function isRootfsPath(arg: string): boolean {
  if (some(PATH_STARTS, (p) => arg.startsWith(p)) || arg === "." || arg === "..") return true;
  if (some(TARBALL_SUFFIXES, (s) => arg.endsWith(s))) return true;
  return existsSync(arg);
}

export async function prepareRootfs(arg: string): Promise<string> {
  try {
    return await prepare(arg);
  } catch (e) {
    // any filesystem error on the way, as one sentence naming the rootfs as given
    if (isFsError(e)) fail(`${fsErrorSentence(e, `rootfs "${arg}"`)}${e.code === "ENOENT" ? " (hidden by a mount, or removed meanwhile?)" : ""}`);
    throw e;
  }
}

async function prepare(arg: string): Promise<string> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(arg);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    fail(`rootfs "${arg}" does not exist (${sysMessage(e)}): give a directory or a .tar/.tar.gz/.tgz/.tar.zst file; "nsbox rootfs busybox DIR" makes one`);
  }
  if (st.isDirectory()) {
    const dir = realpathSync(arg);
    if (dir === "/") fail(`rootfs "${arg}" is the host's own root: give a directory holding a container's filesystem`);
    if (readdirSync(dir).length === 0) fail(`rootfs "${arg}" is an empty directory: fill it (e.g. "nsbox rootfs busybox ${arg}") or give another`);
    return dir;
  }
  if (st.isFile()) {
    if (!TARBALL_SUFFIXES.some((s) => arg.endsWith(s)))
      fail(`rootfs "${arg}" is a file but not a tarball nsbox knows: use a directory or ${TARBALL_SUFFIXES.join(", ")}`);
    // the cache (node:fs, hashing) only for a tarball: a directory's start does without
    const { rootfsFromTarball } = await import("./cache.ts");
    return rootfsFromTarball(realpathSync(arg));
  }
  fail(`rootfs "${arg}" is neither a directory nor a tarball`);
}
