/** `nsbox run [flags] ROOTFS CMD [ARG...]`: run a command in a new container. */

import { parseCgroupParent } from "../cgroup/index.ts";
import { defaultDevices, defaultEnv, defaultMounts } from "../config/defaults.ts";
import { checkVolumeSource, containerPath, mergeEnv, parseEnv, parseHostname, parseTmpfs, parseVolume, resolveUser } from "../config/parse.ts";
import { parseResources } from "../config/resources.ts";
import type { ContainerSpec, IdMapping, Namespace } from "../config/spec.ts";
import { parseSize } from "../config/units.ts";
import { startContainer } from "../container/create.ts";
import { runForeground } from "../container/foreground.ts";
import { newId, shortId } from "../container/ids.ts";
import { reconcile } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { applyImageConfig, parsePullPolicy, readFileInLayers, resolveImage } from "../image/use.ts";
import { map } from "../list.ts";
import { log } from "../log.ts";
import { readFileSync } from "../native/fs.ts";
import type { NetworkRequest } from "../net/request.ts";
import { readFileInRoot } from "../rootfs/inroot.ts";
import { isRootfsPath, prepareRootfs } from "../rootfs/prepare.ts";
import { isRootless } from "../rootless/identity.ts";
import { flushNotes } from "../rootless/note.ts";
import { applySecurity } from "../security/apply.ts";
import { mark } from "../trace.ts";
import { isTerminal } from "../tty/relay.ts";
import { bool, defineCommand, type FlagsDef, list, type Parsed, parseFlags, str, toCitty } from "./args.ts";
import { lookup } from "./common.ts";

