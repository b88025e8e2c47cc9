/**
 * 2-D convolution (no bias, square kernel, zero padding): forward, input gradient and weight gradient.
 *
 * - forward:      out[n, co, oy, ox] = sum over (ci, ky, kx) of w[co, ci, ky, kx] * x[n, ci, oy*s-p+ky, ox*s-p+kx]
 * - grad input:   gx[n, ci, iy, ix]  = sum over (co, ky, kx) of w[co, ci, ky, kx] * gy[n, co, (iy+p-ky)/s, ...]
 *                 (only taps where the division is exact)
 * - grad weight:  gw[co, ci, ky, kx] = sum over (n, oy, ox) of gy[n, co, oy, ox] * x[n, ci, oy*s-p+ky, ...]
 *
 * The input gradient is split by phase (iy mod s, ix mod s): within one phase the same kernel taps
 * (ky = iy + p mod s) reach every position, so each phase is a dense stride-1 correlation over those taps
 * and a stride-2 convolution does no multiply-by-zero work.
 *
 * Two tilings, both with shapes baked into the WGSL:
 * - "gemm": an implicit GEMM. A workgroup computes a tileM x tileN output block, staging tileK-deep slices of
 *   both operands (gathered from the NCHW tensors: im2col is never stored) in workgroup memory; each
 *   invocation accumulates threadM x threadN outputs in registers. The layout for GPUs. Every weight-gradient
 *   element is owned by one workgroup that reduces over all of N*Ho*Wo, so no atomics are needed.
 * - "direct": register-blocked direct convolution without workgroup memory. Each invocation owns a block
 *   of output channels x output pixels and loads each input patch once for all kernel taps. The layout for
 *   CPU adapters (llvmpipe/lavapipe), which run a workgroup as SIMD vectors of invocations. There a storage
 *   or workgroup-memory load is a loop over the lanes with a branch per lane, costing about 30 multiply-adds
 *   of one invocation, while a uniform-buffer load is a branch-free gather costing about 4. So the direct
 *   kernels read every operand that fits through uniform-buffer *windows* (at most 64 KiB, the binding
 *   limit every adapter supports): each dispatch binds the slice of a tensor its invocations read (a group
 *   of samples of an activation, a range of channels of the weights), and a pass is one dispatch per
 *   window. (Mesa loads a uniform once for all lanes only at compile-time-constant offsets, which indices
 *   that follow a loop over channels are not.) A sample too large for a window is read as ranges of its
 *   channels, one range per dispatch with the output summed over the dispatches, or else from storage,
 *   whichever the cost model rates cheaper. Because a block of weight gradients is too little work for a
 *   CPU's SIMD lanes, the weight gradient also splits each sample group's reduction over `splits`
 *   invocations, and a second kernel adds the partial sums.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { gridFor, MAX_WORKGROUPS_X } from "./common.ts";

/** Shapes of one convolution; `batch` counts the folded T*B samples. */
export interface ConvGeometry {
  batch: number;
  cin: number;
  cout: number;
  height: number;
  width: number;
  kernel: number;
  stride: number;
  pad: number;
  /**
   * The pass's operands (x, weight, gradOut) are IEEE f16, two to a 32-bit word (`unpack2x16float`, so no
   * adapter feature is needed to read them); products still accumulate in f32, and outputs and scratch
   * tensors stay f32. Default false.
   */
  halfOperands?: boolean;
}

/** GEMM tiling: a workgroup owns tileM x tileN outputs, each invocation threadM x threadN of them. */
export interface GemmTile {
  kind: "gemm";
  tileM: number;
  tileN: number;
  tileK: number;
  threadM: number;
  threadN: number;
}

/**
 * Direct tiling for the forward pass and the input gradient: each invocation computes `channels` output
 * channels (cout forward, cin for the input gradient) of a rows x cols block of pixels.
 */
export interface DirectTile {
  kind: "direct";
  channels: number;
  rows: number;
  cols: number;
  workgroup: number;
  /** Largest uniform binding (bytes, a multiple of 256) an operand is read through; 0: all from storage. */
  windowBytes: number;
  /**
   * When a sample of the reduced operand (x forward, gradOut for the input gradient) does not fit a window:
   * read ranges of its channels through windows, summing the output over their dispatches (default true),
   * rather than the whole operand from storage.
   */
  channelSplit?: boolean;
}

/**
 * Direct tiling for the weight gradient: each invocation owns `outChannels` x `inChannels` x k x k weight
 * gradients over every `splits`-th rows x cols block of its sample group's output, loading each block of
 * the upstream gradient and each input patch once for all taps.
 */
export interface DirectWeightTile {
  kind: "direct";
  outChannels: number;
  inChannels: number;
  rows: number;
  cols: number;
  workgroup: number;
  splits: number;
  /** Largest uniform binding (bytes, a multiple of 256) an operand is read through; 0: all from storage. */
  windowBytes: number;
  /**
   * When a sample of gradOut or x does not fit a window: read one sample's ranges of output and input
   * channels through windows per dispatch, adding each sample's sums to the earlier samples' (default
   * true), rather than both operands from storage.
   */
  channelSplit?: boolean;
}

/** A byte range of a buffer, bound to one binding. */
export interface BufferRange {
  offset: number;
  size: number;
}

/** One dispatch of a kernel. */
export interface ConvDispatch {
  /** Per binding: the byte range bound, or undefined for the whole buffer. */
  ranges: (BufferRange | undefined)[];
  /** Per-dispatch u32 parameters, bound after the buffers (kernels without any have none). */
  params?: number[];
  workgroups: [number, number, number];
}

export interface ConvKernel extends Kernel {
  /** The tensor bound at each binding, by role: an operand of the pass or one of its scratch tensors. */
  buffers: string[];
  dispatches: ConvDispatch[];
}

/** What one pass (forward, input gradient or weight gradient) records, in order. */
export interface ConvPlan {
  /** Scratch tensors the kernels use, by role, in f32 elements; they live for the pass only. */
  scratch: Record<string, number>;
  kernels: ConvKernel[];
}

/** WebGPU's default maxUniformBufferBindingSize, which every adapter supports. */
export const UNIFORM_WINDOW_BYTES = 65536;

export function outputSize(geometry: ConvGeometry): [number, number] {
  const { height, width, kernel, stride, pad } = geometry;
  return [
    Math.floor((height + 2 * pad - kernel) / stride) + 1,
    Math.floor((width + 2 * pad - kernel) / stride) + 1,
  ];
}

/** Floating-point operations (2 per multiply-add) of one forward pass; each backward pass does as many. */
export function convFlops(geometry: ConvGeometry): number {
  const [outH, outW] = outputSize(geometry);
  const { batch, cin, cout, kernel } = geometry;
  return 2 * batch * cout * outH * outW * cin * kernel * kernel;
}

function geometryKey(g: ConvGeometry): string {
  const operands = g.halfOperands ? ":f16" : "";
  return `${g.batch}x${g.cin}x${g.height}x${g.width}:${g.cout}:k${g.kernel}s${g.stride}p${g.pad}${operands}`;
}

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

/**
 * Cost model of the direct kernels on a CPU adapter, in multiply-adds of one invocation, roughly as measured
 * on llvmpipe (AVX2): a load through a uniform window, a storage load or store (a per-lane loop), starting
 * one workgroup, and recording and starting one dispatch.
 */
const COST = { windowLoad: 4, storageAccess: 30, workgroup: 1000, dispatch: 200_000 };

