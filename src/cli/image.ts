/**
 * `nsbox image ls|inspect|rm|prune|tag|import|save|df|pull`: the image store
 * (src/image/store.ts). Top-level aliases as docker's: `images`, `rmi`.
 * Each action has its own flags and --help.
 */
import { allViews, reconcile } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { importImages } from "../image/archive.ts";
import { normalizeName } from "../image/names.ts";
import { type SaveFormat, saveImage } from "../image/save.ts";
import { type ImageRecord, type ImageStore, openStore } from "../image/store.ts";
import { log } from "../log.ts";
import { isTerminal } from "../tty/relay.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { ago, bytes, printInspect, table } from "./format.ts";

type Action = { description: string; flags: FlagsDef; main: (argv: string[]) => Promise<number> };

const lsFlags = {
  format: { type: "string", description: "table (default) or json", valueHint: "FORMAT" },
  quiet: { type: "boolean", alias: "q", description: "print image ids only" },
} satisfies FlagsDef;
const inspectFlags = {
  images: { type: "positional", description: "images (name[:tag], id, unique id prefix, name@digest)", required: true, multiple: true },
  format: { type: "string", alias: "f", description: "json (default), or a template such as '{{.Config.Cmd}}'", valueHint: "FORMAT" },
} satisfies FlagsDef;
const rmFlags = {
  images: {
    type: "positional",
    description: "images to remove (a name removes that name; the last name or an id removes the image)",
    required: true,
    multiple: true,
  },
  force: { type: "boolean", alias: "f", description: "remove even while containers use the image (their layers stay until they are gone)" },
} satisfies FlagsDef;
const pruneFlags = {} satisfies FlagsDef;
const tagFlags = {
  source: { type: "positional", description: "the image (name, id or digest)", required: true },
  target: { type: "positional", description: "the new name: [REGISTRY/]REPOSITORY[:TAG]", required: true },
} satisfies FlagsDef;
const importFlags = {
  source: { type: "positional", description: "a docker-archive or oci-archive tarball (docker save, podman save), or an OCI layout directory", required: true },
  name: { type: "positional", description: "a name for the image (default: the names in the archive)" },
  quiet: { type: "boolean", alias: "q", description: "print image ids only" },
} satisfies FlagsDef;
const saveFlags = {
  image: { type: "positional", description: "the image (name, id or digest)", required: true },
  output: { type: "string", alias: "o", description: "the archive to write", valueHint: "FILE" },
  format: { type: "string", description: "docker-archive (default, as docker save) or oci-archive", valueHint: "FORMAT" },
} satisfies FlagsDef;
const dfFlags = {
  format: { type: "string", description: "table (default) or json", valueHint: "FORMAT" },
} satisfies FlagsDef;
const pullFlags = {
  image: { type: "positional", description: "the image to pull (see: nsbox pull --help)", required: true },
} satisfies FlagsDef;

/** ids of the containers (any state) whose root is this image */
export function containersUsing(id: string): string[] {
  return allViews()
    .filter((v) => v.config.spec.nsbox.image?.id === id)
    .map((v) => v.config.name ?? v.id.slice(0, 12));
}

/** the layers containers stand on (by short link), so that prune keeps them even after `rm -f` of their image */
function layersInUse(): Set<string> {
  return new Set(allViews().flatMap((v) => v.config.spec.nsbox.image?.lowers ?? []));
}

const shortId = (id: string) => id.replace(/^sha256:/, "").slice(0, 12);

/** progress of long work (reading an archive, unpacking layers), on stderr when it is a terminal */
const progress = (text: string) => {
  if (isTerminal(2)) log.info(text);
};

export function imageJson(store: ImageStore, r: ImageRecord) {
  const cfg = store.imageConfigOf(r.configDigest);
  return {
    Id: r.id,
    RepoTags: store.namesOf(r.id),
    RepoDigests: r.repoDigests,
    Created: cfg.created ?? null,
    Stored: r.stored,
    Architecture: r.architecture,
    Os: r.os,
    Size: store.unpackedSize(r),
    Config: cfg.config ?? {},
    RootFS: { Type: "layers", Layers: r.diffIds },
    Manifest: { Digest: r.manifestDigest, MediaType: r.manifestMediaType, Layers: r.layers },
    Layers: r.layers.map((l) => store.layerDir(l.digest)),
  };
}

