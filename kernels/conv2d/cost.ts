/**
 * The cost model of the direct kernels on a CPU adapter and the tiling choice it drives (GPUs get the GEMM
 * tiling): every candidate tile is rated in multiply-adds of one invocation and the cheapest wins.
 */
import { convFlops, type ConvGeometry, geometryKey, outputSize, phase, reached } from "./geometry.ts";
import { SOFTWARE_ADAPTER_COSTS, type SoftwareTarget, UNIFORM_WINDOW_BYTES } from "../target.ts";
import type { DirectTile, DirectWeightTile, GemmTile } from "./tiles.ts";
import {
  reductionRead,
  rowsPerWindow,
  sampleGroups,
  weightChannelRanges,
  windowCapacity,
} from "./windows.ts";

/**
 * Largest unrolled loop body (multiply-adds) and accumulator count a CPU-adapter kernel may have. LLVM's
 * compile time grows with the body: on the default network, capping it at 768 instead of 2,304 cut the
 * cold compile of a training step from 142 s to 78 s for the same step time (413 vs 410 ms); 288 and
 * below made steps slower (444 ms at 288, 486 ms at 144).
 */
const DIRECT_MAX_PRODUCTS = 768;
/**
 * Layers of at least LARGE_BODY_FLOPS per pass (ResNet-19's, 2-10 GFLOP at batch 16, T = 2) run long
 * enough to repay bodies of up to 2,304 multiply-adds: with the 768 cap the headline ResNet-19 step took
 * 125 s instead of 81 s. The default network's layers do at most 40 MFLOP.
 */
const DIRECT_LARGE_PRODUCTS = 2304;
const LARGE_BODY_FLOPS = 1e9;
const DIRECT_MAX_ACCUMULATORS = 288;

/** Prices of the cost model below: a software adapter's, in multiply-adds of one invocation. */
const COST = SOFTWARE_ADAPTER_COSTS;

function loadCost(windowed: boolean): number {
  return windowed ? COST.uniformLoad : COST.storageAccess;
}

/**
 * Storing an accumulator; in a split reduction each range after the first also loads the earlier ranges'
 * sum. 2.5 storage accesses in all fit ResNet-19's shapes (N = 32): splitting won with 52 or more channels
 * per range (256->256 16x16 forward: 738 ms against 1,098 ms reading x from storage) and lost with 13
 * (64->128 32x32 forward: 466 ms against 363 ms).
 */
function storeCost(split: boolean): number {
  return (split ? 2.5 : 1) * COST.storageAccess;
}

/** One dispatch of `workgroups` workgroups of `workgroup` invocations, run `threads` at a time. */
function dispatchCost(workgroups: number, workgroup: number, laneCost: number, threads: number): number {
  return Math.ceil(workgroups / threads) * (workgroup * laneCost + COST.workgroup) + COST.dispatch;
}

const WORKGROUPS = [8, 16, 32, 64];
const WINDOW_CHOICES = [UNIFORM_WINDOW_BYTES, 0];

function forwardCost(geometry: ConvGeometry, tile: DirectTile, threads: number): number {
  const { batch, cin, cout, height, width, kernel, stride } = geometry;
  const { channels, rows, cols, workgroup, windowBytes } = tile;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const x = reductionRead("x", [batch, cin, height * width], tile, false);
  const weightRows = rowsPerWindow(cout, x.channelsPerDispatch * taps, channels, windowBytes);
  const patch = reached(rows, stride, kernel).length * reached(cols, stride, kernel).length;
  const accumulators = channels * rows * cols;
  const laneCost = x.channelsPerDispatch * (accumulators * taps + patch * loadCost(x.read.vec4s > 0) +
        channels * taps * loadCost(weightRows > 0)) + accumulators * storeCost(x.split);
  const lanes = x.samplesPerDispatch * Math.ceil(outH / rows) * Math.ceil(outW / cols);
  const coWindows = weightRows ? Math.ceil(cout / weightRows) : 1;
  const blocks = Math.ceil((weightRows || cout) / channels);
  const workgroups = Math.ceil(lanes / workgroup) * blocks;
  const passes = Math.ceil(batch / x.samplesPerDispatch) * Math.ceil(cin / x.channelsPerDispatch);
  const copy = x.split && weightRows ? weightCopyCost(geometry, threads) : 0;
  return copy + passes * coWindows * dispatchCost(workgroups, workgroup, laneCost, threads);
}

