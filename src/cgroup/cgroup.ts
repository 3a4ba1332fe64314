/**
 * The interface every cgroup back end (v2, v1) implements for one container,
 * and what nsbox records of it in the container's state to find it again.
 */
export interface CgroupRecord {
  version: 1 | 2;
  /** v2: { unified: dir }; v1: controller -> dir (absolute paths under the mounts) */
  paths: Record<string, string>;
  /** dirs nsbox created for this container (removed with it), deepest last */
  created: string[];
  /** the memory limit, for the OOM message */
  memoryLimit?: number;
}

export interface CgroupStats {
  memoryUsage?: number;
  memoryLimit?: number;
  /** total CPU time used, nanoseconds */
  cpuNs?: number;
  pids?: number;
  pidsLimit?: number;
}

export interface ContainerCgroup {
  readonly record: CgroupRecord;
  /** moves pid into the container's cgroup (every hierarchy on v1) */
  join(pid: number): void;
  /** the same, on a worker thread: a move can wait for an RCU grace period, time nsbox can use */
  joinAsync(pid: number): Promise<void>;
  /** v2: an fd of the cgroup's directory for clone3's CLONE_INTO_CGROUP (the caller closes it); v1: undefined */
  cloneFd(): number | undefined;
  /** how many times the kernel's OOM killer killed in this cgroup */
  oomKills(): number;
  /** the file oomKills() reads ("oom_kill N" in it), for the foreground shim; undefined without memory accounting */
  oomFile(): string | undefined;
  stats(): CgroupStats;
  pids(): number[];
  /** SIGKILL everything in it (cgroup.kill on v2 when available) */
  killAll(): void;
  /** kills what is left, waits for it to go, removes the dirs nsbox created */
  remove(): Promise<void>;
}

export class CgroupError extends Error {}