const actions: Record<string, Action> = {
  ls: {
    description: "List images in the store",
    flags: lsFlags,
    async main(argv) {
      const p = parseFlags("image ls", argv, lsFlags);
      const format = checkFormat(p.flags.format);
      const store = openStore();
      const images = store.images();
      if (bool(p.flags.quiet)) {
        for (const r of images) console.log(shortId(r.id));
        return 0;
      }
      const rows = images.flatMap((r) => {
        const names = store.namesOf(r.id);
        const created = store.imageConfigOf(r.configDigest).created;
        return (names.length ? names : ["<none>:<none>"]).map((n) => {
          const colon = n.lastIndexOf(":");
          return { Repository: n.slice(0, colon), Tag: n.slice(colon + 1), Id: r.id, Created: created ?? "", Size: store.unpackedSize(r) };
        });
      });
      if (format === "json") console.log(JSON.stringify(rows, null, 2));
      else
        console.log(
          table(
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            rows.map((r) => [r.Repository, r.Tag, shortId(r.Id), ago(r.Created || undefined), bytes(r.Size)]),
          ),
        );
      return 0;
    },
  },
  inspect: {
    description: "Show images' records and configs as JSON",
    flags: inspectFlags,
    async main(argv) {
      const p = parseFlags("image inspect", argv, inspectFlags);
      const store = openStore();
      printInspect(
        p.positionals.map((ref) => imageJson(store, store.mustFind(ref))),
        str(p.flags.format),
      );
      return 0;
    },
  },
  rm: {
    description: "Remove images (refused while a container uses one, unless -f)",
    flags: rmFlags,
    async main(argv) {
      const p = parseFlags("image rm", argv, rmFlags);
      const store = openStore();
      await reconcile();
      let rc = 0;
      for (const ref of p.positionals) {
        try {
          const r = await store.remove(ref, { force: bool(p.flags.force), inUse: containersUsing });
          for (const n of r.untagged) console.log(`Untagged: ${n}`);
          if (r.deleted) console.log(`Deleted: ${r.deleted}`);
        } catch (e) {
          log.error((e as Error).message);
          rc = 125;
        }
      }
      return rc;
    },
  },
  prune: {
    description: "Remove untagged images no container uses, then layers and blobs no image uses",
    flags: pruneFlags,
    async main(argv) {
      parseFlags("image prune", argv, pruneFlags);
      const store = openStore();
      await reconcile();
      const r = await store.prune({ inUse: containersUsing, keepLayers: layersInUse() });
      for (const id of r.images) console.log(`Deleted: ${id}`);
      console.log(`Removed ${r.layers} layer${r.layers === 1 ? "" : "s"} and ${r.blobs} blob${r.blobs === 1 ? "" : "s"}: ${bytes(r.bytes)} reclaimed`);
      return 0;
    },
  },
  tag: {
    description: "Give an image another name",
    flags: tagFlags,
    async main(argv) {
      const p = parseFlags("image tag", argv, tagFlags);
      const store = openStore();
      const r = store.mustFind(p.positionals[0] as string);
      await store.tag(r.id, p.positionals[1] as string);
      return 0;
    },
  },
  import: {
    description: "Import images from a docker-archive or oci-archive tarball, or an OCI layout directory",
    flags: importFlags,
    async main(argv) {
      const p = parseFlags("image import", argv, importFlags);
      // a bad NAME is refused before anything is read or stored (an empty one was stored as "")
      if (p.positionals[1] !== undefined) normalizeName(p.positionals[1]);
      const store = openStore();
      const quiet = bool(p.flags.quiet);
      const recs = await importImages(store, p.positionals[0] as string, { name: p.positionals[1], progress: quiet ? undefined : progress });
      for (const r of recs) {
        const names = store.namesOf(r.id);
        console.log(quiet ? r.id : `Loaded image: ${r.id}${names.length ? ` ${names.join(" ")}` : ""}`);
      }
      return 0;
    },
  },
  save: {
    description: "Write an image to an archive that docker load and podman load read",
    flags: saveFlags,
    async main(argv) {
      const p = parseFlags("image save", argv, saveFlags);
      const out = str(p.flags.output);
      if (!out) fail('"nsbox image save" needs -o FILE: the archive to write');
      const format = (str(p.flags.format) ?? "docker-archive") as SaveFormat;
      if (format !== "docker-archive" && format !== "oci-archive") fail(`invalid --format "${format}": use docker-archive or oci-archive`);
      const store = openStore();
      const ref = p.positionals[0] as string;
      const r = store.mustFind(ref);
      const names = store.namesOf(r.id);
      // the name asked for first, as docker save writes it
      let asked: string | undefined;
      try {
        asked = normalizeName(ref);
      } catch {
        asked = undefined;
      }
      const first = names.find((n) => n === asked);
      await saveImage(store, r, first ? [first, ...names.filter((n) => n !== first)] : names, out, format);
      return 0;
    },
  },
  df: {
    description: "Disk used by the image store: blobs and unpacked layers (shared layers counted once)",
    flags: dfFlags,
    async main(argv) {
      const p = parseFlags("image df", argv, dfFlags);
      const format = checkFormat(p.flags.format);
      const store = openStore();
      const u = store.usage();
      const row = { Images: store.images().length, Blobs: u.blobs, Layers: u.layers, Total: u.total };
      if (format === "json") console.log(JSON.stringify(row, null, 2));
      else console.log(table(["IMAGES", "BLOBS", "LAYERS", "TOTAL"], [[String(row.Images), bytes(u.blobs), bytes(u.layers), bytes(u.total)]]));
      return 0;
    },
  },
  pull: {
    description: "Pull an image from a registry (as nsbox pull)",
    flags: pullFlags,
    async main(argv) {
      const { pull } = await import("./pull.ts");
      return pull(argv);
    },
  },
};

