/**
 * Where nsbox keeps things.
 *
 *  data root  (--root, NSBOX_ROOT; default /var/lib/nsbox): survives reboots
 *    rootfs/<sha256>/         extracted tarballs, keyed by content digest
 *    containers/<id>/         a container's overlay upper and work dirs
 *  state root (--state, NSBOX_STATE; default /run/nsbox, or <root>/run when
 *             --root is given): on tmpfs, gone at reboot
 *    <id>/                    a container's state, logs and exit status
 */
import { join } from "node:path";

export interface Roots {
  data: string;
  state: string;
}

let current: Roots | undefined;

export function setRoots(opts: { root?: string; state?: string }, env: NodeJS.ProcessEnv = process.env): Roots {
  const root = opts.root || env.NSBOX_ROOT;
  const data = root || "/var/lib/nsbox";
  const state = opts.state || env.NSBOX_STATE || (root ? join(root, "run") : "/run/nsbox");
  current = { data, state };
  return current;
}

export function roots(): Roots {
  return current ?? setRoots({});
}

export const containerDataDir = (id: string) => join(roots().data, "containers", id);
export const rootfsCacheDir = () => join(roots().data, "rootfs");
