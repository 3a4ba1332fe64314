/** `nsbox inspect [-f FORMAT] CONTAINER...`: everything nsbox knows of containers, as JSON (or through a docker-style template). */
import { openCgroup } from "../cgroup/index.ts";
import { defaultMounts } from "../config/defaults.ts";
import { type ContainerView, mustView, reconcile } from "../container/lifecycle.ts";
import { logPath } from "../container/logs.ts";
import { namespacesOf } from "../container/namespaces.ts";
import { capHex } from "../security/capabilities.ts";
import { resolveRef } from "../state/store.ts";
import { defineCommand, type FlagsDef, parseFlags, toCitty } from "./args.ts";
import { printInspect } from "./format.ts";
import { dockerConfig, dockerHostConfig, dockerMounts, dockerNetworkSettings } from "./inspect-docker.ts";
import { portsText } from "./ps.ts";

export const inspectFlags = {
  format: {
    type: "string",
    alias: "f",
    description: "json (default), or a template printed once per container: '{{.State.Pid}}', '{{json .Mounts}}'",
    valueHint: "FORMAT",
  },
  containers: { type: "positional", description: "containers (names, ids or unique id prefixes)", required: true, multiple: true },
} satisfies FlagsDef;

export const inspectCommand = defineCommand({
  meta: { name: "inspect", description: "Show containers' configuration and state as JSON" },
  args: () => toCitty(inspectFlags),
});

/**
 * docker's schema where docker has the field (Id, Name, Created, Path, Args,
 * Image, State, Config, HostConfig, NetworkSettings, Mounts: see
 * inspect-docker.ts); nsbox's own fields under their own names; the full
 * ContainerSpec under Spec.
 */
export function inspectJson(v: ContainerView) {
  const running = v.status === "running";
  const pid = running ? (v.state.init?.pid ?? 0) : 0;
  const image = v.config.spec.nsbox.image;
  return {
    Id: v.id,
    Name: v.config.name ?? "",
    Created: v.config.created,
    Path: v.config.spec.process.args[0],
    Args: v.config.spec.process.args.slice(1),
    Image: image?.id ?? "",
    ImageDigest: image?.digest ?? null,
    Rootfs: v.config.rootfs,
    RootfsPath: v.config.spec.root.path,
    State: {
      Status: v.status,
      Running: running,
      Paused: false,
      Restarting: false,
      OOMKilled: v.exit?.oomKilled ?? (running && v.config.cgroup ? openCgroup(v.config.cgroup).oomKills() > 0 : false),
      Dead: false,
      Pid: pid,
      MonitorPid: v.state.monitor?.pid ?? 0,
      ExitCode: v.exit?.code ?? null,
      ExitNote: v.exit?.note,
      Error: "",
      StartedAt: v.state.startedAt ?? null,
      FinishedAt: v.exit?.finishedAt ?? null,
    },
    Config: dockerConfig(v),
    HostConfig: dockerHostConfig(v),
    NetworkSettings: dockerNetworkSettings(v),
    Detached: v.config.detached,
    AutoRemove: v.config.autoRemove,
    Pod: v.config.pod ?? null,
    Cgroup: v.config.cgroup ? { Version: v.config.cgroup.version, Paths: v.config.cgroup.paths } : null,
    Mounts: dockerMounts(v, DEFAULT_MOUNTS()),
    Namespaces: running ? namespacesOf(pid).map((n) => ({ Type: n.type, Inode: n.inode, Path: n.path })) : [],
    Network: v.config.network ?? null,
    Ports: portsText(v),
    LogPath: v.config.detached ? logPath(v.id) : null,
    Security: securityJson(v),
    // the seccomp rules are summed up in Security (hundreds of lines otherwise)
    Spec: { ...v.config.spec, linux: { ...v.config.spec.linux, seccomp: v.config.spec.linux.seccomp ? "(see Security.Seccomp)" : undefined } },
  };
}

const DEFAULT_MOUNTS = () => new Set(defaultMounts().map((m) => m.destination));

/** What confines the container: capabilities, no_new_privs, seccomp, masked paths, devices. */
function securityJson(v: ContainerView) {
  const spec = v.config.spec;
  const caps = spec.process.capabilities;
  const sc = spec.linux.seccomp;
  return {
    Privileged: spec.nsbox.privileged === true,
    Capabilities: caps
      ? { Bounding: caps.bounding, Effective: caps.effective, Permitted: caps.permitted, Inheritable: caps.inheritable, Ambient: caps.ambient }
      : null,
    CapEff: caps ? capHex(caps.effective) : null,
    NoNewPrivileges: spec.process.noNewPrivileges === true,
    Seccomp: sc
      ? {
          Mode: "filter",
          Profile: spec.nsbox.seccompProfile ?? "default",
          DefaultAction: sc.defaultAction,
          Rules: sc.syscalls?.length ?? 0,
          Architectures: sc.architectures ?? [],
        }
      : { Mode: "unconfined", Profile: "unconfined" },
    MaskedPaths: spec.linux.maskedPaths ?? [],
    ReadonlyPaths: spec.linux.readonlyPaths ?? [],
    Devices: spec.linux.devices.map((d) => `${d.path} (${d.type} ${d.major}:${d.minor})`),
    DeviceRules: spec.linux.resources?.devices ?? [],
  };
}

export async function inspect(argv: string[]): Promise<number> {
  const p = parseFlags("inspect", argv, inspectFlags);
  await reconcile();
  printInspect(
    p.positionals.map((ref) => inspectJson(mustView(resolveRef(ref)))),
    p.flags.format as string | undefined,
  );
  return 0;
}
