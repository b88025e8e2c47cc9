/**
 * Reverse-mode autograd. A Tape is a Scope that also records, for every op whose inputs need gradients,
 * a closure that turns the output's gradient into the inputs' gradients. `backward` replays them in
 * reverse; leaves (parameters) accumulate into `.grad`, which outlives the tape.
 */
import { accumulateKernel, fillKernel, mapKernel } from "../../kernels/elementwise.ts";
import { dispatch } from "../gpu/kernels.ts";
import { currentScope, Scope, untracked } from "./scope.ts";
import { Tensor } from "./tensor.ts";

/** Gradients of the inputs, in input order; null where an input needs none. */
export type Backward = (gradOutput: Tensor) => readonly (Tensor | null)[];

/** One recorded op. */
export interface Entry {
  /** The op's inputs. */
  inputs: readonly Tensor[];
  /** Its output. */
  output: Tensor;
  /** Its backward. */
  backward: Backward;
}

/** How backward runs. */
export interface BackwardOptions {
  /**
   * Dispose each op's forward tensors (its output and what it made on the way) as soon as its backward
   * has run, so the gradients reuse their buffers instead of adding to the step's peak. The caller must
   * not touch forward results (the loss included) after `backward`.
   */
  freeForward?: boolean;
}

/** A scope that also records the ops run in it, so that `backward` can compute gradients in reverse. */
export class Tape extends Scope {
  readonly #entries: Entry[] = [];
  /**
   * Tensors this scope tracked while entry i was the next to be recorded, i.e. made by op i's forward:
   * only op i's backward and the backwards of later ops, which run before it, can use them.
   */
  #madeBefore: Tensor[][] = [];

  /** Takes ownership of `tensor` and notes which op made it. */
  override track(tensor: Tensor): void {
    super.track(tensor);
    (this.#madeBefore[this.#entries.length] ??= []).push(tensor);
  }

  /** Records an op; called by ops through `record`. */
  push(entry: Entry): void {
    this.#entries.push(entry);
  }

  /** Ops recorded. */
  get length(): number {
    return this.#entries.length;
  }

  /**
   * Back-propagates from `loss` (seeded with ones, or with `seed` of the same shape) and leaves the
   * gradients of leaf tensors in their `.grad`. Intermediate gradients are freed as soon as used.
   */
  backward(loss: Tensor, seed?: Tensor, options: BackwardOptions = {}): void {
    if (!loss.requiresGrad) {
      throw new Error(`spikegpu: backward from ${loss.name}, which does not require grad`);
    }
    this.run(() => {
      const grads = new Map<Tensor, Tensor>();
      if (seed && seed.size !== loss.size) {
        throw new Error(`spikegpu: backward seed has ${seed.size} values, ${loss.name} has ${loss.size}`);
      }
      // The caller keeps its seed; the tape works on its own copy.
      const start = seed ? copyOf(seed) : ones(loss.shape);
      // A leaf (e.g. the input of an op that is the identity here) takes the seed as its gradient.
      this.#accumulate(grads, loss, start);
      for (let e = this.#entries.length - 1; e >= 0; e--) {
        this.#backwardEntry(e, grads);
        if (options.freeForward) { for (const tensor of this.#madeBefore[e] ?? []) this.release(tensor); }
      }
      for (const leftover of grads.values()) leftover.dispose();
    });
    this.#entries.length = 0;
    this.#madeBefore = [];
  }

  #backwardEntry(e: number, grads: Map<Tensor, Tensor>): void {
    const { inputs, output, backward } = this.#entries[e];
    const gradOutput = grads.get(output);
    if (!gradOutput) return;
    grads.delete(output);
    const inputGrads = backward(gradOutput);
    if (inputGrads.length !== inputs.length) {
      throw new Error(`spikegpu: backward of ${output.name} returned ${inputGrads.length} gradients`);
    }
    const placed = new Set<Tensor>();
    inputs.forEach((input, i) => {
      let grad = inputGrads[i];
      if (!grad || !input.requiresGrad) return;
      // A tensor handed back twice (add's gradient flows to both inputs) must not be shared.
      if (placed.has(grad)) grad = copyOf(grad);
      placed.add(grad);
      this.#accumulate(grads, input, grad);
    });
    if (!placed.has(gradOutput)) gradOutput.dispose();
  }

  #accumulate(grads: Map<Tensor, Tensor>, input: Tensor, grad: Tensor): void {
    if (!input.hasCreator) {
      if (input.grad) {
        addInto(input.grad, grad);
        grad.dispose();
      } else {
        // The leaf's gradient must survive the tape.
        this.keep(grad);
        input.grad = grad.shape.join() === input.shape.join() ? grad : reshaped(grad, input.shape);
      }
      return;
    }
    const existing = grads.get(input);
    if (existing) {
      addInto(existing, grad);
      grad.dispose();
    } else {
      grads.set(input, grad);
    }
  }

  /** Forgets the recorded ops and disposes the tensors it owns. */
  override dispose(): void {
    this.#entries.length = 0;
    this.#madeBefore = [];
    super.dispose();
  }
}

/** The tape recording now, if any: the innermost scope when it is a Tape. */
export function currentTape(): Tape | undefined {
  const scope = currentScope();
  return scope instanceof Tape ? scope : undefined;
}

/**
 * Records `output = op(inputs)` when a tape is active and some input requires grad; otherwise the op
 * ran without gradient (evaluation, or a plain Scope).
 */
export function record(output: Tensor, inputs: readonly Tensor[], backward: Backward): Tensor {
  const tape = currentTape();
  if (!tape || !inputs.some((t) => t.requiresGrad)) return output;
  output.requiresGrad = true;
  output.hasCreator = true;
  tape.push({ inputs, output, backward });
  return output;
}

/** Runs `body` with no gradient recording; tensors it creates belong to the enclosing scope. */
export function noGrad<T>(body: () => T): T {
  const scope = currentScope();
  if (!(scope instanceof Tape)) return body();
  return new NoGradScope(scope).run(body);
}

/** A scope that forwards tracking to an outer tape but records nothing. */
class NoGradScope extends Scope {
  constructor(private readonly owner: Scope) {
    super();
  }
  override track(tensor: Tensor): void {
    this.owner.track(tensor);
  }
}

/** `dst += src`, in place. */
export function addInto(dst: Tensor, src: Tensor, scale = 1): void {
  if (dst.size !== src.size) {
    throw new Error(`spikegpu: cannot add ${src.name} (${src.size} values) into ${dst.name} (${dst.size})`);
  }
  const kernel = accumulateKernel(dst.size, scale);
  dispatch(kernel, [dst.buffer, src.buffer], kernel.workgroups);
}

function ones(shape: readonly number[]): Tensor {
  const t = Tensor.empty(shape, { name: "grad_seed" });
  const kernel = fillKernel(t.size, 1);
  dispatch(kernel, [t.buffer], kernel.workgroups);
  return t;
}

function copyOf(t: Tensor): Tensor {
  const copy = Tensor.empty(t.shape, { name: `${t.name}_copy` });
  const kernel = mapKernel(t.size, 1, "a");
  dispatch(kernel, [t.buffer, copy.buffer], kernel.workgroups);
  return copy;
}

function reshaped(grad: Tensor, shape: readonly number[]): Tensor {
  const view = untracked(() => grad.view(shape));
  grad.dispose();
  return view;
}
