/**
 * The network's own state, under <state>/net/: the bridge's subnet, which
 * address and which published port belongs to which container. One file,
 * rewritten atomically under a lock, so addresses are never handed out twice,
 * survive nsbox restarts, and are given back on rm.
 */

import { flock, LOCK_EX, LOCK_UN } from "../native/flock.ts";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { roots } from "../state/paths.ts";
import { writeAtomic } from "../state/store.ts";

export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

export interface NetState {
  subnet?: string;
  /** ip -> container id */
  addresses: Record<string, string>;
  /** "tcp/HOSTIP/PORT" -> container id */
  ports: Record<string, string>;
  /** container id -> its state root: the bridge is the host's, shared by every --state */
  owners: Record<string, string>;
  /** nsbox's nftables table was made (cleared by network prune) */
  nat?: boolean;
  /** sysctls nsbox changed, with their old values (shown by network inspect) */
  sysctls?: Record<string, string>;
}

/**
 * One state for the host's one nsbox0 bridge, whatever --state a command uses
 * (NSBOX_NET_STATE moves it, for tests that want a bridge of their own too).
 */
const dir = () => process.env.NSBOX_NET_STATE || "/run/nsbox/net";

/** A container whose state dir is gone no longer needs its address (see network prune). */
export function ownerGone(s: NetState, id: string): boolean {
  return !existsSync(join(s.owners[id] ?? roots().state, id));
}
const file = () => join(dir(), "state.json");

export function readNetState(): NetState {
  try {
    const s = JSON.parse(readFileSync(file(), "utf8")) as Partial<NetState>;
    return { ...s, addresses: s.addresses ?? {}, ports: s.ports ?? {}, owners: s.owners ?? {} };
  } catch {
    return { addresses: {}, ports: {}, owners: {} };
  }
}

/** Runs fn with the network lock held; fn may change the state, which is then saved. */
export async function withNetState<T>(fn: (s: NetState) => Promise<T> | T): Promise<T> {
  mkdirSync(dir(), { recursive: true, mode: 0o711 });
  const fd = openSync(join(dir(), "lock"), "a");
  try {
    flock(fd, LOCK_EX);
    const s = readNetState();
    const before = JSON.stringify(s);
    const r = await fn(s);
    if (JSON.stringify(s) !== before) writeAtomic(file(), JSON.stringify(s, null, 2));
    return r;
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

export const portKey = (p: PortBinding) => `${p.protocol}/${p.hostIp || "0.0.0.0"}/${p.hostPort}`;
