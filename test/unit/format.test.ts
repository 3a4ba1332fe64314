/** The docker-style templates of `inspect -f` (src/cli/format.ts renderTemplate). */
import { describe, expect, test } from "bun:test";
import { renderTemplate } from "../../src/cli/format.ts";

const obj = { Id: "abc", State: { Pid: 42, Running: true, ExitCode: null }, Mounts: [{ destination: "/proc" }], Name: "" };

describe("renderTemplate", () => {
  test("fields, nested fields, text around them", () => {
    expect(renderTemplate("{{.Id}}", obj)).toBe("abc");
    expect(renderTemplate("pid={{.State.Pid}} up={{ .State.Running }}!", obj)).toBe("pid=42 up=true!");
    expect(renderTemplate("[{{.Name}}]", obj)).toBe("[]");
    expect(renderTemplate("{{.State.ExitCode}}", obj)).toBe("<nil>");
    expect(renderTemplate("no action", obj)).toBe("no action");
  });

  test("objects print as JSON; json prints anything as JSON; {{.}} is the whole value", () => {
    expect(renderTemplate("{{.State}}", obj)).toBe('{"Pid":42,"Running":true,"ExitCode":null}');
    expect(renderTemplate("{{json .Mounts}}", obj)).toBe('[{"destination":"/proc"}]');
    expect(renderTemplate("{{json .Id}}", obj)).toBe('"abc"');
    expect(JSON.parse(renderTemplate("{{.}}", obj))).toEqual(obj);
  });

  test("{{- and -}} trim the white space on their side, as in Go", () => {
    expect(renderTemplate("a  {{- .Id -}}  b", obj)).toBe("aabcb");
    expect(renderTemplate("a {{.Id -}} \n b", obj)).toBe("a abcb");
    expect(renderTemplate("{{.Id}} {{- .State.Pid}}", obj)).toBe("abc42");
  });

  test("a missing field names itself and the fields there are; other actions are refused by name", () => {
    expect(() => renderTemplate("{{.State.Nope}}", obj)).toThrow('--format: .State has no field "Nope" (fields: Pid, Running, ExitCode)');
    expect(() => renderTemplate("{{.Nope}}", obj)).toThrow('the output has no field "Nope"');
    expect(() => renderTemplate("{{.Id.x}}", obj)).toThrow('.Id has no field "x" (fields: none: it is not an object)');
    expect(() => renderTemplate("{{range .Mounts}}x{{end}}", obj)).toThrow("unsupported template action {{range .Mounts}}");
    expect(() => renderTemplate("{{index .Mounts 0}}", obj)).toThrow("unsupported template action");
  });
});
