/** Releasing a container's network resources (addresses, port rules, veth). */
import type { ContainerConfig } from "../state/store.ts";
import { bridgeSetup, type NetworkRecord } from "./request.ts";

export async function releaseNetwork(config: ContainerConfig, quick = false): Promise<void> {
  const rec = config.network as NetworkRecord | undefined;
  if (rec?.mode === "bridge") await (await bridgeSetup()).releaseBridge(config.id, rec, quick);
}