/** Each action's flags, by action (the chaos fuzzer draws from them). */
export const imageActionFlags: Record<string, FlagsDef> = Object.fromEntries(Object.entries(actions).map(([k, a]) => [k, a.flags]));

export const imageFlags = {
  action: { type: "positional", description: `${Object.keys(actions).join(", ")} (see: nsbox image ACTION --help)`, required: true },
} satisfies FlagsDef;

export const imageCommand = defineCommand({
  meta: { name: "image", description: "Manage images: list, inspect, remove, prune, tag, import, save" },
  args: () => toCitty(imageFlags),
  subCommands: Object.fromEntries(Object.entries(actions).map(([k, a]) => [k, actionCommand(k, a)])),
});

function actionCommand(name: string, a: Action) {
  return defineCommand({ meta: { name, description: a.description }, args: () => toCitty(a.flags) });
}

export async function image(argv: string[]): Promise<number> {
  const name = argv[0];
  if (name === undefined || name.startsWith("-")) fail(`"nsbox image" needs an action: ${Object.keys(actions).join(", ")} (see: nsbox image --help)`);
  const action = actions[name === "list" ? "ls" : name === "remove" ? "rm" : name === "load" ? "import" : name];
  if (!action) fail(`unknown image action "${name}": use ${Object.keys(actions).join(", ")}`);
  const rest = argv.slice(1);
  if (rest.includes("--help") || rest.includes("-h")) {
    const { renderUsage } = await import("citty");
    const text = await renderUsage(actionCommand(name, action), defineCommand({ meta: { name: "nsbox image" } }));
    console.log((isTerminal(1) ? text : text.replace(/\x1b\[[0-9;]*m/g, "")).replace(/[ \t]+$/gm, ""));
    return 0;
  }
  return action.main(rest);
}

/** `nsbox images`: image ls */
export const imagesFlags = lsFlags;
export const imagesCommand = defineCommand({ meta: { name: "images", description: "List images (as nsbox image ls)" }, args: () => toCitty(lsFlags) });
export const images = (argv: string[]) => (actions.ls as Action).main(argv);

/** `nsbox rmi`: image rm */
export const rmiFlags = rmFlags;
export const rmiCommand = defineCommand({ meta: { name: "rmi", description: "Remove images (as nsbox image rm)" }, args: () => toCitty(rmFlags) });
export const rmi = (argv: string[]) => (actions.rm as Action).main(argv);
