/**
 * Kubernetes-style pods. A pod is an infra container: the pause shim (a few KB,
 * as Kubernetes' pause.c) as PID 1 of namespaces that the pod's containers join
 * (net, ipc and uts by default; pid on request). It holds no rootfs and needs
 * none. Its id is the pod's id; its name is "<pod>-infra"; pods have names of
 * their own, in <state>/pods/<name> -> id.
 */

import { defaultEnv } from "../config/defaults.ts";
import type { ContainerSpec, Namespace } from "../config/spec.ts";
import { fail } from "../errors.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN } from "../native/flock.ts";
import { closeSync, mkdirSync, openSync, readdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync } from "../native/fs.ts";
import type { NetworkRequest } from "../net/request.ts";
import { join } from "../posixpath.ts";
import { applyRootless } from "../rootless/spec.ts";
import { processCaps } from "../security/capabilities.ts";
import { seccompFor } from "../security/seccomp-policy.ts";
import { stateRoot } from "../state/store.ts";
import { isHex } from "../text.ts";
import { startContainer } from "./create.ts";
import { newId, shortId } from "./ids.ts";
import { allViews, type ContainerView, mustView, reconcile, removeContainer, stopContainer } from "./lifecycle.ts";

export const SHAREABLE = ["net", "ipc", "uts", "pid"] as const;
export type Shareable = (typeof SHAREABLE)[number];
const NS_TYPE: Record<Shareable, Namespace["type"]> = { net: "network", ipc: "ipc", uts: "uts", pid: "pid" };

const podNames = () => join(stateRoot(), "pods");

export function parseShare(text: string | undefined): Shareable[] {
  const items = (text ?? "net,ipc,uts")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items) if (!SHAREABLE.includes(i as Shareable)) fail(`invalid --share "${i}": a pod can share ${SHAREABLE.join(", ")}`);
  if (!items.includes("net")) fail("a pod always shares its network namespace: --share must include net");
  return [...new Set(items)] as Shareable[];
}

export interface PodOptions {
  name?: string;
  share: Shareable[];
  hostname?: string;
  network: NetworkRequest;
  cgroupsPath?: string;
  /** made by a user (network is then rootlessNetwork's, with the user-mode stack to start) */
  rootless?: boolean;
}

/**
 * A pod's name is linked before its infra container exists, and allPods() takes
 * a link without a container for what a killed pod rm left. Creators hold a
 * shared flock on the pods directory meanwhile; allPods() tidies only when it
 * gets the lock exclusively (a killed creator's lock goes with it).
 */
function lockPodNames(op: number): number | undefined {
  let fd: number;
  try {
    fd = openSync(podNames(), "r");
  } catch {
    return undefined;
  }
  if (flock(fd, op)) return fd;
  closeSync(fd);
  return undefined;
}

function unlockPodNames(fd: number | undefined): void {
  if (fd === undefined) return;
  flock(fd, LOCK_UN);
  closeSync(fd);
}

export async function createPod(o: PodOptions): Promise<string> {
  await reconcile();
  const id = newId();
  const name = o.name ?? `pod-${shortId(id)}`;
  mkdirSync(podNames(), { recursive: true, mode: 0o711 });
  const lock = lockPodNames(LOCK_SH);
  try {
    return await createPodLocked(o, id, name);
  } finally {
    unlockPodNames(lock);
  }
}

