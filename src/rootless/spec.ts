/**
 * What changes in a container's spec when nsbox runs as a user other than root:
 * a user namespace with the caller as root (identity.ts), no cgroup unless one
 * is delegated (cgroup.ts), and a network a user can have (network.ts).
 */
import type { ContainerSpec } from "../config/spec.ts";
import { fail } from "../errors.ts";
import { kernelAtLeast, release } from "../kernel.ts";
import { checkRootlessCgroup } from "./cgroup.ts";
import { mappedSize, type RootlessMapping, rootlessMapping, userName } from "./identity.ts";
import type { rootlessNetwork } from "./network.ts";
import { noteOnce } from "./note.ts";

export interface RootlessFlags {
  userns?: string;
  /** --cgroup-manager as given */
  cgroupManager?: string;
}

/** --userns as a user: the namespace is always there; only auto (the same) is accepted. */
export function checkRootlessUserns(userns: string | undefined): void {
  if (userns === undefined || userns === "auto") return;
  fail(
    `--userns ${userns || "host"} needs root: a rootless container always runs in a user namespace where you are root (your /etc/subuid range, if any, maps the other ids); drop --userns`,
  );
}

/** Puts the rootless user namespace, cgroup choice and markers into a spec built from the flags. */
export function applyRootless(spec: ContainerSpec, f: RootlessFlags, mapping: RootlessMapping = rootlessMapping()): void {
  checkRootlessUserns(f.userns);
  if (spec.nsbox.overlay) checkOverlayKernel(release());
  if (!spec.linux.namespaces.some((n) => n.type === "user")) spec.linux.namespaces.push({ type: "user" });
  spec.linux.uidMappings = mapping.uid;
  spec.linux.gidMappings = mapping.gid;
  const u = spec.process.user;
  const size = Math.min(mappedSize(mapping.uid), mappedSize(mapping.gid));
  if (u.uid >= size || u.gid >= size || (u.additionalGids ?? []).some((g) => g >= size))
    fail(
      mapping.ranges
        ? `--user ${u.name ?? `${u.uid}:${u.gid}`} is outside your user namespace (ids 0-${size - 1} are mapped, from your /etc/subuid and /etc/subgid ranges)`
        : `--user ${u.name ?? `${u.uid}:${u.gid}`} needs a range in /etc/subuid and /etc/subgid: without one, only root (you) exists in a rootless container`,
    );
  if (!mapping.ranges) {
    // devpts' gid=5 (tty) does not exist in such a namespace: the kernel would refuse the mount
    for (const m of spec.mounts) if (m.type === "devpts") m.options = (m.options ?? []).filter((o) => !o.startsWith("gid="));
  }
  if (!mapping.ranges)
    // (setgroups is denied in such a namespace: the process keeps the caller's groups, shown as nobody)
    noteOnce(
      "single-id",
      `rootless without subordinate ids (${mapping.reason}): only your uid is mapped (root inside), so chown to other ids fails and files of other owners show as nobody; add a range (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${userLabel()}) for more`,
    );
  // the user-mode network stack rootlessNetwork chose travels apart from docker's modes
  const net = spec.nsbox.network as ReturnType<typeof rootlessNetwork>;
  spec.nsbox.rootless = { ranges: mapping.ranges, network: net.rootless };
  delete net.rootless;
  if (f.cgroupManager === "none") spec.nsbox.cgroups = false;
  if (spec.nsbox.cgroups) spec.nsbox.cgroups = checkRootlessCgroup(spec.linux.resources, spec.linux.cgroupsPath);
}

const userLabel = () => userName() ?? String(process.getuid?.());

/** Overlayfs in a user namespace (without privilege on the host) came with Linux 5.11. */
export function checkOverlayKernel(rel: string): void {
  if (kernelAtLeast(5, 11, rel) !== false) return;
  fail(`rootless containers need Linux 5.11 or later (overlayfs in a user namespace); this kernel is ${rel}: run nsbox as root, or upgrade the kernel`);
}
