/**
 * Adam (L2 weight decay added to the gradient, torch.optim.Adam) and AdamW (decoupled weight decay,
 * torch.optim.AdamW), sharing one fused kernel and torch's bias correction:
 * `step_size = lr / (1 - beta1^t)`, `denom = sqrt(v) / sqrt(1 - beta2^t) + eps`, `p -= step_size * m / denom`,
 * with `t` the parameter's own update count.
 */
import { adamKernel, adamUniform } from "../../kernels/optim.ts";
import { dispatch } from "../gpu/kernels.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  checkHyper,
  checkImported,
  type Optimizer,
  type OptimizerState,
  ParameterState,
  zeroGradients,
} from "./optimizer.ts";

export interface AdamOptions {
  lr: number;
  /** Decay rates of the first and second moment averages; default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to the denominator; default 1e-8. */
  eps?: number;
  /** Adam: L2 penalty added to the gradient (default 0). AdamW: decoupled decay rate (default 0.01). */
  weightDecay?: number;
}

interface AdamHyper extends Record<string, number | boolean> {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

const EXP_AVG = "exp_avg";
const EXP_AVG_SQ = "exp_avg_sq";

/** The update both variants share; `decoupled` picks where weight decay applies. */
export abstract class AdamFamily implements Optimizer {
  /** The parameters it updates. */
  readonly params: readonly Tensor[];
  lr: number;
  #hyper: AdamHyper;
  #steps = 0;
  readonly #state: ParameterState;

  /** An Adam-family optimizer of `kind`; `decoupled` applies weight decay to the weights (AdamW). */
  protected constructor(
    readonly kind: "adam" | "adamw",
    private readonly decoupled: boolean,
    params: Tensor[],
    options: AdamOptions,
    defaultWeightDecay: number,
  ) {
    checkHyper(kind, "lr", options.lr);
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    this.#hyper = this.#checked({
      beta1,
      beta2,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? defaultWeightDecay,
    });
    this.lr = options.lr;
    this.params = [...params];
    this.#state = new ParameterState(kind, this.params, [EXP_AVG, EXP_AVG_SQ], true);
  }

  step(guard?: GPUBuffer): void {
    checkHyper(this.kind, "lr", this.lr);
    const scalars = { lr: this.lr, decoupled: this.decoupled, ...this.#hyper };
    this.params.forEach((param, i) => {
      const grad = this.#state.gradient(i);
      if (!grad) return;
      // Counted even when the guard skips the update on the GPU: the host cannot know without a sync.
      const step = ++this.#state.steps[i];
      const kernel = adamKernel({
        n: param.size,
        decoupled: this.decoupled,
        ...this.#hyper,
        guarded: guard !== undefined,
      });
      const buffers = [
        param.buffer,
        grad.buffer,
        this.#state.tensor(EXP_AVG, i).buffer,
        this.#state.tensor(EXP_AVG_SQ, i).buffer,
      ];
      if (guard) buffers.push(guard);
      dispatch(kernel, buffers, kernel.workgroups, adamUniform(scalars, step));
    });
    this.#steps++;
  }

  zeroGrad(): void {
    zeroGradients(this.params);
  }

  /** The state, read back from the GPU: exp_avg, exp_avg_sq and step per parameter. */
  async exportState(): Promise<OptimizerState> {
    return {
      kind: this.kind,
      step: this.#steps,
      lr: this.lr,
      slots: await this.#state.export(),
      hyper: { ...this.#hyper },
    };
  }

  importState(state: OptimizerState): void {
    checkImported(this.kind, state, this.#hyper);
    const hyper = this.#checked({ ...state.hyper } as AdamHyper);
    this.#state.import(state.slots);
    this.#hyper = hyper;
    this.lr = state.lr;
    this.#steps = state.step;
  }

  dispose(): void {
    this.#state.dispose();
  }

  #checked(hyper: AdamHyper): AdamHyper {
    checkHyper(this.kind, "betas[0]", hyper.beta1, 0, 1);
    checkHyper(this.kind, "betas[1]", hyper.beta2, 0, 1);
    checkHyper(this.kind, "eps", hyper.eps);
    checkHyper(this.kind, "weightDecay", hyper.weightDecay);
    return hyper;
  }
}

/** torch.optim.Adam: `weightDecay` (default 0) adds `weightDecay * p` to the gradient. */
export class Adam extends AdamFamily {
  /** Adam over `params`. */
  constructor(params: Tensor[], options: AdamOptions) {
    super("adam", false, params, options, 0);
  }
}

/** torch.optim.AdamW: `weightDecay` (default 0.01) scales `p` by `1 - lr * weightDecay` before the update. */
export class AdamW extends AdamFamily {
  /** AdamW over `params`. */
  constructor(params: Tensor[], options: AdamOptions) {
    super("adamw", true, params, options, 0.01);
  }
}
