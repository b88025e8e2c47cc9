/**
 * Watches every optimizer step for NaN and infinities in the gradients and the updated parameters, on
 * the GPU: one small dispatch per parameter sets a flag, and the flag is read back only when the caller
 * asks (at log steps and before checkpoints), so a step still reads nothing back. Under loss scaling
 * (GradScaler) a non-finite gradient only skips the step, so a watch made with `gradients: false` checks
 * the parameters alone.
 */
import { ALL_FINITE, finiteCheckKernel } from "../../kernels/finite_check.ts";
import { dispatch } from "../gpu/kernels.ts";
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Optimizer } from "./optimizer.ts";

/** Where a run first went non-finite, as the flag recorded it. */
export interface NonFiniteParameter {
  /** Position in the optimizer's parameter list. */
  index: number;
  /** The step number the caller gave for the step that produced it. */
  step: number;
  part: "gradient" | "value";
}

export interface FiniteWatchOptions {
  /**
   * Check the gradients as well as the updated values (default true). Off under loss scaling, where a
   * non-finite gradient is an expected, skipped step rather than a fault.
   */
  gradients?: boolean;
}

export class FiniteWatch {
  readonly #flags: Tensor;
  readonly #gradients: boolean;

  constructor(options: FiniteWatchOptions = {}) {
    this.#gradients = options.gradients ?? true;
    this.#flags = untracked(() =>
      Tensor.fromData(Uint32Array.of(ALL_FINITE, 0), [2], { name: "finite_flags", dtype: "u32" })
    );
  }

  /** Checks each parameter that has a gradient; call after the update, before the gradients are freed. */
  check(params: readonly Tensor[], step: number): void {
    params.forEach((param, index) => {
      if (!param.grad) return;
      const kernel = finiteCheckKernel(param.size, { gradients: this.#gradients });
      const buffers = this.#gradients
        ? [param.grad.buffer, param.buffer, this.#flags.buffer]
        : [param.buffer, this.#flags.buffer];
      dispatch(kernel, buffers, kernel.workgroups, Uint32Array.of(index, step));
    });
  }

  /** `optimizer`, with every `step()` followed by a check of its parameters numbered `stepNumber()`. */
  watch(optimizer: Optimizer, stepNumber: () => number): Optimizer {
    const check = (): void => this.check(optimizer.params, stepNumber());
    return {
      get params() {
        return optimizer.params;
      },
      get lr() {
        return optimizer.lr;
      },
      set lr(value: number) {
        optimizer.lr = value;
      },
      step(guard?: GPUBuffer) {
        optimizer.step(guard);
        check();
      },
      zeroGrad: () => optimizer.zeroGrad(),
      exportState: () => optimizer.exportState(),
      importState: (state) => optimizer.importState(state),
      dispose: () => optimizer.dispose(),
    };
  }

  /** The first non-finite parameter seen since construction, or null (one small readback). */
  async read(): Promise<NonFiniteParameter | null> {
    const [code, step] = await this.#flags.read();
    if (code === ALL_FINITE) return null;
    return { index: code >>> 1, step, part: code & 1 ? "value" : "gradient" };
  }

  dispose(): void {
    this.#flags.dispose();
  }
}
