/**
 * `--security-opt` as docker takes it: no-new-privileges[=true|false],
 * seccomp=unconfined|PROFILE.json, systempaths=unconfined, label=..., apparmor=...
 * (the "key:value" spelling of old docker versions too).
 */
import { existsSync, readFileSync } from "../native/fs.ts";
import { SecurityError } from "./errors.ts";

export interface SecurityOptions {
  noNewPrivileges: boolean;
  /** "default", "unconfined", or the text of a profile file */
  seccomp: { mode: "default" | "unconfined" } | { mode: "profile"; path: string; text: string };
  /** false with systempaths=unconfined: no masked or read-only paths */
  systemPaths: boolean;
  /** one-line notes for the user (a label nsbox cannot enforce here) */
  notes: string[];
}

function boolValue(opt: string, v: string | undefined): boolean {
  if (v === undefined || v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new SecurityError(`--security-opt ${JSON.stringify(opt)}: the value must be true or false`);
}

/** Whether this kernel enforces an LSM of that name (AppArmor, SELinux). */
function lsmActive(name: string): boolean {
  try {
    return readFileSync("/sys/kernel/security/lsm", "utf8").split(",").includes(name);
  } catch {
    return existsSync(name === "apparmor" ? "/sys/kernel/security/apparmor" : "/sys/fs/selinux/enforce");
  }
}

export function parseSecurityOpts(items: string[]): SecurityOptions {
  const o: SecurityOptions = { noNewPrivileges: false, seccomp: { mode: "default" }, systemPaths: true, notes: [] };
  for (const item of items) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/s.exec(item);
    const key = m?.[1];
    const value = m?.[2];
    switch (key) {
      case "no-new-privileges":
        o.noNewPrivileges = boolValue(item, value);
        break;
      case "seccomp":
        if (!value) throw new SecurityError(`--security-opt ${JSON.stringify(item)}: use seccomp=unconfined or seccomp=/path/to/profile.json`);
        if (value === "unconfined") o.seccomp = { mode: "unconfined" };
        else {
          let text: string;
          try {
            text = readFileSync(value, "utf8");
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            throw new SecurityError(
              `--security-opt seccomp=${value}: cannot read the profile (${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (code ?? String(e))})`,
            );
          }
          o.seccomp = { mode: "profile", path: value, text };
        }
        break;
      case "systempaths":
        if (value !== "unconfined") throw new SecurityError(`--security-opt ${JSON.stringify(item)}: the only value is systempaths=unconfined`);
        o.systemPaths = false;
        break;
      case "label":
      case "apparmor": {
        const lsm = key === "label" ? "selinux" : "apparmor";
        if (!value) throw new SecurityError(`--security-opt ${JSON.stringify(item)}: give a value (${key}=...)`);
        if (value !== "disable" && value !== "unconfined")
          o.notes.push(
            lsmActive(lsm)
              ? `--security-opt ${key}: nsbox does not apply ${lsm === "selinux" ? "SELinux labels" : "AppArmor profiles"} yet; the container runs without one`
              : `--security-opt ${key}: this host does not enforce ${lsm === "selinux" ? "SELinux" : "AppArmor"}, so ${JSON.stringify(value)} changes nothing`,
          );
        break;
      }
      default:
        throw new SecurityError(
          `unknown --security-opt ${JSON.stringify(item)}: nsbox knows no-new-privileges, seccomp=unconfined|PROFILE.json, systempaths=unconfined, label=..., apparmor=...`,
        );
    }
  }
  return o;
}