function loadCost(windowed: boolean): number {
  return windowed ? COST.windowLoad : COST.storageAccess;
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

type Tilings = {
  forward: GemmTile | DirectTile;
  gradInput: GemmTile | DirectTile;
  gradWeight: GemmTile | DirectWeightTile;
};

const chosenTilings = new Map<string, Tilings>();

/**
 * Default tilings. GPUs get the GEMM tiling. CPU adapters (running `threads` workgroups at once) get the
 * direct tiles and uniform windows that the cost model above rates cheapest, with unrolled loop bodies
 * within 768 multiply-adds (2,304 for layers of 1 GFLOP or more) and 288 accumulators (see
 * DIRECT_MAX_PRODUCTS).
 */
export function defaultConvTilings(geometry: ConvGeometry, cpu: boolean, threads = 2): Tilings {
  if (!cpu) {
    const gemm: GemmTile = { kind: "gemm", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
    return { forward: gemm, gradInput: gemm, gradWeight: gemm };
  }
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

/** `(batch, cin, H, W) x (cout, cin, k, k) -> (batch, cout, Ho, Wo)`; roles x, weight, out. */
export function conv2dForwardPlan(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: [gemmForward(geometry, tiling)] }
    : directForward(geometry, tiling);
}

/**
 * The input gradient, one kernel per phase (stride^2 of them, less phases holding no input position);
 * roles gradOut, weight, gradIn. Every element of gradIn is written by exactly one phase (phases that no
 * kernel tap reaches write zeros).
 */
export function conv2dGradInputPlan(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: gemmGradInput(geometry, tiling) }
    : directGradInput(geometry, tiling);
}

/** The weight gradient `(cout, cin, k, k)`; roles gradOut, x, gradWeight. */
export function conv2dGradWeightPlan(
  geometry: ConvGeometry,
  tiling: GemmTile | DirectWeightTile,
): ConvPlan {
  return tiling.kind === "gemm"
    ? { scratch: {}, kernels: [gemmGradWeight(geometry, tiling)] }
    : directGradWeight(geometry, tiling);
}

/** The kernel taps and input positions of one output phase of the input gradient, along one axis. */
interface Phase {
  /** Input positions in the phase (iy = first + stride * q for the phase's first position). */
  count: number;
  /** First kernel tap reaching this phase (ky = tap0 + stride * j). */
  tap0: number;
  /** Kernel taps reaching this phase. */
  taps: number;
  /** Output position reached from (q = 0, j = 0): oy = offset + q - j. */
  offset: number;
}

function phase(first: number, size: number, kernel: number, stride: number, pad: number): Phase {
  const tap0 = (first + pad) % stride;
  return {
    count: Math.max(0, Math.ceil((size - first) / stride)),
    tap0,
    taps: tap0 < kernel ? Math.ceil((kernel - tap0) / stride) : 0,
    offset: (first + pad - tap0) / stride,
  };
}

// ---------------------------------------------------------------------------------------------------------
// GEMM tiling

function tileKey(t: GemmTile): string {
  return `gemm${t.tileM}x${t.tileN}x${t.tileK}/${t.threadM}x${t.threadN}`;
}

/**
 * How one operand's tile (tileK rows of k by `width` columns of m or n) is loaded by the workgroup: each
 * invocation keeps its columns fixed across k-slices (so per-column index math is done once) and walks
 * rows `rowStart + i * rowStep`.
 */
interface LoaderPlan {
  columnsPerThread: number;
  rowStep: number;
  rowsPerThread: number;
  /** False when tileK is not a multiple of rowStep, so the last row must be bounds-checked. */
  rowsExact: boolean;
}

function loaderPlan(width: number, tileK: number, threads: number): LoaderPlan {
  const columnsPerThread = Math.max(1, width / threads);
  const rowStep = Math.max(1, threads / width);
  return {
    columnsPerThread,
    rowStep,
    rowsPerThread: Math.ceil(tileK / rowStep),
    rowsExact: tileK % rowStep === 0,
  };
}

/**
 * One GEMM operand as WGSL fragments. `column(j, c)` defines per-column values (suffix `j`) for global
 * column `c` (an m or n index, possibly past the end); `element(j, k)` gives statements that define
 * `ok` (in range) and `at` (index into `source`) for global row `k` of column `j`.
 */
interface Operand {
  source: string;
  column: (j: number, c: string) => string;
  element: (j: number, k: string) => string;
}

interface GemmSpec {
  key: string;
  tile: GemmTile;
  m: number;
  n: number;
  k: number;
  /** Binding declarations (buffers in dispatch order). */
  bindings: string;
  /** The roles of the bound buffers. */
  buffers: string[];
  a: Operand;
  b: Operand;
  /** Per output column j (global n index `c`): definitions for the store, suffix `j`. */
  storeColumn: (j: number, c: string) => string;
  /** Index of output (m, column j) for global row `m`. */
  storeIndex: (j: number, m: string) => string;
  output: string;
}

function checkTile(tile: GemmTile): number {
  const { tileM, tileN, tileK, threadM, threadN } = tile;
  for (const [name, value] of Object.entries({ tileM, tileN, tileK, threadM, threadN })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`conv2d: GEMM tile ${name} must be a positive integer, got ${value}`);
    }
  }
  if (tileM % threadM || tileN % threadN) {
    throw new Error(`conv2d: tile ${tileKey(tile)}: tileM/threadM and tileN/threadN must be whole`);
  }
  const threads = (tileM / threadM) * (tileN / threadN);
  for (const width of [tileM, tileN]) {
    if (width % threads && threads % width) {
      throw new Error(
        `conv2d: tile ${tileKey(tile)}: ${threads} invocations cannot split a ${width}-wide tile evenly`,
      );
    }
  }
  if (threads > 1024) {
    throw new Error(`conv2d: tile ${tileKey(tile)} needs ${threads} invocations, over 1024`);
  }
  if ((tileM + tileN) * tileK * 4 > 32768) {
    throw new Error(`conv2d: tile ${tileKey(tile)} needs more than 32 KiB of workgroup memory`);
  }
  return threads;
}

function loaderCode(
  operand: Operand,
  shared: string,
  width: number,
  base: string,
  plan: LoaderPlan,
  tileK: number,
) {
  const setup: string[] = [];
  const body: string[] = [];
  for (let j = 0; j < plan.columnsPerThread; j++) {
    // Several columns per invocation only when the workgroup is narrower than the tile.
    const stride = width / plan.columnsPerThread;
    setup.push(`  let ${shared}Col${j} = tid % ${width}u + ${j * stride}u;`);
    setup.push(`  let ${shared}Global${j} = ${base} + ${shared}Col${j};`);
    setup.push(operand.column(j, `${shared}Global${j}`));
  }
  setup.push(`  let ${shared}Row = tid / ${width}u;`);
  for (let j = 0; j < plan.columnsPerThread; j++) {
    for (let i = 0; i < plan.rowsPerThread; i++) {
      const row = `${shared}Row + ${i * plan.rowStep}u`;
      const lines = [
        `    let row = ${row};`,
        `    let k = k0 + row;`,
        operand.element(j, "k"),
        `    var value = 0.0;`,
        `    if (ok) { value = read${capitalised(operand.source)}(at); }`,
        `    ${shared}[row * ${width}u + ${shared}Col${j}] = value;`,
      ];
      const block = lines.join("\n");
      body.push(
        plan.rowsExact || (i + 1) * plan.rowStep <= tileK
          ? `    {\n${block}\n    }`
          : `    if (${row} < ${tileK}u) {\n${block}\n    }`,
      );
    }
  }
  return { setup: setup.join("\n"), body: body.join("\n") };
}

