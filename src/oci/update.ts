/**
 * `update`: new cgroup limits for a running container, from --resources FILE,
 * an OCI linux.resources object, or runc's flags.
 */

import { CgroupError } from "../cgroup/index.ts";
import { applyV1 } from "../cgroup/v1.ts";
import { applyV2 } from "../cgroup/v2.ts";
import type { Resources } from "../config/spec.ts";
import { sysMessage } from "../errors.ts";
import { readFileSync } from "../native/fs.ts";
import { parseJsonExact } from "../security/seccomp/json.ts";
import { ConfigError, parseResources } from "./config.ts";
import { mustRecord, statusOf } from "./state.ts";

export interface UpdateFlags {
  resources?: string;
  memory?: string;
  "memory-swap"?: string;
  "memory-reservation"?: string;
  "cpu-quota"?: string;
  "cpu-period"?: string;
  "cpu-share"?: string;
  "cpuset-cpus"?: string;
  "cpuset-mems"?: string;
  "pids-limit"?: string;
  "blkio-weight"?: string;
}

const num = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const m = /^(-?\d+)([kmg]?)b?$/i.exec(v.trim());
  if (!m) throw new ConfigError(`--${flag} ${v}: give a number (bytes may end in k, m or g)`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
};

function fromFlags(f: UpdateFlags): Resources {
  const res: Resources = {};
  const mem = { limit: num("memory", f.memory), swap: num("memory-swap", f["memory-swap"]), reservation: num("memory-reservation", f["memory-reservation"]) };
  if (Object.values(mem).some((x) => x !== undefined)) res.memory = mem;
  const cpu = {
    quota: num("cpu-quota", f["cpu-quota"]),
    period: num("cpu-period", f["cpu-period"]),
    shares: num("cpu-share", f["cpu-share"]),
    cpus: f["cpuset-cpus"],
    mems: f["cpuset-mems"],
  };
  if (Object.values(cpu).some((x) => x !== undefined)) res.cpu = cpu;
  const pids = num("pids-limit", f["pids-limit"]);
  if (pids !== undefined) res.pids = { limit: pids };
  const w = num("blkio-weight", f["blkio-weight"]);
  if (w !== undefined) res.blockIO = { weight: w };
  return res;
}

export function ociUpdate(id: string, f: UpdateFlags): void {
  const r = mustRecord(id);
  const status = statusOf(r);
  if (status === "stopped") throw new ConfigError(`cannot update container ${id}: it is stopped`);
  let res: Resources;
  if (f.resources) {
    let data: unknown;
    try {
      data = parseJsonExact(f.resources === "-" ? readFileSync(0, "utf8") : readFileSync(f.resources, "utf8"), f.resources);
    } catch (e) {
      throw new ConfigError(
        `update --resources ${f.resources}: ${(e as NodeJS.ErrnoException).code ? `cannot read it: ${sysMessage(e)}` : (e as Error).message}`,
      );
    }
    try {
      const p = parseResources(data);
      if (p.unified) throw new ConfigError("config.json: linux.resources.unified is not supported by update");
      // (create writes these on v1; update does not)
      for (const v1 of p.v1Files ?? [])
        throw new ConfigError(`config.json: ${v1.what} is not supported by update: recreate the container with it in config.json`);
      res = p.resources ?? {};
    } catch (e) {
      throw new ConfigError((e as Error).message.replace(/^config\.json: linux\.resources\.?/, `update --resources ${f.resources}: `));
    }
  } else res = fromFlags(f);
  if (res.devices) throw new ConfigError("update cannot change the device rules of a running container");
  const cg = r.cgroup;
  if (!cg) throw new ConfigError(`container ${id} has no cgroup`);
  try {
    if (cg.version === 2) applyV2(cg.paths.unified as string, res);
    else {
      const need: [unknown, string][] = [
        [res.memory, "memory"],
        [res.cpu?.quota ?? res.cpu?.period ?? res.cpu?.shares, "cpu"],
        [res.cpu?.cpus ?? res.cpu?.mems, "cpuset"],
        [res.pids, "pids"],
        [res.blockIO, "blkio"],
      ];
      for (const [v, c] of need)
        if (v !== undefined && !cg.paths[c])
          throw new ConfigError(`cannot update container ${id}: its cgroup has no ${c} controller (it was created without ${c} limits)`);
      applyV1(cg.paths, res);
    }
  } catch (e) {
    if (e instanceof CgroupError) throw new ConfigError(e.message);
    throw e;
  }
}
