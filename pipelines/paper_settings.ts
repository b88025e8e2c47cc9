/** The values the paper's pipelines share. */
import type { RunConfig } from "../src/pipeline/config.ts";

/**
 * What every full-size preset shares with the reference code (SPEC §5, §7): the published stem width,
 * AdamW with decoupled decay 0.02 on a cosine schedule, and surrogate modules [7, 5, 3] of width 256.
 */
export const REFERENCE_TRAINING: Partial<RunConfig> = {
  width: 64,
  optimizer: "adamw",
  weightDecay: 0.02,
  schedule: "cosine",
  sbKernels: [[7, 5, 3]],
  sbWidth: 256,
};

/** The SML weights the paper uses for ImageNet and event data (SPEC §6). */
export const LARGE_DATA_LOSS: Partial<RunConfig> = { alpha: 1, lambda: 1 / 3 };
