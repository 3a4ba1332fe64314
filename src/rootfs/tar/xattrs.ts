/**
 * Extended attributes from the archive (pax SCHILY.xattr.* / LIBARCHIVE.xattr.*),
 * applied as GNU tar `--xattrs --xattrs-include='*'` does: security.capability
 * (file capabilities, e.g. ping's cap_net_raw), user.*, trusted.* as root, and
 * the rest. The callers apply them after chown, which clears security.capability.
 */
import { fsetxattr, lsetxattr } from "../../native/xattr.ts";
import type { Xattr } from "./format.ts";

/**
 * overlayfs reads its whiteouts, opaque markers, redirects and metacopy flags
 * from these: a layer forging them could change what the layers below show, so
 * only the extractor's own whiteout translation may set them.
 */
const RESERVED = ["trusted.overlay.", "user.overlay."];

/**
 * What a file system or our privileges cannot take is skipped, as containerd
 * does (GNU tar warns and goes on): ENOTSUP for a file system without that
 * namespace (or user.* on a symlink or a device), EPERM for trusted.* when not root.
 */
const SKIPPED = new Set(["ENOTSUP", "EOPNOTSUPP", "EPERM"]);

/** Sets the entry's xattrs on an open file (a number) or, not following it, on a path. */
export function setXattrs(list: Xattr[] | undefined, target: number | string | Buffer): void {
  if (!list) return;
  for (const [name, value] of list) {
    if (RESERVED.some((prefix) => name.startsWith(prefix))) continue;
    try {
      if (typeof target === "number") fsetxattr(target, name, value);
      else lsetxattr(target, name, value);
    } catch (err) {
      if (SKIPPED.has((err as NodeJS.ErrnoException).code ?? "")) continue;
      throw err;
    }
  }
}
