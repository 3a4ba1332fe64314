/**
 * /etc/hosts, /etc/hostname and /etc/resolv.conf for a container, written to its
 * state dir and bind-mounted over the rootfs' own (as docker does), so the
 * rootfs is never changed and the files go with the container.
 */

import type { Mount } from "../config/spec.ts";
import { filter, map } from "../list.ts";
import { readFileSync, writeFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { nameserverOf } from "../text.ts";

/** The host's resolvers, without loopback ones (a stub resolver on 127.0.0.53 is not reachable from the container). */
export function resolvConf(hostNetwork: boolean): string {
  let text = "";
  for (const f of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    if (hostNetwork) return text;
    const servers = filter(text.split("\n"), (l) => {
      const server = nameserverOf(l);
      return server !== undefined && !server.startsWith("127.") && !server.startsWith("::1");
    });
    if (servers.length)
      return `${filter(text.split("\n"), (l) => nameserverOf(l) === undefined)
        .join("\n")
        .trim()}\n${servers.join("\n")}\n`.trimStart();
  }
  return "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
}

export function writeEtcFiles(dir: string, hostname: string, ip: string | undefined, hostNetwork: boolean): Mount[] {
  const hosts = hostNetwork
    ? readFileSync("/etc/hosts", "utf8")
    : [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        `${ip ?? "127.0.1.1"}\t${hostname}`,
        "",
      ].join("\n");
  writeFileSync(join(dir, "hosts"), hosts);
  writeFileSync(join(dir, "hostname"), `${hostname}\n`);
  writeFileSync(join(dir, "resolv.conf"), resolvConf(hostNetwork));
  return etcMounts(dir);
}

export function etcMounts(dir: string): Mount[] {
  return map(["hosts", "hostname", "resolv.conf"], (f) => ({
    destination: `/etc/${f}`,
    type: "bind",
    source: join(dir, f),
    options: ["bind", "nosuid", "nodev", "noexec"],
  }));
}
