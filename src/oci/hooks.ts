/**
 * OCI hooks: each runs with the container's state JSON on its stdin, with its
 * own argv (args[0] included) and exactly its env, and is killed after its
 * timeout. A failing hook fails create/start (prestart, createRuntime,
 * createContainer, startContainer); poststart and poststop failures are warnings,
 * as the runtime-spec says.
 */

import { log } from "../log.ts";
import { ConfigError, type Hook, type HookKind, type Hooks } from "./config.ts";

export async function runHooks(hooks: Hooks, kind: HookKind, state: object): Promise<void> {
  const list = hooks[kind] ?? [];
  for (const [i, h] of list.entries()) {
    try {
      await runHook(h, state);
    } catch (e) {
      const msg = `${kind} hook ${i} (${h.path}) failed: ${(e as Error).message}`;
      if (kind === "poststart" || kind === "poststop") log.warn(msg);
      else throw new ConfigError(msg);
    }
  }
}

async function runHook(h: Hook, state: object): Promise<void> {
  const env = Object.fromEntries(
    (h.env ?? []).map((e) => [e.slice(0, e.indexOf("=") < 0 ? e.length : e.indexOf("=")), e.includes("=") ? e.slice(e.indexOf("=") + 1) : ""]),
  );
  const args = h.args?.length ? h.args : [h.path];
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn({ cmd: [h.path, ...args.slice(1)], argv0: args[0], env, stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  } catch (e) {
    throw new Error((e as Error).message);
  }
  // A hook need not read its stdin: one that exits first makes the write fail
  // with EPIPE, which says nothing about the hook (Go's exec, hence runc, ignores it too).
  const stdin = proc.stdin as import("bun").FileSink;
  try {
    stdin.write(JSON.stringify(state));
    await stdin.end();
  } catch {
    // the hook's status below is what counts
  }
  let timedOut = false;
  const timer = h.timeout
    ? setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, h.timeout * 1000)
    : undefined;
  const code = await proc.exited;
  if (timer) clearTimeout(timer);
  if (timedOut) throw new Error(`timed out after ${h.timeout}s`);
  if (code !== 0) {
    const err = (await new Response(proc.stderr as ReadableStream).text()).trim().split("\n").pop() ?? "";
    throw new Error(`exit status ${code}${err ? `: ${err}` : ""}`);
  }
}
