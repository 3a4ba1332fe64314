/**
 * The parts of `docker inspect`'s schema that nsbox has, with docker's names and
 * shapes, so that scripts written for `docker inspect -f` work unchanged:
 * Config, NetworkSettings, HostConfig and Mounts. nsbox's own fields stay
 * under their own names (see inspect.ts).
 */

import type { Mount } from "../config/spec.ts";
import type { ContainerView } from "../container/lifecycle.ts";
import { openStore } from "../image/store.ts";
import { readFileSync } from "../native/fs.ts";
import type { NetworkRecord } from "../net/request.ts";
import { DEFAULT_CAPS } from "../security/capabilities.ts";

const bare = (c: string) => c.replace(/^CAP_/, "");

/** Config: what the container runs (docker splits the command into Entrypoint and Cmd). */
export function dockerConfig(v: ContainerView) {
  const spec = v.config.spec;
  const entry = spec.nsbox.entrypoint ?? [];
  const args = spec.process.args;
  let labels: Record<string, string> = {};
  const img = spec.nsbox.image;
  if (img) {
    try {
      const store = openStore();
      const rec = store.image(img.id);
      if (rec) labels = store.imageConfigOf(rec.configDigest).config?.Labels ?? {};
    } catch {
      // the image may be gone (rm -f): its labels with it
    }
  }
  return {
    Hostname: spec.hostname,
    User: spec.process.user.name ?? `${spec.process.user.uid}:${spec.process.user.gid}`,
    Tty: spec.process.terminal,
    OpenStdin: spec.nsbox.interactive,
    Env: spec.process.env,
    Cmd: args.slice(entry.length),
    Entrypoint: entry.length ? entry : null,
    Image: img?.ref ?? v.config.rootfs,
    WorkingDir: spec.process.cwd,
    Labels: labels,
    StopSignal: spec.nsbox.stopSignal ?? "SIGTERM",
  };
}

/** NetworkSettings: the address on the bridge, ports, and the one network nsbox has. */
export function dockerNetworkSettings(v: ContainerView) {
  const net = v.config.network as NetworkRecord | undefined;
  const running = v.status === "running";
  const ip = running ? (net?.ip ?? "") : "";
  const gateway = running ? (net?.gateway ?? "") : "";
  const prefix = running ? (net?.prefix ?? 0) : 0;
  const mac = running && net?.mode === "bridge" ? macOf(v.state.init?.pid ?? 0) : "";
  const endpoint = { IPAddress: ip, IPPrefixLen: prefix, Gateway: gateway, MacAddress: mac, NetworkID: net?.bridge ?? "" };
  return {
    IPAddress: ip,
    IPPrefixLen: prefix,
    Gateway: gateway,
    MacAddress: mac,
    Ports: portMap(net, true),
    Networks: net?.mode === "bridge" ? { bridge: endpoint } : net?.mode ? { [net.mode]: { ...endpoint, IPAddress: "", Gateway: "" } } : {},
  };
}

/** The container's eth0 address, read through its own /sys (a sysfs mounted in its network namespace). */
function macOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/root/sys/class/net/eth0/address`, "utf8").trim();
  } catch {
    return "";
  }
}

/** docker's port maps: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]} */
function portMap(net: NetworkRecord | undefined, allIps: boolean) {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of net?.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol}`;
    (out[key] ??= []).push({ HostIp: p.hostIp || (allIps ? "0.0.0.0" : ""), HostPort: String(p.hostPort) });
  }
  return out;
}

/** HostConfig: the limits and privileges asked for, in docker's units (bytes, nano-CPUs). */
export function dockerHostConfig(v: ContainerView) {
  const spec = v.config.spec;
  const r = spec.linux.resources;
  const net = v.config.network as NetworkRecord | undefined;
  const caps = spec.process.capabilities?.bounding;
  const privileged = spec.nsbox.privileged === true;
  const mode = spec.nsbox.network.mode;
  return {
    Binds: spec.mounts.filter(isBind).map((m) => `${m.source}:${m.destination}${m.options?.includes("ro") ? ":ro" : ""}`),
    NetworkMode: mode === "container" ? `container:${spec.nsbox.network.target ?? ""}` : mode,
    PortBindings: portMap(net, false),
    AutoRemove: v.config.autoRemove,
    CapAdd: caps && !privileged ? caps.filter((c) => !DEFAULT_CAPS.includes(c)).map(bare) : null,
    CapDrop: caps && !privileged ? DEFAULT_CAPS.filter((c) => !caps.includes(c)).map(bare) : null,
    Privileged: privileged,
    ReadonlyRootfs: spec.root.readonly,
    Memory: r?.memory?.limit ?? 0,
    MemorySwap: r?.memory?.swap ?? 0,
    MemoryReservation: r?.memory?.reservation ?? 0,
    NanoCpus: r?.cpu?.quota && r.cpu.period ? Math.round((r.cpu.quota / r.cpu.period) * 1e9) : 0,
    CpuShares: r?.cpu?.shares ?? 0,
    CpusetCpus: r?.cpu?.cpus ?? "",
    CpusetMems: r?.cpu?.mems ?? "",
    PidsLimit: r?.pids?.limit ?? null,
    BlkioWeight: r?.blockIO?.weight ?? 0,
    CgroupParent: spec.linux.cgroupsPath ?? "",
  };
}

const isBind = (m: Mount) => m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");

/** Mounts as docker lists them: the binds and tmpfs the user asked for (not /proc, /dev, ...). */
export function dockerMounts(v: ContainerView, defaults: Set<string>) {
  return v.config.spec.mounts
    .filter((m) => !defaults.has(m.destination))
    .map((m) => {
      const bind = isBind(m);
      const ro = (m.options ?? []).includes("ro");
      return {
        Type: bind ? "bind" : (m.type ?? "bind"),
        Source: bind ? (m.source ?? "") : "",
        Destination: m.destination,
        Mode: ro ? "ro" : "",
        RW: !ro,
        Propagation: bind ? "rprivate" : "",
      };
    });
}
