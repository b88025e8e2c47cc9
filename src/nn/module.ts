/**
 * Modules own parameters (tensors updated by the optimiser), buffers (tensors updated by the forward
 * pass, like BN running stats) and counters (`num_batches_tracked`). Their names compose like PyTorch's
 * state_dict: own parameters, then own buffers and counters, then children in registration order.
 */
import { untracked } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";

/** A counter in a state dict (an i64 entry such as num_batches_tracked). */
export interface Counter {
  /** The count. */
  value: number;
}

/** One state-dict entry: a parameter, a buffer or a counter, under its full name. */
export type StateEntry =
  | { name: string; kind: "parameter" | "buffer"; tensor: Tensor }
  | { name: string; kind: "counter"; counter: Counter };

/** A layer or network: named parameters, buffers and children, like torch.nn.Module. */
export class Module {
  /** Training mode (batch statistics) rather than evaluation mode. */
  training = true;
  readonly #parameters = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor | Counter>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable tensor (created outside any scope, requiring grad). */
  protected parameter(name: string, data: Float32Array, shape: readonly number[]): Tensor {
    const tensor = untracked(() => Tensor.fromData(data, shape, { name, requiresGrad: true }));
    this.#parameters.set(name, tensor);
    return tensor;
  }

  /** Registers a non-trainable tensor (e.g. running statistics). */
  protected buffer(name: string, data: Float32Array, shape: readonly number[]): Tensor {
    const tensor = untracked(() => Tensor.fromData(data, shape, { name }));
    this.#buffers.set(name, tensor);
    return tensor;
  }

  /** Registers a counter (an i64 state-dict entry). */
  protected counter(name: string): Counter {
    const counter = { value: 0 };
    this.#buffers.set(name, counter);
    return counter;
  }

  /** Registers a child module under `name` and returns it. */
  protected child<M extends Module>(name: string | number, module: M): M {
    this.#children.set(String(name), module);
    return module;
  }

  /** The direct children, by name. */
  children(): IterableIterator<[string, Module]> {
    return this.#children.entries();
  }

  /** Every state entry under this module, named with `prefix`. */
  stateEntries(prefix = ""): StateEntry[] {
    const entries: StateEntry[] = [];
    for (const [name, tensor] of this.#parameters) {
      entries.push({ name: prefix + name, kind: "parameter", tensor });
    }
    for (const [name, value] of this.#buffers) {
      entries.push(
        value instanceof Tensor
          ? { name: prefix + name, kind: "buffer", tensor: value }
          : { name: prefix + name, kind: "counter", counter: value },
      );
    }
    for (const [name, module] of this.#children) entries.push(...module.stateEntries(`${prefix}${name}.`));
    return entries;
  }

  /** Every parameter under this module, by full name. */
  namedParameters(prefix = ""): [string, Tensor][] {
    return this.stateEntries(prefix).flatMap((e) =>
      e.kind === "parameter" ? [[e.name, e.tensor] as [string, Tensor]] : []
    );
  }

  /** Every parameter under this module, in state-dict order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, tensor]) => tensor);
  }

  /** Training mode (batch statistics) or evaluation mode (running statistics), recursively. */
  train(mode = true): this {
    this.training = mode;
    for (const module of this.#children.values()) module.train(mode);
    return this;
  }

  /** Evaluation mode (running statistics), recursively. */
  eval(): this {
    return this.train(false);
  }

  /** Releases every tensor the module owns, gradients included. */
  dispose(): void {
    for (const entry of this.stateEntries()) if (entry.kind !== "counter") entry.tensor.dispose();
  }
}

/** A numbered list of modules, named `0`, `1`, ... like torch.nn.Sequential. */
export class ModuleList<M extends Module = Module> extends Module {
  /** The modules, in order. */
  readonly items: M[] = [];

  /** Adds a module under its index, or under `index` when indices skip (e.g. parameter-free layers). */
  add(module: M, index = this.items.length): M {
    this.items.push(module);
    return this.child(index, module);
  }
}
