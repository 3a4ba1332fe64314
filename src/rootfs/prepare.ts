/**
 * ROOTFS as the user gave it (a directory or a tarball) -> a directory to use as
 * the container's read-only base. Tarballs are extracted once into a cache keyed
 * by their content digest (see cache.ts).
 */
import { readdirSync, realpathSync, statSync } from "node:fs";
import { fail, sysMessage } from "../errors.ts";
import { fsErrorSentence, isFsError } from "../state/fserror.ts";
import { rootfsFromTarball, TARBALL_SUFFIXES } from "./cache.ts";

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
    return rootfsFromTarball(realpathSync(arg));
  }
  fail(`rootfs "${arg}" is neither a directory nor a tarball`);
}
