/** `nsbox stop`, `nsbox kill`, `nsbox rm`, `nsbox wait`: the end of a container's life. */
import { parseSeconds } from "../config/units.ts";
import { parseSignal, removeContainer, signalInit, stopContainer, waitExit } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";
import { eachRef, lookup } from "./common.ts";

const refs = { containers: { type: "positional", description: "containers (names, ids or unique id prefixes)", required: true } } as const;

export const stopFlags = {
  ...refs,
  time: { type: "string", alias: "t", description: "seconds to wait after SIGTERM before SIGKILL (default 10)", valueHint: "SECONDS" },
} satisfies FlagsDef;
export const killFlags = {
  ...refs,
  signal: { type: "string", alias: "s", description: "the signal to send (default KILL)", valueHint: "SIGNAL" },
} satisfies FlagsDef;
export const rmFlags = { ...refs, force: { type: "boolean", alias: "f", description: "kill a running container first" } } satisfies FlagsDef;
export const waitFlags = { ...refs } satisfies FlagsDef;

export const stopCommand = defineCommand({
  meta: { name: "stop", description: "Stop containers: SIGTERM, then SIGKILL after a timeout" },
  args: () => toCitty(stopFlags),
});
export const killCommand = defineCommand({ meta: { name: "kill", description: "Send a signal to containers' PID 1" }, args: () => toCitty(killFlags) });
export const rmCommand = defineCommand({ meta: { name: "rm", description: "Remove containers (and their logs and state)" }, args: () => toCitty(rmFlags) });
export const waitCommand = defineCommand({
  meta: { name: "wait", description: "Wait for containers to exit and print their exit codes" },
  args: () => toCitty(waitFlags),
});

const many = (command: string, argv: string[], defs: FlagsDef) => {
  const p = parseFlags(command, argv, { ...defs, containers: { ...refs.containers, multiple: true } });
  return { p, refs: p.positionals };
};

export async function stop(argv: string[]): Promise<number> {
  const { p, refs: names } = many("stop", argv, stopFlags);
  const t = parseSeconds(str(p.flags.time) ?? "10", "--time");
  return eachRef(names, async (ref) => {
    await stopContainer(await lookup(ref), t);
    console.log(ref);
  });
}

export async function kill(argv: string[]): Promise<number> {
  const { p, refs: names } = many("kill", argv, killFlags);
  const sig = parseSignal(str(p.flags.signal) ?? "KILL");
  return eachRef(names, async (ref) => {
    const v = await lookup(ref);
    if (v.status !== "running") fail(`container ${ref} is not running`);
    if (!signalInit(v, sig)) fail(`cannot signal container ${ref}: it is no longer running`);
    console.log(ref);
  });
}

export async function rm(argv: string[]): Promise<number> {
  const { p, refs: names } = many("rm", argv, rmFlags);
  return eachRef(names, async (ref) => {
    const v = await lookup(ref);
    await removeContainer(v.id, bool(p.flags.force));
    console.log(ref);
  });
}

export async function wait(argv: string[]): Promise<number> {
  const { refs: names } = many("wait", argv, waitFlags);
  return eachRef(names, async (ref) => {
    const v = await lookup(ref);
    const e = await waitExit(v.id);
    console.log(e.code);
  });
}
