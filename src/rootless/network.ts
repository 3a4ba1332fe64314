/**
 * Networks a user without privileges can have. --net none (lo only) and --net
 * host (the host's, as the user sees it) always work. Outbound traffic and -p
 * go through a user-mode network stack started with the container and ended
 * with it: pasta (Debian's passt) or slirp4netns, whichever is installed (pasta
 * first: it forwards ports itself). --net bridge needs root: a bridge, veths and
 * NAT rules on the host.
 */
import { fail } from "../errors.ts";
import { parsePublish } from "../net/ports.ts";
import type { NetworkRequest } from "../net/setup.ts";
import type { PortBinding } from "../net/state.ts";
import { noteOnce } from "./note.ts";

export type UserNetTool = "pasta" | "slirp4netns";

/** What a rootless container asked of its user-mode network (spec.nsbox.rootless.network). */
export interface RootlessNetRequest {
  tool: UserNetTool;
  ports: PortBinding[];
}

export const USER_NET_TOOLS: UserNetTool[] = ["pasta", "slirp4netns"];

export function findUserNetTool(which?: UserNetTool): { tool: UserNetTool; path: string } | undefined {
  for (const tool of which ? [which] : USER_NET_TOOLS) {
    const path = Bun.which(tool, { PATH: `${process.env.PATH ?? ""}:/usr/bin:/bin` });
    if (path) return { tool, path };
  }
  return undefined;
}

const OPTIONS = "--net pasta or --net slirp4netns (packages passt, slirp4netns) for outbound traffic and -p, --net none, or --net host";

/** --net and -p of a rootless run -> the network request, with the user-mode stack to start (if any). */
export function rootlessNetwork(mode: string | undefined, publish: string[], pod: string | undefined): NetworkRequest & { rootless?: RootlessNetRequest } {
  const ports = publish.map(parsePublish);
  if (pod !== undefined) fail("--pod is not supported rootless yet: pods need root for now");
  if (mode === "bridge") fail(`--net bridge needs root (a bridge, veths and NAT rules on the host): as a user, use ${OPTIONS}`);
  if (mode === "none" || mode === "host") {
    if (ports.length) fail(`-p needs --net pasta or --net slirp4netns as a user (with --net ${mode} there is nothing to publish through)`);
    return { mode, ports: [] };
  }
  if (mode?.startsWith("container:") && mode.length > 10) {
    if (ports.length) fail(`-p cannot be used with --net ${mode}: publish ports on that container`);
    return { mode: "container", target: mode.slice(10), ports: [] };
  }
  if (mode !== undefined && mode !== "pasta" && mode !== "slirp4netns") fail(`invalid --net "${mode}": as a user, use ${OPTIONS}, or container:NAME`);
  const found = findUserNetTool(mode as UserNetTool | undefined);
  if (!found) {
    if (mode !== undefined) fail(`--net ${mode}: ${mode} is not installed (apt-get install ${mode === "pasta" ? "passt" : "slirp4netns"})`);
    if (ports.length) fail("-p as a user needs pasta or slirp4netns, and neither is installed (apt-get install passt, or slirp4netns)");
    noteOnce(
      "no-user-net",
      "neither pasta nor slirp4netns is installed: rootless containers get --net none (install passt or slirp4netns for outbound traffic and -p)",
    );
    return { mode: "none", ports: [] };
  }
  if (found.tool === "slirp4netns" && ports.length) fail("-p with slirp4netns is not supported yet: use --net pasta (package passt)");
  // "none" to the rest of nsbox: its own namespace with lo; the user-mode stack adds the rest
  return { mode: "none", ports: [], rootless: { tool: found.tool, ports } };
}