function gemmKernel(spec: GemmSpec): ConvKernel {
  const { tile, m, n, k } = spec;
  const threads = checkTile(tile);
  const { tileM, tileN, tileK, threadM, threadN } = tile;
  const tilesN = Math.ceil(n / tileN);
  const gridX = Math.min(tilesN, MAX_WORKGROUPS_X);
  const workgroups: [number, number, number] = [gridX, Math.ceil(m / tileM), Math.ceil(tilesN / gridX)];
  const wgsl = () => {
    const threadsN = tileN / threadN;
    const a = loaderCode(spec.a, "tileA", tileM, "m0", loaderPlan(tileM, tileK, threads), tileK);
    const b = loaderCode(spec.b, "tileB", tileN, "n0", loaderPlan(tileN, tileK, threads), tileK);
    const accumulators: string[] = [];
    const products: string[] = [];
    const reads: string[] = [];
    for (let i = 0; i < threadM; i++) {
      reads.push(`      let a${i} = tileA[kk * ${tileM}u + rowBase + ${i}u];`);
    }
    for (let j = 0; j < threadN; j++) {
      reads.push(`      let b${j} = tileB[kk * ${tileN}u + colBase + ${j}u];`);
    }
    for (let i = 0; i < threadM; i++) {
      for (let j = 0; j < threadN; j++) {
        accumulators.push(`  var acc${i}_${j} = 0.0;`);
        products.push(`      acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
      }
    }
    const stores: string[] = [];
    for (let j = 0; j < threadN; j++) {
      stores.push(`  {\n    let c = n0 + colBase + ${j}u;\n${spec.storeColumn(j, "c")}`);
      stores.push(`    if (c < ${n}u) {`);
      for (let i = 0; i < threadM; i++) {
        stores.push(`      if (m0 + rowBase + ${i}u < ${m}u) {`);
        stores.push(
          `        ${spec.output}[${spec.storeIndex(j, `(m0 + rowBase + ${i}u)`)}] = acc${i}_${j};`,
        );
        stores.push(`      }`);
      }
      stores.push(`    }\n  }`);
    }
    return `
${spec.bindings}
var<workgroup> tileA: array<f32, ${tileK * tileM}>;
var<workgroup> tileB: array<f32, ${tileK * tileN}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let tileColumn = wid.x + wid.z * ${gridX}u;
  if (tileColumn >= ${tilesN}u) { return; }
  let n0 = tileColumn * ${tileN}u;
  let m0 = wid.y * ${tileM}u;
  let rowBase = (tid / ${threadsN}u) * ${threadM}u;
  let colBase = (tid % ${threadsN}u) * ${threadN}u;
${a.setup}
${b.setup}
${accumulators.join("\n")}
  for (var k0 = 0u; k0 < ${k}u; k0 += ${tileK}u) {
${a.body}
${b.body}
    workgroupBarrier();
    for (var kk = 0u; kk < ${tileK}u; kk++) {
${reads.join("\n")}
${products.join("\n")}
    }
    workgroupBarrier();
  }
${stores.join("\n")}
}
`;
  };
  return {
    key: spec.key,
    buffers: spec.buffers,
    dispatches: [{ ranges: spec.buffers.map(() => undefined), workgroups }],
    wgsl,
  };
}

function gemmForward(geometry: ConvGeometry, tile: GemmTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const half = geometry.halfOperands ?? false;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const reduce = cin * taps;
  const outPixels = outH * outW;
  const columns = batch * outPixels;
  return gemmKernel({
    key: `conv2d_forward:${geometryKey(geometry)}:${tileKey(tile)}`,
    tile,
    m: cout,
    n: columns,
    k: reduce,
    bindings: `${readCode(storageRead("x", batch * cin * height * width, half), 0)}
${readCode(storageRead("weight", cout * reduce, half), 1)}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
    buffers: ["x", "weight", "out"],
    a: {
      source: "weight",
      column: (j, c) => `  let aOk${j} = ${c} < ${cout}u;\n  let aBase${j} = ${c} * ${reduce}u;`,
      element: (j, k) => `    let ok = aOk${j} && ${k} < ${reduce}u;\n    let at = aBase${j} + ${k};`,
    },
    b: {
      source: "x",
      column: (j, c) =>
        `  let bSample${j} = ${c} / ${outPixels}u;
  let bPixel${j} = ${c} % ${outPixels}u;
  let bOk${j} = ${c} < ${columns}u;
  let bBase${j} = bSample${j} * ${cin * height * width}u;
  let bY${j} = i32((bPixel${j} / ${outW}u) * ${stride}u) - ${pad};
  let bX${j} = i32((bPixel${j} % ${outW}u) * ${stride}u) - ${pad};`,
      element: (j, k) =>
        `    let channel = ${k} / ${taps}u;
    let tap = ${k} % ${taps}u;
    let iy = u32(bY${j} + i32(tap / ${kernel}u));
    let ix = u32(bX${j} + i32(tap % ${kernel}u));
    let ok = bOk${j} && ${k} < ${reduce}u && iy < ${height}u && ix < ${width}u;
    let at = bBase${j} + channel * ${height * width}u + iy * ${width}u + ix;`,
    },
    storeColumn: (j, c) =>
      `    let outBase${j} = (${c} / ${outPixels}u) * ${cout * outPixels}u + ${c} % ${outPixels}u;`,
    storeIndex: (j, row) => `outBase${j} + ${row} * ${outPixels}u`,
    output: "out",
  });
}

function gemmGradInput(geometry: ConvGeometry, tile: GemmTile): ConvKernel[] {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const half = geometry.halfOperands ?? false;
  const [outH, outW] = outputSize(geometry);
  const outPixels = outH * outW;
  const kernels: ConvKernel[] = [];
  for (let py = 0; py < stride; py++) {
    for (let px = 0; px < stride; px++) {
      const rows = phase(py, height, kernel, stride, pad);
      const cols = phase(px, width, kernel, stride, pad);
      const phasePixels = rows.count * cols.count;
      if (phasePixels === 0) continue;
      const phaseTaps = rows.taps * cols.taps;
      const reduce = cout * phaseTaps;
      const columns = batch * phasePixels;
      kernels.push(gemmKernel({
        key: `conv2d_grad_input:${geometryKey(geometry)}:phase${py},${px}:${tileKey(tile)}`,
        tile,
        m: cin,
        n: columns,
        k: reduce,
        bindings: `${readCode(storageRead("gradOut", batch * cout * outPixels, half), 0)}
${readCode(storageRead("weight", cout * cin * kernel * kernel, half), 1)}
@group(0) @binding(2) var<storage, read_write> gradIn: array<f32>;`,
        buffers: ["gradOut", "weight", "gradIn"],
        a: {
          source: "weight",
          column: (j, c) => `  let aOk${j} = ${c} < ${cin}u;\n  let aBase${j} = ${c} * ${kernel * kernel}u;`,
          element: (j, k) =>
            `    let tap = ${k} % ${Math.max(1, phaseTaps)}u;
    let ky = ${rows.tap0}u + (tap / ${Math.max(1, cols.taps)}u) * ${stride}u;
    let kx = ${cols.tap0}u + (tap % ${Math.max(1, cols.taps)}u) * ${stride}u;
    let ok = aOk${j} && ${k} < ${reduce}u;
    let at = (${k} / ${Math.max(1, phaseTaps)}u) * ${
              cin * kernel * kernel
            }u + aBase${j} + ky * ${kernel}u + kx;`,
        },
        b: {
          source: "gradOut",
          column: (j, c) =>
            `  let bPixel${j} = ${c} % ${phasePixels}u;
  let bOk${j} = ${c} < ${columns}u;
  let bBase${j} = (${c} / ${phasePixels}u) * ${cout * outPixels}u;
  let bY${j} = i32(bPixel${j} / ${cols.count}u) + ${rows.offset};
  let bX${j} = i32(bPixel${j} % ${cols.count}u) + ${cols.offset};`,
          element: (j, k) =>
            `    let tap = ${k} % ${Math.max(1, phaseTaps)}u;
    let oy = u32(bY${j} - i32(tap / ${Math.max(1, cols.taps)}u));
    let ox = u32(bX${j} - i32(tap % ${Math.max(1, cols.taps)}u));
    let ok = bOk${j} && ${k} < ${reduce}u && oy < ${outH}u && ox < ${outW}u;
    let at = bBase${j} + (${k} / ${Math.max(1, phaseTaps)}u) * ${outPixels}u + oy * ${outW}u + ox;`,
        },
        storeColumn: (j, c) =>
          `    let pixel${j} = ${c} % ${phasePixels}u;
    let inBase${j} = (${c} / ${phasePixels}u) * ${cin * height * width}u
      + (${py}u + (pixel${j} / ${cols.count}u) * ${stride}u) * ${width}u + ${px}u + (pixel${j} % ${cols.count}u) * ${stride}u;`,
        storeIndex: (j, row) => `inBase${j} + ${row} * ${height * width}u`,
        output: "gradIn",
      }));
    }
  }
  return kernels;
}

function gemmGradWeight(geometry: ConvGeometry, tile: GemmTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const half = geometry.halfOperands ?? false;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const columns = cin * taps;
  const outPixels = outH * outW;
  const reduce = batch * outPixels;
  return gemmKernel({
    key: `conv2d_grad_weight:${geometryKey(geometry)}:${tileKey(tile)}`,
    tile,
    m: cout,
    n: columns,
    k: reduce,
    bindings: `${readCode(storageRead("gradOut", batch * cout * outPixels, half), 0)}
${readCode(storageRead("x", batch * cin * height * width, half), 1)}
@group(0) @binding(2) var<storage, read_write> gradWeight: array<f32>;`,
    buffers: ["gradOut", "x", "gradWeight"],
    a: {
      source: "gradOut",
      column: (j, c) => `  let aOk${j} = ${c} < ${cout}u;\n  let aBase${j} = ${c} * ${outPixels}u;`,
      element: (j, k) =>
        `    let ok = aOk${j} && ${k} < ${reduce}u;
    let at = (${k} / ${outPixels}u) * ${cout * outPixels}u + aBase${j} + ${k} % ${outPixels}u;`,
    },
    b: {
      source: "x",
      column: (j, c) =>
        `  let bTap${j} = ${c} % ${taps}u;
  let bOk${j} = ${c} < ${columns}u;
  let bBase${j} = (${c} / ${taps}u) * ${height * width}u;
  let bY${j} = i32(bTap${j} / ${kernel}u) - ${pad};
  let bX${j} = i32(bTap${j} % ${kernel}u) - ${pad};`,
      element: (j, k) =>
        `    let pixel = ${k} % ${outPixels}u;
    let iy = u32(bY${j} + i32((pixel / ${outW}u) * ${stride}u));
    let ix = u32(bX${j} + i32((pixel % ${outW}u) * ${stride}u));
    let ok = bOk${j} && ${k} < ${reduce}u && iy < ${height}u && ix < ${width}u;
    let at = (${k} / ${outPixels}u) * ${cin * height * width}u + bBase${j} + iy * ${width}u + ix;`,
    },
    storeColumn: () => "",
    storeIndex: (_j, row) => `${row} * ${columns}u + c`,
    output: "gradWeight",
  });
}

// ---------------------------------------------------------------------------------------------------------
// Direct tiling

function checkDirect(sizes: Record<string, number>, workgroup: number, windowBytes: number): void {
  for (const [name, value] of Object.entries({ ...sizes, workgroup })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`conv2d: direct tile ${name} must be a positive integer, got ${value}`);
    }
  }
  if (workgroup > 256) throw new Error(`conv2d: direct tile workgroup ${workgroup} is over 256 invocations`);
  if (!Number.isInteger(windowBytes / BINDING_ALIGN) || windowBytes < 0) {
    throw new Error(
      `conv2d: direct tile windowBytes must be a multiple of ${BINDING_ALIGN}, got ${windowBytes}`,
    );
  }
}

