/**
 * Host sysctls nsbox needs for bridge networking. Changed only when a feature
 * needs them, each change announced, the old value remembered in the network
 * state so `nsbox network inspect` shows it.
 */

import { log } from "../log.ts";
import { readFileSync, writeFileSync } from "../native/fs.ts";
import type { NetState } from "./state.ts";

const path = (name: string) => `/proc/sys/${name.replace(/\./g, "/")}`;

export function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(path(name), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Sets name to value if it is not already; says so on stderr. */
export function ensureSysctl(s: NetState, name: string, value: string, why: string): void {
  const old = readSysctl(name);
  if (old === undefined || old === value) return;
  writeFileSync(path(name), value);
  s.sysctls = { ...s.sysctls, [name]: s.sysctls?.[name] ?? old };
  log.info(`set ${name}=${value} (was ${old}): ${why}`);
}