export const runFlags = {
  "image|rootfs": {
    type: "positional",
    description:
      "an image (alpine, host:5000/app:1, an id), or a path: a directory or a .tar/.tar.gz/.tgz/.tar.zst tarball (/x, ./x and existing paths are paths)",
    required: true,
  },
  command: { type: "positional", description: "the command and its arguments, run as PID 1 (an image's default: its Entrypoint and Cmd)" },
  entrypoint: { type: "string", description: 'replace the image\'s Entrypoint (and drop its Cmd); "" clears it', valueHint: "CMD" },
  pull: { type: "string", description: "pull the image: missing (default: when not in the store), always, never", valueHint: "POLICY" },
  interactive: { type: "boolean", alias: "i", description: "keep stdin open (it is /dev/null otherwise)" },
  tty: { type: "boolean", alias: "t", description: "give the command a terminal from the container's own /dev/pts" },
  hostname: { type: "string", description: "the container's hostname (default: the first 12 digits of its id)", valueHint: "NAME" },
  env: {
    type: "string",
    alias: "e",
    multiple: true,
    description: "set an environment variable (KEY=VALUE, or KEY to pass the host's)",
    valueHint: "KEY=VALUE",
  },
  workdir: { type: "string", alias: "w", description: "working directory inside the container (created if missing)", valueHint: "DIR" },
  user: { type: "string", alias: "u", description: "run as uid[:gid] (or name[:group] from the container's /etc/passwd)", valueHint: "UID[:GID]" },
  volume: { type: "string", alias: "v", multiple: true, description: "bind-mount a host path (HOST:CONTAINER[:ro])", valueHint: "HOST:CTR[:ro]" },
  tmpfs: { type: "string", multiple: true, description: "mount a fresh tmpfs at PATH (PATH[:size=64m,mode=1777])", valueHint: "PATH" },
  "read-only": { type: "boolean", description: "mount the container's root filesystem read-only" },
  init: { type: "boolean", description: "run a tiny init (shipped in nsbox) as PID 1: it forwards signals and reaps zombies" },
  userns: {
    type: "string",
    description:
      "user namespace: --userns or --userns=auto maps container root to an unprivileged host range (from /etc/subuid, else 100000:65536), or HOSTUID:COUNT",
    valueHint: "auto|HOSTUID:COUNT",
    bare: "auto",
  },
  name: { type: "string", description: "a name for the container (unique)", valueHint: "NAME" },
  detach: { type: "boolean", alias: "d", description: "run in the background and print the container's id (see ps, logs, stop)" },
  rm: { type: "boolean", description: "remove a detached container when it exits (foreground ones always are)" },
  "log-opt": {
    type: "string",
    multiple: true,
    description: "log option for detached containers: max-size=SIZE (default 10m, one rotated file kept)",
    valueHint: "max-size=SIZE",
  },
  memory: { type: "string", alias: "m", description: "memory limit (e.g. 64m, 1g; at least 6m)", valueHint: "SIZE" },
  "memory-swap": { type: "string", description: "memory plus swap limit (-1: unlimited swap; default: twice --memory)", valueHint: "SIZE" },
  "memory-reservation": { type: "string", description: "soft memory limit (memory.low on v2)", valueHint: "SIZE" },
  cpus: { type: "string", description: "CPU quota in CPUs (e.g. 0.5)", valueHint: "N" },
  "cpu-shares": { type: "string", alias: "c", description: "relative CPU weight, 2-262144 (default 1024)", valueHint: "N" },
  "cpu-weight": { type: "string", description: "cgroup v2 cpu.weight, 1-10000 (default 100)", valueHint: "N" },
  "pids-limit": { type: "string", description: "maximum number of processes (at least 1)", valueHint: "N" },
  "cpuset-cpus": { type: "string", description: "CPUs the container may use (e.g. 0-1,3)", valueHint: "LIST" },
  "cpuset-mems": { type: "string", description: "memory nodes the container may use (e.g. 0)", valueHint: "LIST" },
  "blkio-weight": { type: "string", description: "relative block I/O weight, 10-1000", valueHint: "N" },
  "device-read-bps": { type: "string", multiple: true, description: "limit reads from a device (e.g. /dev/sda:1mb)", valueHint: "DEV:RATE" },
  "device-write-bps": { type: "string", multiple: true, description: "limit writes to a device (e.g. /dev/sda:1mb)", valueHint: "DEV:RATE" },
  "cgroup-parent": { type: "string", description: "cgroup under which the container's cgroup is created (a cgroup path)", valueHint: "PATH" },
  cgroupns: { type: "string", description: "cgroup namespace: private (default) or host", valueHint: "private|host" },
  "cgroup-manager": { type: "string", description: "cgroupfs (default) or none: no cgroup at all (no limits, no stats)", valueHint: "cgroupfs|none" },
  net: {
    type: "string",
    alias: "network",
    description: "bridge (default: eth0 on the nsbox0 bridge, NAT), none (only lo), host, or container:NAME (share its network)",
    valueHint: "MODE",
  },
  publish: { type: "string", alias: "p", multiple: true, description: "publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]", valueHint: "PORTS" },
  subnet: { type: "string", description: "subnet of the nsbox0 bridge when nsbox creates it (default 10.88.0.0/16; env NSBOX_SUBNET)", valueHint: "CIDR" },
  pod: { type: "string", description: "join a pod's shared namespaces (see nsbox pod create)", valueHint: "POD" },
  "cap-add": { type: "string", multiple: true, description: "add a capability to docker's default set (NET_ADMIN, CAP_SYS_TIME..., or ALL)", valueHint: "CAP" },
  "cap-drop": { type: "string", multiple: true, description: "drop a capability from the default set (or ALL)", valueHint: "CAP" },
  privileged: {
    type: "boolean",
    description: "every capability, no seccomp filter, no masked or read-only paths, /sys writable, every host device (as docker)",
  },
  "security-opt": {
    type: "string",
    multiple: true,
    description: "no-new-privileges, seccomp=unconfined|PROFILE.json, systempaths=unconfined (label= and apparmor= are accepted)",
    valueHint: "OPT",
  },
  device: {
    type: "string",
    multiple: true,
    description: "give the container a host device (or every device under a directory): HOST[:CONTAINER][:rwm]",
    valueHint: "DEV",
  },
  "device-cgroup-rule": {
    type: "string",
    multiple: true,
    description: "allow device numbers in the devices cgroup, e.g. 'c 1:3 rwm' or 'b 7:* r'",
    valueHint: "RULE",
  },
} satisfies FlagsDef;

export const runCommand = defineCommand({
  meta: { name: "run", description: "Run a command in a new container" },
  args: () => toCitty(runFlags),
});

/** The subuid range for --userns=auto: /etc/subuid's entry for "nsbox" or "root", else 100000:65536. */
function autoRange(file: string): IdMapping {
  try {
    for (const who of ["nsbox", "root"]) {
      const line = readFileSync(file, "utf8")
        .split("\n")
        .find((l) => l.startsWith(`${who}:`));
      const [, start, count] = (line ?? "").split(":");
      if (start && count && Number(count) >= 65536) return { containerID: 0, hostID: Number(start), size: 65536 };
    }
  } catch {
    // no such file: use the default range
  }
  return { containerID: 0, hostID: 100000, size: 65536 };
}