/**
 * Workgroups for `lanes` invocations along x (folded into z past 65535 workgroups, so z > 1 only when x is
 * the maximum, as `laneIndex` assumes) and `blocksY` channel blocks along y.
 */
function laneGrid(lanes: number, workgroup: number, blocksY: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(lanes / workgroup));
  const x = Math.min(groups, MAX_WORKGROUPS_X);
  return [x, blocksY, Math.ceil(groups / x)];
}

function laneIndex(workgroup: number): string {
  return `(wid.x + wid.z * ${MAX_WORKGROUPS_X}u) * ${workgroup}u + tid`;
}

/** Uniform bindings start at multiples of 256 bytes (minUniformBufferOffsetAlignment's default). */
const BINDING_ALIGN = 256;

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/**
 * Elements a window holds from any start: the bound range starts at the aligned offset below it. When
 * every start is `aligned` (see alignedSteps), the whole window.
 */
function windowCapacity(windowBytes: number, aligned = false): number {
  return aligned ? windowBytes / 4 : Math.max(0, windowBytes / 4 - (BINDING_ALIGN / 4 - 1));
}

/**
 * Whether windows that start at multiples of `step` f32 elements all start on a binding boundary: then a
 * 64 KiB window holds 16,384 values instead of 16,321, e.g. 16 channels of a 32x32 plane instead of 15,
 * and 256 of an 8x8 one instead of 255 (2 channel ranges of ResNet-19's 512 instead of 3).
 */
function alignedSteps(step: number, half: boolean): boolean {
  return !half && (step * 4) % BINDING_ALIGN === 0;
}

/** Channels of `plane` elements a window holds when it reads a range of one sample's channels. */
function channelsPerWindow(windowBytes: number, plane: number, half: boolean): number {
  return Math.floor(windowCapacity(windowBytes, alignedSteps(plane, half)) / plane);
}

/**
 * How a kernel reads a tensor of `total` f32 (or, when `half`, packed f16) elements: whole from storage
 * (`vec4s` 0), or through uniform windows of `vec4s` 16-byte vectors (uniform arrays have a 16-byte stride).
 */
interface TensorRead {
  name: string;
  total: number;
  vec4s: number;
  half: boolean;
  /** Every window starts on a binding boundary, so none holds the slack below its first element. */
  aligned?: boolean;
}

function elementBytes(read: TensorRead): number {
  return read.half ? 2 : 4;
}

function storageRead(name: string, total: number, half = false): TensorRead {
  return { name, total, vec4s: 0, half };
}

/**
 * An operand read through windows of up to `longest` elements. A window is a whole number of 256-byte blocks,
 * so one that would run past the buffer's end can be moved back to end with it: pooled buffers are sized
 * in whole blocks (src/gpu/pool.ts).
 */
function windowedRead(
  name: string,
  total: number,
  longest: number,
  half = false,
  aligned = false,
): TensorRead {
  const element = half ? 2 : 4;
  const bytes = Math.min(
    roundUp(longest * element + (aligned ? 0 : BINDING_ALIGN - element), BINDING_ALIGN),
    roundUp(total * element, BINDING_ALIGN),
  );
  return { name, total, vec4s: bytes / 16, half, aligned };
}

/**
 * An operand read as ranges of `channels` channels of one sample (`plane` elements each), which start at
 * whole planes.
 */
function channelRangeRead(name: string, total: number, channels: number, plane: number, half: boolean) {
  return windowedRead(name, total, channels * plane, half, alignedSteps(plane, half));
}

/**
 * The range to bind for a window starting at element `start`, and the index of that element in the bound
 * range (`base`); for a storage operand, no range and `base` = `start`, so kernels index both alike.
 */
function windowAt(read: TensorRead, start: number): { range: BufferRange | undefined; base: number } {
  if (!read.vec4s) return { range: undefined, base: start };
  const element = elementBytes(read);
  const size = read.vec4s * 16;
  if (read.aligned && (start * element) % BINDING_ALIGN !== 0) {
    throw new Error(`conv2d: window of ${read.name} at element ${start} is not on a binding boundary`);
  }
  const offset = Math.min(
    Math.floor((start * element) / BINDING_ALIGN) * BINDING_ALIGN,
    roundUp(read.total * element, BINDING_ALIGN) - size,
  );
  return { range: { offset, size }, base: start - offset / element };
}

