/**
 * When is a command line runc's rather than nsbox's docker-style one? No
 * wrapper script is needed on a server:
 *  - nsbox invoked as `runc` or `nsbox-runc` (make install adds the link);
 *  - runc's global flags before the verb: --log, --log-format, --systemd-cgroup,
 *    --criu (podman and containerd's shim always pass --log);
 *  - a verb nsbox's own CLI lacks (create, start, state, delete, list, spec...);
 *  - `run` or `exec` with --bundle/-b, --process/-p or --console-socket.
 * So `nsbox run ROOTFS CMD` and `nsbox exec CONTAINER CMD` keep their meaning.
 */
/** Verbs nsbox's docker-style CLI lacks: these alone select the runc syntax. */
export const OCI_ONLY_VERBS = ["create", "start", "state", "delete", "list", "ls", "spec", "features", "pause", "resume", "update", "events"];

/** Is this command line runc's rather than nsbox's docker-style one? (see README "nsbox under podman and containerd") */
export function isOciCommandLine(argv: string[], invokedAs: string): boolean {
  if (invokedAs === "runc" || invokedAs === "nsbox-runc") return true;
  const verbAt = argv.findIndex((a, i) => !a.startsWith("-") && !(i > 0 && takesValue(argv[i - 1] as string)));
  const before = verbAt < 0 ? argv : argv.slice(0, verbAt);
  if (before.some((a) => /^--?(log|log-format|systemd-cgroup|criu)(=|$)/.test(a))) return true;
  // --root before the verb is nsbox's too; with a runc verb flag after it, it is runc's
  const verb = verbAt < 0 ? undefined : argv[verbAt];
  if (verb && OCI_ONLY_VERBS.includes(verb)) return true;
  const after = verbAt < 0 ? [] : argv.slice(verbAt + 1);
  if ((verb === "run" || verb === "exec") && after.some((a) => /^(--bundle|-b|--process|-p)(=|$)/.test(a) || /^--console-socket(=|$)/.test(a))) return true;
  return false;
}

function takesValue(flag: string): boolean {
  return /^--?(root|log|log-format|criu|rootless|state)$/.test(flag);
}
