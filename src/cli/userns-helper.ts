/**
 * `nsbox userns-helper extract TARBALL DEST` and `nsbox userns-helper rm PATH...`
 * (internal): file-system jobs that a rootless nsbox runs inside a user namespace
 * with its containers' mapping (see rootless/userns-run.ts), where it is root
 * over the subordinate ids. Run by hand, they act with the caller's own rights.
 */

import { fail } from "../errors.ts";
import { renameSync, rmSync } from "../native/fs.ts";
import { defineCommand, type FlagsDef, parseFlags, toCitty } from "./args.ts";

export const usernsHelperFlags = {
  job: { type: "positional", description: "extract TARBALL DEST, extract-layer BLOB DEST, mv FROM TO, or rm PATH...", required: true },
} satisfies FlagsDef;

export const usernsHelperCommand = defineCommand({
  meta: { name: "userns-helper", description: "A file-system job inside a rootless user namespace (run by nsbox)", hidden: true },
  args: () => toCitty(usernsHelperFlags),
});

export async function usernsHelper(argv: string[]): Promise<number> {
  const p = parseFlags("userns-helper", argv, usernsHelperFlags, 1);
  const [job, ...args] = [p.positionals[0], ...p.rest];
  if ((job === "extract" || job === "extract-layer") && args.length === 2) {
    // as root of the namespace: the archive's owners are kept, through the mapping;
    // an image layer's OCI whiteouts become overlayfs's
    const { extractTar, TarError } = await import("../rootfs/tar.ts");
    try {
      await extractTar(args[0] as string, args[1] as string, { sameOwner: true, whiteouts: job === "extract-layer" ? "overlay" : undefined });
    } catch (e) {
      if (e instanceof TarError) fail(e.message);
      throw e;
    }
    return 0;
  }
  if (job === "mv" && args.length === 2) {
    renameSync(args[0] as string, args[1] as string);
    return 0;
  }
  if (job === "rm" && args.length > 0) {
    for (const path of args) rmSync(path, { recursive: true, force: true });
    return 0;
  }
  fail("usage: nsbox userns-helper extract|extract-layer TARBALL DEST | mv FROM TO | rm PATH...");
}
