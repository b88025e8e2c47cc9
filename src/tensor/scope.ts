/**
 * Scopes own the tensors created while they are active, so one `dispose()` releases a whole step's
 * intermediates. Tensors created outside any scope (parameters, optimizer state) live until disposed.
 */

/**
 * What a scope owns: a tensor, seen only as something it can dispose (so tensor.ts, which registers each
 * new tensor with the current scope, and this file do not import each other).
 */
export interface Owned {
  /** Releases the tensor's GPU storage (back to the pool once no view shares it). */
  dispose(): void;
}

/** Owns the tensors created while it is active, and disposes them at once. */
export class Scope {
  readonly #tensors = new Set<Owned>();

  /** Takes ownership of `tensor`; called when a tensor is created in this scope. */
  track(tensor: Owned): void {
    this.#tensors.add(tensor);
  }

  /** Hands a tensor to the caller: the scope will no longer dispose it. */
  keep<T extends Owned>(tensor: T): T {
    this.#tensors.delete(tensor);
    return tensor;
  }

  /** Disposes `tensor` now, if this scope still owns it. */
  release(tensor: Owned): void {
    if (this.#tensors.delete(tensor)) tensor.dispose();
  }

  /** Runs `body` with this scope active (innermost) and returns its result. */
  run<T>(body: () => T): T {
    stack.push(this);
    try {
      return body();
    } finally {
      stack.pop();
    }
  }

  /** Tensors this scope owns now. */
  get trackedCount(): number {
    return this.#tensors.size;
  }

  /** Disposes every tensor created in this scope and not kept. */
  dispose(): void {
    for (const tensor of this.#tensors) tensor.dispose();
    this.#tensors.clear();
  }
}

const stack: Scope[] = [];

export function currentScope(): Scope | undefined {
  return stack[stack.length - 1];
}

/** Runs `body` so that the tensors it creates belong to no scope (e.g. gradients of parameters). */
export function untracked<T>(body: () => T): T {
  stack.push(undefined as unknown as Scope);
  try {
    return body();
  } finally {
    stack.pop();
  }
}
