/**
 * What every optimizer offers the training loop and the per-parameter GPU state they share (optimizers
 * by name: registry.ts).
 *
 * State follows torch.optim: a parameter gets state at its first update (a parameter whose grad is null
 * is skipped and gets none), and its tensors live outside any scope until the optimizer is disposed.
 */
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";

/**
 * A snapshot of an optimizer, for checkpoints. `slots` holds, per slot name (e.g. "exp_avg",
 * "exp_avg_sq", "step", "momentum_buffer"), one array per parameter in parameter order; a parameter that
 * has never been updated has an empty array in every slot.
 */
export interface OptimizerState {
  /** "sgd", "adam" or "adamw". */
  kind: string;
  /** Calls of `step()` so far. */
  step: number;
  /** Learning rate. */
  lr: number;
  /** State arrays by slot name, one per parameter. */
  slots: Record<string, Float32Array[]>;
  /** Hyperparameters by name. */
  hyper: Record<string, number | boolean>;
}

/** What every optimizer does: update parameters from their gradients, and save and restore its state. */
export interface Optimizer {
  /** The parameters it updates. */
  readonly params: readonly Tensor[];
  /** The learning rate the next `step()` uses; schedules set it between epochs. */
  lr: number;
  /**
   * Updates every parameter whose grad is set, with one fused kernel dispatch per parameter. With
   * `guard` (a GradScaler's `guard`), each update is skipped on the GPU when the scaler found a
   * non-finite gradient this step; the update still counts as done on the host (see GradScaler).
   */
  step(guard?: GPUBuffer): void;
  /** Disposes the parameters' gradients and sets them to null. */
  zeroGrad(): void;
  /** The state, read back from the GPU, for a checkpoint. */
  exportState(): Promise<OptimizerState>;
  /**
   * Replaces the state (and, like torch's load_state_dict, the learning rate and hyperparameters) with a
   * snapshot taken from an optimizer of the same kind over parameters of the same shapes.
   */
  importState(state: OptimizerState): void;
  /** Frees the state tensors; the parameters stay with their owner. */
  dispose(): void;
}

/** The union of the optimizers' options; each optimizer reads the ones it knows. */
export interface OptimizerOptions {
  /** Learning rate. */
  lr: number;
  /** SGD momentum (default 0). */
  momentum?: number;
  /** SGD dampening (default 0). */
  dampening?: number;
  /** SGD Nesterov momentum (default false). */
  nesterov?: boolean;
  /** Adam's beta1 and beta2 (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Adam's epsilon (default 1e-8). */
  eps?: number;
  /** Weight decay (default 0; 0.01 for AdamW). */
  weightDecay?: number;
}

/** Throws unless `value` is a finite number at least `min` (and below `below`, when given). */
export function checkHyper(kind: string, name: string, value: number, min = 0, below = Infinity): void {
  if (!(Number.isFinite(value) && value >= min && value < below)) {
    const range = below === Infinity ? `a finite number >= ${min}` : `in [${min}, ${below})`;
    throw new Error(`${kind}: ${name} is ${value}; it must be ${range}`);
  }
}

/** Disposes every parameter's gradient and sets it to null. */
export function zeroGradients(params: readonly Tensor[]): void {
  for (const param of params) {
    param.grad?.dispose();
    param.grad = null;
  }
}

/** The slot holding torch's per-parameter step count (one value per parameter), for optimizers that keep one. */
export const STEP_SLOT = "step";

/**
 * The per-parameter state of one optimizer: named slots, each holding one f32 tensor per parameter
 * shaped like it, created at the parameter's first update; and, for optimizers that count them (Adam),
 * the updates each parameter has had, exported as the one-value slot "step".
 */
export class ParameterState {
  /** Updates applied to each parameter: torch's per-parameter `step`. */
  readonly steps: number[];
  readonly #tensors = new Map<string, (Tensor | null)[]>();
  #disposed = false;

  constructor(
    readonly kind: string,
    readonly params: readonly Tensor[],
    readonly slotNames: readonly string[],
    readonly countsSteps: boolean,
  ) {
    const seen = new Set<Tensor>();
    params.forEach((param, i) => {
      if (param.dtype !== "f32") {
        throw new Error(
          `${kind}: parameter ${i} (${param.name}) is ${param.dtype}; optimizers update f32 tensors`,
        );
      }
      if (param.disposed) throw new Error(`${kind}: parameter ${i} (${param.name}) is disposed`);
      if (seen.has(param)) throw new Error(`${kind}: parameter ${i} (${param.name}) is listed twice`);
      seen.add(param);
    });
    this.steps = params.map(() => 0);
    for (const name of slotNames) this.#tensors.set(name, params.map(() => null));
  }

