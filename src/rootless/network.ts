/**
 * Networks a user without privileges can have. --net none (lo only) and --net
 * host (the host's, as the user sees it) always work. Outbound traffic and -p
 * go through a user-mode network stack started with the container and ended
 * with it: pasta (Debian's passt) or slirp4netns, whichever is installed (pasta
 * first). pasta forwards -p ports itself; slirp4netns is told them on its API
 * socket. --net bridge needs root: a bridge, veths and NAT rules on the host.
 */
import type { ChildProcess } from "node:child_process";
import { fail, NsboxError } from "../errors.ts";
import { accessSync, closeSync, constants, openSync, readFileSync, statSync } from "../native/fs.ts";
import { hostPortInUse, parsePublish } from "../net/ports.ts";
import type { NetworkRequest } from "../net/request.ts";
import type { PortBinding } from "../net/state.ts";
import { dirname, join } from "../posixpath.ts";
import { alive, startTime } from "../state/proc.ts";
import { noteOnce } from "./note.ts";

export type UserNetTool = "pasta" | "slirp4netns";

/** What a rootless container asked of its user-mode network (spec.nsbox.rootless.network). */
export interface RootlessNetRequest {
  tool: UserNetTool;
  ports: PortBinding[];
}

export const USER_NET_TOOLS: UserNetTool[] = ["pasta", "slirp4netns"];

/** Why the user cannot open /dev/net/tun (the tap both tools make in the container's namespace), or undefined. */
export function tunProblem(path = "/dev/net/tun"): string | undefined {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `needs ${path}, which this host lacks (modprobe tun)`;
    let mode = "";
    try {
      mode = ` (mode ${(statSync(path).mode & 0o777).toString(8).padStart(4, "0")} here)`;
    } catch {
      // no mode to tell
    }
    return `needs ${path} open to you for reading and writing${mode}: chmod 0666 ${path}, its usual mode`;
  }
}

export function findUserNetTool(which?: UserNetTool): { tool: UserNetTool; path: string } | undefined {
  for (const tool of which ? [which] : USER_NET_TOOLS) {
    const path = Bun.which(tool, { PATH: `${process.env.PATH ?? ""}:/usr/bin:/bin` });
    if (path) return { tool, path };
  }
  return undefined;
}

const OPTIONS = "--net pasta or --net slirp4netns (packages passt, slirp4netns) for outbound traffic and -p, --net none, or --net host";

/** --net and -p of a rootless run -> the network request, with the user-mode stack to start (if any). */
export function rootlessNetwork(mode: string | undefined, publish: string[], pod: string | undefined): NetworkRequest & { rootless?: RootlessNetRequest } {
  const ports = publish.map(parsePublish);
  if (pod !== undefined) {
    // the pod's network namespace (and its user-mode stack) is the member's
    if (mode !== undefined) fail(`--net ${mode} cannot be combined with --pod: a pod's containers share the pod's network`);
    if (ports.length) fail("-p cannot be used with --pod: publish ports on the pod (nsbox pod create -p ...)");
    return { mode: "none", ports: [] };
  }
  if (mode === "bridge") fail(`--net bridge needs root (a bridge, veths and NAT rules on the host): as a user, use ${OPTIONS}`);
  if (mode === "none" || mode === "host") {
    if (ports.length) fail(`-p needs --net pasta or --net slirp4netns as a user (with --net ${mode} there is nothing to publish through)`);
    return { mode, ports: [] };
  }
  if (mode?.startsWith("container:") && mode.length > 10) {
    if (ports.length) fail(`-p cannot be used with --net ${mode}: publish ports on that container`);
    return { mode: "container", target: mode.slice(10), ports: [] };
  }
  if (mode !== undefined && mode !== "pasta" && mode !== "slirp4netns") fail(`invalid --net "${mode}": as a user, use ${OPTIONS}, or container:NAME`);
  const found = findUserNetTool(mode as UserNetTool | undefined);
  const tun = tunProblem();
  if (found && tun) {
    if (mode !== undefined || ports.length) fail(`${mode ? `--net ${mode}` : "-p"}: ${found.tool} ${tun}`);
    noteOnce("no-tun", `rootless containers get --net none: ${found.tool} ${tun}`);
    return { mode: "none", ports: [] };
  }
  if (!found) {
    if (mode !== undefined) fail(`--net ${mode}: ${mode} is not installed (apt-get install ${mode === "pasta" ? "passt" : "slirp4netns"})`);
    if (ports.length) fail("-p as a user needs pasta or slirp4netns, and neither is installed (apt-get install passt, or slirp4netns)");
    noteOnce(
      "no-user-net",
      "neither pasta nor slirp4netns is installed: rootless containers get --net none (install passt or slirp4netns for outbound traffic and -p)",
    );
    return { mode: "none", ports: [] };
  }
  for (const p of ports) if (hostPortInUse(p)) fail(`port ${p.hostPort}/${p.protocol} is already in use on the host: choose another host port`);
  // "none" to the rest of nsbox: its own namespace with lo; the user-mode stack adds the rest
  return { mode: "none", ports: [], rootless: { tool: found.tool, ports } };
}

