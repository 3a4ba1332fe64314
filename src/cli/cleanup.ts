/**
 * `nsbox cleanup ID` (internal): run by a detached container's monitor (or a
 * foreground run's shim, with --quick) once the container has exited, to record how it ended and give back its cgroup, layers
 * and network (and to remove it, with --rm). Safe to run again at any time.
 */

import { finalize } from "../container/lifecycle.ts";
import { existsSync } from "../native/fs.ts";
import { containerDir, withLock } from "../state/store.ts";
import { defineCommand, type FlagsDef, parseFlags, toCitty } from "./args.ts";

export const cleanupFlags = {
  quick: { type: "boolean", description: "a foreground run's user waits for this (see releaseBridge)" },
  id: { type: "positional", description: "the container's full id", required: true },
} satisfies FlagsDef;

export const cleanupCommand = defineCommand({
  meta: { name: "cleanup", description: "Release an exited container's resources (run by its monitor)", hidden: true },
  args: () => toCitty(cleanupFlags),
});

export async function cleanup(argv: string[]): Promise<number> {
  const p = parseFlags("cleanup", argv, cleanupFlags);
  const id = p.positionals[0] as string;
  if (!existsSync(containerDir(id))) return 0;
  await withLock(id, () => finalize(id, true, p.flags.quick === true));
  return 0;
}
