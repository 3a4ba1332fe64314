/** Output helpers shared by the listing commands: docker's human durations, tables. */
import { fail } from "../errors.ts";

/** docker's units.HumanDuration: "Less than a second", "3 seconds", "About a minute", "2 hours"... */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.round(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.round(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.round(h / 24 / 30)} months`;
  return `${Math.round(h / 24 / 365)} years`;
}

export const ago = (iso: string | undefined, now = Date.now()): string => (iso ? `${humanDuration(now - Date.parse(iso))} ago` : "");

/** Columns padded to the widest cell, three spaces apart (as docker prints). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "--";
  if (!Number.isFinite(n)) return "unlimited";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(2)}${units[u]}`;
}

/**
 * The part of docker's Go templates that scripts use with `inspect -f`:
 * `{{.State.Pid}}`, `{{json .Mounts}}`, `{{.}}`, text around them. A scalar
 * prints as is, anything else as JSON. A field that does not exist, or any
 * other action, is an error naming it (Go prints "<no value>" and goes on).
 */
/** inspect's output: a JSON array (no format, or "json"), else the template once per object. */
export function printInspect(objects: unknown[], format: string | undefined): void {
  if (format === undefined || format === "json") console.log(JSON.stringify(objects, null, 2));
  else console.log(objects.map((o) => renderTemplate(format, o)).join("\n"));
}

export function renderTemplate(template: string, value: unknown): string {
  // "{{- " and " -}}" trim the white space before and after the action, as in Go
  const trimmed = template.replace(/\s*\{\{-\s/g, "{{").replace(/\s-\}\}\s*/g, "}}");
  return trimmed.replace(/\{\{\s*(.*?)\s*\}\}/g, (_, action: string) => evaluate(action, value));
}

function evaluate(action: string, value: unknown): string {
  const m = /^(json\s+)?(\.[A-Za-z0-9_.]*)$/.exec(action);
  if (!m) fail(`unsupported template action {{${action}}} in --format: nsbox knows {{.Field.Sub}}, {{json .Field}} and {{.}}`);
  let v: unknown = value;
  let walked = "";
  for (const key of (m[2] as string).split(".").filter(Boolean)) {
    if (v === null || typeof v !== "object" || !(key in v)) {
      const have = v !== null && typeof v === "object" ? Object.keys(v).join(", ") : "none: it is not an object";
      fail(`--format: ${walked || "the output"} has no field "${key}" (fields: ${have})`);
    }
    v = (v as Record<string, unknown>)[key];
    walked += `.${key}`;
  }
  if (m[1] || (v !== null && typeof v === "object")) return JSON.stringify(v);
  return v === null || v === undefined ? "<nil>" : String(v);
}
