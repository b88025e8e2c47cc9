/** Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD. */
import { sgdKernel, sgdUniform } from "../../kernels/optim.ts";
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

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** L2 penalty added to the gradient. */
  weightDecay?: number;
}

interface SgdHyper extends Record<string, number | boolean> {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

const KIND = "sgd";
const MOMENTUM_BUFFER = "momentum_buffer";

function checkedHyper(hyper: SgdHyper): SgdHyper {
  checkHyper(KIND, "momentum", hyper.momentum);
  checkHyper(KIND, "dampening", hyper.dampening);
  checkHyper(KIND, "weightDecay", hyper.weightDecay);
  if (hyper.nesterov && (hyper.momentum <= 0 || hyper.dampening !== 0)) {
    throw new Error(
      `${KIND}: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ${hyper.momentum} and ` +
        `dampening ${hyper.dampening}`,
    );
  }
  return hyper;
}

/** torch.optim.SGD: momentum, dampening, Nesterov and weight decay, one fused kernel per parameter. */
export class SGD implements Optimizer {
  /** The parameters it updates. */
  readonly params: readonly Tensor[];
  lr: number;
  #hyper: SgdHyper;
  #steps = 0;
  /** Holds the momentum buffers; with momentum 0 none is ever created (torch keeps None). */
  readonly #state: ParameterState;

  /** SGD over `params`. */
  constructor(params: Tensor[], options: SgdOptions) {
    checkHyper(KIND, "lr", options.lr);
    this.#hyper = checkedHyper({
      momentum: options.momentum ?? 0,
      dampening: options.dampening ?? 0,
      nesterov: options.nesterov ?? false,
      weightDecay: options.weightDecay ?? 0,
    });
    this.lr = options.lr;
    this.params = [...params];
    this.#state = new ParameterState(KIND, this.params, [MOMENTUM_BUFFER], false);
  }

  step(guard?: GPUBuffer): void {
    checkHyper(KIND, "lr", this.lr);
    const { momentum } = this.#hyper;
    this.params.forEach((param, i) => {
      const grad = this.#state.gradient(i);
      if (!grad) return;
      const kernel = sgdKernel({ n: param.size, ...this.#hyper, guarded: guard !== undefined });
      const buffers = [param.buffer, grad.buffer];
      let first = false;
      if (momentum !== 0) {
        first = !this.#state.has(MOMENTUM_BUFFER, i);
        buffers.push(this.#state.tensor(MOMENTUM_BUFFER, i).buffer);
      }
      if (guard) buffers.push(guard);
      dispatch(kernel, buffers, kernel.workgroups, sgdUniform(this.lr, first));
    });
    this.#steps++;
  }

  zeroGrad(): void {
    zeroGradients(this.params);
  }

  /** The state, read back from the GPU: momentum_buffer per parameter. */
  async exportState(): Promise<OptimizerState> {
    return {
      kind: KIND,
      step: this.#steps,
      lr: this.lr,
      slots: await this.#state.export(),
      hyper: { ...this.#hyper },
    };
  }

  importState(state: OptimizerState): void {
    checkImported(KIND, state, this.#hyper);
    const hyper = checkedHyper({ ...state.hyper } as SgdHyper);
    this.#state.import(state.slots);
    this.#hyper = hyper;
    this.lr = state.lr;
    this.#steps = state.step;
  }

  dispose(): void {
    this.#state.dispose();
  }
}