function capitalised(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

/** The binding of an operand and `read<Name>(i)`, which reads element i of the bound range as f32. */
function readCode(read: TensorRead, binding: number): string {
  const { name, vec4s, half } = read;
  const declaration = vec4s
    ? `var<uniform> ${name}: array<${half ? "vec4u" : "vec4f"}, ${vec4s}>`
    : `var<storage, read> ${name}: array<${half ? "u32" : "f32"}>`;
  let element: string;
  if (half) element = `unpack2x16float(${name}[${vec4s ? "i >> 3u][(i >> 1u) & 3u" : "i >> 1u"}])[i & 1u]`;
  else element = vec4s ? `${name}[i >> 2u][i & 3u]` : `${name}[i]`;
  return `@group(0) @binding(${binding}) ${declaration};
fn read${capitalised(name)}(i: u32) -> f32 {
  return ${element};
}`;
}

/** `load<Name>(at, ok)`: element `at` of the bound range, zero where not `ok` (then `at` may be negative). */
function guardedLoad(read: TensorRead): string {
  const name = capitalised(read.name);
  return `fn load${name}(at: i32, ok: bool) -> f32 {
  return select(0.0, read${name}(select(0u, u32(at), ok)), ok);
}`;
}

function paramsCode(fields: string[], binding: number): string {
  return `struct Params {
${fields.map((f) => `  ${f}: u32,`).join("\n")}
}
@group(0) @binding(${binding}) var<uniform> params: Params;`;
}

/**
 * Samples per dispatch for operands of `perSample` elements per sample: as many as every window holds,
 * balanced over the groups; an operand whose single sample does not fit a window is read from storage
 * (all samples when none fits).
 */
function sampleGroups(batch: number, perSample: number[], windowBytes: number) {
  const capacity = windowCapacity(windowBytes);
  const windowed = perSample.map((n) => n <= capacity);
  let size = batch;
  perSample.forEach((n, i) => {
    if (windowed[i]) size = Math.min(size, Math.floor(capacity / n));
  });
  // One (empty) group for an empty batch, so the weight gradient is still written (as zeros).
  const count = Math.max(1, Math.ceil(batch / Math.max(1, size)));
  return { size: Math.ceil(batch / count), count, windowed };
}

/** Ranges of at most `fit` of `count` channels, as equal as possible: the length of each. */
function balancedRange(count: number, fit: number): number {
  return Math.ceil(count / Math.ceil(count / fit));
}

/**
 * How a pixel kernel reads the operand it reduces over by channel (x forward, gradOut for the input
 * gradient), `channels` planes of `plane` elements per sample: whole samples per window when one fits;
 * else, when a plane fits, a range of one sample's channels per window, the output summed over the ranges'
 * dispatches (`split`); else from storage.
 */
interface ReductionRead {
  read: TensorRead;
  samplesPerDispatch: number;
  channelsPerDispatch: number;
  split: boolean;
}

function reductionRead(
  name: string,
  [batch, channels, plane]: [number, number, number],
  tile: DirectTile,
  half: boolean,
): ReductionRead {
  const { windowBytes } = tile;
  const perSample = channels * plane;
  const total = batch * perSample;
  const groups = sampleGroups(batch, [perSample], windowBytes);
  const whole = { samplesPerDispatch: groups.size, channelsPerDispatch: channels, split: false };
  if (groups.windowed[0]) return { read: windowedRead(name, total, groups.size * perSample, half), ...whole };
  const fit = tile.channelSplit === false ? 0 : channelsPerWindow(windowBytes, plane, half);
  if (fit === 0) return { read: storageRead(name, total, half), ...whole };
  const perDispatch = balancedRange(channels, fit);
  return {
    read: channelRangeRead(name, total, perDispatch, plane, half),
    samplesPerDispatch: 1,
    channelsPerDispatch: perDispatch,
    split: true,
  };
}

function splitKey(tile: DirectTile): string {
  return tile.channelSplit === false ? "/unsplit" : "";
}

/** The extra per-dispatch parameters of a split reduction over channel `c`. */
function splitFields(c: string): string[] {
  return [`${c}Start`, `${c}End`, "accumulate"];
}

/** The loop over the reduction channel `c`: all `channels`, or the dispatch's range when split. */
function channelLoop(c: string, channels: number, split: boolean): string {
  return split
    ? `for (var ${c} = params.${c}Start; ${c} < params.${c}End; ${c}++)`
    : `for (var ${c} = 0u; ${c} < ${channels}u; ${c}++)`;
}

/**
 * Stores accumulator `acc` at `target[at]`; under a split reduction every range after the first adds
 * what the earlier ones stored.
 */
function storeCode(target: string, at: string, acc: string, split: boolean): string {
  if (!split) return `    ${target}[${at}] = ${acc};`;
  return `    let at_${acc} = ${at};
    if (params.accumulate != 0u) { ${acc} += ${target}[at_${acc}]; }
    ${target}[at_${acc}] = ${acc};`;
}

/**
 * Rows of `rowLength` elements per window of a weight tensor read in blocks of `block` rows: all of them
 * when they fit one window, else a whole number of blocks, balanced over the windows; 0 when not even one
 * block fits (the tensor is read from storage).
 */
function rowsPerWindow(rows: number, rowLength: number, block: number, windowBytes: number): number {
  const capacity = windowCapacity(windowBytes);
  if (rows * rowLength <= capacity) return rows;
  const fit = Math.floor(Math.floor(capacity / rowLength) / block) * block;
  if (fit === 0) return 0;
  return roundUp(Math.ceil(rows / Math.ceil(rows / fit)), block);
}

/**
 * `acc + a0*b0 + a1*b1 + ...` as nested fma() calls, for `terms` "a, b". One accumulator's products are
 * written together so that the CPU compiler keeps it in a register across them: ordered by kernel tap, every
 * product would reload and store its accumulator (a block has more accumulators than there are registers).
 */
function fmaChain(acc: string, terms: string[]): string {
  return terms.reduce((sum, term) => `fma(${term}, ${sum})`, acc);
}

/** Positions `block * step + tap` reached by a block of `block` outputs and `taps` kernel taps. */
function reached(block: number, step: number, taps: number): number[] {
  const positions = new Set<number>();
  for (let b = 0; b < block; b++) for (let t = 0; t < taps; t++) positions.add(b * step + t);
  return [...positions].sort((a, b) => a - b);
}

/** WGSL declarations of the per-row and per-column bounds flags and row offsets of an input patch. */
function patchBounds(
  rows: number[],
  cols: number[],
  y0: string,
  x0: string,
  height: number,
  width: number,
  indent = "  ",
) {
  return [
    ...rows.flatMap((r) => [
      `${indent}let rowOk${r} = u32(${y0} + ${r}) < ${height}u;`,
      `${indent}let rowAt${r} = (${y0} + ${r}) * ${width};`,
    ]),
    ...cols.map((c) => `${indent}let colOk${c} = u32(${x0} + ${c}) < ${width}u;`),
  ].join("\n");
}

/** Loads the patch values `<name>{r}_{c}` at `plane + rowAt{r} + c` (zero outside the tensor). */
function patchLoads(
  name: string,
  load: string,
  rows: number[],
  cols: number[],
  plane: string,
  indent: string,
): string {
  const lines: string[] = [];
  for (const r of rows) {
    for (const c of cols) {
      lines.push(
        `${indent}let ${name}${r}_${c} = ${load}(${plane} + rowAt${r} + ${c}, rowOk${r} && colOk${c});`,
      );
    }
  }
  return lines.join("\n");
}

function directForward(geometry: ConvGeometry, tile: DirectTile): ConvPlan {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { channels, rows, cols, workgroup, windowBytes } = tile;
  checkDirect({ channels, rows, cols }, workgroup, windowBytes);
  const [outH, outW] = outputSize(geometry);
  const tilesY = Math.ceil(outH / rows);
  const tilesX = Math.ceil(outW / cols);
  const taps = kernel * kernel;
  const inPerSample = cin * height * width;
  const half = geometry.halfOperands ?? false;
  const plane = height * width;
  const reduction = reductionRead("x", [batch, cin, plane], tile, half);
  const { read: x, split } = reduction;
  const block = reduction.channelsPerDispatch;
  const weightRows = rowsPerWindow(cout, block * taps, channels, windowBytes);
  // A split reduction reads its range's weights from the blocked copy, so that a window holds many rows.
  const blocked = split && weightRows > 0;
  const weightTotal = blocked ? blockedWeightSize(cout, cin, block, taps) : cout * cin * taps;
  const weight = weightRows
    ? windowedRead("weight", weightTotal, weightRows * block * taps, half && !blocked)
    : storageRead("weight", weightTotal, half);
  const outChannelsPerDispatch = weightRows || cout;
  const dispatches: ConvDispatch[] = [];
  for (let s0 = 0; s0 < batch; s0 += reduction.samplesPerDispatch) {
    const samples = Math.min(reduction.samplesPerDispatch, batch - s0);
    for (let ci0 = 0; ci0 < cin; ci0 += block) {
      const xWindow = windowAt(x, s0 * inPerSample + ci0 * plane);
      const range = split ? [ci0, Math.min(cin, ci0 + block), ci0 > 0 ? 1 : 0] : [];
      for (let co0 = 0; co0 < cout; co0 += outChannelsPerDispatch) {
        const weightWindow = windowAt(weight, blocked ? (ci0 * cout + co0 * block) * taps : co0 * cin * taps);
        const blocks = Math.ceil(Math.min(outChannelsPerDispatch, cout - co0) / channels);
        dispatches.push({
          ranges: [xWindow.range, weightWindow.range, undefined],
          params: [xWindow.base, weightWindow.base, samples * tilesY * tilesX, s0, co0, ...range],
          workgroups: laneGrid(samples * tilesY * tilesX, workgroup, blocks),
        });
      }
    }
  }
  const wgsl = () => {
    const patchRows = reached(rows, stride, kernel);
    const patchCols = reached(cols, stride, kernel);
    const accumulators: string[] = [];
    const weightRowsCode: string[] = [];
    const products: string[] = [];
    const stores: string[] = [];
    for (let m = 0; m < channels; m++) {
      weightRowsCode.push(
        `  let weightRow${m} = params.weightBase + (min(co0 + ${m}u, ${cout - 1}u) - params.coBase) * ${
          (blocked ? block : cin) * taps
        }u;`,
      );
      for (let ky = 0; ky < kernel; ky++) {
        for (let kx = 0; kx < kernel; kx++) {
          products.push(
            `    let w${m}_${ky}_${kx} = readWeight(weightRow${m} + tapBase + ${ky * kernel + kx}u);`,
          );
        }
      }
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const terms: string[] = [];
          for (let ky = 0; ky < kernel; ky++) {
            for (let kx = 0; kx < kernel; kx++) {
              terms.push(`w${m}_${ky}_${kx}, in${y * stride + ky}_${x * stride + kx}`);
            }
          }
          products.push(`    acc${m}_${y}_${x} = ${fmaChain(`acc${m}_${y}_${x}`, terms)};`);
        }
      }
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          accumulators.push(`  var acc${m}_${y}_${x} = 0.0;`);
          stores.push(
            `  if (co0 + ${m}u < ${cout}u && oy0 + ${y}u < ${outH}u && ox0 + ${x}u < ${outW}u) {\n` +
              `${
                storeCode(
                  "out",
                  `outBase + ${m * outH * outW}u + ${y * outW + x}u`,
                  `acc${m}_${y}_${x}`,
                  split,
                )
              }\n  }`,
          );
        }
      }
    }
    return `
${readCode(x, 0)}
${readCode(weight, 1)}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${
      paramsCode([
        "xBase",
        "weightBase",
        "lanes",
        "sampleBase",
        "coBase",
        ...(split ? splitFields("ci") : []),
      ], 3)
    }

${guardedLoad(x)}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${laneIndex(workgroup)};
  if (lane >= params.lanes) { return; }
  let sample = lane / ${tilesY * tilesX}u;
  let tile = lane % ${tilesY * tilesX}u;
  let oy0 = (tile / ${tilesX}u) * ${rows}u;
  let ox0 = (tile % ${tilesX}u) * ${cols}u;
  let co0 = params.coBase + wid.y * ${channels}u;
  let iy0 = i32(oy0 * ${stride}u) - ${pad};
  let ix0 = i32(ox0 * ${stride}u) - ${pad};
${patchBounds(patchRows, patchCols, "iy0", "ix0", height, width)}
${weightRowsCode.join("\n")}
${accumulators.join("\n")}
  let samplePlane = i32(params.xBase + sample * ${inPerSample}u) + ix0;
  ${channelLoop("ci", cin, split)} {
    let plane = samplePlane + i32(${split ? "(ci - params.ciStart)" : "ci"} * ${plane}u);
${patchLoads("in", "loadX", patchRows, patchCols, "plane", "    ")}
    let tapBase = ${blocked ? "(ci - params.ciStart)" : "ci"} * ${taps}u;
${products.join("\n")}
  }
  let outBase = (params.sampleBase + sample) * ${cout * outH * outW}u + co0 * ${
      outH * outW
    }u + oy0 * ${outW}u + ox0;
${stores.join("\n")}
}
`;
  };
  const forward: ConvKernel = {
    key: `conv2d_forward:${
      geometryKey(geometry)
    }:direct${channels}/${rows}x${cols}/${workgroup}/${windowBytes}${splitKey(tile)}`,
    buffers: ["x", blocked ? "weightBlocks" : "weight", "out"],
    dispatches,
    wgsl,
  };
  return blocked
    ? {
      scratch: { weightBlocks: weightTotal },
      kernels: [blockedWeightKernel(geometry, block, false), forward],
    }
    : { scratch: {}, kernels: [forward] };
}

