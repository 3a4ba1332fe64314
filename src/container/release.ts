/**
 * Giving back what a container holds on the host: its cgroup, its overlay layers,
 * its network. One function for every path — a normal exit, a failed start, rm,
 * and the repair of a container whose nsbox was killed — and safe to run twice.
 */

import { type CgroupRecord, detectCgroups, openCgroup } from "../cgroup/index.ts";
import { defaultParentV2 } from "../cgroup/v2.ts";
import { log } from "../log.ts";
import { existsSync, readdirSync } from "../native/fs.ts";
import { releaseNetwork } from "../net/release.ts";
import { join } from "../posixpath.ts";
import type { UserNetRecord } from "../rootless/network.ts";
import { removeTree, removeTreeAfterExit } from "../rootless/storage.ts";
import type { ContainerConfig } from "../state/store.ts";
import { isHex } from "../text.ts";

/**
 * The cgroup of a container whose record was never written (nsbox killed between
 * mkdir and the write): look for nsbox-<id> where nsbox would have made it.
 */
function findCgroup(config: ContainerConfig): CgroupRecord | undefined {
  const host = detectCgroups();
  const leaf = `nsbox-${config.id}`;
  const parent = config.spec.linux.cgroupsPath;
  if (host.mode === "v2" && host.v2Mount) {
    const dir = join(host.v2Mount, parent ?? defaultParentV2(host.v2Own ?? "/"), leaf);
    return existsSync(dir) ? { version: 2, paths: { unified: dir }, created: [dir] } : undefined;
  }
  const paths: Record<string, string> = {};
  for (const [c, mount] of host.v1Mounts) {
    const dir = join(mount, parent ?? host.v1Own.get(c) ?? "/", leaf);
    if (existsSync(dir)) paths[c] = dir;
  }
  const dirs = [...new Set(Object.values(paths))];
  return dirs.length ? { version: 1, paths, created: dirs } : undefined;
}

/** Everything the container held on the host, released; returns the problems met (none: []). */
/**
 * quick: a foreground run is ending, and its user waits (see releaseBridge); its
 * layers are removed after nsbox's exit (removeTreeAfterExit).
 */
export async function releaseResources(config: ContainerConfig, quick = false): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => unknown) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  const record = config.cgroup ?? findCgroup(config);
  if (record) await step("remove the cgroup", () => openCgroup(record).remove());
  await step("release the network", () => releaseNetwork(config, quick));
  const userNet = config.network?.userNet as UserNetRecord | undefined;
  if (userNet) await step("stop the user-mode network", async () => (await import("../rootless/network.ts")).stopUserNet(userNet));
  await step("remove the container's layers", () => (quick ? removeTreeAfterExit(config.dataDir) : removeTree(config.dataDir)));
  for (const p of problems) log.warn(`container ${config.id.slice(0, 12)}: cannot ${p}`);
  return problems;
}

/** Layers whose removal an exit keeper did not finish (see removeTreeAfterExit). */
export function doomedDataDirs(dataRoot: string): string[] {
  try {
    return readdirSync(join(dataRoot, "containers"))
      .filter((n) => n.startsWith(".rm-"))
      .map((n) => join(dataRoot, "containers", n));
  } catch {
    return [];
  }
}

/** Data dirs of containers whose state is gone (removed by an interrupted rm). */
export function orphanDataDirs(dataRoot: string, known: Set<string>): string[] {
  try {
    return readdirSync(join(dataRoot, "containers"))
      .filter((id) => isHex(id, 64) && !known.has(id))
      .map((id) => join(dataRoot, "containers", id));
  } catch {
    return [];
  }
}
