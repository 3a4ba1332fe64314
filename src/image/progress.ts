/**
 * What `nsbox pull` shows while it works, as docker does:
 *  - on a terminal: one line per layer, redrawn in place (short digest, state,
 *    bytes / total, speed), at most every REDRAW_MS;
 *  - otherwise (a log, a pipe): one line per layer when it is done;
 *  - with -q: nothing (the caller prints the image id).
 */
import { writeSync } from "node:fs";
import type { PullProgress } from "./pull.ts";
import type { Reference } from "./reference.ts";
import { shortDigest } from "./registry/digest.ts";
import type { Descriptor } from "./registry/manifest.ts";

const REDRAW_MS = 100;

export function humanBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

interface Row {
  layer: Descriptor;
  state: "waiting" | "downloading" | "done" | "exists";
  bytes: number;
  started: number;
  ended: number;
}

/** `termRows`: the terminal's height; more layers than fit cannot be redrawn in place, and are shown as lines. */
export function makeProgress(fd: number, wanted: "tty" | "lines" | "quiet", termRows = 24): PullProgress {
  if (wanted === "quiet") return {};
  let mode = wanted;
  const out = (s: string) => writeSync(fd, s);
  const rows = new Map<string, Row>();
  let drawn = 0;
  let last = 0;

  const describe = (r: Row): string => {
    const id = shortDigest(r.layer.digest);
    if (r.state === "exists") return `${id}: already exists`;
    if (r.state === "waiting") return `${id}: waiting`;
    const secs = Math.max((r.state === "done" ? r.ended : Date.now()) - r.started, 1) / 1000;
    const speed = `${humanBytes(r.bytes / secs)}/s`;
    if (r.state === "done") return `${id}: pulled ${humanBytes(r.layer.size)} in ${secs.toFixed(1)} s (${speed})`;
    return `${id}: downloading ${humanBytes(r.bytes)} / ${humanBytes(r.layer.size)} ${speed}`;
  };
  const redraw = (force: boolean) => {
    if (mode !== "tty") return;
    const now = Date.now();
    if (!force && now - last < REDRAW_MS) return;
    last = now;
    // back to the first row, then every row cleared and written again
    let s = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const r of rows.values()) s += `\r\x1b[2K${describe(r)}\n`;
    drawn = rows.size;
    out(s);
  };

  return {
    resolved(ref: Reference, layers: Descriptor[]) {
      out(`pulling ${ref.toString()} (${layers.length} layer${layers.length === 1 ? "" : "s"})\n`);
      if (layers.length > termRows - 2) mode = "lines";
      for (const l of layers) rows.set(l.digest, { layer: l, state: "waiting", bytes: 0, started: 0, ended: 0 });
      redraw(true);
    },
    layerStart(l) {
      const r = rows.get(l.digest);
      if (!r) return;
      r.state = "downloading";
      r.started = Date.now();
      redraw(true);
    },
    layerBytes(l, bytes) {
      const r = rows.get(l.digest);
      if (!r) return;
      r.bytes = bytes;
      redraw(false);
    },
    layerDone(l, existed) {
      const r = rows.get(l.digest);
      if (!r) return;
      r.state = existed ? "exists" : "done";
      r.ended = Date.now();
      r.bytes = l.size;
      if (mode === "lines") out(`${describe(r)}\n`);
      redraw(true);
    },
    finish() {
      redraw(true);
    },
  };
}
