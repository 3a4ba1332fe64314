/** Bits shared by the container commands: resolving references, --format. */

import { type ContainerView, mustView, reconcile, viewOf } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { alive } from "../state/proc.ts";
import { resolveRef } from "../state/store.ts";

/** Repairs interrupted work, then resolves NAME / ID / unique ID prefix to the container. */
export async function lookup(ref: string): Promise<ContainerView> {
  await reconcile();
  return mustView(resolveRef(ref));
}

/**
 * lookup for a command that only works in a running container (exec): when ref
 * names one whose PID 1 and keeper (its monitor, or its foreground nsbox) are
 * alive, nothing about it needs repair, and the repair of every other container
 * (reconcile: ~1 ms with one container, more with each one) is left to the
 * commands that list them. Anything else goes through lookup: same repairs,
 * same errors as before.
 */
export async function lookupRunning(ref: string): Promise<ContainerView> {
  let v: ContainerView | undefined;
  try {
    v = viewOf(resolveRef(ref));
  } catch {
    // not found, or an ambiguous prefix: lookup says so, after its repairs
  }
  if (v?.status === "running" && alive(v.config.detached ? v.state.monitor : v.state.owner)) return v;
  return lookup(ref);
}

export function checkFormat(v: unknown): "table" | "json" {
  if (v === undefined || v === "table") return "table";
  if (v === "json" || v === "{{json .}}") return "json";
  fail(`unsupported --format "${String(v)}": use table or json`);
}

/** Runs fn for each reference, printing errors per reference (as docker does); the exit code is 125 if any failed. */
export async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<number> {
  if (refs.length === 0) fail("give at least one container (name or id)");
  let rc = 0;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (e) {
      const { log } = await import("../log.ts");
      const { fsErrorSentence, isFsError } = await import("../state/fserror.ts");
      log.error(isFsError(e) ? fsErrorSentence(e) : (e as Error).message);
      rc = (e as { exitCode?: number }).exitCode ?? 125;
    }
  }
  return rc;
}
