/**
 * Parent cgroups that nsbox creates (the levels of a --cgroup-parent that did
 * not exist, nsbox.slice on v2) are shared by every container placed under them.
 * Each is recorded host-wide when nsbox creates it; every container lists the
 * recorded levels above it, and the last one to leave removes them. A cgroup
 * nsbox did not create is never recorded, so never removed.
 */
import { filter, sorted } from "../list.ts";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { roots } from "../state/paths.ts";

// rootless: the user's own state root (its cgroups are its own)
const dir = () => join(process.env.NSBOX_HOST_STATE || (process.getuid?.() === 0 ? "/run/nsbox" : roots().state), "cgroup-parents");
// (Bun.SHA256: Bun.CryptoHasher's digest, and about 0.7 MiB less mapped on its first use)
const marker = (path: string) => join(dir(), Bun.SHA256.hash(path, "hex"));

/**
 * No level recorded at all (the usual host): nothing to hash. Asked after the
 * level was seen to exist: its marker, if any, was written before its mkdir.
 */
function noMarkers(): boolean {
  try {
    return readdirSync(dir()).length === 0;
  } catch {
    return true;
  }
}

function isOurs(path: string): boolean {
  if (noMarkers()) return false;
  const m = marker(path);
  if (!existsSync(m)) return false; // the usual answer, without an exception to throw and catch
  try {
    return readFileSync(m, "utf8") === path;
  } catch {
    return false;
  }
}

/**
 * Makes sure mount/rel exists; returns the levels of it that nsbox made (now or
 * before), top-down, and which of them are new (so cpuset can fill them in).
 */
export function ensureParent(mount: string, rel: string): { ours: string[]; fresh: string[] } {
  const ours: string[] = [];
  const fresh: string[] = [];
  let path = mount;
  for (const seg of filter(rel.split("/"), Boolean)) {
    path = join(path, seg);
    if (!existsSync(path)) {
      mkdirSync(dir(), { recursive: true, mode: 0o700 });
      writeFileSync(marker(path), path); // recorded before it exists: a crash leaves a marker, never an unknown cgroup
      try {
        mkdirSync(path);
        fresh.push(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    if (isOurs(path)) ours.push(path);
  }
  return { ours, fresh };
}

/**
 * The levels of mount/rel that ensureParent would report as nsbox's, without
 * creating any: those recorded as nsbox's, and those missing (ensureParent
 * records each level it creates).
 */
export function plannedParents(mount: string, rel: string): string[] {
  const ours: string[] = [];
  let path = mount;
  for (const seg of filter(rel.split("/"), Boolean)) {
    path = join(path, seg);
    if (!existsSync(path) || isOurs(path)) ours.push(path);
  }
  return ours;
}

/** Removes the levels (deepest first) that no container uses any more. */
export function removeParents(levels: string[]): void {
  for (const path of sorted(levels, (a, b) => b.length - a.length)) {
    if (!isOurs(path)) continue;
    try {
      rmdirSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") return; // busy: another container is below
    }
    try {
      unlinkSync(marker(path));
    } catch {
      // gone already
    }
  }
}
