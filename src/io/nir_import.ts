/**
 * NIR graphs back into spikegpu models, to fine-tune here (with SML) a network exported by spikegpu and
 * trained or edited elsewhere. spikegpu's models are fixed architectures, not a general graph executor,
 * so the graph must be one of them: the model is rebuilt from the file's `spikegpu_model` metadata (or
 * from the caller's `model`), and the graph must be exactly the one that model exports (node names and
 * types, edges, shapes, strides); anything else is refused with the first difference. Weights load as
 * a convolution whose BatchNorm is the identity plus the folded bias (weight 1, running mean 0, running
 * variance 1 - eps, bias b'); fine-tuning in train mode renormalises with batch statistics as usual.
 */
import { createModel, type ModelOptions, type SpikingModel } from "../models/registry.ts";
import type { NamedArray } from "./safetensors.ts";
import { loadStateDict, stateDict } from "./state_dict.ts";
import {
  buildNirGraphWithSources,
  DEFAULT_DT,
  type NirArray,
  type NirGraph,
  type NirNode,
} from "./nir_graph.ts";
import { decodeNir } from "./nir_hdf5.ts";

/** How to read a NIR file back into a model. */
export interface NirImportOptions {
  /** The spikegpu model the graph is; default: the file's `spikegpu_model` metadata. */
  model?: { name: string; options: ModelOptions };
}

/** Reads a NIR file into a spikegpu model (eval mode, no surrogate modules). */
export async function importNir(path: string, options: NirImportOptions = {}): Promise<SpikingModel> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`nir: cannot read ${path}: ${(error as Error).message}`);
  }
  const { graph } = await decodeNir(bytes, path);
  return await modelFromNir(graph, path, options);
}