function parseUserns(v: string): { uid: IdMapping; gid: IdMapping } | undefined {
  if (v === "host" || v === "") return undefined;
  if (v === "auto") return { uid: autoRange("/etc/subuid"), gid: autoRange("/etc/subgid") };
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m) fail(`invalid --userns "${v}": use auto, host, or HOSTUID:COUNT (e.g. 100000:65536)`);
  const hostID = Number(m[1]);
  const size = Number(m[2]);
  if (hostID === 0 || size < 1 || hostID + size > 0xffffffff) fail(`invalid --userns "${v}": the host range must not include uid 0 and must fit in 32 bits`);
  const map = { containerID: 0, hostID, size };
  return { uid: map, gid: { ...map } };
}

async function parseNetwork(mode: string | undefined, publish: string[], subnet: string | undefined, pod: string | undefined): Promise<NetworkRequest> {
  const m = mode ?? "bridge";
  // the bridge's code only for a run that may use it (see LAZY in test/check-start-imports.ts)
  const bridge = m === "bridge" || publish.length > 0 || subnet !== undefined ? await bridgeParsing() : undefined;
  const ports = bridge ? map(publish, bridge.parsePublish) : [];
  if (subnet !== undefined) bridge?.parseSubnet(subnet);
  if (pod !== undefined && mode !== undefined) fail(`--net ${mode} cannot be combined with --pod: a pod's containers share the pod's network`);
  if (pod !== undefined && ports.length) fail("-p cannot be used with --pod: publish ports on the pod (nsbox pod create -p ...)");
  if (pod !== undefined) return { mode: "none", ports: [] };
  if (m === "bridge" && mode === undefined && !bridge?.findNft()) {
    // The default must work on any server: without nft (no NAT possible), no bridge.
    if (ports.length) fail("-p needs bridge networking, which needs the nft command from nftables (apt-get install nftables)");
    log.warn("no nft command (package nftables): this container gets --net none; install nftables for bridge networking");
    return { mode: "none", ports: [] };
  }
  if (m === "bridge") return { mode: "bridge", ports, subnet };
  if (ports.length) fail(`-p needs --net bridge (with --net ${m} there is nothing to publish through)`);
  if (m === "none" || m === "host") return { mode: m, ports: [] };
  if (m.startsWith("container:") && m.length > 10) return { mode: "container", target: m.slice(10), ports: [] };
  fail(`invalid --net "${m}": use bridge, none, host or container:NAME`);
}

/**
 * Code that only some runs need (the bridge's, a pod's, a rootless user's) is
 * imported when they do: a start loads less (bench/trace-notes.md, "Twelfth
 * stop"). An import(), not a require(): Bun's splitter keeps the start's modules
 * in one chunk then (a require() split them into many, and the start was slower).
 */
async function bridgeParsing() {
  const [ports, subnet, nft] = await Promise.all([import("../net/ports.ts"), import("../net/subnet.ts"), import("../net/nft.ts")]);
  return { parsePublish: ports.parsePublish, parseSubnet: subnet.parseSubnet, findNft: nft.findNft };
}

