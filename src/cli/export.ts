/** `nsbox export CONTAINER -o FILE`: a running container's root filesystem as a tar (see container/export.ts). */
import { exportRoot } from "../container/export.ts";
import { fail, sysMessage } from "../errors.ts";
import { log } from "../log.ts";
import { defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";
import { lookup } from "./common.ts";
import { bytes } from "./format.ts";

export const exportFlags = {
  container: { type: "positional", description: "the container (name, id or unique id prefix); it must be running", required: true },
  output: { type: "string", alias: "o", description: "the tar file to write", valueHint: "FILE" },
} satisfies FlagsDef;

export const exportCommand = defineCommand({
  meta: { name: "export", description: "Write a running container's root filesystem to a tar archive" },
  args: () => toCitty(exportFlags),
});

export async function exportContainer(argv: string[]): Promise<number> {
  const p = parseFlags("export", argv, exportFlags);
  const out = str(p.flags.output);
  if (!out) fail('"nsbox export" needs -o FILE: the tar archive to write');
  const ref = p.positionals[0] as string;
  const v = await lookup(ref);
  const pid = v.state.init?.pid;
  if (v.status !== "running" || !pid)
    fail(`container ${ref} is not running: nsbox removes a container's layer when it exits, so only a running container can be exported`);
  let r: { files: number; bytes: number };
  try {
    r = exportRoot(pid, out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOSPC") fail(`no space left on the device of "${out}": the partial archive was removed`);
    // the cause only: the path in Node's text is the temporary file beside the archive, which the user never named
    if (code) fail(`cannot export container ${ref} to "${out}": ${sysMessage(e)}`);
    throw e;
  }
  log.info(`exported ${r.files} entries (${bytes(r.bytes)} of file data) to ${out}`);
  return 0;
}
