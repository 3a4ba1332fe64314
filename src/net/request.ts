/**
 * What a container asks of the network (spec.nsbox.network) and what it holds
 * (config.network), and the plan of the modes that reserve nothing on the host.
 * The bridge's code (./setup.ts: netlink, nft, sysctls, the address pool) is
 * imported only for a container on the bridge (bridgeSetup): a run with --net
 * none, host or container: loads less code (bench/trace-notes.md, "Twelfth stop").
 */
import type { PortBinding } from "./state.ts";

export type NetMode = "bridge" | "none" | "host" | "container";

/** What the user asked for (spec.nsbox.network). */
export interface NetworkRequest {
  mode: NetMode;
  /** container mode: the container whose namespace is joined (id) */
  target?: string;
  ports: PortBinding[];
  subnet?: string;
}

/** What a container holds (config.network), enough to release it. */
export interface NetworkRecord {
  mode: NetMode;
  target?: string;
  ip?: string;
  gateway?: string;
  prefix?: number;
  subnet?: string;
  bridge?: string;
  hostVeth?: string;
  /** the inode of the container's network namespace (to tell whether something keeps it alive) */
  netnsInode?: number;
  ports: PortBinding[];
}

export const hostVethName = (id: string) => `nsb${id.slice(0, 12)}`;

/** The record of a network that reserves nothing on the host (all but the bridge): known before anything is made. */
export function plannedNetwork(req: NetworkRequest): NetworkRecord | undefined {
  return req.mode === "bridge" ? undefined : { mode: req.mode, target: req.target, ports: [] };
}

/** The bridge's code, imported when a container is on the bridge. */
export const bridgeSetup = () => import("./setup.ts");
