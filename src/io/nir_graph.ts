/**
 * The NIR graph (Neuromorphic Intermediate Representation, neuromorphs/NIR) of a spiking model in eval
 * mode, held in memory: node fields as the `nir` Python package names them, edges, graph metadata.
 * docs/nir.md states every mapping with its equations; this file builds the graph from host weights.
 *
 * - BatchNorm (running statistics) is folded into the preceding convolution, which gains a bias.
 * - Our LIF (SPEC §2) is NIR's LIF integrated with forward Euler at the stated `dt`; a decay of 1 is IF.
 * - A residual addition is two edges into the same neuron node (NIR sums a node's incoming edges).
 * - The read-out mean over T is not a node: the graph's output is the per-step logits, and the metadata
 *   says to average them (as it says how the input is presented over the T steps).
 * - Surrogate modules are training-only and never exported.
 */
import type { SpikingModel } from "../models/registry.ts";
import { SpikingResNet } from "../models/spiking_resnet.ts";
import { PlainSpikingCnn } from "../models/plain_cnn.ts";
import type { BatchNorm, Conv2d, Lif, Linear } from "../nn/layers.ts";
import type { NamedArray } from "./safetensors.ts";

/** The NIR format version whose layout these files follow (neuromorphs/NIR v1.0.x serialization). */
export const NIR_VERSION = "1.0.7";

/** The time step the LIF parameters are stated for; snnTorch's `import_from_nir` assumes the same. */
export const DEFAULT_DT = 1e-4;

/** An array as NIR stores it: a typed array with its dtype and shape. */
export type NirArray =
  | { dtype: "f32"; shape: number[]; data: Float32Array }
  | { dtype: "f64"; shape: number[]; data: Float64Array }
  | { dtype: "i64"; shape: number[]; data: BigInt64Array };

/** A node's fields: a string (its `type`) or an array (shape [] for a scalar). */
export type NirNode = Record<string, string | NirArray>;

/** A NIR graph in memory: named nodes, edges between them, metadata. */
export interface NirGraph {
  /** In topological order: input first, output last. */
  nodes: Map<string, NirNode>;
  /** Directed edges, each [source node, target node]. */
  edges: [string, string][];
  /** Scalars and strings only (NIR stores them as datasets under `metadata`). */
  metadata: Record<string, string | number>;
}

/** What the graph states beyond the model's weights: input shape and presentation, time step, source. */
export interface NirGraphOptions {
  /** One sample's input (C, H, W), without batch or time. */
  inputShape: readonly number[];
  /** The time step stated for the neuron parameters; default 1e-4 (snnTorch's). */
  dt?: number;
  /** How the T steps are fed: one static image repeated T times, or one event frame per step. */
  input?: "static" | "events";
  /** Registry name and options of the model, stored in the metadata so importNir can rebuild it. */
  source?: { name: string; options: Record<string, unknown> };
}

export const f32 = (data: Float32Array, shape: number[]): NirArray => ({ dtype: "f32", shape, data });
export const f64 = (data: Float64Array, shape: number[]): NirArray => ({ dtype: "f64", shape, data });
export const i64 = (values: readonly number[], shape = [values.length]): NirArray => ({
  dtype: "i64",
  shape,
  data: BigInt64Array.from(values, (v) => BigInt(v)),
});

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The fixed window of PyTorch's adaptive average pooling of `input` cells to `output` (bin i covers
 * floor(i*input/output) .. ceil((i+1)*input/output)), or null when the bins differ in size or spacing.
 * Pooling to 1 or 2 always has one (7 -> 2 is kernel 4, stride 3: bins 0..4 and 3..7).
 */
export function poolWindow(input: number, output: number): { kernel: number; stride: number } | null {
  const starts = Array.from({ length: output }, (_, i) => Math.floor((i * input) / output));
  const ends = Array.from({ length: output }, (_, i) => Math.ceil(((i + 1) * input) / output));
  const kernel = ends[0] - starts[0];
  const stride = output > 1 ? starts[1] - starts[0] : kernel;
  const uniform = starts.every((start, i) => ends[i] - start === kernel && start === i * stride);
  return uniform && stride > 0 ? { kernel, stride } : null;
}

/** Where a parameterised node's values live in the model's state dict. */
export type NirParameterSource =
  | { kind: "conv"; conv: string; bn: string }
  | { kind: "affine"; linear: string };

