/**
 * A model's state under the reference implementation's names (tests/fixtures/reference), to and from
 * safetensors: float32 parameters and BN statistics, int64 `num_batches_tracked`.
 */
import { writeBuffer } from "../gpu/kernels.ts";
import type { Module, StateEntry } from "../nn/module.ts";
import { writeFileAtomic } from "./atomic.ts";
import { encodeSafetensors, type NamedArray, readSafetensors } from "./safetensors.ts";

/** Which entries a state dict includes. */
export interface ExportOptions {
  /** Include the surrogate modules (`sb_layers.*`); default true. */
  surrogates?: boolean;
}

const SURROGATE_PREFIX = "sb_layers.";

function selected(model: Module, options: ExportOptions): StateEntry[] {
  const entries = model.stateEntries();
  return options.surrogates === false ? entries.filter((e) => !e.name.startsWith(SURROGATE_PREFIX)) : entries;
}

/** Reads the model's state back from the GPU, in state_dict order. */
export async function stateDict(
  model: Module,
  options: ExportOptions = {},
): Promise<Map<string, NamedArray>> {
  const entries = selected(model, options);
  // All readbacks in flight at once: awaiting each in turn costs a map round trip per tensor.
  const data = await Promise.all(
    entries.map((entry) => entry.kind === "counter" ? null : entry.tensor.readFloat()),
  );
  const out = new Map<string, NamedArray>();
  entries.forEach((entry, i) => {
    if (entry.kind === "counter") {
      out.set(entry.name, { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(entry.counter.value)) });
    } else {
      out.set(entry.name, { dtype: "F32", shape: [...entry.tensor.shape], data: data[i]! });
    }
  });
  return out;
}

/** Writes the model's state dict to `path` as safetensors, under the reference key names. */
export async function saveSafetensors(
  path: string,
  model: Module,
  options: ExportOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(await stateDict(model, options)));
}

/** How to load: the source's name for errors, and whether the modules may be missing. */
export interface LoadOptions {
  /** Names the source in errors. */
  source?: string;
  /** Accept a file without `sb_layers.*` for a model with modules (they keep their initialisation). */
  allowMissingSurrogates?: boolean;
}

/** Loads a state dict; every key must match a model entry in name, shape and dtype, and vice versa. */
export function loadStateDict(
  model: Module,
  arrays: Map<string, NamedArray>,
  options: LoadOptions = {},
): void {
  const source = options.source ?? "state dict";
  const entries = model.stateEntries();
  const known = new Set(entries.map((e) => e.name));
  const extra = [...arrays.keys()].filter((k) => !known.has(k));
  const missing = entries.map((e) => e.name).filter((k) =>
    !arrays.has(k) && !(options.allowMissingSurrogates && k.startsWith(SURROGATE_PREFIX))
  );
  if (extra.length || missing.length) {
    const list = (keys: string[]) =>
      keys.slice(0, 8).join(", ") + (keys.length > 8 ? `, ... (${keys.length})` : "");
    throw new Error(
      `weights: ${source} does not match the model: ` +
        (missing.length ? `missing ${list(missing)}` : "") + (missing.length && extra.length ? "; " : "") +
        (extra.length ? `unexpected ${list(extra)}` : "") +
        " (check --model, the surrogate module options and the class count)",
    );
  }
  // Validate everything before writing anything, so a bad file leaves the model as it was.
  const writes: (() => void)[] = [];
  for (const entry of entries) {
    const array = arrays.get(entry.name);
    if (!array) continue;
    if (entry.kind === "counter") {
      if (array.dtype !== "I64" || array.data.length !== 1) {
        throw new Error(
          `weights: ${source}: ${entry.name} should be a scalar I64, got ${array.dtype} [${array.shape}]`,
        );
      }
      writes.push(() => (entry.counter.value = Number((array.data as BigInt64Array)[0])));
      continue;
    }
    const expected = entry.tensor.shape;
    if (array.shape.join() !== expected.join()) {
      throw new Error(
        `weights: ${source}: ${entry.name} has shape [${array.shape.join(", ")}], the model expects [${
          expected.join(", ")
        }]`,
      );
    }
    if (array.dtype !== "F32") {
      throw new Error(`weights: ${source}: ${entry.name} is ${array.dtype}, expected F32`);
    }
    writes.push(() => writeBuffer(entry.tensor.buffer, array.data as Float32Array));
  }
  for (const write of writes) write();
}

/** Loads safetensors weights into `model` by reference key name (with or without `sb_layers.*`). */
export async function loadSafetensors(path: string, model: Module, options: LoadOptions = {}): Promise<void> {
  loadStateDict(model, await readSafetensors(path), { source: path, ...options });
}
