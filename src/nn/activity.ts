/**
 * Layer activity during a forward pass: the firing rate of every LIF call and, for every convolution
 * and linear layer, the rate of its input and its multiply-accumulates, from which the synaptic
 * operation count and the energy estimate SNN papers use are derived. Accumulated on the GPU; read once.
 * Layers are named by their path in the model's module tree, as the state dict names their tensors
 * (`layer1.0.lif1`, `layers.2.2`).
 *
 * Energy constants (45 nm CMOS, Horowitz 2014, as in most SNN papers): a 32-bit float MAC costs
 * E_MAC = 4.6 pJ, an accumulate (a spike arriving at a synapse) E_AC = 0.9 pJ. A layer whose input is
 * binary spikes performs rate x MACs accumulates per time step; a layer with analog input (the stem on
 * images, a classifier after average pooling) performs full MACs.
 */
import { fillKernel } from "../../kernels/elementwise.ts";
import { ACTIVITY_UNIFORM_BYTES, activityKernel } from "../../kernels/metrics.ts";
import { dispatch } from "../gpu/kernels.ts";
import { fill } from "../ops/elementwise.ts";
import { untracked } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Module } from "./module.ts";

/** Energy of one multiply-accumulate, in picojoules (45 nm, Horowitz 2014), for ANN layers. */
export const E_MAC_PJ = 4.6;
/** Energy of one accumulate, in picojoules (45 nm), for each synaptic operation of a spike. */
export const E_AC_PJ = 0.9;

const SLOT_WIDTH = 3;
const MAX_SITES = 512;

/** A recorded place in the network: a LIF layer or a synapse (convolution, linear). */
export interface Site {
  /** LIF output or synapse input. */
  kind: "lif" | "synapse";
  /** The layer's name. */
  name: string;
  /** Multiply-accumulates per sample per time step (synapse sites). */
  macs: number;
}

/** Activity of one site over the recorded forwards. */
export interface LayerActivity {
  /** The layer's path in the module tree; `Class#index` (call order) for a layer outside the tree. */
  name: string;
  /** LIF output or synapse input. */
  kind: "lif" | "synapse";
  /** Mean over recorded calls of the mean value: firing rate for spikes. */
  rate: number;
  /** True when every value seen was 0 or 1. */
  binary: boolean;
  /** Multiply-accumulates per sample per time step. */
  macs: number;
}

/** Firing rates, synaptic operations and the energy estimate of the recorded forwards. */
export interface ActivityReport {
  /** Every site, in call order. */
  layers: LayerActivity[];
  /** Per sample (image), all time steps. */
  synapticOps: number;
  /** Multiply-accumulates per sample, all time steps (what an ANN of the same shape does). */
  macs: number;
  /** Energy estimate per sample, in microjoules: macs at E_MAC_PJ plus synaptic operations at E_AC_PJ. */
  energyMicrojoules: number;
}

/** Every module under `root` by its path (`layer1.0.conv1`), as the state dict composes names. */
function modulePaths(root: Module): Map<Module, string> {
  const paths = new Map<Module, string>();
  const visit = (module: Module, prefix: string) => {
    for (const [name, child] of module.children()) {
      if (!paths.has(child)) paths.set(child, prefix + name);
      visit(child, `${prefix}${name}.`);
    }
  };
  visit(root, "");
  return paths;
}

/** Records activity while `run` is active; sites are numbered in call order, the same on every forward. */
export class ActivityRecorder {
  readonly #sites: Site[] = [];
  readonly #paths: Map<Module, string>;
  #cursor = 0;
  /** The batch of the running forward and how many of its samples are real (the rest is padding). */
  #samples = { batch: 0, valid: 0 };
  readonly #stats: Tensor;

  /** `model` names the layers; without it they are named by kind and call order. */
  constructor(model?: Module) {
    this.#paths = model ? modulePaths(model) : new Map();
    this.#stats = untracked(() => fill([MAX_SITES * SLOT_WIDTH], 0, "activity_stats"));
  }

