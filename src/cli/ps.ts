/** `nsbox ps [-a] [-q] [-f KEY=VALUE] [--format json]`: list containers. */
import { shortId } from "../container/ids.ts";
import { allViews, type ContainerView, reconcile } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { bool, defineCommand, type FlagsDef, list, parseFlags, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { ago, humanDuration, table } from "./format.ts";

export const psFlags = {
  all: { type: "boolean", alias: "a", description: "show all containers (running ones only by default)" },
  quiet: { type: "boolean", alias: "q", description: "print only the ids" },
  "no-trunc": { type: "boolean", description: "do not shorten ids and commands" },
  format: { type: "string", description: "table (default) or json (one object per line)", valueHint: "FORMAT" },
  filter: {
    type: "string",
    alias: "f",
    multiple: true,
    description: "KEY=VALUE: status (created, running, exited), exited (an exit code), name, id, pod; a key given twice matches either value",
    valueHint: "FILTER",
  },
} satisfies FlagsDef;

export const psCommand = defineCommand({ meta: { name: "ps", description: "List containers" }, args: () => toCitty(psFlags) });

export function statusText(v: ContainerView, now = Date.now()): string {
  if (v.status === "running") return `Up ${humanDuration(now - Date.parse(v.state.startedAt ?? v.config.created))}`;
  if (v.status === "created") return "Created";
  const e = v.exit;
  // a status nobody saw (its monitor died first) is shown as such, not as a guess
  const code = e === undefined || e.waitStatus === -1 ? "unknown" : String(e.code);
  return `Exited (${code}) ${ago(e?.finishedAt, now)}${e?.oomKilled ? " (OOM killed)" : ""}`;
}

export function psJson(v: ContainerView) {
  return {
    ID: v.id,
    Names: v.config.name ?? "",
    Rootfs: v.config.rootfs,
    Image: v.config.spec.nsbox.image?.ref ?? "",
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

const FILTER_KEYS = ["status", "exited", "name", "id", "pod"] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

/** docker ps --filter: values of one key are ORed, keys are ANDed. */
export function parseFilters(args: string[]): Map<FilterKey, string[]> {
  const out = new Map<FilterKey, string[]>();
  for (const a of args) {
    const eq = a.indexOf("=");
    const key = a.slice(0, eq) as FilterKey;
    const value = a.slice(eq + 1);
    if (eq <= 0 || !FILTER_KEYS.includes(key)) fail(`invalid filter "${a}": use KEY=VALUE with KEY one of ${FILTER_KEYS.join(", ")}`);
    if (key === "status" && !["created", "running", "exited"].includes(value)) fail(`invalid filter "${a}": a status is created, running or exited`);
    if (key === "exited" && (!/^\d+$/.test(value) || Number(value) > 255))
      fail(`invalid filter "${a}": exited takes an exit code from 0 to 255, such as exited=0`);
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

function matches(v: ContainerView, filters: Map<FilterKey, string[]>, podNames: Map<string, string>): boolean {
  const test = (key: FilterKey, ok: (value: string) => boolean) => !filters.has(key) || (filters.get(key) as string[]).some(ok);
  const pod = v.config.pod;
  return (
    test("status", (s) => v.status === s) &&
    test("exited", (c) => v.status === "exited" && v.exit?.code === Number(c)) &&
    test("name", (n) => (v.config.name ?? "").includes(n)) &&
    test("id", (i) => v.id.startsWith(i)) &&
    test("pod", (x) => !!pod && (pod.startsWith(x) || podNames.get(pod) === x))
  );
}

export async function ps(argv: string[]): Promise<number> {
  const p = parseFlags("ps", argv, psFlags);
  const format = checkFormat(p.flags.format);
  const filters = parseFilters(list(p.flags.filter));
  await reconcile();
  const all = allViews();
  const podNames = new Map(all.flatMap((v) => (v.config.spec.nsbox.infra ? [[v.id, v.config.spec.nsbox.infra.podName] as const] : [])));
  // as in docker, asking for a status or an exit code looks at every container
  const everyone = bool(p.flags.all) || filters.has("status") || filters.has("exited");
  const views = all.filter((v) => (everyone || v.status === "running") && matches(v, filters, podNames));
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
    // docker's IMAGE column: the image, or the ROOTFS directory or tarball as given
    v.config.spec.nsbox.image?.ref ?? v.config.rootfs,
    cmd(v),
    ago(v.config.created, now),
    statusText(v, now),
    v.status === "running" ? String(v.state.init?.pid ?? "") : "",
    portsText(v),
    v.config.name ?? "",
  ]);
  console.log(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID", "PORTS", "NAMES"], rows));
  return 0;
}