/** Flags -> ContainerSpec. Everything the user gave is checked here, before anything is created. */
export async function specFromFlags(p: Parsed, hostEnv: NodeJS.ProcessEnv = process.env): Promise<{ spec: ContainerSpec; id: string }> {
  const f = p.flags;
  const rootfsArg = p.positionals[0];
  const args = p.rest;
  if (!rootfsArg) fail('"nsbox run" needs an IMAGE or a ROOTFS, e.g.: nsbox run ./rootfs /bin/sh');
  const isPath = isRootfsPath(rootfsArg);
  const entrypoint = str(f.entrypoint);
  if (isPath && args.length === 0 && !entrypoint) fail(`"nsbox run" needs a command to run in ${rootfsArg}, e.g.: nsbox run ${rootfsArg} /bin/sh`);
  const pullPolicy = parsePullPolicy(str(f.pull));
  const rootless = isRootless();
  if (!isPath && str(f.userns) !== undefined) fail("--userns cannot be used with an image yet: run a rootfs directory or tarball instead");
  const image = isPath ? undefined : await resolveImage(rootfsArg, pullPolicy, pullForRun);
  const lowerDir = image ? (image.layerDirs[0] as string) : await prepareRootfs(rootfsArg);
  // the image's Entrypoint, Cmd, Env, User and WorkingDir with docker's rules; a path has none
  const fromImage = applyImageConfig(image?.config.config, { cmd: args, entrypoint, user: str(f.user), workdir: str(f.workdir) });
  if (fromImage.args.length === 0) fail(`image "${rootfsArg}" has no Entrypoint or Cmd: give a command, e.g. nsbox run ${rootfsArg} /bin/sh`);
  mark("rootfs ready");
  const id = newId();
  let hostname = str(f.hostname) !== undefined ? parseHostname(str(f.hostname) as string) : shortId(id);
  const tty = bool(f.tty);
  if (tty && bool(f.interactive) && !bool(f.detach) && !isTerminal(0)) fail("the input device is not a terminal: drop -t, or run nsbox from a terminal");

  const userText = fromImage.user ?? "0:0";
  const etc = (file: string) => (image ? readFileInLayers(image.layerDirs, file) : readFileInRoot(lowerDir, file));
  const user = resolveUser(userText, etc("/etc/passwd"), etc("/etc/group"));
  const home = user.home ?? (user.uid === 0 ? "/root" : "/");

  const mounts = defaultMounts();
  for (const v of list(f.volume)) {
    const m = parseVolume(v);
    checkVolumeSource(m.source as string, v);
    mounts.push(m);
  }
  for (const t of list(f.tmpfs)) mounts.push(parseTmpfs(t));

  const userns = rootless ? undefined : parseUserns(str(f.userns) ?? "host");
  const cgroupns = str(f.cgroupns) ?? "private";
  if (cgroupns !== "private" && cgroupns !== "host") fail(`invalid --cgroupns "${cgroupns}": use private or host`);
  const manager = str(f["cgroup-manager"]) ?? "cgroupfs";
  if (manager !== "cgroupfs" && manager !== "none") fail(`invalid --cgroup-manager "${manager}": use cgroupfs or none`);
  const resources = parseResources({
    memory: str(f.memory),
    memorySwap: str(f["memory-swap"]),
    memoryReservation: str(f["memory-reservation"]),
    cpus: str(f.cpus),
    cpuShares: str(f["cpu-shares"]),
    cpuWeight: str(f["cpu-weight"]),
    pidsLimit: str(f["pids-limit"]),
    cpusetCpus: str(f["cpuset-cpus"]),
    cpusetMems: str(f["cpuset-mems"]),
    blkioWeight: str(f["blkio-weight"]),
    deviceReadBps: list(f["device-read-bps"]),
    deviceWriteBps: list(f["device-write-bps"]),
  });
  if (manager === "none" && resources) fail("--cgroup-manager none cannot enforce resource limits: drop the limits or the flag");
  let cgroupsPath: string | undefined;
  try {
    cgroupsPath = str(f["cgroup-parent"]) === undefined ? undefined : parseCgroupParent(str(f["cgroup-parent"]) as string);
  } catch (e) {
    fail((e as Error).message);
  }
  const namespaces: Namespace[] = [{ type: "pid" }, { type: "mount" }, { type: "uts" }, { type: "ipc" }];
  if (cgroupns === "private") namespaces.push({ type: "cgroup" });
  const network = rootless
    ? (await import("../rootless/network.ts")).rootlessNetwork(str(f.net), list(f.publish), str(f.pod))
    : await parseNetwork(str(f.net), list(f.publish), str(f.subnet) ?? hostEnv.NSBOX_SUBNET, str(f.pod));
  let podId: string | undefined;
  if (str(f.pod) !== undefined) {
    await reconcile();
    const { findPod, podNamespaces } = await import("../container/pod.ts");
    const pod = findPod(str(f.pod) as string);
    const joined = podNamespaces(pod);
    if (joined.some((n) => n.type === "uts") && str(f.hostname) !== undefined)
      fail(`--hostname cannot be used with --pod ${pod.name}: the pod shares its hostname (${pod.infra.config.spec.hostname})`);
    podId = pod.id;
    if (joined.some((n) => n.type === "uts")) hostname = pod.infra.config.spec.hostname;
    network.mode = "container";
    network.target = pod.id;
    // the pod's namespaces replace the container's own of those types
    for (const j of joined) {
      const i = namespaces.findIndex((n) => n.type === j.type);
      if (i >= 0) namespaces.splice(i, 1);
      namespaces.push(j);
    }
  } else if (network.mode === "container") {
    const target = await lookup(network.target as string);
    if (target.status !== "running") fail(`--net container:${network.target}: that container is not running`);
    network.target = target.id;
    namespaces.push({ type: "network", path: `/proc/${target.state.init?.pid}/ns/net` });
  } else if (network.mode !== "host") namespaces.push({ type: "network" });
  if (userns) namespaces.push({ type: "user" });

  const spec: ContainerSpec = {
    ociVersion: "1.2.0",
    process: {
      terminal: tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids, name: userText },
      args: fromImage.args,
      env: mergeEnv(defaultEnv({ hostname, home, tty }), fromImage.env, parseEnv(list(f.env), hostEnv)),
      cwd: fromImage.workdir !== undefined ? containerPath(fromImage.workdir, str(f.workdir) !== undefined ? "--workdir" : "the image's WorkingDir") : "/",
    },
    root: { path: lowerDir, readonly: bool(f["read-only"]) },
    hostname,
    mounts,
    linux: {
      namespaces,
      uidMappings: userns ? [userns.uid] : undefined,
      gidMappings: userns ? [userns.gid] : undefined,
      devices: defaultDevices(),
      resources,
      cgroupsPath,
    },
    nsbox: {
      rootfsArg: lowerDir,
      init: bool(f.init),
      interactive: bool(f.interactive),
      overlay: true,
      cgroups: manager === "cgroupfs",
      network,
      pod: podId,
      image: image?.use,
      stopSignal: fromImage.stopSignal,
      entrypoint: fromImage.entrypoint.length ? fromImage.entrypoint : undefined,
    },
  };
  if (userns && (user.uid >= userns.uid.size || user.gid >= userns.gid.size))
    fail(`--user ${userText} is outside the --userns range (ids 0-${userns.uid.size - 1} are mapped)`);
  if (rootless) (await import("../rootless/spec.ts")).applyRootless(spec, { userns: str(f.userns), cgroupManager: manager });
  await applySecurity(spec, {
    privileged: bool(f.privileged),
    capAdd: list(f["cap-add"]),
    capDrop: list(f["cap-drop"]),
    securityOpt: list(f["security-opt"]),
    devices: list(f.device),
    deviceCgroupRules: list(f["device-cgroup-rule"]),
  });
  if (rootless) flushNotes();
  mark("spec built");
  return { spec, id };
}