/** Builds the graph from the model's host weights (`stateDict(model)`: reference names). */
export function buildNirGraph(
  model: SpikingModel,
  weights: Map<string, NamedArray>,
  options: NirGraphOptions,
): NirGraph {
  return buildNirGraphWithSources(model, weights, options).graph;
}

/** The graph and, per Conv2d and Affine node, the state-dict entries it was made from. */
export function buildNirGraphWithSources(
  model: SpikingModel,
  weights: Map<string, NamedArray>,
  options: NirGraphOptions,
): { graph: NirGraph; sources: Map<string, NirParameterSource> } {
  const builder = new GraphBuilder(model, weights, options);
  if (model instanceof SpikingResNet) builder.resnet(model);
  else if (model instanceof PlainSpikingCnn) builder.plain(model);
  else {
    const kind = (model as object).constructor.name;
    throw new Error(`nir: cannot export a ${kind}; expected a spikegpu model`);
  }
  return { graph: builder.graph, sources: builder.sources };
}

/** An activation's shape (C, H, W) or (N) and the node that produces it. */
interface Port {
  node: string;
  shape: number[];
}

class GraphBuilder {
  readonly graph: NirGraph;
  readonly input: Port;
  readonly sources = new Map<string, NirParameterSource>();
  readonly #weights: Map<string, NamedArray>;
  readonly #dt: number;

  constructor(readonly model: SpikingModel, weights: Map<string, NamedArray>, options: NirGraphOptions) {
    this.#weights = weights;
    this.#dt = options.dt ?? DEFAULT_DT;
    if (!(this.#dt > 0) || !Number.isFinite(this.#dt)) {
      throw new Error(`nir: dt must be a positive number, got ${options.dt}`);
    }
    const shape = [...options.inputShape];
    if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(
        `nir: the input shape must be (C, H, W) of positive integers, got [${shape.join(", ")}]`,
      );
    }
    const input = options.input ?? (shape[0] === 2 ? "events" : "static");
    const metadata: Record<string, string | number> = {
      generator: "spikegpu",
      dt: this.#dt,
      T: model.T,
      input: input === "static"
        ? "static: the same (C, H, W) image is the input at each of the T steps"
        : "events: event frame t of a (T, C, H, W) sample is the input at step t",
      readout: "the classifier's output averaged over the T steps (mean over t)",
      neuron:
        "LIF, forward Euler at dt: v[t] = v[t-1] + dt/tau * (v_leak - v[t-1] + r * I[t]); spike z[t] = " +
        "v[t] > v_threshold, then v[t] = v_reset; the spike is emitted in the same step",
    };
    if (options.source) {
      metadata.spikegpu_model = JSON.stringify(options.source);
    }
    this.graph = { nodes: new Map([["input", { type: "Input", shape: i64(shape) }]]), edges: [], metadata };
    this.input = { node: "input", shape };
  }

