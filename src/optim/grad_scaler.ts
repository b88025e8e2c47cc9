/**
 * Dynamic loss scaling for mixed-precision (f16) training, with torch.amp.GradScaler's semantics but
 * every decision taken on the GPU, so a training step reads nothing back. A step, in this order:
 *
 * 1. forward;
 * 2. `tape.backward(loss, scaler.scaleTensor)`: backward seeded with the scale S instead of 1, so small
 *    gradients stay representable in f16;
 * 3. `scaler.unscale(params)`: every gradient times f32(1 / S), and the found-inf flag set when any
 *    gradient holds an infinity or NaN;
 * 4. `optimizer.step(scaler.guard)`: each parameter's update is skipped on the GPU when the flag is set;
 * 5. `scaler.update()`: S backs off after a skipped step and grows after `growthInterval` clean steps in
 *    a row; the flag is cleared for the next step.
 *
 * `read()` (at log steps) and `exportState()` (for checkpoints) are the only readbacks.
 *
 * torch reads found-inf back and does not call `optimizer.step()` at all on a skipped step. Never
 * syncing, we differ in two ways: the optimizer still counts the skipped update, so Adam's bias
 * correction afterwards uses one step more than torch's per skipped step; and a skipped *first* update
 * leaves zero state (momentum buffer, moments) where torch has none. The next update then computes the
 * same moments as torch's first, and the same SGD momentum buffer when dampening is 0 (with dampening
 * it is `(1 - dampening) * d_p`, not `d_p`). Growth and backoff are f32 products, exactly torch's for
 * factors representable in f32 (see updateScaleKernel).
 */
import {
  GROWTH_TRACKER_WORD,
  SKIPPED_WORD,
  STATE_WORDS,
  unscaleKernel,
  updateScaleKernel,
} from "../../kernels/grad_scaler.ts";
import { dispatch, writeBuffer } from "../gpu/kernels.ts";
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";

/** torch.amp.GradScaler's settings. */
export interface GradScalerOptions {
  /** The scale of the first step; default 65536 (2^16). */
  initScale?: number;
  /** Multiplies the scale after `growthInterval` steps in a row without a non-finite gradient; default 2. */
  growthFactor?: number;
  /** Multiplies the scale after a step with a non-finite gradient; default 0.5. */
  backoffFactor?: number;
  /** Clean steps in a row before the scale grows; default 2000. */
  growthInterval?: number;
}

/** What the GPU holds between steps, read back. */
export interface GradScalerReading {
  /** The current loss scale. */
  scale: number;
  /** Clean steps in a row since the scale last changed (torch's `_growth_tracker`). */
  growthTracker: number;
  /** Steps skipped for a non-finite gradient since the scaler was made (or its state imported). */
  skippedSteps: number;
}

/** A GradScaler for checkpoints, as plain numbers: what it holds on the GPU and its options. */
export interface GradScalerState extends GradScalerReading, Required<GradScalerOptions> {}

const KIND = "grad scaler";
/** torch keeps the growth tracker in an int32. */
const MAX_GROWTH_INTERVAL = 2 ** 31 - 1;
const STATE_KEYS = [
  "scale",
  "growthTracker",
  "skippedSteps",
  "initScale",
  "growthFactor",
  "backoffFactor",
  "growthInterval",
] as const satisfies readonly (keyof GradScalerState)[];

function check(name: string, value: number, valid: boolean, expected: string): void {
  if (!valid) throw new Error(`${KIND}: ${name} is ${value}; it must be ${expected}`);
}

/** Throws unless `value`, rounded to f32 as the GPU holds it, is finite and greater than 0. */
function checkPositiveF32(name: string, value: number): void {
  const rounded = Math.fround(value);
  check(name, value, Number.isFinite(rounded) && rounded > 0, "a finite number > 0 (as an f32)");
}

function checkedOptions(options: Required<GradScalerOptions>): Required<GradScalerOptions> {
  const { initScale, growthFactor, backoffFactor, growthInterval } = options;
  checkPositiveF32("initScale", initScale);
  const growth = Math.fround(growthFactor);
  check(
    "growthFactor",
    growthFactor,
    Number.isFinite(growth) && growth > 1,
    "a finite number > 1 (as an f32)",
  );
  const backoff = Math.fround(backoffFactor);
  check("backoffFactor", backoffFactor, backoff > 0 && backoff < 1, "in (0, 1) (as an f32)");
  check(
    "growthInterval",
    growthInterval,
    Number.isInteger(growthInterval) && growthInterval >= 1 && growthInterval <= MAX_GROWTH_INTERVAL,
    `an integer in [1, ${MAX_GROWTH_INTERVAL}]`,
  );
  return { initScale, growthFactor, backoffFactor, growthInterval };
}

/**
 * Dynamic loss scaling for f16 training, as torch.amp.GradScaler does it, decided on the GPU: the loss is
 * scaled, gradients are unscaled and checked for non-finite values, and the scale grows or backs off, with no
 * readback per step.
 */
export class GradScaler {
  #options: Required<GradScalerOptions>;
  readonly #scale: Tensor;
  /** u32 words: found-inf, growth tracker, skipped steps (kernels/grad_scaler.ts). */
  readonly #state: Tensor;
  #disposed = false;