async function createPodLocked(o: PodOptions, id: string, name: string): Promise<string> {
  try {
    symlinkSync(id, join(podNames(), name));
  } catch {
    fail(`a pod named "${name}" already exists: choose another name, or remove it (nsbox pod rm ${name})`);
  }
  const hostname = o.hostname ?? name;
  // The pause always gets namespaces of its own; those in `share` are the ones members join.
  const namespaces: Namespace[] = [{ type: "pid" }, { type: "uts" }, { type: "ipc" }, { type: "cgroup" }];
  if (o.network.mode !== "host") namespaces.push({ type: "network" });
  const spec: ContainerSpec = {
    ociVersion: "1.2.0",
    // The pause needs no capability at all: it only waits for signals.
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["nsbox-pause"],
      env: defaultEnv({ hostname, home: "/", tty: false }),
      cwd: "/",
      capabilities: processCaps([], 0),
      noNewPrivileges: true,
    },
    root: { path: "", readonly: true },
    hostname,
    mounts: [],
    linux: { namespaces, devices: [], cgroupsPath: o.cgroupsPath, seccomp: (await seccompFor(undefined, [])).profile },
    nsbox: {
      rootfsArg: "(pause)",
      init: false,
      interactive: false,
      overlay: false,
      cgroups: true,
      network: o.network,
      infra: { podName: name, share: o.share },
    },
  };
  // rootless: the pause is made in the user's user namespace, which members join first
  if (o.rootless) applyRootless(spec, {});
  try {
    await startContainer(spec, { id, name: `${name}-infra`, rootfsArg: "(pause)", detached: true, autoRemove: false });
  } catch (e) {
    unlinkSync(join(podNames(), name));
    throw e;
  }
  return id;
}

export interface PodView {
  id: string;
  name: string;
  infra: ContainerView;
  members: ContainerView[];
}

export function allPods(): PodView[] {
  const views = allViews();
  const out: PodView[] = [];
  let tidy: number | undefined | null = null; // null: not tried yet
  let names: string[] = [];
  try {
    names = readdirSync(podNames());
  } catch {
    return out;
  }
  for (const name of names) {
    let id: string;
    try {
      id = readlinkSync(join(podNames(), name));
    } catch {
      continue;
    }
    const infra = views.find((v) => v.id === id);
    if (!infra) {
      // a pod removed halfway: finish the job, unless a pod is being created (see lockPodNames)
      if (tidy === null) tidy = lockPodNames(LOCK_EX | LOCK_NB);
      if (tidy !== undefined) rmSync(join(podNames(), name), { force: true });
      continue;
    }
    out.push({ id, name, infra, members: views.filter((v) => v.config.pod === id) });
  }
  if (tidy !== null) unlockPodNames(tidy);
  return out;
}

/** A pod by name, id or unique id prefix. */
export function findPod(ref: string): PodView {
  const pods = allPods();
  const byName = pods.find((p) => p.name === ref);
  if (byName) return byName;
  const hits = isHex(ref) ? pods.filter((p) => p.id.startsWith(ref)) : [];
  if (hits.length === 1) return hits[0] as PodView;
  if (hits.length > 1) fail(`"${ref}" matches ${hits.length} pods: give more digits of the id`);
  fail(`no such pod: ${ref}`);
}

/** The namespaces a container joins to be in the pod. */
export function podNamespaces(pod: PodView): Namespace[] {
  if (pod.infra.status !== "running") fail(`pod ${pod.name} is not running (its infra container has exited): remove it and create it again`);
  const pid = pod.infra.state.init?.pid;
  const share = pod.infra.config.spec.nsbox.infra?.share ?? ["net", "ipc", "uts"];
  const joined: Namespace[] = share.map((s) => ({ type: NS_TYPE[s as Shareable], path: `/proc/${pid}/ns/${s === "net" ? "net" : s}` }));
  // a rootless pod's namespaces belong to its user namespace: members join that one first
  if (pod.infra.config.spec.nsbox.rootless) joined.unshift({ type: "user", path: `/proc/${pid}/ns/user` });
  return joined;
}

export async function stopPod(pod: PodView, timeoutS: number): Promise<void> {
  for (const m of pod.members) await stopContainer(mustView(m.id), timeoutS);
  await stopContainer(mustView(pod.infra.id), timeoutS);
}

export async function removePod(pod: PodView, force: boolean): Promise<void> {
  const running = pod.members.filter((m) => m.status === "running");
  if (!force && (running.length || pod.infra.status === "running"))
    fail(
      `pod ${pod.name} is running${running.length ? ` (${running.length} container${running.length > 1 ? "s" : ""})` : ""}: stop it first, or use pod rm -f`,
    );
  for (const m of pod.members) await removeContainer(m.id, force);
  await removeContainer(pod.infra.id, force, { withPod: true });
  // The link's target is the bare id, not a path: existsSync would follow it,
  // find nothing and keep the name taken until another pod command looked.
  rmSync(join(podNames(), pod.name), { force: true });
}
