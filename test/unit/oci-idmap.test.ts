/** config.json's idmapped mounts as parsed: the OCI fields, runc's idmap/ridmap, crun's idmap=uids=...;gids=... */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/oci/config.ts";

// biome-ignore lint/suspicious/noExplicitAny: a config.json fragment
function parse(mount: Record<string, unknown>, edit: (c: any) => void = () => {}) {
  const c = {
    ociVersion: "1.2.0",
    root: { path: "/" },
    process: { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } },
    mounts: [{ destination: "/data", type: "bind", source: "/tmp", ...mount }],
    linux: {
      namespaces: [{ type: "mount" }, { type: "user" }],
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }],
    },
  };
  edit(c);
  return parseConfig(c, "/");
}
const maps = (uid: number, host: number) => [{ containerID: uid, hostID: host, size: 1 }];

// (idmapped mounts are refused to a caller who is not root)
describe.skipIf(process.getuid?.() !== 0)("idmapped mounts", () => {
  test("uidMappings/gidMappings: the mount's own; the idmap word leaves the mount's options", () => {
    const b = parse({ options: ["rbind", "ro", "idmap"], uidMappings: maps(1, 2), gidMappings: maps(3, 4) });
    expect(b.idmapped).toHaveLength(1);
    expect(b.idmapped[0]).toMatchObject({ at: "mounts[0]", uidMappings: maps(1, 2), gidMappings: maps(3, 4), recursive: false });
    expect(b.spec.mounts[0]?.options).toEqual(["rbind", "ro"]);
  });

  test("a bare ridmap takes the container's mappings (left undefined here)", () => {
    const r = parse({ options: ["rbind", "ridmap"] }).idmapped[0];
    expect(r).toMatchObject({ recursive: true });
    expect(r?.uidMappings).toBeUndefined();
  });

  test("crun's idmap=uids=...;gids=..., with @ relative to the container's mappings", () => {
    const r = parse({ options: ["rbind", "idmap=uids=@1000-0-1#5-7-2;gids=1000-9-1"] }).idmapped[0];
    expect(r?.uidMappings).toEqual([
      { containerID: 1000, hostID: 100000, size: 1 },
      { containerID: 5, hostID: 7, size: 2 },
    ]);
    expect(r?.gidMappings).toEqual(maps(1000, 9));
  });

  test("refusals name the mount", () => {
    expect(() => parse({ options: ["idmap=uids=1-2"] })).toThrow('mounts[0].options "1-2" in "idmap=uids=1-2" must be FROM-TO-COUNT');
    expect(() => parse({ options: ["idmap=uids=@0-70000-1;gids=0-1-1"] })).toThrow("the container's uid 70000 has no mapping");
    expect(() => parse({ options: ["idmap=uids=1-2-1;gids=1-2-1"], uidMappings: maps(1, 2), gidMappings: maps(1, 2) })).toThrow("give one");
    expect(() => parse({ options: ["idmap", "ridmap"] })).toThrow("give one of idmap and ridmap");
    expect(() => parse({ options: ["idmap"] }, (c) => (c.linux = { namespaces: [{ type: "mount" }] }))).toThrow("there is no user namespace");
  });
});
