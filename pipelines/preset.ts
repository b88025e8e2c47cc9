/** A named set of defaults for one data set and model, as the paper trained it. */
import type { RunConfig } from "../src/cli/config.ts";

export interface Preset {
  description: string;
  /** Values that replace the embedded defaults; explicit flags replace these. */
  config: Partial<RunConfig>;
}