/** Writing the blocked weight copy: a load and a store per weight. */
function weightCopyCost({ cin, cout, kernel }: ConvGeometry, threads: number): number {
  return COST.dispatch + (cout * cin * kernel * kernel * 2 * COST.storageAccess) / threads;
}

function gradInputCost(geometry: ConvGeometry, tile: DirectTile, threads: number): number {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { channels, rows, cols, workgroup, windowBytes } = tile;
  const [outH, outW] = outputSize(geometry);
  const gradOut = reductionRead("gradOut", [batch, cout, outH * outW], tile, false);
  const passes = Math.ceil(batch / gradOut.samplesPerDispatch) *
    Math.ceil(cout / gradOut.channelsPerDispatch);
  const weightRows = rowsPerWindow(cin, gradOut.channelsPerDispatch * kernel * kernel, channels, windowBytes);
  const ciWindows = weightRows ? Math.ceil(cin / weightRows) : 1;
  const blocks = Math.ceil((weightRows || cin) / channels);
  const accumulators = channels * rows * cols;
  let cost = weightRows ? weightCopyCost(geometry, threads) : 0;
  for (let py = 0; py < stride; py++) {
    for (let px = 0; px < stride; px++) {
      const phaseRows = phase(py, height, kernel, stride, pad);
      const phaseCols = phase(px, width, kernel, stride, pad);
      if (phaseRows.count === 0 || phaseCols.count === 0) continue;
      const phaseTaps = phaseRows.taps * phaseCols.taps;
      const patch = phaseTaps
        ? reached(rows, 1, phaseRows.taps).length * reached(cols, 1, phaseCols.taps).length
        : 0;
      const laneCost = gradOut.channelsPerDispatch * (accumulators * phaseTaps +
            patch * loadCost(gradOut.read.vec4s > 0) + channels * phaseTaps * loadCost(weightRows > 0)) +
        accumulators * storeCost(gradOut.split);
      const lanes = gradOut.samplesPerDispatch * Math.ceil(phaseRows.count / rows) *
        Math.ceil(phaseCols.count / cols);
      const workgroups = Math.ceil(lanes / workgroup) * blocks;
      cost += passes * ciWindows * dispatchCost(workgroups, workgroup, laneCost, threads);
    }
  }
  return cost;
}

function gradWeightCost(geometry: ConvGeometry, tile: DirectWeightTile, threads: number): number {
  const { batch, cin, cout, height, width, kernel, stride } = geometry;
  const { outChannels, inChannels, rows, cols, workgroup, splits, windowBytes } = tile;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const groups = sampleGroups(batch, [cout * outH * outW, cin * height * width], windowBytes);
  const ranges = weightChannelRanges(geometry, tile);
  const samples = ranges ? 1 : groups.size;
  const steps = Math.ceil(samples * Math.ceil(outH / rows) * Math.ceil(outW / cols) / splits);
  const patch = reached(rows, stride, kernel).length * reached(cols, stride, kernel).length;
  const accumulators = outChannels * inChannels * taps;
  const laneCost = steps * (accumulators * rows * cols +
        outChannels * rows * cols * loadCost(ranges !== null || groups.windowed[0]) +
        inChannels * patch * loadCost(ranges !== null || groups.windowed[1])) +
    accumulators * storeCost(ranges !== null);
  let cost: number;
  let partials: number;
  if (ranges) {
    const lanes = Math.ceil(ranges.outChannels / outChannels) * Math.ceil(ranges.inChannels / inChannels) *
      splits;
    const dispatches = batch * Math.ceil(cout / ranges.outChannels) * Math.ceil(cin / ranges.inChannels);
    cost = dispatches * dispatchCost(Math.ceil(lanes / workgroup), workgroup, laneCost, threads);
    partials = splits;
  } else {
    const lanes = Math.ceil(cout / outChannels) * Math.ceil(cin / inChannels) * splits;
    cost = groups.count * dispatchCost(Math.ceil(lanes / workgroup), workgroup, laneCost, threads);
    partials = groups.count * splits;
  }
  if (partials > 1) {
    const weights = cout * cin * taps;
    const weightsPerWindow = Math.floor(windowCapacity(windowBytes) / partials);
    const dispatches = weightsPerWindow ? Math.ceil(weights / weightsPerWindow) : 1;
    cost += dispatches * COST.dispatch + (weights * partials * loadCost(weightsPerWindow > 0)) / threads;
  }
  return cost;
}

