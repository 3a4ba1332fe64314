/**
 * `nsbox ns CONTAINER`: the container's namespaces, lsns-style (type, inode,
 * pid, which containers share each one: what `ls -la /proc/PID/ns` shows).
 * `nsbox ns CONTAINER --bind DIR`: bind-mount /proc/PID/ns/* onto DIR/<type>, so
 * the namespaces outlive the container's processes (as `ip netns add` does);
 * `nsbox ns unbind DIR` undoes it.
 */

import { allViews } from "../container/lifecycle.ts";
import { namespacesOf, sharing } from "../container/namespaces.ts";
import { fail } from "../errors.ts";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { hostMount, hostUmount } from "../native/spawn.ts";
import { join, resolve } from "../posixpath.ts";
import { defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";
import { checkFormat, lookup } from "./common.ts";
import { table } from "./format.ts";

export const nsFlags = {
  container: { type: "positional", description: 'the container, or "unbind"', required: true },
  dir: { type: "positional", description: "with unbind: the directory to undo" },
  bind: { type: "string", description: "bind-mount the namespaces into DIR (one file per type) to keep them alive", valueHint: "DIR" },
  format: { type: "string", description: "table (default) or json", valueHint: "FORMAT" },
} satisfies FlagsDef;

export const nsCommand = defineCommand({
  meta: { name: "ns", description: "List a container's namespaces, or keep them alive with --bind" },
  args: () => toCitty(nsFlags),
});

const MS_BIND = 4096;
const MNT_DETACH = 2;

/** Mount points under dir (from our mountinfo), deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

async function unbind(dirArg: string | undefined): Promise<number> {
  if (!dirArg) fail("nsbox ns unbind needs the directory given to --bind");
  const dir = resolve(dirArg);
  if (!existsSync(join(dir, ".nsbox-ns"))) fail(`${dir} was not made by nsbox ns --bind (no .nsbox-ns marker): not touching it`);
  for (const m of mountsUnder(dir)) {
    const r = hostUmount(m, MNT_DETACH);
    if (r < 0) fail(`cannot unmount ${m}: ${strerror(-r).toLowerCase()}`);
  }
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
  rmdirSync(dir);
  return 0;
}

export async function ns(argv: string[]): Promise<number> {
  const p = parseFlags("ns", argv, nsFlags);
  const [ref, dirArg] = p.positionals as [string, string | undefined];
  if (ref === "unbind") return unbind(dirArg);
  if (dirArg !== undefined) fail(`unexpected argument "${dirArg}" (did you mean --bind ${dirArg}?)`);
  const format = checkFormat(p.flags.format);
  const v = await lookup(ref);
  if (v.status !== "running" || !v.state.init) fail(`container ${ref} is not running: its namespaces are gone (unless kept with --bind)`);
  const pid = v.state.init.pid;
  const list = namespacesOf(pid);
  const bindDir = str(p.flags.bind);
  if (bindDir !== undefined) {
    // resolve("") is the current directory: an empty variable must not bind there
    if (bindDir.trim() === "") fail("--bind needs a directory, e.g.: nsbox ns web --bind /run/web-ns");
    const dir = resolve(bindDir);
    if (existsSync(dir) && !statSync(dir).isDirectory()) fail(`--bind ${dir}: not a directory (give a new or empty directory)`);
    if (existsSync(dir) && readdirSync(dir).length) fail(`--bind ${dir}: the directory must be new or empty`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, ".nsbox-ns"), `${v.id}\n`);
    for (const n of list) {
      // A mount namespace cannot be bound into an older one (a loop the kernel
      // refuses), and the *_for_children links name namespaces already listed.
      if (n.type === "mnt" || n.type.endsWith("_for_children")) continue;
      const target = join(dir, n.type);
      writeFileSync(target, "");
      const r = hostMount(n.path, target, null, MS_BIND);
      if (r < 0) {
        await unbind(dir);
        fail(`cannot bind ${n.path} on ${target}: ${strerror(-r).toLowerCase()}`);
      }
      console.log(`${target} -> ${n.link}`);
    }
    return 0;
  }
  const shared = sharing(allViews());
  const self = new Map(namespacesOf(process.pid).map((n) => [n.type, n.inode]));
  const rows = list.map((n) => {
    const others = (shared.get(n.inode) ?? []).filter((w) => w !== (v.config.name ?? v.id.slice(0, 12)));
    return { type: n.type, inode: n.inode, pid, host: self.get(n.type) === n.inode, sharedWith: others };
  });
  if (format === "json") {
    console.log(JSON.stringify(rows, null, 2));
    return 0;
  }
  console.log(
    table(
      ["TYPE", "INODE", "PID", "SHARED WITH"],
      rows.map((r) => [r.type, String(r.inode), String(r.pid), [r.host ? "host" : "", ...r.sharedWith].filter(Boolean).join(", ") || "-"]),
    ),
  );
  return 0;
}
