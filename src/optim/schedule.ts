/**
 * Learning-rate schedules, evaluated on the CPU once per epoch (or per iteration, with a fractional
 * epoch) and assigned to `optimizer.lr`.
 *
 * Cosine is torch.optim.lr_scheduler.CosineAnnealingLR in closed form:
 * `minLr + (baseLr - minLr) * (1 + cos(pi * epoch / T)) / 2` with `T = epochs`, reaching `minLr` at
 * `epoch = epochs` (and, like torch's, rising again past it).
 *
 * Warm-up, when `warmupEpochs = W > 0`: epochs `0 .. W-1` rise linearly, `baseLr * (epoch + 1) / (W + 1)`,
 * so the first epoch already trains and the rise ends at `baseLr` exactly when the decay starts; then the
 * cosine runs over the remaining `epochs - W` epochs (`epoch - W` in place of `epoch`). This is torch's
 * `SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W), CosineAnnealingLR(T_max=epochs-W)],
 * milestones=[W])`.
 */

export interface ScheduleOptions {
  /** The learning rate the schedule starts from (after warm-up). */
  baseLr: number;
  /** Length of the schedule (torch's T_max when there is no warm-up). */
  epochs: number;
  /** Linear warm-up epochs before the decay; default 0. */
  warmupEpochs?: number;
  /** "cosine" decays to `minLr`; "none" holds `baseLr` after any warm-up. */
  kind: "cosine" | "none";
  /** The cosine's floor (torch's eta_min); default 0. */
  minLr?: number;
}

function checkSchedule(options: ScheduleOptions): void {
  const { baseLr, epochs, warmupEpochs = 0, kind, minLr = 0 } = options;
  if (kind !== "cosine" && kind !== "none") {
    throw new Error(`schedule: unknown kind "${kind}"; expected "cosine" or "none"`);
  }
  if (!(Number.isFinite(baseLr) && baseLr >= 0)) {
    throw new Error(`schedule: baseLr is ${baseLr}; expected >= 0`);
  }
  if (!(Number.isFinite(minLr) && minLr >= 0)) throw new Error(`schedule: minLr is ${minLr}; expected >= 0`);
  if (!(Number.isInteger(epochs) && epochs > 0)) {
    throw new Error(`schedule: epochs is ${epochs}; expected a whole number > 0`);
  }
  if (!(Number.isInteger(warmupEpochs) && warmupEpochs >= 0 && warmupEpochs < epochs)) {
    throw new Error(
      `schedule: warmupEpochs is ${warmupEpochs}; expected a whole number from 0 to ${epochs - 1} ` +
        `(fewer than the ${epochs} epochs)`,
    );
  }
}

/** The learning rate for `epoch` (0-based; fractions interpolate within an epoch). */
export function learningRateAt(epoch: number, options: ScheduleOptions): number {
  checkSchedule(options);
  if (!(Number.isFinite(epoch) && epoch >= 0)) throw new Error(`schedule: epoch is ${epoch}; expected >= 0`);
  const { baseLr, epochs, warmupEpochs = 0, kind, minLr = 0 } = options;
  if (epoch < warmupEpochs) return baseLr * (epoch + 1) / (warmupEpochs + 1);
  if (kind === "none") return baseLr;
  const decayEpochs = epochs - warmupEpochs;
  return minLr + (baseLr - minLr) * (1 + Math.cos(Math.PI * (epoch - warmupEpochs) / decayEpochs)) / 2;
}
