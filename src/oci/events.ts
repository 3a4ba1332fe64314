/**
 * `events`: runc's event stream for one container, one JSON object a line:
 * {"type":"stats","id":ID,"data":{...}} once with --stats, else every --interval,
 * and {"type":"oom","id":ID} each time the kernel reports an OOM in its cgroup,
 * until the container stops. The OOM sources are runc's (libcontainer/
 * notify_linux.go, notify_v2_linux.go): on v1 an eventfd registered for
 * memory.oom_control through cgroup.event_control (one notice per OOM); on v2 the oom_kill counter of
 * memory.events. Both are polled every OOM_POLL_MS rather than waited on: a read
 * of a non-blocking eventfd and of a counter lose nothing between polls, and the
 * last poll after the container stopped catches the OOM that stopped it.
 */

import { keyed, readCg } from "../cgroup/fsutil.ts";
import { type CgroupRecord, openCgroup } from "../cgroup/index.ts";
import { log } from "../log.ts";
import { closeSync, existsSync, openSync, readSync, writeFileSync } from "../native/fs.ts";
import { eventfd } from "../native/ocisys.ts";
import { join } from "../posixpath.ts";
import { ConfigError } from "./config.ts";
import { mustRecord, type OciRecord, readRecord, statusOf } from "./state.ts";

const OOM_POLL_MS = 100;

function statsEvent(r: OciRecord) {
  const s = r.cgroup ? openCgroup(r.cgroup).stats() : {};
  return {
    type: "stats",
    id: r.id,
    data: {
      cpu: { usage: { total: s.cpuNs ?? 0 } },
      memory: { usage: { usage: s.memoryUsage ?? 0, limit: s.memoryLimit ?? 0 } },
      pids: { current: s.pids ?? 0, limit: s.pidsLimit ?? 0 },
    },
  };
}

/** How many OOMs happened since the last call; close() lets go of the files. */
export interface OomSource {
  take(): number;
  close(): void;
}

/**
 * v1: runc's eventfd on memory.oom_control; its counter is the number of notices
 * since the last read. Removing the cgroup sends one more: as runc, a notice read
 * once cgroup.event_control is gone is that one, not an OOM.
 */
function v1Oom(dir: string): OomSource {
  const efd = eventfd();
  const ofd = openSync(join(dir, "memory.oom_control"), "r");
  try {
    writeFileSync(join(dir, "cgroup.event_control"), `${efd} ${ofd}`);
  } catch (e) {
    closeSync(efd);
    closeSync(ofd);
    throw e;
  }
  const buf = Buffer.alloc(8);
  return {
    take() {
      try {
        const n = readSync(efd, buf, 0, 8, null) === 8 ? Number(buf.readBigUInt64LE()) : 0;
        return n > 0 && !existsSync(join(dir, "cgroup.event_control")) ? n - 1 : n;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") return 0;
        throw e;
      }
    },
    close() {
      closeSync(efd);
      closeSync(ofd);
    },
  };
}

/** v2: the oom_kill counter of memory.events (runc reports when it is non-zero after a change; this, when it grew). */
export function v2Oom(dir: string): OomSource {
  const count = () => keyed(readCg(join(dir, "memory.events")), "oom_kill") ?? 0;
  let seen = count();
  return {
    take() {
      const now = count();
      const n = Math.max(0, now - seen);
      seen = Math.max(seen, now);
      return n;
    },
    close() {},
  };
}

function oomSource(cg: CgroupRecord | undefined, id: string): OomSource | undefined {
  const dir = cg?.version === 2 ? cg.paths.unified : cg?.paths.memory;
  if (!cg || !dir) {
    log.warn(`container ${id} has no memory cgroup: events reports no OOM`);
    return undefined;
  }
  try {
    return cg.version === 2 ? v2Oom(dir) : v1Oom(dir);
  } catch (e) {
    throw new ConfigError(`cannot watch the OOM notices of container ${id} in ${dir}: ${(e as Error).message}`);
  }
}

/** runc's --interval: a duration such as 5s, 500ms, 1m (whole numbers; seconds without a unit), more than 0. */
export function parseInterval(text: string | undefined): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(text ?? "5s");
  const ms = m ? Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60000 : 1000) : 0;
  if (!(ms > 0)) throw new ConfigError(`--interval ${text}: give a duration greater than 0 such as 5s or 500ms`);
  return ms;
}

export async function ociEvents(id: string, once: boolean, intervalText: string | undefined): Promise<void> {
  const r = mustRecord(id);
  if (statusOf(r) === "stopped") throw new ConfigError(`container ${id} is not running`);
  const out = (e: object) => console.log(JSON.stringify(e));
  if (once) return out(statsEvent(r));
  const interval = parseInterval(intervalText);
  const oom = oomSource(r.cgroup, id);
  const oomEvents = () => {
    for (let n = oom?.take() ?? 0; n > 0; n--) out({ type: "oom", id });
  };
  try {
    let nextStats = Date.now() + interval;
    for (;;) {
      // deleted counts as stopped: the stream ends as runc's does when the cgroup goes
      const now = readRecord(id);
      const stopped = !now || statusOf(now) === "stopped";
      oomEvents(); // after the status: an OOM that stopped the container is reported before the stream ends
      if (stopped) return;
      if (Date.now() >= nextStats) {
        out(statsEvent(r));
        nextStats += interval * Math.max(1, Math.ceil((Date.now() - nextStats) / interval));
      }
      await Bun.sleep(Math.min(OOM_POLL_MS, Math.max(1, nextStats - Date.now())));
    }
  } finally {
    oom?.close();
  }
}