  /**
   * Records the layers `forward` calls. With `samples`, the forward's batch holds `samples.batch`
   * samples of which only the first `samples.valid` count (a padded evaluation batch).
   */
  run<T>(forward: () => T, samples?: { batch: number; valid: number }): T {
    const previous = active;
    active = this;
    this.#cursor = 0;
    this.#samples = samples ?? { batch: 0, valid: 0 };
    try {
      return forward();
    } finally {
      active = previous;
    }
  }

  /** Adds the mean (and binary check) of `x` at the next site; called by layers while recording. */
  record(kind: Site["kind"], layer: Module, x: Tensor, macs: number): void {
    const index = this.#cursor++;
    if (index >= MAX_SITES) return;
    this.#sites[index] ??= { kind, name: this.#siteName(layer, index), macs };
    // The time-folded layout puts T outermost: each of `groups` steps holds the whole batch.
    const { batch, valid } = this.#samples;
    const groups = batch ? x.shape[0] / batch : 1;
    if (!Number.isInteger(groups)) {
      throw new Error(
        `spikegpu: activity of ${
          this.#sites[index].name
        }: ${x.name} [${x.shape}] is not time steps of ${batch} samples`,
      );
    }
    const groupSize = x.size / groups;
    const sizes = new Uint32Array(ACTIVITY_UNIFORM_BYTES / 4);
    sizes.set([index * SLOT_WIDTH, groups, groupSize, batch ? (groupSize / batch) * valid : groupSize]);
    dispatch(activityKernel(), [x.buffer, this.#stats.buffer], [1], sizes);
  }

  /** The layer's path; a layer called more than once per forward gets `#2`, `#3`... on later calls. */
  #siteName(layer: Module, index: number): string {
    const path = this.#paths.get(layer);
    if (path === undefined) return `${layer.constructor.name}#${index}`;
    const calls = this.#sites.filter((site) => site.name === path || site.name.startsWith(`${path}#`)).length;
    return calls === 0 ? path : `${path}#${calls + 1}`;
  }

  /** Reads the accumulated activity; `T` converts per-step operations to per-sample totals. */
  async report(T: number): Promise<ActivityReport> {
    const stats = await this.#stats.readFloat();
    let synapticOps = 0;
    let macs = 0;
    const layers = this.#sites.map((site, i) => {
      const calls = stats[i * SLOT_WIDTH + 1] || 1;
      const rate = stats[i * SLOT_WIDTH] / calls;
      const binary = stats[i * SLOT_WIDTH + 2] === 0;
      if (site.kind === "synapse") {
        if (binary) synapticOps += rate * site.macs * T;
        else macs += site.macs * T;
      }
      return { name: site.name, kind: site.kind, rate, binary, macs: site.macs };
    });
    const energyMicrojoules = (macs * E_MAC_PJ + synapticOps * E_AC_PJ) * 1e-6;
    return { layers, synapticOps, macs, energyMicrojoules };
  }

  /** Clears the accumulated statistics (the sites stay registered). */
  reset(): void {
    const kernel = fillKernel(this.#stats.size, 0);
    dispatch(kernel, [this.#stats.buffer], kernel.workgroups);
  }

  /** Frees the recorder's GPU counters. */
  dispose(): void {
    this.#stats.dispose();
  }
}

let active: ActivityRecorder | undefined;

/** Runs `body` without recording (the surrogate modules, which are not part of the deployed SNN). */
export function withoutActivity<T>(body: () => T): T {
  const previous = active;
  active = undefined;
  try {
    return body();
  } finally {
    active = previous;
  }
}

/** Called by layers; does nothing unless a recorder is running. */
export function recordActivity(kind: Site["kind"], layer: Module, x: Tensor, macs = 0): void {
  active?.record(kind, layer, x, macs);
}
