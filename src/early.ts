/**
 * The first of nsbox's modules to run: main.ts imports it before any other, so
 * that its top level runs before the rest of the program is even evaluated.
 *
 * A command that will move a process into a cgroup (run, exec, OCI create) starts the
 * kernel's wait for that move here (see warmCgroupMoves: an RCU grace period of
 * 4-15 ms on this kind of host), so that it passes while the modules load.
 */
import { warmCgroupMoves } from "./cgroup/warm.ts";
import { some } from "./list.ts";
import { withoutDashes } from "./text.ts";
import { mark } from "./trace.ts";

const WITH_VALUE = new Set(["root", "state", "log", "log-format"]);

/** The command word: the first argument that is neither a flag nor the value of --root/--state/--log/--log-format. */
function verb(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith("-") && WITH_VALUE.has(withoutDashes(a))) i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

/** `--cgroup-manager none` anywhere on the line (a container's own argument too: then only the warm-up is skipped). */
function withoutCgroups(argv: string[]): boolean {
  return some(argv, (a, i) => a === "--cgroup-manager=none" || (a === "--cgroup-manager" && argv[i + 1] === "none"));
}

const argv = process.argv.slice(2);
const command = verb(argv);
// (create: the OCI runtime's, podman's and containerd's way in; nsbox's own CLI has no create)
const moves = command === "run" || command === "exec" || command === "create";
// Called only when used: the warm-up loads the helper (a dlopen), which the other
// commands' start does without. Its module is imported statically, not with a
// top-level await of import(): a start that makes no import() holds ~0.7 MiB less
// and is ~2.7 ms faster (see the commands table in main.ts).
if (moves && process.getuid?.() === 0 && !withoutCgroups(argv)) {
  try {
    if (warmCgroupMoves()) mark("cgroup move warm-up started");
  } catch {
    // only a speed-up: whatever failed here (the helper's load, the cgroup
    // mounts) fails again at the step that needs it, and is reported there
  }
}