/** What a started user-mode stack left to release (config.network.userNet; inspect shows it). */
export interface UserNetRecord {
  tool: UserNetTool;
  pid: number;
  start: string;
  ports: PortBinding[];
}

/** The tool's command line for the container whose PID 1 is pid. */
export function userNetArgv(tool: UserNetTool, path: string, pid: number, ports: PortBinding[], apiSocket?: string): string[] {
  if (tool === "slirp4netns")
    // 10.0.2.100 in the container, DNS at 10.0.2.3; the host's loopback stays closed to it.
    // -p goes through its API socket once it runs (slirp4netns has no option for it).
    return [path, "--configure", "--mtu=65520", "--disable-host-loopback", ...(apiSocket ? ["--api-socket", apiSocket] : []), String(pid), "tap0"];
  const spec = (proto: "tcp" | "udp") =>
    ports
      .filter((p) => p.protocol === proto)
      .map((p) => `${p.hostIp && p.hostIp !== "0.0.0.0" ? `${p.hostIp}/` : ""}${p.hostPort}:${p.containerPort}`)
      .join(",") || "none";
  // Only the published ports in (docker's -p), nothing of the host's own ports out
  // (-T/-U none), and the gateway is not the host's loopback (--no-map-gw).
  return [path, "--config-net", "--quiet", "--foreground", "--no-map-gw", "-t", spec("tcp"), "-u", spec("udp"), "-T", "none", "-U", "none", String(pid)];
}

