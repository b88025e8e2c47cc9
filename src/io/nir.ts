/**
 * Export to NIR (neuromorphs/NIR), the interchange format of snnTorch, Norse, SpikingJelly, Sinabs,
 * Rockpool, Lava and neuromorphic toolchains: the SNN in eval mode without its surrogate modules, as an
 * HDF5 file `nir.read` loads. The mapping and its equations: docs/nir.md. Written atomically: a failed
 * export leaves no file and any previous one untouched.
 */
import type { SpikingModel } from "../models/registry.ts";
import { PlainSpikingCnn } from "../models/plain_cnn.ts";
import { SpikingResNet } from "../models/spiking_resnet.ts";
import { writeFileAtomic } from "./atomic.ts";
import { buildNirGraph, NIR_VERSION, type NirGraph, type NirGraphOptions } from "./nir_graph.ts";
import { encodeNir } from "./nir_hdf5.ts";
import { stateDict } from "./state_dict.ts";

/** How to export: the graph options, less `source` (the exporter stores the model's own). */
export interface NirExportOptions extends Omit<NirGraphOptions, "source"> {}

/** What `exportNir` wrote. */
export interface NirExportSummary {
  /** The file written. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** Nodes in the graph, input and output included. */
  nodes: number;
  /** Edges in the graph. */
  edges: number;
  /** The NIR format version written. */
  version: string;
}

/** The registry name and options that rebuild `model` (stored in the file's metadata). */
export function modelSource(model: SpikingModel): { name: string; options: Record<string, unknown> } {
  if (model instanceof SpikingResNet) {
    const { modules: _modules, arch, ...options } = model.config;
    return { name: arch, options: { ...options, T: model.T } };
  }
  if (model instanceof PlainSpikingCnn) {
    const { modules: _modules, ...options } = model.config;
    return { name: "plain", options: { ...options, T: model.T } };
  }
  throw new Error(`nir: cannot export a ${model.constructor.name}; expected a spikegpu model`);
}

/** The NIR graph of `model` with its current weights and BN running statistics. */
export async function nirGraph(model: SpikingModel, options: NirExportOptions): Promise<NirGraph> {
  const weights = await stateDict(model, { surrogates: false });
  return buildNirGraph(model, weights, { ...options, source: modelSource(model) });
}

/** Writes `model` as a NIR graph file at `path`. */
export async function exportNir(
  model: SpikingModel,
  path: string,
  options: NirExportOptions,
): Promise<NirExportSummary> {
  const graph = await nirGraph(model, options);
  const bytes = await encodeNir(graph, NIR_VERSION);
  await writeFileAtomic(path, bytes);
  return {
    path,
    bytes: bytes.byteLength,
    nodes: graph.nodes.size,
    edges: graph.edges.length,
    version: NIR_VERSION,
  };
}
