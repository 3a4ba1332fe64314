/** `nsbox ps [-a] [-q] [--format json]`: list containers. */
import { defineCommand } from "citty";
import { shortId } from "../container/ids.ts";
import { allViews, type ContainerView, reconcile } from "../container/lifecycle.ts";
import { bool, type FlagsDef, parseFlags, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { ago, humanDuration, table } from "./format.ts";

export const psFlags = {
  all: { type: "boolean", alias: "a", description: "show all containers (running ones only by default)" },
  quiet: { type: "boolean", alias: "q", description: "print only the ids" },
  "no-trunc": { type: "boolean", description: "do not shorten ids and commands" },
  format: { type: "string", description: "table (default) or json (one object per line)", valueHint: "FORMAT" },
} satisfies FlagsDef;

export const psCommand = defineCommand({ meta: { name: "ps", description: "List containers" }, args: toCitty(psFlags) });

export function statusText(v: ContainerView, now = Date.now()): string {
  if (v.status === "running") return `Up ${humanDuration(now - Date.parse(v.state.startedAt ?? v.config.created))}`;
  if (v.status === "created") return "Created";
  const e = v.exit;
  return `Exited (${e?.code ?? "?"}) ${ago(e?.finishedAt, now)}${e?.oomKilled ? " (OOM killed)" : ""}`;
}

export function psJson(v: ContainerView) {
  return {
    ID: v.id,
    Names: v.config.name ?? "",
    Rootfs: v.config.rootfs,
    Command: v.config.spec.process.args.join(" "),
    CreatedAt: v.config.created,
    State: v.status,
    Status: statusText(v),
    ExitCode: v.exit?.code ?? null,
    Pid: v.status === "running" ? (v.state.init?.pid ?? 0) : 0,
    Ports: portsText(v),
    Pod: v.config.pod ?? "",
  };
}

export function portsText(v: ContainerView): string {
  const ports = (v.config.network as { ports?: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[] } | undefined)?.ports ?? [];
  return ports.map((p) => `${p.hostIp || "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(", ");
}

export async function ps(argv: string[]): Promise<number> {
  const p = parseFlags("ps", argv, psFlags);
  const format = checkFormat(p.flags.format);
  await reconcile();
  const views = allViews().filter((v) => bool(p.flags.all) || v.status === "running");
  const full = bool(p.flags["no-trunc"]);
  if (bool(p.flags.quiet)) {
    for (const v of views) console.log(full ? v.id : shortId(v.id));
    return 0;
  }
  if (format === "json") {
    for (const v of views) console.log(JSON.stringify(psJson(v)));
    return 0;
  }
  const now = Date.now();
  const cmd = (v: ContainerView) => {
    const c = JSON.stringify(v.config.spec.process.args.join(" "));
    return full || c.length <= 22 ? c : `${c.slice(0, 19)}…"`;
  };
  const rows = views.map((v) => [
    full ? v.id : shortId(v.id),
    v.config.rootfs,
    cmd(v),
    ago(v.config.created, now),
    statusText(v, now),
    v.status === "running" ? String(v.state.init?.pid ?? "") : "",
    portsText(v),
    v.config.name ?? "",
  ]);
  console.log(table(["CONTAINER ID", "ROOTFS", "COMMAND", "CREATED", "STATUS", "PID", "PORTS", "NAMES"], rows));
  return 0;
}