/** The model `graph` describes, with its weights. */
export async function modelFromNir(
  graph: NirGraph,
  source: string,
  options: NirImportOptions = {},
): Promise<SpikingModel> {
  const spec = options.model ?? savedSpec(graph, source);
  const dt = typeof graph.metadata.dt === "number" ? graph.metadata.dt : DEFAULT_DT;
  const lif = neuronOf(graph, dt, source);
  const input = graph.nodes.get("input")?.shape;
  if (!input || typeof input === "string") throw new Error(`nir: ${source} has no Input node named "input"`);
  const inputShape = Array.from(input.data as BigInt64Array, Number);
  const T = typeof graph.metadata.T === "number" ? graph.metadata.T : spec.options.T;
  const model = createModel(spec.name, {
    ...spec.options,
    T,
    modules: undefined,
    lif: { ...spec.options.lif, ...lif },
  });
  try {
    model.eval();
    const state = await stateDict(model);
    const expected = buildNirGraphWithSources(model, state, { inputShape, dt });
    compareTopology(graph, expected.graph, `${source} as ${spec.name}`);
    for (const [name, from] of expected.sources) {
      const node = graph.nodes.get(name)!;
      const array = (field: string) => Float32Array.from((node[field] as NirArray).data as Float32Array);
      if (from.kind === "affine") {
        setF32(state, `${from.linear}.weight`, array("weight"));
        setF32(state, `${from.linear}.bias`, array("bias"));
        continue;
      }
      const bias = array("bias");
      const eps = 1e-5;
      setF32(state, `${from.conv}.weight`, array("weight"));
      setF32(state, `${from.bn}.weight`, new Float32Array(bias.length).fill(1));
      setF32(state, `${from.bn}.bias`, bias);
      setF32(state, `${from.bn}.running_mean`, new Float32Array(bias.length));
      setF32(state, `${from.bn}.running_var`, new Float32Array(bias.length).fill(1 - eps));
    }
    loadStateDict(model, state, { source });
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

function setF32(state: Map<string, NamedArray>, key: string, data: Float32Array): void {
  const entry = state.get(key);
  if (!entry || entry.data.length !== data.length) {
    throw new Error(`nir: ${key} does not take ${data.length} values`);
  }
  state.set(key, { ...entry, data });
}

function savedSpec(graph: NirGraph, source: string): { name: string; options: ModelOptions } {
  const saved = graph.metadata.spikegpu_model;
  if (typeof saved !== "string") {
    throw new Error(
      `nir: ${source} does not say which spikegpu model it is (no spikegpu_model metadata); importNir ` +
        "rebuilds spikegpu's architectures only: pass { model: { name, options } } for a graph of that shape",
    );
  }
  try {
    return JSON.parse(saved);
  } catch {
    throw new Error(`nir: ${source}: its spikegpu_model metadata is not JSON`);
  }
}

/** NIR's stateful nodes that no spikegpu neuron is (other nodes are checked against the model's graph). */
const OTHER_NEURONS = new Set(["LI", "I", "CubaLI", "CubaLIF", "Threshold", "Delay"]);

/** The one LIF all neuron nodes share, as our decay and threshold; anything else is refused. */
function neuronOf(graph: NirGraph, dt: number, source: string): { tau: number; threshold: number } {
  let found: { tau: number; threshold: number; node: string } | undefined;
  for (const [name, node] of graph.nodes) {
    if (node.type !== "LIF" && node.type !== "IF") {
      if (OTHER_NEURONS.has(String(node.type))) {
        throw new Error(`nir: ${source}: ${name} is a ${node.type} node, which no spikegpu neuron is`);
      }
      continue;
    }
    const value = (field: string) => uniform(node, field, `${source}: ${name}`);
    const r = value("r");
    let decay = 1;
    if (node.type === "LIF") {
      const tau = value("tau");
      decay = 1 - dt / tau;
      if (Math.abs(r * dt / tau - 1) > 1e-9 || value("v_leak") !== 0) {
        throw new Error(
          `nir: ${source}: ${name} scales its input by r*dt/tau = ${r * dt / tau} and leaks to ${
            value("v_leak")
          }` +
            ` at dt ${dt}; spikegpu's LIF is u = decay * m + x (r*dt/tau = 1, v_leak = 0)`,
        );
      }
    } else if (r !== 1) {
      throw new Error(
        `nir: ${source}: ${name} is IF with r = ${r}; spikegpu's neuron without leak has r = 1`,
      );
    }
    if (value("v_reset") !== 0) {
      throw new Error(`nir: ${source}: ${name} resets to ${value("v_reset")}; spikegpu's LIF resets to 0`);
    }
    const threshold = value("v_threshold");
    if (found && (Math.abs(found.tau - decay) > 1e-9 || found.threshold !== threshold)) {
      throw new Error(`nir: ${source}: ${name} differs from ${found.node}; spikegpu models share one LIF`);
    }
    found ??= { tau: decay, threshold, node: name };
  }
  if (!found) throw new Error(`nir: ${source} has no LIF or IF node`);
  return { tau: found.tau, threshold: found.threshold };
}

function uniform(node: NirNode, field: string, what: string): number {
  const array = node[field];
  if (!array || typeof array === "string" || array.dtype === "i64" || array.data.length === 0) {
    throw new Error(`nir: ${what} has no ${field}`);
  }
  const first = array.data[0] as number;
  if (!(array.data as Float64Array).every((v) => v === first)) {
    throw new Error(`nir: ${what}: ${field} differs between neurons; spikegpu's layers share one value`);
  }
  return first;
}

/** The file's graph must be the model's: same nodes, types, edges, shapes and integer fields. */
function compareTopology(actual: NirGraph, expected: NirGraph, what: string): void {
  const key = (edges: [string, string][]) => edges.map(([a, b]) => `${a} -> ${b}`).sort();
  const missing = [...expected.nodes.keys()].filter((n) => !actual.nodes.has(n));
  const extra = [...actual.nodes.keys()].filter((n) => !expected.nodes.has(n));
  if (missing.length || extra.length) {
    throw new Error(
      `nir: ${what}: nodes differ: ${missing.length ? `missing ${missing.slice(0, 6).join(", ")}` : ""}` +
        `${missing.length && extra.length ? "; " : ""}${
          extra.length ? `unexpected ${extra.slice(0, 6).join(", ")}` : ""
        }`,
    );
  }
  const [a, e] = [key(actual.edges), key(expected.edges)];
  const edge = e.find((x) => !a.includes(x)) ?? a.find((x) => !e.includes(x));
  if (edge) throw new Error(`nir: ${what}: edges differ at ${edge}`);
  for (const [name, node] of expected.nodes) {
    const other = actual.nodes.get(name)!;
    if (other.type !== node.type) {
      throw new Error(`nir: ${what}: ${name} is ${other.type}, expected ${node.type}`);
    }
    for (const [field, value] of Object.entries(node)) {
      if (typeof value === "string") continue;
      const mine = other[field];
      if (!mine || typeof mine === "string" || mine.shape.join() !== value.shape.join()) {
        throw new Error(`nir: ${what}: ${name}.${field} should have shape [${value.shape}]`);
      }
      if (value.dtype === "i64" && mine.data.join() !== value.data.join()) {
        throw new Error(`nir: ${what}: ${name}.${field} is [${mine.data}], expected [${value.data}]`);
      }
    }
  }
}
