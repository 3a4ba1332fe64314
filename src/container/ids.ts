/** Container ids: 64 random hex digits (shown as the first 12), as docker's. */
import { randomHex } from "../state/random.ts";

export const newId = (): string => randomHex(32);
export const shortId = (id: string): string => id.slice(0, 12);
