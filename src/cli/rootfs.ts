/** `nsbox rootfs busybox DIR`: build the default busybox rootfs. */
import { fail } from "../errors.ts";
import { log as consola } from "../log.ts";
import { buildBusyboxRootfs } from "../rootfs/busybox.ts";
import { defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";

export const rootfsFlags = {
  kind: { type: "positional", description: "what to build: busybox", required: true },
  dir: { type: "positional", description: "a new (or empty) directory to build it in", required: true },
  busybox: { type: "string", description: "the static busybox to use (default: /bin/busybox from Debian's busybox-static)", valueHint: "PATH" },
} satisfies FlagsDef;

export const rootfsCommand = defineCommand({
  meta: { name: "rootfs", description: "Build a root filesystem: nsbox rootfs busybox DIR" },
  args: () => toCitty(rootfsFlags),
});

export async function rootfs(argv: string[]): Promise<number> {
  const p = parseFlags("rootfs", argv, rootfsFlags);
  const [kind, dir] = p.positionals;
  if (kind !== "busybox") fail(`unknown rootfs kind "${kind ?? ""}": nsbox can build "busybox" (nsbox rootfs busybox DIR)`);
  if (!dir) fail("nsbox rootfs busybox needs a directory: nsbox rootfs busybox DIR");
  const busybox = str(p.flags.busybox);
  if (busybox === "") fail('invalid --busybox "": give the path of a static busybox (or leave the flag out for /bin/busybox)');
  const r = buildBusyboxRootfs(dir, busybox);
  consola.success(`built a busybox rootfs in ${dir} (${r.applets} applets from ${r.busybox})`);
  return 0;
}
