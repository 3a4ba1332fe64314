/**
 * ContainerSpec: what a container is, in the shape of an OCI runtime config.json
 * (runtime-spec 1.x) so that, later, `nsbox create --bundle` reads config.json
 * straight into it. Fields nsbox does not support yet are simply absent; the
 * nsbox-only settings (how to run, not what to run) live under `nsbox`.
 */

import type { ImageUse } from "../image/use.ts";
import type { NetworkRequest } from "../net/request.ts";
import type { RootlessNetRequest } from "../rootless/network.ts";
import type { Capabilities } from "../security/capabilities.ts";
import type { DeviceRule } from "../security/devices.ts";
import type { LinuxSeccomp } from "../security/seccomp-policy.ts";

export type NamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup" | "time";

export interface Namespace {
  type: NamespaceType;
  /** join this namespace (a /proc/PID/ns/* or bind-mounted file) instead of creating one */
  path?: string;
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** An OCI mount: options are mount(8) words ("ro", "nosuid", "mode=755", "rbind"). */
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/** An OCI linux.devices entry: a node nsbox makes in the container's /dev. */
export interface Device {
  path: string;
  /** nsbox: the host's node (--device HOST:CTR); in a user namespace it is bound, not made */
  hostPath?: string;
  /** character, block, or p: a FIFO (OCI linux.devices) */
  type: "c" | "b" | "p";
  major: number;
  minor: number;
  fileMode: number;
  uid?: number;
  gid?: number;
}

export interface User {
  uid: number;
  gid: number;
  additionalGids?: number[];
  /** the process's umask (OCI process.user.umask); absent: inherited */
  umask?: number;
  /** as the user gave it, for messages */
  name?: string;
}

export interface Process {
  terminal: boolean;
  user: User;
  args: string[];
  env: string[];
  cwd: string;
  noNewPrivileges?: boolean;
  /** absent: the process keeps what it inherits (nsbox's own, i.e. everything) */
  capabilities?: Capabilities;
  consoleSize?: { height: number; width: number };
  /** OCI process.rlimits: RLIMIT_* names, set on the process before it runs */
  rlimits?: { type: string; soft: number; hard: number }[];
  /** OCI process.oomScoreAdj */
  oomScoreAdj?: number;
}

export interface ContainerSpec {
  ociVersion: string;
  process: Process;
  root: { path: string; readonly: boolean };
  hostname: string;
  /** OCI domainname (needs a new uts namespace) */
  domainname?: string;
  mounts: Mount[];
  linux: {
    namespaces: Namespace[];
    uidMappings?: IdMapping[];
    gidMappings?: IdMapping[];
    devices: Device[];
    /** where the container's cgroup goes (a cgroup path; see cgroup/index.ts for the default) */
    cgroupsPath?: string;
    resources?: Resources;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    /** resolved for the container's capabilities and this architecture; absent: unconfined */
    seccomp?: LinuxSeccomp;
    /** OCI linux.sysctl: written under the container's /proc/sys before the paths are masked */
    sysctl?: Record<string, string>;
    /** OCI linux.timeOffsets of a new time namespace: clock (monotonic, boottime) -> offset */
    timeOffsets?: Record<string, { secs: number; nanosecs: number }>;
    /** OCI linux.rootfsPropagation: (r)private (the default), (r)slave, (r)shared, (r)unbindable */
    rootfsPropagation?: string;
    /** OCI linux.personality, as the persona number for personality(2) */
    personality?: number;
  };
  nsbox: NsboxOptions;
}

/** How nsbox runs the container (not part of the OCI description). */
export interface NsboxOptions {
  /** the ROOTFS argument as given */
  rootfsArg: string;
  /** a tiny init (shipped in nsbox) as PID 1, which runs the command */
  init: boolean;
  /** keep stdin open */
  interactive: boolean;
  /** give the base rootfs an overlay upper layer (false only for special cases) */
  overlay: boolean;
  /** put the container in a cgroup of its own (--cgroup-manager none: no) */
  cgroups: boolean;
  /** docker's network modes (see net/setup.ts) */
  network: NetworkRequest;
  /** the pod whose namespaces the container joins (the id of its infra container) */
  pod?: string;
  /** --privileged, as asked (what it means is already in the sets above) */
  privileged?: boolean;
  /** where linux.seccomp came from: "default", or the --security-opt seccomp= file */
  seccompProfile?: string;
  /** the key of linux.seccomp's filter in the state root's seccomp cache, for exec (security/seccomp-policy.ts recordedFilter) */
  seccompKey?: string;
  /** the image the root comes from: its layers are the overlay's lower directories (image/use.ts) */
  image?: ImageUse;
  /** the first words of process.args that are the entrypoint (the image's or --entrypoint), for inspect's Config */
  entrypoint?: string[];
  /** the image's StopSignal (docker's), for stop */
  stopSignal?: string;
  /** run by a user other than root (see src/rootless/): ranges, whether subordinate ids are mapped */
  rootless?: { ranges: boolean; network?: RootlessNetRequest };
  /** a pod's infra container: its command is the pause shim, it has no rootfs */
  infra?: { podName: string; share: string[] };
}

/** OCI linux.resources, the part nsbox supports (units: bytes, microseconds). */
export interface Resources {
  /** OCI linux.resources.devices: which devices may be made and opened, in order (security/devices.ts) */
  devices?: DeviceRule[];
  memory?: {
    limit?: number;
    /** memory + swap, as OCI and docker's --memory-swap; -1: unlimited swap */
    swap?: number;
    reservation?: number;
  };
  cpu?: {
    quota?: number;
    period?: number;
    /** v1 cpu.shares (2-262144); converted for v2 */
    shares?: number;
    /** v2 cpu.weight (1-10000), nsbox's --cpu-weight */
    weight?: number;
    cpus?: string;
    mems?: string;
  };
  pids?: { limit: number };
  blockIO?: {
    /** 10-1000, as blkio.weight */
    weight?: number;
    throttleReadBpsDevice?: ThrottleDevice[];
    throttleWriteBpsDevice?: ThrottleDevice[];
  };
}

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
  /** the path the user gave, for messages */
  path?: string;
}
