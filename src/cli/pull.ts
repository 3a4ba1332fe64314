/** `nsbox pull [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [-q] REF`: an image from a registry into the store. */
import { makeProgress } from "../image/progress.ts";
import { pullImage } from "../image/pull.ts";
import { isTerminal } from "../tty/relay.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";

export const pullFlags = {
  image: { type: "positional", description: "the image: [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST]", required: true },
  platform: { type: "string", description: "the platform to pull from a multi-platform image (default: this machine's)", valueHint: "OS/ARCH[/VARIANT]" },
  "tls-verify": { type: "boolean", description: "verify the registry's certificate and refuse plain http (default true; =false as podman)" },
  quiet: { type: "boolean", alias: "q", description: "print only the image id" },
} satisfies FlagsDef;

export const pullCommand = defineCommand({
  meta: { name: "pull", description: "Pull an image from a registry into the image store" },
  args: () => toCitty(pullFlags),
});

export async function pull(argv: string[]): Promise<number> {
  const p = parseFlags("pull", argv, pullFlags);
  const quiet = bool(p.flags.quiet);
  const progress = makeProgress(1, quiet ? "quiet" : isTerminal(1) ? "tty" : "lines", process.stdout.rows || 24);
  const r = await pullImage(p.positionals[0] as string, {
    platform: str(p.flags.platform),
    tlsVerify: p.flags["tls-verify"] === false ? false : undefined,
    quiet,
    progress,
  });
  if (quiet) {
    console.log(r.configDigest);
    return 0;
  }
  console.log(`digest: ${r.indexDigest ?? r.manifestDigest}`);
  console.log(`image: ${r.configDigest} ${r.reference.fullString()}`);
  return 0;
}