  /** The gradient of parameter `index`, checked, or null when it has none this step (torch skips it). */
  gradient(index: number): Tensor | null {
    if (this.#disposed) throw new Error(`${this.kind}: step() after dispose()`);
    const param = this.params[index];
    const grad = param.grad;
    if (!grad) return null;
    if (grad.size !== param.size || grad.dtype !== "f32") {
      throw new Error(
        `${this.kind}: parameter ${index} (${param.name}) has [${param.shape.join(", ")}] but its grad ` +
          `${grad.name} is ${grad.dtype} [${grad.shape.join(", ")}]; expected f32 of the same size`,
      );
    }
    return grad;
  }

  /** Whether parameter `index` has its slot `name` yet. */
  has(name: string, index: number): boolean {
    return this.#slot(name)[index] !== null;
  }

  /** Slot `name` of parameter `index`, created uninitialised if missing: the kernel's first update writes it. */
  tensor(name: string, index: number): Tensor {
    const tensors = this.#slot(name);
    const existing = tensors[index];
    if (existing) return existing;
    const param = this.params[index];
    const created = untracked(() => Tensor.empty(param.shape, { name: `${param.name}.${name}` }));
    tensors[index] = created;
    return created;
  }

  /** Reads every slot back; a parameter without state gets empty arrays. */
  async export(): Promise<Record<string, Float32Array[]>> {
    if (this.#disposed) throw new Error(`${this.kind}: exportState() after dispose()`);
    const slots: Record<string, Float32Array[]> = {};
    for (const [name, tensors] of this.#tensors) {
      // All readbacks in flight at once: awaiting each in turn costs a map round trip per tensor.
      slots[name] = await Promise.all(tensors.map((tensor) => tensor?.readFloat() ?? new Float32Array(0)));
    }
    if (this.countsSteps) {
      slots[STEP_SLOT] = this.steps.map((step) => step > 0 ? Float32Array.of(step) : new Float32Array(0));
    }
    return slots;
  }

  /**
   * Checks `slots` against the parameters (the expected slot names, one array per parameter, each of the
   * parameter's size or one step count, and a parameter's slots either all filled or all empty), then
   * uploads them. Nothing changes when a check fails.
   */
  import(slots: Record<string, Float32Array[]>): void {
    if (this.#disposed) throw new Error(`${this.kind}: importState() after dispose()`);
    const expected = this.countsSteps ? [...this.slotNames, STEP_SLOT] : [...this.slotNames];
    const given = Object.keys(slots);
    if (given.slice().sort().join() !== expected.slice().sort().join()) {
      throw new Error(
        `${this.kind}: state has slots [${given.join(", ")}], expected [${expected.join(", ")}]`,
      );
    }
    for (const name of expected) {
      if (slots[name].length !== this.params.length) {
        throw new Error(
          `${this.kind}: state slot ${name} has ${
            slots[name].length
          } arrays for ${this.params.length} parameters`,
        );
      }
    }
    const filled = this.params.map((param, i) => {
      const anyFilled = expected.some((name) => slots[name][i].length > 0);
      for (const name of expected) {
        const length = slots[name][i].length;
        const size = name === STEP_SLOT ? 1 : param.size;
        if (anyFilled && length !== size) {
          throw new Error(
            `${this.kind}: state slot ${name} of parameter ${i} (${param.name} [${
              param.shape.join(", ")
            }]) ` +
              `has ${length} values, expected ${size} (or no values in every slot of a parameter without state)`,
          );
        }
      }
      if (anyFilled && this.countsSteps) {
        const step = slots[STEP_SLOT][i][0];
        if (!Number.isInteger(step) || step < 1) {
          throw new Error(
            `${this.kind}: state step of parameter ${i} (${param.name}) is ${step}, not a count >= 1`,
          );
        }
      }
      return anyFilled;
    });
    this.#release();
    filled.forEach((hasState, i) => {
      this.steps[i] = hasState && this.countsSteps ? slots[STEP_SLOT][i][0] : 0;
      if (!hasState) return;
      for (const [name, tensors] of this.#tensors) {
        const param = this.params[i];
        tensors[i] = untracked(() =>
          Tensor.fromData(slots[name][i], param.shape, { name: `${param.name}.${name}` })
        );
      }
    });
  }

  dispose(): void {
    this.#release();
    this.#disposed = true;
  }

  #slot(name: string): (Tensor | null)[] {
    const tensors = this.#tensors.get(name);
    if (!tensors) throw new Error(`${this.kind}: no state slot ${name}`);
    return tensors;
  }

  #release(): void {
    for (const tensors of this.#tensors.values()) {
      tensors.forEach((tensor, i) => {
        tensor?.dispose();
        tensors[i] = null;
      });
    }
  }
}

/** Checks the parts of an imported state every optimizer shares, with `kind`'s hyperparameter names. */
export function checkImported(
  kind: string,
  state: OptimizerState,
  hyper: Record<string, number | boolean>,
): void {
  if (state.kind !== kind) throw new Error(`${kind}: cannot import the state of a ${state.kind} optimizer`);
  if (!Number.isInteger(state.step) || state.step < 0) {
    throw new Error(`${kind}: imported step ${state.step} is not a count`);
  }
  checkHyper(kind, "imported lr", state.lr);
  for (const [name, value] of Object.entries(hyper)) {
    if (typeof state.hyper[name] !== typeof value) {
      throw new Error(
        `${kind}: imported hyperparameter ${name} is ${state.hyper[name]}, expected a ${typeof value}`,
      );
    }
  }
  const unknown = Object.keys(state.hyper).filter((name) => !(name in hyper));
  if (unknown.length > 0) {
    throw new Error(`${kind}: imported state has unknown hyperparameters ${unknown.join(", ")}`);
  }
}