/** True once the namespace of pid has a default route (the stack configured it). */
function hasDefaultRoute(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/net/route`, "utf8")
      .split("\n")
      .slice(1)
      .some((l) => l.split("\t")[1] === "00000000");
  } catch {
    return false;
  }
}

/**
 * Starts the user-mode stack for the container whose PID 1 is pid (its network
 * namespace exists, its id maps are written) and waits, a bounded time, until
 * it has configured the namespace. The stack lives apart from nsbox (a session
 * of its own) until release() ends it with the container.
 */
export async function startUserNet(req: RootlessNetRequest, pid: number, logPath: string): Promise<UserNetRecord> {
  const found = findUserNetTool(req.tool);
  if (!found) throw new NsboxError(`${req.tool} is not installed any more`);
  // (a short name: a unix socket's path has at most 107 bytes)
  const apiSocket = found.tool === "slirp4netns" && req.ports.length ? join(dirname(logPath), "slirp.sock") : undefined;
  const argv = userNetArgv(found.tool, found.path, pid, req.ports, apiSocket);
  // its messages go to a file in the container's state dir: no pipe to nsbox, which may exit first
  const log = openSync(logPath, "a", 0o600);
  let child: ChildProcess;
  // loaded here, not imported: node:child_process and node:net cost milliseconds to evaluate on every start
  const { spawn } = process.getBuiltinModule("node:child_process");
  try {
    child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ["ignore", "ignore", log] });
  } finally {
    closeSync(log);
  }
  const errText = () => {
    try {
      return readFileSync(logPath, "utf8");
    } catch {
      return "";
    }
  };
  let exited: number | null = null;
  child.on("exit", (code) => {
    exited = code ?? 128;
  });
  const start = child.pid === undefined ? undefined : startTime(child.pid);
  if (child.pid === undefined || start === undefined) throw new NsboxError(`cannot start ${found.tool}: ${errText().trim() || "it died at once"}`);
  // 10 ms steps, at most 5 s: the tool needs a few milliseconds
  for (let i = 0; i < 500 && exited === null && !hasDefaultRoute(pid); i++) await Bun.sleep(10);
  if (exited !== null || !hasDefaultRoute(pid)) {
    stopUserNet({ tool: found.tool, pid: child.pid, start, ports: req.ports });
    const why = errText().trim().split("\n").pop() || (exited !== null ? `it exited with status ${exited}` : "it did not configure the network within 5 s");
    throw new NsboxError(`${found.tool} failed for this container: ${why}${req.ports.length ? " (is a published port in use?)" : ""}`);
  }
  if (apiSocket)
    try {
      for (const p of req.ports) await slirpHostFwd(apiSocket, p);
    } catch (e) {
      stopUserNet({ tool: found.tool, pid: child.pid, start, ports: req.ports });
      throw e;
    }
  child.unref();
  return { tool: found.tool, pid: child.pid, start, ports: req.ports };
}

/** One request to slirp4netns' API socket: its answer, parsed (the socket is ready once the namespace is configured). */
function slirpRequest(socketPath: string, request: object): Promise<{ return?: unknown; error?: { desc?: string } }> {
  return new Promise((resolve, reject) => {
    let text = "";
    const sock = process.getBuiltinModule("node:net").connect(socketPath);
    const timer = setTimeout(() => sock.destroy(new Error("no answer within 5 s")), 5000);
    sock.on("connect", () => sock.end(JSON.stringify(request))); // it answers after our SHUT_WR
    sock.on("data", (d) => {
      text += d.toString();
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`unreadable answer "${text}"`));
      }
    });
  });
}

/** -p HOST:CTR through slirp4netns: a host forward to the container's 10.0.2.100. */
async function slirpHostFwd(socketPath: string, p: PortBinding): Promise<void> {
  const what = `-p ${p.hostIp ? `${p.hostIp}:` : ""}${p.hostPort}:${p.containerPort}/${p.protocol}`;
  let answer: Awaited<ReturnType<typeof slirpRequest>>;
  const request = {
    execute: "add_hostfwd",
    arguments: { proto: p.protocol, host_addr: p.hostIp || "0.0.0.0", host_port: p.hostPort, guest_port: p.containerPort },
  };
  // 20 ms steps, at most 2 s, while the socket is not listening yet
  for (let i = 0; ; i++) {
    try {
      answer = await slirpRequest(socketPath, request);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (i < 100 && (code === "ENOENT" || code === "ECONNREFUSED")) {
        await Bun.sleep(20);
        continue;
      }
      throw new NsboxError(`${what}: slirp4netns' API socket failed: ${(e as Error).message}`);
    }
  }
  if (answer.error || answer.return === undefined)
    throw new NsboxError(`${what}: slirp4netns refused it: ${answer.error?.desc ?? JSON.stringify(answer)} (is the host port in use?)`);
}

/** Ends the stack (if it is still that very process). */
export function stopUserNet(r: UserNetRecord | undefined): void {
  if (!r) return;
  if (!alive({ pid: r.pid, start: r.start })) return;
  try {
    process.kill(r.pid, "SIGTERM");
  } catch {
    // gone meanwhile
  }
}