/** Elements of the blocked weight copy: `rows` x `block` x `taps` per range of `block` reduced channels. */
function blockedWeightSize(rows: number, reduced: number, block: number, taps: number): number {
  return Math.ceil(reduced / block) * rows * block * taps;
}

/**
 * The f32 copy of the weights (also from f16 weights) that a kernel reducing over ranges of `block`
 * channels reads through windows: per range, one row per output channel of the kernel (cout forward, cin
 * for the input gradient, `transposed`), each holding the range's `block` reduced channels x taps, so a
 * range's weights for many rows are one window. Channels past the last are zero. Roles weight, weightBlocks.
 */
function blockedWeightKernel(geometry: ConvGeometry, block: number, transposed: boolean): ConvKernel {
  const { cin, cout, kernel } = geometry;
  const taps = kernel * kernel;
  const [rows, reduced] = transposed ? [cin, cout] : [cout, cin];
  const total = blockedWeightSize(rows, reduced, block, taps);
  const grid = gridFor(total);
  const half = geometry.halfOperands ?? false;
  // weight[co, ci, tap] with (row, reduced channel) = (ci, co) when transposed, else (co, ci).
  const source = transposed ? `(channel * ${cin}u + row)` : `(row * ${cin}u + channel)`;
  return {
    key: `conv2d_blocked_weight:${cout}x${cin}x${taps}:${transposed ? "t" : "n"}${block}${
      half ? ":f16" : ""
    }`,
    buffers: ["weight", "weightBlocks"],
    dispatches: [{ ranges: [undefined, undefined], workgroups: [...grid.workgroups, 1] }],
    wgsl: () => `
${readCode(storageRead("weight", cout * cin * taps, half), 0)}
@group(0) @binding(1) var<storage, read_write> weightBlocks: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${grid.rowStride}u;
  if (i >= ${total}u) { return; }
  let tap = i % ${taps}u;
  let local = (i / ${taps}u) % ${block}u;
  let row = (i / ${block * taps}u) % ${rows}u;
  let channel = (i / ${rows * block * taps}u) * ${block}u + local;
  if (channel >= ${reduced}u) {
    weightBlocks[i] = 0.0;
    return;
  }
  weightBlocks[i] = readWeight(${source} * ${taps}u + tap);
}
`,
  };
}

/**
 * Windowed weights are read from the blocked, transposed copy (`weightBlocks`, input channel major within
 * each range of output channels), so the weights of a range of input channels are one window.
 */
function directGradInput(geometry: ConvGeometry, tile: DirectTile): ConvPlan {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { channels, rows, cols, workgroup, windowBytes } = tile;
  checkDirect({ channels, rows, cols }, workgroup, windowBytes);
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const outPerSample = cout * outH * outW;
  const half = geometry.halfOperands ?? false;
  const outPlane = outH * outW;
  const reduction = reductionRead("gradOut", [batch, cout, outPlane], tile, half);
  const { read: gradOut, split } = reduction;
  const block = reduction.channelsPerDispatch;
  const weightRows = rowsPerWindow(cin, block * taps, channels, windowBytes);
  const weightTotal = weightRows ? blockedWeightSize(cin, cout, block, taps) : cout * cin * taps;
  const weight = weightRows
    ? windowedRead("weight", weightTotal, weightRows * block * taps)
    : storageRead("weight", weightTotal, half);
  const inChannelsPerDispatch = weightRows || cin;
  // Element (ci, co, tap) of the weights is at ci * rowStride + co * coStride + tap (in its range's block).
  const rowStride = weightRows ? block * taps : taps;
  const coStride = weightRows ? taps : cin * taps;
  const kernels: ConvKernel[] = weightRows ? [blockedWeightKernel(geometry, block, true)] : [];
  for (let py = 0; py < stride; py++) {
    for (let px = 0; px < stride; px++) {
      const phaseRows = phase(py, height, kernel, stride, pad);
      const phaseCols = phase(px, width, kernel, stride, pad);
      if (phaseRows.count === 0 || phaseCols.count === 0) continue;
      if (phaseRows.taps === 0 || phaseCols.taps === 0) {
        kernels.push(zeroPhaseKernel(geometry, py, px, phaseRows.count, phaseCols.count));
        continue;
      }
      const tilesY = Math.ceil(phaseRows.count / rows);
      const tilesX = Math.ceil(phaseCols.count / cols);
      const dispatches: ConvDispatch[] = [];
      for (let s0 = 0; s0 < batch; s0 += reduction.samplesPerDispatch) {
        const samples = Math.min(reduction.samplesPerDispatch, batch - s0);
        for (let co0 = 0; co0 < cout; co0 += reduction.channelsPerDispatch) {
          const gradWindow = windowAt(gradOut, s0 * outPerSample + co0 * outPlane);
          const range = split
            ? [co0, Math.min(cout, co0 + reduction.channelsPerDispatch), co0 > 0 ? 1 : 0]
            : [];
          for (let ci0 = 0; ci0 < cin; ci0 += inChannelsPerDispatch) {
            const weightWindow = windowAt(
              weight,
              weightRows ? (co0 * cin + ci0 * block) * taps : ci0 * rowStride,
            );
            const blocks = Math.ceil(Math.min(inChannelsPerDispatch, cin - ci0) / channels);
            dispatches.push({
              ranges: [gradWindow.range, weightWindow.range, undefined],
              params: [gradWindow.base, weightWindow.base, samples * tilesY * tilesX, s0, ci0, ...range],
              workgroups: laneGrid(samples * tilesY * tilesX, workgroup, blocks),
            });
          }
        }
      }
      const wgsl = () => {
        // Patch row r holds gradOut row oyStart + r; output row y with tap j reads row y - j + taps - 1.
        const patchRows = reached(rows, 1, phaseRows.taps);
        const patchCols = reached(cols, 1, phaseCols.taps);
        const accumulators: string[] = [];
        const weightRowsCode: string[] = [];
        const products: string[] = [];
        const stores: string[] = [];
        for (let m = 0; m < channels; m++) {
          weightRowsCode.push(
            `  let weightRow${m} = params.weightBase + (min(ci0 + ${m}u, ${
              cin - 1
            }u) - params.ciBase) * ${rowStride}u;`,
          );
          for (let jy = 0; jy < phaseRows.taps; jy++) {
            for (let jx = 0; jx < phaseCols.taps; jx++) {
              const tap = (phaseRows.tap0 + stride * jy) * kernel + phaseCols.tap0 + stride * jx;
              products.push(`    let w${m}_${jy}_${jx} = readWeight(weightRow${m} + tapBase + ${tap}u);`);
            }
          }
          for (let y = 0; y < rows; y++) {
            for (let x = 0; x < cols; x++) {
              const terms: string[] = [];
              for (let jy = 0; jy < phaseRows.taps; jy++) {
                for (let jx = 0; jx < phaseCols.taps; jx++) {
                  terms.push(
                    `w${m}_${jy}_${jx}, g${y - jy + phaseRows.taps - 1}_${x - jx + phaseCols.taps - 1}`,
                  );
                }
              }
              products.push(`    acc${m}_${y}_${x} = ${fmaChain(`acc${m}_${y}_${x}`, terms)};`);
            }
          }
          for (let y = 0; y < rows; y++) {
            for (let x = 0; x < cols; x++) {
              accumulators.push(`  var acc${m}_${y}_${x} = 0.0;`);
              const at = `inBase + ${m * height * width}u + ${y * stride * width + x * stride}u`;
              stores.push(
                `  if (ci0 + ${m}u < ${cin}u && qy0 + ${y}u < ${phaseRows.count}u && qx0 + ${x}u < ${phaseCols.count}u) {\n` +
                  `${storeCode("gradIn", at, `acc${m}_${y}_${x}`, split)}\n  }`,
              );
            }
          }
        }
        const reduction = `${patchBounds(patchRows, patchCols, "oyStart", "oxStart", outH, outW)}
${weightRowsCode.join("\n")}
  let samplePlane = i32(params.gradOutBase + sample * ${outPerSample}u) + oxStart;
  ${channelLoop("co", cout, split)} {
    let plane = samplePlane + i32(${split ? "(co - params.coStart)" : "co"} * ${outPlane}u);
${patchLoads("g", "loadGradOut", patchRows, patchCols, "plane", "    ")}
    let tapBase = ${weightRows && split ? "(co - params.coStart)" : "co"} * ${coStride}u;
${products.join("\n")}
  }`;
        return `
${readCode(gradOut, 0)}
${readCode(weight, 1)}
@group(0) @binding(2) var<storage, read_write> gradIn: array<f32>;
${
          paramsCode([
            "gradOutBase",
            "weightBase",
            "lanes",
            "sampleBase",
            "ciBase",
            ...(split ? splitFields("co") : []),
          ], 3)
        }

${guardedLoad(gradOut)}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${laneIndex(workgroup)};
  if (lane >= params.lanes) { return; }
  let sample = lane / ${tilesY * tilesX}u;
  let tile = lane % ${tilesY * tilesX}u;
  let qy0 = (tile / ${tilesX}u) * ${rows}u;
  let qx0 = (tile % ${tilesX}u) * ${cols}u;
  let ci0 = params.ciBase + wid.y * ${channels}u;
  let oyStart = i32(qy0) + ${phaseRows.offset - (phaseRows.taps - 1)};
  let oxStart = i32(qx0) + ${phaseCols.offset - (phaseCols.taps - 1)};
${accumulators.join("\n")}
${reduction}
  let inBase = (params.sampleBase + sample) * ${cin * height * width}u + ci0 * ${height * width}u +
    (${py}u + qy0 * ${stride}u) * ${width}u + ${px}u + qx0 * ${stride}u;
${stores.join("\n")}
}
`;
      };
      kernels.push({
        key: `conv2d_grad_input:${
          geometryKey(geometry)
        }:phase${py},${px}:direct${channels}/${rows}x${cols}/${workgroup}/${windowBytes}${splitKey(tile)}`,
        buffers: ["gradOut", weightRows ? "weightBlocks" : "weight", "gradIn"],
        dispatches,
        wgsl,
      });
    }
  }
  return { scratch: weightRows ? { weightBlocks: weightTotal } : {}, kernels };
}

