/**
 * An image as a container's root: found in the store (pulled first when the
 * policy says so), its layers unpacked, and the parts of its config that `run`
 * applies with docker's rules (see applyImageConfig).
 */

import { fail } from "../errors.ts";
import { lstatSync } from "../native/fs.ts";
import { readFileInRoot, resolveInRoot } from "../rootfs/inroot.ts";
import type { ImageConfig, ImageRecord, ImageStore } from "./store.ts";

export type PullPolicy = "missing" | "always" | "never";

/** What the container's spec keeps of its image (ContainerSpec.nsbox.image). */
export interface ImageUse {
  /** the reference as the user gave it */
  ref: string;
  /** the image id (config digest) */
  id: string;
  /** name@digest it was pulled as, when known */
  digest?: string;
  /** the store's l/ directory: the overlay mount resolves `lowers` relative to it */
  linkDir: string;
  /** short links to the layers, top first (overlay's lowerdir order) */
  lowers: string[];
}

export interface ResolvedImage {
  record: ImageRecord;
  config: ImageConfig;
  /** layer directories, top first */
  layerDirs: string[];
  use: ImageUse;
}

export function parsePullPolicy(v: string | undefined): PullPolicy {
  const p = v ?? "missing";
  if (p !== "missing" && p !== "always" && p !== "never") fail(`invalid --pull "${p}": use missing (default), always or never`);
  return p;
}

/** The image for `run`, pulled through `pull` when the policy asks for it. */
export async function resolveImage(ref: string, policy: PullPolicy, pull?: (ref: string) => Promise<string>): Promise<ResolvedImage> {
  // loaded only for an image (not a rootfs path): the store's modules cost ~1 ms to evaluate
  const { openStore } = await import("./store.ts");
  const store = openStore();
  let record = policy === "always" ? undefined : store.find(ref);
  if (!record) {
    if (policy === "never") fail(`no image "${ref}" in the store and --pull never: pull it first (nsbox pull ${ref}) or import it (nsbox image import FILE)`);
    if (!pull) fail(`no image "${ref}" in the store: import it (nsbox image import FILE); pulling is not available in this build`);
    record = store.mustFind(await pull(ref));
  }
  return open(store, record, ref);
}

async function open(store: ImageStore, record: ImageRecord, ref: string): Promise<ResolvedImage> {
  const config = store.imageConfigOf(record.configDigest);
  if (config.os && config.os !== "linux") fail(`image "${ref}" is for ${config.os}, not linux`);
  const bottomFirst = await store.unpackLayers(record);
  const layerDirs = bottomFirst.reverse();
  // an image without layers still needs one lower directory for the overlay
  if (layerDirs.length === 0) fail(`image "${ref}" has no layers: there is no filesystem to run`);
  return {
    record,
    config,
    layerDirs,
    use: {
      ref,
      id: record.id,
      digest: record.repoDigests[0],
      linkDir: store.linkDir(),
      lowers: [...record.layers].reverse().map((l) => store.shortLink(l.digest)),
    },
  };
}

const isWhiteout = (p: string) => {
  try {
    const st = lstatSync(p);
    return st.isCharacterDevice() && st.rdev === 0;
  } catch {
    return false;
  }
};

/**
 * A text file as the container will see it through its layers (top first): the
 * topmost layer that has it wins; a whiteout above hides it. Symlinks resolve
 * within each layer (enough for /etc/passwd and /etc/group).
 */
export function readFileInLayers(layersTopFirst: string[], path: string): string | undefined {
  for (const dir of layersTopFirst) {
    const host = resolveInRoot(dir, path);
    if (host && isWhiteout(host)) return undefined;
    const text = readFileInRoot(dir, path);
    if (text !== undefined) return text;
  }
  return undefined;
}

/** The image's process settings, with docker's rules for what the user gave. */
export function applyImageConfig(
  cfg: ImageConfig["config"],
  given: { cmd: string[]; entrypoint?: string; user?: string; workdir?: string },
): { args: string[]; entrypoint: string[]; env: string[]; user?: string; workdir?: string; stopSignal?: string } {
  const c = cfg ?? {};
  // --entrypoint replaces the image's Entrypoint and drops its Cmd ("" clears it), as docker does
  const entrypoint = given.entrypoint !== undefined ? (given.entrypoint === "" ? [] : [given.entrypoint]) : (c.Entrypoint ?? []);
  const cmd = given.cmd.length ? given.cmd : given.entrypoint !== undefined ? [] : (c.Cmd ?? []);
  return {
    args: [...entrypoint, ...cmd],
    entrypoint,
    env: c.Env ?? [],
    user: given.user ?? (c.User || undefined),
    workdir: given.workdir ?? (c.WorkingDir || undefined),
    stopSignal: c.StopSignal || undefined,
  };
}
