/** -p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], as docker's --publish. */

import { fail } from "../errors.ts";
import { readFileSync } from "../native/fs.ts";
import type { PortBinding } from "./state.ts";

function port(text: string, what: string, flag: string): number {
  if (!/^\d+$/.test(text)) fail(`invalid ${flag}: the ${what} "${text}" is not a number (1-65535)`);
  const n = Number(text);
  if (n < 1 || n > 65535) fail(`invalid ${flag}: the ${what} ${n} is outside 1-65535`);
  return n;
}

export function parsePublish(text: string): PortBinding {
  const flag = `--publish "${text}"`;
  let spec = text;
  let protocol: "tcp" | "udp" = "tcp";
  const slash = spec.lastIndexOf("/");
  if (slash >= 0) {
    const p = spec.slice(slash + 1);
    if (p !== "tcp" && p !== "udp") fail(`invalid ${flag}: the protocol must be tcp or udp`);
    protocol = p;
    spec = spec.slice(0, slash);
  }
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3) fail(`invalid ${flag}: use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. -p 8080:80`);
  const [hostIp, hostPort, containerPort] = parts.length === 3 ? (parts as [string, string, string]) : (["", ...parts] as [string, string, string]);
  if (hostIp && (!/^\d{1,3}(\.\d{1,3}){3}$/.test(hostIp) || hostIp.split(".").some((o) => Number(o) > 255)))
    fail(`invalid ${flag}: the host address "${hostIp}" is not an IPv4 address`);
  return { hostIp, hostPort: port(hostPort, "host port", flag), containerPort: port(containerPort, "container port", flag), protocol };
}

/** True when a process of the host listens on that port (it would be shadowed by the DNAT rule). */
export function hostPortInUse(p: PortBinding): boolean {
  const files = p.protocol === "tcp" ? ["/proc/net/tcp", "/proc/net/tcp6"] : ["/proc/net/udp", "/proc/net/udp6"];
  const hex = p.hostPort.toString(16).toUpperCase().padStart(4, "0");
  for (const f of files) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const state = cols[3];
      if (!local?.endsWith(`:${hex}`)) continue;
      if (p.protocol === "udp" || state === "0A") return true;
    }
  }
  return false;
}