const ZERO_WORKGROUP = 64;

/**
 * An input-gradient phase no kernel tap reaches (the positions a 1x1 stride-2 convolution skips): its
 * gradient is zero. A plain strided fill, not the register-blocked kernel, which would compile its whole
 * tile of stores for nothing. Roles: gradIn.
 */
function zeroPhaseKernel(
  geometry: ConvGeometry,
  py: number,
  px: number,
  countY: number,
  countX: number,
): ConvKernel {
  const { batch, cin, height, width, stride } = geometry;
  const lanes = batch * cin * countY * countX;
  return {
    // The key names the whole geometry: dispatch parameters are cached by key (the WGSL does not use the batch).
    key: `conv2d_grad_input_zero:${geometryKey(geometry)}:phase${py},${px}`,
    buffers: ["gradIn"],
    dispatches: [{ ranges: [undefined], params: [lanes], workgroups: laneGrid(lanes, ZERO_WORKGROUP, 1) }],
    wgsl: () => `
@group(0) @binding(0) var<storage, read_write> gradIn: array<f32>;
${paramsCode(["lanes"], 1)}

@compute @workgroup_size(${ZERO_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${laneIndex(ZERO_WORKGROUP)};
  if (lane >= params.lanes) { return; }
  let plane = lane / ${countY * countX}u;
  let q = lane % ${countY * countX}u;
  let iy = ${py}u + (q / ${countX}u) * ${stride}u;
  let ix = ${px}u + (q % ${countX}u) * ${stride}u;
  gradIn[plane * ${height * width}u + iy * ${width}u + ix] = 0.0;
}
`,
  };
}

/**
 * `gradWeight[e] = sum over p of partials[e, p]`: roles partials, gradWeight. Each weight's partial sums are
 * adjacent, so a range of weights is one window.
 */
function reducePartialsKernel(weights: number, partialCount: number, windowBytes: number): ConvKernel {
  const weightsPerWindow = Math.min(weights, Math.floor(windowCapacity(windowBytes) / partialCount));
  const partials = weightsPerWindow
    ? windowedRead("partials", weights * partialCount, weightsPerWindow * partialCount)
    : storageRead("partials", weights * partialCount);
  const weightsPerDispatch = weightsPerWindow || weights;
  const dispatches: ConvDispatch[] = [];
  for (let e0 = 0; e0 < weights; e0 += weightsPerDispatch) {
    const window = windowAt(partials, e0 * partialCount);
    const lanes = Math.min(weightsPerDispatch, weights - e0);
    dispatches.push({
      ranges: [window.range, undefined],
      params: [window.base, lanes, e0],
      workgroups: laneGrid(lanes, REDUCE_WORKGROUP, 1),
    });
  }
  return {
    key: `conv2d_grad_weight_reduce:${weights}x${partialCount}/${windowBytes}`,
    buffers: ["partials", "gradWeight"],
    dispatches,
    wgsl: () => `
${readCode(partials, 0)}
@group(0) @binding(1) var<storage, read_write> gradWeight: array<f32>;
${paramsCode(["partialsBase", "lanes", "weightBase"], 2)}

@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${laneIndex(REDUCE_WORKGROUP)};
  if (lane >= params.lanes) { return; }
  let first = params.partialsBase + lane * ${partialCount}u;
  var sum = 0.0;
  for (var p = 0u; p < ${partialCount}u; p++) {
    sum += readPartials(first + p);
  }
  gradWeight[params.weightBase + lane] = sum;
}
`,
  };
}

const REDUCE_WORKGROUP = 16;

/** The per-dispatch parameters a split weight gradient adds: its channel ranges, blocks and lanes. */
const WEIGHT_SPLIT_FIELDS = ["coStart", "coEnd", "ciStart", "ciEnd", "inBlocks", "lanes", "accumulate"];

/**
 * Channels of gradOut and of x per window when the weight gradient reads one sample's channel ranges
 * (see DirectWeightTile.channelSplit): when windows are on, a sample of either operand does not fit one
 * and a plane of each does; else null.
 */
function weightChannelRanges(
  geometry: ConvGeometry,
  tile: DirectWeightTile,
): { outChannels: number; inChannels: number } | null {
  const { batch, cin, cout, height, width } = geometry;
  const [outH, outW] = outputSize(geometry);
  if (tile.channelSplit === false || batch === 0 || tile.windowBytes === 0) return null;
  const half = geometry.halfOperands ?? false;
  const groups = sampleGroups(batch, [cout * outH * outW, cin * height * width], tile.windowBytes);
  if (groups.windowed[0] && groups.windowed[1]) return null;
  const outFit = channelsPerWindow(tile.windowBytes, outH * outW, half);
  const inFit = channelsPerWindow(tile.windowBytes, height * width, half);
  if (outFit === 0 || inFit === 0) return null;
  return { outChannels: balancedRange(cout, outFit), inChannels: balancedRange(cin, inFit) };
}