/** The cheapest tile under `cost` among `candidates`; a tie goes to the earlier candidate. */
function cheapest<T>(candidates: Iterable<T>, cost: (tile: T) => number): T {
  let best: T | undefined;
  let bestCost = Infinity;
  for (const tile of candidates) {
    const c = cost(tile);
    if (c < bestCost * 0.999) {
      best = tile;
      bestCost = c;
    }
  }
  return best!;
}

function* pixelTiles(taps: number, maxProducts: number): Generator<DirectTile> {
  for (const windowBytes of WINDOW_CHOICES) {
    for (const channels of [16, 12, 8, 6, 4, 3, 2, 1]) {
      for (const rows of [8, 4, 2, 1]) {
        for (const cols of [16, 8, 4, 2, 1]) {
          const accumulators = channels * rows * cols;
          if (accumulators * taps > maxProducts || accumulators > DIRECT_MAX_ACCUMULATORS) continue;
          for (const workgroup of WORKGROUPS) {
            for (const channelSplit of windowBytes ? [true, false] : [false]) {
              yield { kind: "direct", channels, rows, cols, workgroup, windowBytes, channelSplit };
            }
          }
        }
      }
    }
  }
}

function* weightTiles(taps: number, maxProducts: number): Generator<DirectWeightTile> {
  for (const windowBytes of WINDOW_CHOICES) {
    for (const outChannels of [16, 8, 5, 4, 2, 1]) {
      for (const inChannels of [16, 8, 4, 2, 1]) {
        for (const rows of [4, 2, 1]) {
          for (const cols of [8, 4, 2, 1]) {
            const accumulators = outChannels * inChannels * taps;
            if (accumulators * rows * cols > maxProducts || accumulators > DIRECT_MAX_ACCUMULATORS) {
              continue;
            }
            for (const splits of [1, 2, 4, 8, 16, 32]) {
              for (const workgroup of WORKGROUPS) {
                for (const channelSplit of windowBytes ? [true, false] : [false]) {
                  yield {
                    kind: "direct",
                    outChannels,
                    inChannels,
                    rows,
                    cols,
                    workgroup,
                    splits,
                    windowBytes,
                    channelSplit,
                  };
                }
              }
            }
          }
        }
      }
    }
  }
}

export type Tilings = {
  forward: GemmTile | DirectTile;
  gradInput: GemmTile | DirectTile;
  gradWeight: GemmTile | DirectWeightTile;
};

const chosenTilings = new Map<string, Tilings>();

/**
 * Default tilings. GPUs (`software` omitted) get the GEMM tiling. Software adapters (running `threads`
 * workgroups at once) get the direct tiles and uniform windows that the cost model above rates cheapest, with unrolled loop bodies
 * within 768 multiply-adds (2,304 for layers of 1 GFLOP or more) and 288 accumulators (see
 * DIRECT_MAX_PRODUCTS).
 */
export function defaultConvTilings(geometry: ConvGeometry, software?: SoftwareTarget): Tilings {
  if (!software) {
    const gemm: GemmTile = { kind: "gemm", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
    return { forward: gemm, gradInput: gemm, gradWeight: gemm };
  }
  const { threads } = software;
  const key = `${geometryKey(geometry)}/${threads}`;
  let tilings = chosenTilings.get(key);
  if (!tilings) {
    const taps = geometry.kernel * geometry.kernel;
    // Within one phase of the input gradient, about (kernel / stride)^2 taps.
    const phaseTaps = Math.ceil(geometry.kernel / geometry.stride) ** 2;
    const body = convFlops(geometry) >= LARGE_BODY_FLOPS ? DIRECT_LARGE_PRODUCTS : DIRECT_MAX_PRODUCTS;
    tilings = {
      forward: cheapest(pixelTiles(taps, body), (t) => forwardCost(geometry, t, threads)),
      gradInput: cheapest(pixelTiles(phaseTaps, body), (t) => gradInputCost(geometry, t, threads)),
      gradWeight: cheapest(weightTiles(taps, body), (t) => gradWeightCost(geometry, t, threads)),
    };
    chosenTilings.set(key, tilings);
  }
  return tilings;
}
