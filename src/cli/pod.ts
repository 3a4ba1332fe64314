/** `nsbox pod create|ps|inspect|stop|rm`: Kubernetes-style pods (see container/pod.ts). */
import { parseCgroupParent } from "../cgroup/index.ts";
import { parseHostname } from "../config/parse.ts";
import { parseSeconds } from "../config/units.ts";
import { reconcile } from "../container/lifecycle.ts";
import { namespacesOf } from "../container/namespaces.ts";
import { allPods, createPod, findPod, type PodView, parseShare, removePod, stopPod } from "../container/pod.ts";
import { fail } from "../errors.ts";
import { parsePublish } from "../net/ports.ts";
import { parseSubnet } from "../net/subnet.ts";
import { isRootless } from "../rootless/identity.ts";
import { rootlessNetwork } from "../rootless/network.ts";
import { bool, defineCommand, type FlagsDef, list, parseFlags, str, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { ago, printInspect, table } from "./format.ts";
import { portsText, statusText } from "./ps.ts";

export const podFlags = {
  action: { type: "positional", description: "create, ps, inspect, stop or rm", required: true },
  pods: { type: "positional", description: "pods (names or ids) for inspect, stop, rm", multiple: true },
  name: { type: "string", description: "create: the pod's name (unique)", valueHint: "NAME" },
  share: { type: "string", description: "create: namespaces the pod's containers share: net,ipc,uts (default) and pid", valueHint: "LIST" },
  publish: {
    type: "string",
    alias: "p",
    multiple: true,
    description: "create: publish a port of the pod: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]",
    valueHint: "PORTS",
  },
  hostname: { type: "string", description: "create: the pod's hostname (default: its name)", valueHint: "NAME" },
  net: {
    type: "string",
    alias: "network",
    description: "create: bridge (default), none or host; as a user: pasta or slirp4netns (the default if usable), none or host",
    valueHint: "MODE",
  },
  subnet: { type: "string", description: "create: subnet of nsbox0 if nsbox creates it", valueHint: "CIDR" },
  "cgroup-parent": { type: "string", description: "create: cgroup under which the pod's infra cgroup goes", valueHint: "PATH" },
  time: { type: "string", alias: "t", description: "stop: seconds before SIGKILL (default 10)", valueHint: "SECONDS" },
  force: { type: "boolean", alias: "f", description: "rm: stop running pods first" },
  format: { type: "string", description: "ps: table (default) or json; inspect: json (default) or a template such as '{{.InfraPid}}'", valueHint: "FORMAT" },
} satisfies FlagsDef;

/** The actions of `nsbox pod`, and whether each takes pods as arguments. */
const ACTIONS: Record<string, boolean> = { create: false, ps: false, ls: false, inspect: true, stop: true, rm: true };

/** Which actions each flag means something to: given to another, it is refused, not silently ignored. */
const FLAG_ACTIONS: Record<string, readonly string[]> = {
  name: ["create"],
  share: ["create"],
  publish: ["create"],
  hostname: ["create"],
  net: ["create"],
  subnet: ["create"],
  "cgroup-parent": ["create"],
  time: ["stop"],
  force: ["rm"],
  format: ["ps", "ls", "inspect"],
};

function checkFlagsFit(action: string, flags: Record<string, unknown>): void {
  for (const [flag, actions] of Object.entries(FLAG_ACTIONS)) {
    const v = flags[flag];
    if (v === undefined || v === false || (Array.isArray(v) && v.length === 0) || actions.includes(action)) continue;
    fail(`--${flag} is not a flag of "nsbox pod ${action}": it is for "nsbox pod ${actions.join("|")}" (see: nsbox pod --help)`);
  }
}

export const podCommand = defineCommand({
  meta: { name: "pod", description: "Manage pods: containers sharing namespaces held by a pause process" },
  args: () => toCitty(podFlags),
});

function podStatus(p: PodView): string {
  if (p.infra.status === "running") return p.members.some((m) => m.status === "running") ? "Running" : "Running (no containers)";
  return p.members.some((m) => m.status === "running") ? "Degraded" : "Exited";
}

export function podJson(p: PodView) {
  const pid = p.infra.status === "running" ? (p.infra.state.init?.pid ?? 0) : 0;
  const share = p.infra.config.spec.nsbox.infra?.share ?? [];
  const ns = pid ? namespacesOf(pid) : [];
  return {
    Id: p.id,
    Name: p.name,
    Created: p.infra.config.created,
    State: podStatus(p),
    InfraContainerId: p.id,
    InfraPid: pid,
    Hostname: p.infra.config.spec.hostname,
    SharedNamespaces: share.map((s) => ({ Type: s, Inode: ns.find((n) => n.type === s)?.inode ?? null })),
    Network: p.infra.config.network ?? null,
    Ports: portsText(p.infra),
    Containers: p.members.map((m) => ({ Id: m.id, Name: m.config.name ?? "", Status: statusText(m) })),
  };
}

export async function pod(argv: string[]): Promise<number> {
  const p = parseFlags("pod", argv, podFlags);
  const [action, ...refs] = p.positionals as [string, ...string[]];
  const f = p.flags;
  // One check for every action: which take pods, which take none (citty's table allows any number).
  const takesPods = ACTIONS[action];
  if (takesPods === undefined) fail(`unknown pod action "${action}": use ${Object.keys(ACTIONS).join(", ")}`);
  if (!takesPods && refs.length)
    fail(`too many arguments for "nsbox pod ${action}": ${refs.join(" ")} (it takes no pod${action === "create" ? "; name a pod with --name" : ""})`);
  if (takesPods && !refs.length) fail(`a pod is required: nsbox pod ${action} POD... (see: nsbox pod --help)`);
  checkFlagsFit(action, f as Record<string, unknown>);
  if (action === "create") {
    const rootless = isRootless();
    const name = str(f.name);
    if (name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(name)) fail(`invalid --name "${name}": use letters, digits, _ . - (at most 63)`);
    const mode = str(f.net) ?? "bridge";
    if (!rootless && mode !== "bridge" && mode !== "none" && mode !== "host") fail(`invalid --net "${mode}" for a pod: use bridge, none or host`);
    if (rootless && mode.startsWith("container:")) fail(`invalid --net "${mode}" for a pod: use none, host, pasta or slirp4netns`);
    const ports = list(f.publish).map(parsePublish);
    if (!rootless && ports.length && mode !== "bridge") fail(`-p needs --net bridge (with --net ${mode} there is nothing to publish through)`);
    const subnet = str(f.subnet) ?? process.env.NSBOX_SUBNET;
    if (subnet !== undefined) parseSubnet(subnet);
    const share = parseShare(str(f.share));
    const parent = str(f["cgroup-parent"]);
    const id = await createPod({
      name,
      share,
      hostname: str(f.hostname) !== undefined ? parseHostname(str(f.hostname) as string) : undefined,
      // as a user, the rootless default network (pasta, slirp4netns or none) unless --net says
      network: rootless ? rootlessNetwork(str(f.net), list(f.publish), undefined) : { mode: mode as "bridge" | "none" | "host", ports, subnet },
      cgroupsPath: parent === undefined ? undefined : parseCgroupParent(parent),
      rootless,
    });
    console.log(id);
    return 0;
  }
  await reconcile();
  if (action === "ps" || action === "ls") {
    const pods = allPods();
    if (checkFormat(f.format) === "json") {
      for (const x of pods) console.log(JSON.stringify(podJson(x)));
      return 0;
    }
    console.log(
      table(
        ["POD ID", "NAME", "STATUS", "CREATED", "INFRA PID", "SHARES", "PORTS", "# OF CONTAINERS"],
        pods.map((x) => [
          x.id.slice(0, 12),
          x.name,
          podStatus(x),
          ago(x.infra.config.created),
          x.infra.status === "running" ? String(x.infra.state.init?.pid ?? "") : "",
          (x.infra.config.spec.nsbox.infra?.share ?? []).join(","),
          portsText(x.infra),
          String(x.members.length),
        ]),
      ),
    );
    return 0;
  }
  if (action === "inspect") {
    printInspect(
      refs.map((r) => podJson(findPod(r))),
      str(f.format),
    );
    return 0;
  }
  if (action === "stop") {
    const t = parseSeconds(str(f.time) ?? "10", "--time");
    for (const r of refs) {
      await stopPod(findPod(r), t);
      console.log(r);
    }
    return 0;
  }
  if (action === "rm") {
    for (const r of refs) {
      await removePod(findPod(r), bool(f.force));
      console.log(r);
    }
    return 0;
  }
  fail(`unknown pod action "${action}": use create, ps, inspect, stop or rm`);
}