  resnet(model: SpikingResNet): void {
    this.#checkChannels(model.conv1.inChannels);
    let x = this.#lif("lif1", this.#convBn("conv1", model.conv1, "conv1", "bn1", [this.input]), model.lif1);
    model.blocks.forEach((block, i) => {
      const stage = this.#blockPrefix(model, i);
      const h = this.#lif(
        `${stage}.lif1`,
        this.#convBn(`${stage}.conv1`, block.conv1, `${stage}.conv1`, `${stage}.bn1`, [x]),
        block.lif1,
      );
      const main = this.#convBn(`${stage}.conv2`, block.conv2, `${stage}.conv2`, `${stage}.bn2`, [h]);
      const shortcut = block.downsample
        ? this.#convBn(
          `${stage}.downsample`,
          block.downsample.items[0] as Conv2d,
          `${stage}.downsample.0`,
          `${stage}.downsample.1`,
          [x],
        )
        : x;
      x = this.#lif(`${stage}.lif2`, this.#sum(main, shortcut), block.lif2);
    });
    let h = this.#flatten(this.#avgPool(x, 1));
    h = this.#affine("linear", model.linear, h);
    if (model.linear2) {
      h = this.#affine("linear2", model.linear2, this.#lif("linear.lif", [h], model.linearLif!));
    }
    this.#output(h);
  }

  plain(model: PlainSpikingCnn): void {
    const layers = model.layers.items;
    this.#checkChannels(layers[0].conv.inChannels);
    let x = this.input;
    layers.forEach((layer, i) => {
      const conv = this.#convBn(`layers.${i}.conv`, layer.conv, `layers.${i}.0`, `layers.${i}.1`, [x]);
      x = this.#lif(`layers.${i}.lif`, conv, layer.lif);
    });
    this.#output(this.#affine("linear", model.linear, this.#flatten(this.#avgPool(x, 2))));
  }

  #blockPrefix(model: SpikingResNet, index: number): string {
    // Blocks are named like the state dict: layer<stage>.<block in stage>.
    let remaining = index;
    for (const [name, list] of model.children()) {
      if (!name.startsWith("layer")) continue;
      const count = [...list.children()].length;
      if (remaining < count) return `${name}.${remaining}`;
      remaining -= count;
    }
    throw new Error(`nir: block ${index} is in no stage`);
  }

  #checkChannels(channels: number): void {
    if (this.input.shape[0] !== channels) {
      throw new Error(
        `nir: the input shape [${this.input.shape.join(", ")}] has ${this.input.shape[0]} channels, ` +
          `the model's stem expects ${channels}`,
      );
    }
  }

  #array(key: string): Float32Array {
    const array = this.#weights.get(key);
    if (!array || !(array.data instanceof Float32Array)) {
      throw new Error(`nir: the model's state has no f32 ${key}`);
    }
    return array.data;
  }

  #add(name: string, node: NirNode, inputs: Port[]): void {
    this.graph.nodes.set(name, node);
    for (const input of inputs) this.graph.edges.push([input.node, name]);
  }

  /** Conv2d with the following BatchNorm folded in: W' = W * s, b' = beta - mean * s, s = gamma / sqrt(var + eps). */
  #convBn(name: string, conv: Conv2d, convKey: string, bnKey: string, inputs: Port[]): Port[] {
    const [input] = inputs;
    const [c, h, w] = input.shape;
    if (c !== conv.inChannels) throw new Error(`nir: ${name} expects ${conv.inChannels} channels, gets ${c}`);
    const k = conv.kernelSize;
    const outH = Math.floor((h + 2 * conv.padding - k) / conv.stride) + 1;
    const outW = Math.floor((w + 2 * conv.padding - k) / conv.stride) + 1;
    if (outH < 1 || outW < 1) {
      throw new Error(
        `nir: the input is too small: ${name} (kernel ${k}) would map ${h}x${w} to ${outH}x${outW}`,
      );
    }
    this.sources.set(name, { kind: "conv", conv: convKey, bn: bnKey });
    const bn = this.#bn(bnKey);
    const weight = this.#array(`${convKey}.weight`);
    const perChannel = weight.length / conv.outChannels;
    const folded = new Float32Array(weight.length);
    const bias = new Float32Array(conv.outChannels);
    for (let o = 0; o < conv.outChannels; o++) {
      const scale = bn.weight[o] / Math.sqrt(bn.runningVar[o] + bn.eps);
      for (let i = 0; i < perChannel; i++) folded[o * perChannel + i] = weight[o * perChannel + i] * scale;
      bias[o] = bn.bias[o] - bn.runningMean[o] * scale;
    }
    this.#add(name, {
      type: "Conv2d",
      weight: f32(folded, [conv.outChannels, conv.inChannels, k, k]),
      bias: f32(bias, [conv.outChannels]),
      stride: i64([conv.stride, conv.stride]),
      padding: i64([conv.padding, conv.padding]),
      dilation: i64([1, 1]),
      groups: i64([1], []),
      input_shape: i64([h, w]),
    }, inputs);
    return [{ node: name, shape: [conv.outChannels, outH, outW] }];
  }

  #bn(key: string) {
    const module = this.#module(key) as BatchNorm;
    return {
      weight: this.#array(`${key}.weight`),
      bias: this.#array(`${key}.bias`),
      runningMean: this.#array(`${key}.running_mean`),
      runningVar: this.#array(`${key}.running_var`),
      eps: module.eps,
    };
  }

  #module(key: string) {
    let module = this.model as { children(): IterableIterator<[string, unknown]> };
    for (const part of key.split(".")) {
      const child = new Map(module.children()).get(part);
      if (!child) throw new Error(`nir: the model has no ${key}`);
      module = child as typeof module;
    }
    return module;
  }

  /** A residual addition: both producers become edges into the neuron, which sums them. */
  #sum(main: Port[], shortcut: Port | Port[]): Port[] {
    const other = Array.isArray(shortcut) ? shortcut[0] : shortcut;
    if (main[0].shape.join() !== other.shape.join()) {
      throw new Error(`nir: residual shapes differ: [${main[0].shape}] and [${other.shape}]`);
    }
    return [main[0], other];
  }

  /**
   * Our LIF, u[t] = decay * m[t-1] + x[t], is NIR's LIF under forward Euler at dt with
   * dt / tau = 1 - decay and r * dt / tau = 1: tau = dt / (1 - decay), r = 1 / (1 - decay), v_leak = 0;
   * hard reset to 0 is v_reset = 0. A decay of 1 (no leak) is NIR's IF with r = 1.
   */
  #lif(name: string, inputs: Port[], lif: Lif): Port {
    const shape = inputs[0].shape;
    const decay = lif.options.tau ?? 0.5;
    const threshold = lif.options.threshold ?? 1.0;
    if (!Number.isFinite(decay) || decay < 0 || decay > 1) {
      throw new Error(
        `nir: ${name} has decay (tau) ${decay}; NIR's LIF reproduces u = decay * m + x exactly only for ` +
          "0 <= decay <= 1 (tau = dt / (1 - decay) > 0), so it is not exported",
      );
    }
    if (!Number.isFinite(threshold) || threshold === 0) {
      throw new Error(
        `nir: ${name} has threshold ${threshold}; NIR fires when v > v_threshold, ours when u >= threshold, ` +
          "which differ for every neuron at rest when the threshold is 0, so it is not exported",
      );
    }
    const size = product(shape);
    const full = (value: number) => f64(new Float64Array(size).fill(value), [...shape]);
    const dt = this.#dt;
    const node: NirNode = decay === 1
      ? { type: "IF", r: full(1), v_threshold: full(threshold), v_reset: full(0) }
      : {
        type: "LIF",
        tau: full(dt / (1 - decay)),
        r: full(1 / (1 - decay)),
        v_leak: full(0),
        v_threshold: full(threshold),
        v_reset: full(0),
      };
    this.#add(name, node, inputs);
    return { node: name, shape };
  }

  /** PyTorch's adaptive average pooling to `size` as NIR's AvgPool2d (see poolWindow). */
  #avgPool(x: Port, size: number): Port {
    const [c, h, w] = x.shape;
    const [rows, cols] = [poolWindow(h, size), poolWindow(w, size)];
    if (!rows || !cols) {
      throw new Error(
        `nir: adaptive average pooling of ${h}x${w} to ${size}x${size} uses windows of different sizes or ` +
          "spacing, which NIR's AvgPool2d (one kernel, one stride) cannot express",
      );
    }
    this.#add("avgpool", {
      type: "AvgPool2d",
      kernel_size: i64([rows.kernel, cols.kernel]),
      stride: i64([rows.stride, cols.stride]),
      padding: i64([0, 0]),
    }, [x]);
    return { node: "avgpool", shape: [c, size, size] };
  }

  /** NIR's Flatten counts dimensions without the batch: (C, h, w) from 0 to -1. */
  #flatten(x: Port): Port {
    this.#add("flatten", {
      type: "Flatten",
      start_dim: i64([0], []),
      end_dim: i64([-1], []),
      input_type: i64(x.shape),
    }, [x]);
    return { node: "flatten", shape: [product(x.shape)] };
  }

  #affine(name: string, linear: Linear, x: Port | Port[]): Port {
    const input = Array.isArray(x) ? x[0] : x;
    if (input.shape.length !== 1 || input.shape[0] !== linear.inFeatures) {
      throw new Error(`nir: ${name} expects ${linear.inFeatures} features, gets [${input.shape}]`);
    }
    this.sources.set(name, { kind: "affine", linear: name });
    this.#add(name, {
      type: "Affine",
      weight: f32(this.#array(`${name}.weight`).slice(), [linear.outFeatures, linear.inFeatures]),
      bias: f32(this.#array(`${name}.bias`).slice(), [linear.outFeatures]),
    }, [input]);
    return { node: name, shape: [linear.outFeatures] };
  }

  #output(x: Port): void {
    this.#add("output", { type: "Output", shape: i64(x.shape) }, [x]);
  }
}
