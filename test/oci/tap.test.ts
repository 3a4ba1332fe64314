/** The TAP reader of the runtime-tools runner (pure: no runtime needed). */
import { expect, test } from "bun:test";
import { parseTap } from "../helpers/oci-tap.ts";

test("ok, not ok with its YAML reason, skips and the plan", () => {
  const r = parseTap(
    [
      "TAP version 13",
      "ok 1 - has expected hostname",
      "not ok 2 - memory limit is set correctly",
      "  ---",
      "  {",
      '    "actual": 1,',
      '    "expected": 2',
      "  }",
      "  ...",
      "ok 3 # SKIP linux.sysctl not set",
      "1..3",
    ].join("\n"),
  );
  expect(r).toEqual({
    ok: 2,
    notOk: 1,
    skipped: 1,
    planned: 3,
    failures: [{ line: "memory limit is set correctly", reason: '{"actual": 1, "expected": 2}' }],
  });
});

test("an empty plan and lines that only look like TAP", () => {
  const r = parseTap("TAP version 13\n  ok 1 indented is not a test line\nokay\n1..0\n");
  expect({ ok: r.ok, notOk: r.notOk, planned: r.planned }).toEqual({ ok: 0, notOk: 0, planned: 0 });
});
