/**
 * TAP as runtime-tools' validation programs print it: "ok N desc", "not ok N
 * desc" (with "# SKIP reason" for skips), each failure followed by an indented
 * YAML block ("  ---" ... "  ...") that holds the reason.
 */
export interface TapResult {
  ok: number;
  notOk: number;
  /** "ok ... # SKIP" lines, counted in ok as TAP does */
  skipped: number;
  /** declared plan ("1..N"), when printed */
  planned?: number;
  /** each failing line with its YAML diagnostic, flattened to one line */
  failures: { line: string; reason: string }[];
}

export function parseTap(text: string): TapResult {
  const r: TapResult = { ok: 0, notOk: 0, skipped: 0, failures: [] };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) r.planned = Number(plan[1]);
    if (/^ok\b/.test(line)) {
      r.ok++;
      if (/#\s*SKIP/i.test(line)) r.skipped++;
    } else if (/^not ok\b/.test(line)) {
      r.notOk++;
      const diag: string[] = [];
      if ((lines[i + 1] ?? "").trim() === "---") {
        for (let j = i + 2; j < lines.length && j < i + 60; j++) {
          const l = (lines[j] as string).trim();
          if (l === "...") break;
          diag.push(l);
        }
      }
      r.failures.push({ line: line.replace(/^not ok \d+\s*-?\s*/, ""), reason: compactYaml(diag.join(" ")) });
    }
  }
  return r;
}

/** The YAML/JSON diagnostic on one short line. */
function compactYaml(s: string): string {
  return s.replace(/\s+/g, " ").replace(/\{ /g, "{").replace(/ \}/g, "}").slice(0, 400);
}