  /** A scaler with torch's defaults unless `options` says otherwise. */
  constructor(options: GradScalerOptions = {}) {
    this.#options = checkedOptions({
      initScale: options.initScale ?? 65536,
      growthFactor: options.growthFactor ?? 2,
      backoffFactor: options.backoffFactor ?? 0.5,
      growthInterval: options.growthInterval ?? 2000,
    });
    this.#scale = untracked(() =>
      Tensor.fromData(Float32Array.of(this.#options.initScale), [1], { name: "loss_scale" })
    );
    this.#state = untracked(() =>
      Tensor.fromData(new Uint32Array(STATE_WORDS), [STATE_WORDS], {
        name: "loss_scaler_state",
        dtype: "u32",
      })
    );
  }

  /** The scale, f32 [1], to seed backward with: `tape.backward(loss, scaler.scaleTensor)`. */
  get scaleTensor(): Tensor {
    this.#checkLive("scaleTensor");
    return this.#scale;
  }

  /** The state buffer optimizers read found-inf from: pass it to `optimizer.step(guard)`. */
  get guard(): GPUBuffer {
    this.#checkLive("guard");
    return this.#state.buffer;
  }

  /**
   * Divides every gradient of `params` by the scale in place (one dispatch per parameter with a grad)
   * and records whether any was non-finite. Call once per step, after backward and before the step.
   */
  unscale(params: readonly Tensor[]): void {
    this.#checkLive("unscale()");
    params.forEach((param, i) => {
      const grad = param.grad;
      if (!grad) return;
      if (grad.dtype !== "f32" || grad.size !== param.size) {
        throw new Error(
          `${KIND}: parameter ${i} (${param.name}) has [${
            param.shape.join(", ")
          }] but its grad ${grad.name} ` +
            `is ${grad.dtype} [${grad.shape.join(", ")}]; expected f32 of the same size`,
        );
      }
      const kernel = unscaleKernel(grad.size);
      dispatch(kernel, [grad.buffer, this.#state.buffer, this.#scale.buffer], kernel.workgroups);
    });
  }

  /** Adapts the scale to this step's found-inf flag and clears the flag; call after the optimizer step. */
  update(): void {
    this.#checkLive("update()");
    const { growthFactor, backoffFactor, growthInterval } = this.#options;
    const kernel = updateScaleKernel(growthFactor, backoffFactor, growthInterval);
    dispatch(kernel, [this.#state.buffer, this.#scale.buffer], [1]);
  }

  /** The scale, growth tracker and skipped-step count (one small readback; call between steps). */
  async read(): Promise<GradScalerReading> {
    this.#checkLive("read()");
    // Both readbacks in flight at once: one round trip.
    const [scale, state] = await Promise.all([this.#scale.read(), this.#state.read()]);
    return {
      scale: scale[0],
      growthTracker: state[GROWTH_TRACKER_WORD],
      skippedSteps: state[SKIPPED_WORD],
    };
  }

  /** The scaler's state and settings, read back, for a checkpoint. */
  async exportState(): Promise<GradScalerState> {
    this.#checkLive("exportState()");
    return { ...await this.read(), ...this.#options };
  }

  /**
   * Replaces the scale, tracker, skipped-step count and, as torch's load_state_dict does, the options
   * with a snapshot from `exportState()`. Nothing changes when a check fails.
   */
  importState(state: GradScalerState): void {
    this.#checkLive("importState()");
    const given = Object.keys(state);
    const unknown = given.filter((key) => !(STATE_KEYS as readonly string[]).includes(key));
    const missing = STATE_KEYS.filter((key) => !given.includes(key));
    if (unknown.length > 0 || missing.length > 0) {
      throw new Error(
        `${KIND}: imported state has keys [${given.join(", ")}], expected [${STATE_KEYS.join(", ")}]`,
      );
    }
    for (const key of STATE_KEYS) {
      if (typeof state[key] !== "number") {
        throw new Error(`${KIND}: imported ${key} is ${state[key]}, expected a number`);
      }
    }
    const options = checkedOptions({
      initScale: state.initScale,
      growthFactor: state.growthFactor,
      backoffFactor: state.backoffFactor,
      growthInterval: state.growthInterval,
    });
    checkPositiveF32("imported scale", state.scale);
    check(
      "imported growthTracker",
      state.growthTracker,
      Number.isInteger(state.growthTracker) && state.growthTracker >= 0 &&
        state.growthTracker < options.growthInterval,
      `an integer in [0, growthInterval ${options.growthInterval})`,
    );
    check(
      "imported skippedSteps",
      state.skippedSteps,
      Number.isInteger(state.skippedSteps) && state.skippedSteps >= 0 && state.skippedSteps < 2 ** 32,
      "a count below 2^32",
    );
    // Found-inf starts clear, as after an update.
    const words = new Uint32Array(STATE_WORDS);
    words[GROWTH_TRACKER_WORD] = state.growthTracker;
    words[SKIPPED_WORD] = state.skippedSteps;
    writeBuffer(this.#scale.buffer, Float32Array.of(state.scale));
    writeBuffer(this.#state.buffer, words);
    this.#options = options;
  }

  /** Frees the scale and state; later calls throw. */
  dispose(): void {
    this.#scale.dispose();
    this.#state.dispose();
    this.#disposed = true;
  }

  #checkLive(what: string): void {
    if (this.#disposed) throw new Error(`${KIND}: ${what} after dispose()`);
  }
}
