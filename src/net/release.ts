/** Releasing a container's network resources (addresses, port rules, veth). */
import type { ContainerConfig } from "../state/store.ts";
import { type NetworkRecord, releaseBridge } from "./setup.ts";

export async function releaseNetwork(config: ContainerConfig, quick = false): Promise<void> {
  await releaseBridge(config.id, config.network as NetworkRecord | undefined, quick);
}