function directGradWeight(geometry: ConvGeometry, tile: DirectWeightTile): ConvPlan {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { outChannels, inChannels, rows, cols, workgroup, splits, windowBytes } = tile;
  checkDirect({ outChannels, inChannels, rows, cols, splits }, workgroup, windowBytes);
  const [outH, outW] = outputSize(geometry);
  const tilesY = Math.ceil(outH / rows);
  const tilesX = Math.ceil(outW / cols);
  const taps = kernel * kernel;
  const weights = cout * cin * taps;
  const outPerSample = cout * outH * outW;
  const inPerSample = cin * height * width;
  const half = geometry.halfOperands ?? false;
  const outPlane = outH * outW;
  const plane = height * width;
  const groups = sampleGroups(batch, [outPerSample, inPerSample], windowBytes);
  const ranges = weightChannelRanges(geometry, tile);
  const split = ranges !== null;
  // A split reads channel ranges of one sample; otherwise a window holds the sample group.
  const gradOut = ranges
    ? channelRangeRead("gradOut", batch * outPerSample, ranges.outChannels, outPlane, half)
    : groups.windowed[0]
    ? windowedRead("gradOut", batch * outPerSample, groups.size * outPerSample, half)
    : storageRead("gradOut", batch * outPerSample, half);
  const x = ranges
    ? channelRangeRead("x", batch * inPerSample, ranges.inChannels, plane, half)
    : groups.windowed[1]
    ? windowedRead("x", batch * inPerSample, groups.size * inPerSample, half)
    : storageRead("x", batch * inPerSample, half);
  const partialCount = split ? splits : groups.count * splits;
  const inBlocks = Math.ceil(cin / inChannels);
  const lanes = Math.ceil(cout / outChannels) * inBlocks * splits;
  const dispatches: ConvDispatch[] = [];
  if (ranges) {
    for (let sample = 0; sample < batch; sample++) {
      for (let co = 0; co < cout; co += ranges.outChannels) {
        const coEnd = Math.min(cout, co + ranges.outChannels);
        const gradWindow = windowAt(gradOut, sample * outPerSample + co * outPlane);
        for (let ci = 0; ci < cin; ci += ranges.inChannels) {
          const ciEnd = Math.min(cin, ci + ranges.inChannels);
          const xWindow = windowAt(x, sample * inPerSample + ci * plane);
          const blocks = Math.ceil((ciEnd - ci) / inChannels);
          const rangeLanes = Math.ceil((coEnd - co) / outChannels) * blocks * splits;
          dispatches.push({
            ranges: [gradWindow.range, xWindow.range, undefined],
            params: [
              gradWindow.base,
              xWindow.base,
              tilesY * tilesX,
              0,
              co,
              coEnd,
              ci,
              ciEnd,
              blocks,
              rangeLanes,
              sample > 0 ? 1 : 0,
            ],
            workgroups: laneGrid(rangeLanes, workgroup, 1),
          });
        }
      }
    }
  } else {
    for (let g = 0; g < groups.count; g++) {
      const s0 = g * groups.size;
      const samples = Math.min(groups.size, batch - s0);
      const gradWindow = windowAt(gradOut, s0 * outPerSample);
      const xWindow = windowAt(x, s0 * inPerSample);
      dispatches.push({
        ranges: [gradWindow.range, xWindow.range, undefined],
        params: [gradWindow.base, xWindow.base, samples * tilesY * tilesX, g * splits],
        workgroups: laneGrid(lanes, workgroup, 1),
      });
    }
  }
  const output = partialCount > 1 ? "partials" : "gradWeight";
  const wgsl = () => {
    const patchRows = reached(rows, stride, kernel);
    const patchCols = reached(cols, stride, kernel);
    const setup: string[] = [];
    const accumulators: string[] = [];
    const gradLoads: string[] = [];
    const blocks: string[] = [];
    const stores: string[] = [];
    // Rows or columns of a block past the output's edge read as zero (only where the tiles overhang).
    const rowInside = (y: number) => (outH % rows === 0 ? "" : `oy0 + ${y}u < ${outH}u`);
    const colInside = (x: number) => (outW % cols === 0 ? "" : `ox0 + ${x}u < ${outW}u`);
    for (let o = 0; o < outChannels; o++) {
      setup.push(
        split
          ? `  let gradRow${o} = (min(co0 + ${o}u, params.coEnd - 1u) - params.coStart) * ${outPlane}u;`
          : `  let gradRow${o} = min(co0 + ${o}u, ${cout - 1}u) * ${outPlane}u;`,
      );
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const inside = [rowInside(y), colInside(x)].filter(Boolean).join(" && ") || "true";
          gradLoads.push(
            `    let g${o}_${y}_${x} = loadGradOut(i32(gradBase + gradRow${o} + ${
              y * outW + x
            }u), ${inside});`,
          );
        }
      }
    }
    for (let i = 0; i < inChannels; i++) {
      setup.push(
        split
          ? `  let plane${i} = i32((min(ci0 + ${i}u, params.ciEnd - 1u) - params.ciStart) * ${plane}u);`
          : `  let plane${i} = i32(min(ci0 + ${i}u, ${cin - 1}u) * ${plane}u);`,
      );
      const products: string[] = [];
      for (let o = 0; o < outChannels; o++) {
        for (let ky = 0; ky < kernel; ky++) {
          for (let kx = 0; kx < kernel; kx++) {
            const acc = `acc${o}_${i}_${ky}_${kx}`;
            accumulators.push(`  var ${acc} = 0.0;`);
            const at = `((co0 + ${o}u) * ${cin * taps}u + (ci0 + ${i}u) * ${taps}u + ${
              ky * kernel + kx
            }u) * ${partialCount}u + partial`;
            const inRange = split
              ? `co0 + ${o}u < params.coEnd && ci0 + ${i}u < params.ciEnd`
              : `co0 + ${o}u < ${cout}u && ci0 + ${i}u < ${cin}u`;
            stores.push(`  if (${inRange}) {\n${storeCode(output, at, acc, split)}\n  }`);
            for (let y = 0; y < rows; y++) {
              for (let x = 0; x < cols; x++) {
                products.push(
                  `      ${acc} = fma(g${o}_${y}_${x}, p${y * stride + ky}_${x * stride + kx}, ${acc});`,
                );
              }
            }
          }
        }
      }
      blocks.push(`    {
${patchLoads("p", "loadX", patchRows, patchCols, `samplePlane + plane${i}`, "      ")}
${products.join("\n")}
    }`);
    }
    return `
${readCode(gradOut, 0)}
${readCode(x, 1)}
@group(0) @binding(2) var<storage, read_write> ${output}: array<f32>;
${paramsCode(["gradOutBase", "xBase", "steps", "partialBase", ...(split ? WEIGHT_SPLIT_FIELDS : [])], 3)}

${guardedLoad(gradOut)}
${guardedLoad(x)}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${laneIndex(workgroup)};
  if (lane >= ${split ? "params.lanes" : `${lanes}u`}) { return; }
  let split = lane % ${splits}u;
  let block = lane / ${splits}u;
${
      split
        ? `  let co0 = params.coStart + (block / params.inBlocks) * ${outChannels}u;
  let ci0 = params.ciStart + (block % params.inBlocks) * ${inChannels}u;`
        : `  let co0 = (block / ${inBlocks}u) * ${outChannels}u;
  let ci0 = (block % ${inBlocks}u) * ${inChannels}u;`
    }
  let partial = params.partialBase + split;
${setup.join("\n")}
${accumulators.join("\n")}
  for (var step = split; step < params.steps; step += ${splits}u) {
    let sample = step / ${tilesY * tilesX}u;
    let tile = step % ${tilesY * tilesX}u;
    let oy0 = (tile / ${tilesX}u) * ${rows}u;
    let ox0 = (tile % ${tilesX}u) * ${cols}u;
    let gradBase = params.gradOutBase + sample * ${outPerSample}u + oy0 * ${outW}u + ox0;
${gradLoads.join("\n")}
    let iy0 = i32(oy0 * ${stride}u) - ${pad};
    let ix0 = i32(ox0 * ${stride}u) - ${pad};
${patchBounds(patchRows, patchCols, "iy0", "ix0", height, width, "    ")}
    let samplePlane = i32(params.xBase + sample * ${inPerSample}u) + ix0;
${blocks.join("\n")}
  }
${stores.join("\n")}
}
`;
  };
  const partialKernel: ConvKernel = {
    key: `conv2d_grad_weight:${
      geometryKey(geometry)
    }:direct${outChannels}x${inChannels}/${rows}x${cols}/${workgroup}/${splits}/${windowBytes}${
      tile.channelSplit === false ? "/unsplit" : ""
    }`,
    buffers: ["gradOut", "x", output],
    dispatches,
    wgsl,
  };
  return partialCount > 1
    ? {
      scratch: { partials: partialCount * weights },
      kernels: [partialKernel, reducePartialsKernel(weights, partialCount, windowBytes)],
    }
    : { scratch: {}, kernels: [partialKernel] };
}