/** Pulls for `run` (registry code loaded only then), with the progress nsbox pull shows, on stderr; returns the image id. */
async function pullForRun(ref: string): Promise<string> {
  const { pullImage } = await import("../image/pull.ts");
  const { makeProgress } = await import("../image/progress.ts");
  const r = await pullImage(ref, { progress: makeProgress(2, isTerminal(2) ? "tty" : "lines") });
  return r.configDigest;
}

function parseLogOpts(items: string[]): number | undefined {
  let max: number | undefined;
  for (const o of items) {
    const m = /^max-size=(.+)$/.exec(o);
    if (!m) fail(`invalid --log-opt "${o}": nsbox knows max-size=SIZE (e.g. max-size=10m)`);
    max = parseSize(m[1] as string, "--log-opt max-size");
    if (max < 4096) fail(`invalid --log-opt "${o}": the size must be at least 4k`);
  }
  return max;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags("run", argv, runFlags, 1);
  const detach = bool(p.flags.detach);
  if (detach && bool(p.flags.tty)) fail("nsbox run -d cannot take -t yet (there is no attach): drop -t, and read the output with nsbox logs");
  const logMaxBytes = parseLogOpts(list(p.flags["log-opt"]));
  const name = str(p.flags.name);
  if (name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(name))
    fail(`invalid --name "${name}": use letters, digits, _ . - (starting with a letter or digit, at most 128)`);
  const { spec, id } = await specFromFlags(p);
  const rootfsArg = p.positionals[0] as string;
  if (!detach) return runForeground(spec, { id, name, rootfsArg });
  await reconcile();
  await startContainer(spec, { id, name, rootfsArg, detached: true, autoRemove: bool(p.flags.rm), logMaxBytes });
  console.log(id);
  return 0;
}
