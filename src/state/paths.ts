/**
 * Where nsbox keeps things.
 *
 *  data root  (--root, NSBOX_ROOT; default /var/lib/nsbox): survives reboots
 *    rootfs/<sha256>/         extracted tarballs, keyed by content digest
 *    containers/<id>/         a container's overlay upper and work dirs
 *    lib/helper-<sha256>.node the native helper's copy, loaded at each start
 *                             (src/native/addon.ts: found by NSBOX_ROOT, not --root)
 *  state root (--state, NSBOX_STATE; default /run/nsbox, or <root>/run when
 *             --root is given): on tmpfs, gone at reboot
 *    <id>/                    a container's state, logs and exit status
 *
 * As a user other than root (rootless, see src/rootless/), each user has roots
 * of its own, private to it (mode 0700), so that no user sees another's:
 *  data root  $XDG_DATA_HOME/nsbox (default ~/.local/share/nsbox)
 *  state root $XDG_RUNTIME_DIR/nsbox, or /tmp/nsbox-<uid> when that is unset
 */
import { join } from "../posixpath.ts";
import { isRootless, rootlessMapping } from "../rootless/identity.ts";
import { privateDir } from "../rootless/privatedir.ts";

export interface Roots {
  data: string;
  state: string;
}

let current: Roots | undefined;

export function setRoots(opts: { root?: string; state?: string }, env: NodeJS.ProcessEnv = process.env): Roots {
  const root = opts.root || env.NSBOX_ROOT;
  const rootless = isRootless();
  const data = root || (rootless ? userDataRoot(env) : "/var/lib/nsbox");
  const state = opts.state || env.NSBOX_STATE || (root ? join(root, "run") : rootless ? userStateRoot(env) : "/run/nsbox");
  current = { data, state };
  return current;
}

export function roots(): Roots {
  return current ?? setRoots({});
}

export const containerDataDir = (id: string) => join(roots().data, "containers", id);
/**
 * Extracted tarballs. Rootless, their owners depend on the user's mapping (its
 * /etc/subuid range): one cache per mapping, so that a changed range never
 * reuses a tree whose owners it no longer maps.
 */
export const rootfsCacheDir = () => join(roots().data, "rootfs", ...(isRootless() ? [mappingTag()] : []));

function mappingTag(): string {
  const m = rootlessMapping();
  return `idmap-${new Bun.CryptoHasher("sha256")
    .update(JSON.stringify([m.uid, m.gid]))
    .digest("hex")
    .slice(0, 12)}`;
}

/** A rootless user's data root: $XDG_DATA_HOME/nsbox, or ~/.local/share/nsbox (XDG's default). */
export function userDataRoot(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_DATA_HOME;
  // (node:os loaded only here: every start would pay for it otherwise)
  const home = () => process.getBuiltinModule("node:os").homedir();
  const base = xdg?.startsWith("/") ? xdg : join(env.HOME?.startsWith("/") ? env.HOME : home(), ".local", "share");
  return privateDir(join(base, "nsbox"), "the data root");
}

/** A rootless user's state root: $XDG_RUNTIME_DIR/nsbox, or /tmp/nsbox-<uid> (mode 0700, checked) without one. */
export function userStateRoot(env: NodeJS.ProcessEnv): string {
  const run = env.XDG_RUNTIME_DIR;
  if (run?.startsWith("/")) return privateDir(join(run, "nsbox"), "the state root");
  return privateDir(`/tmp/nsbox-${process.getuid?.()}`, "the state root", true);
}
