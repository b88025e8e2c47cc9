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
 * and a stride-2 convolution does no multiply-by-zero work. Every weight-gradient element is owned by one
 * invocation (direct) or one workgroup (GEMM) that reduces over all of N*Ho*Wo, so no atomics are needed.
 *
 * Two tilings, both with shapes baked into the WGSL:
 * - "gemm": an implicit GEMM. A workgroup computes a tileM x tileN output block, staging tileK-deep slices of
 *   both operands (gathered from the NCHW tensors: im2col is never stored) in workgroup memory; each
 *   invocation accumulates threadM x threadN outputs in registers. The layout for GPUs.
 * - "direct": register-blocked direct convolution without workgroup memory. Each invocation owns a block
 *   of output channels x output pixels and loads each input patch once for all kernel taps. The layout for
 *   CPU adapters (llvmpipe), where every storage or workgroup memory load is a per-lane scalar loop costing
 *   about as much as a hundred vector multiply-adds, so the number of loads per multiply-add is what counts
 *   and workgroup-memory staging only adds loads.
 */
import type { Kernel } from "../src/gpu/kernels.ts";
import { MAX_WORKGROUPS_X } from "./common.ts";

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
}

/**
 * Direct tiling for the weight gradient: each invocation owns `outChannels` x `inChannels` x k x k weight
 * gradients and walks the output in rows x cols blocks, loading each block of the upstream gradient and
 * each input patch once for all taps.
 */
export interface DirectWeightTile {
  kind: "direct";
  outChannels: number;
  inChannels: number;
  rows: number;
  cols: number;
  workgroup: number;
}

export interface ConvKernel extends Kernel {
  workgroups: [number, number, number];
}

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
  return `${g.batch}x${g.cin}x${g.height}x${g.width}:${g.cout}:k${g.kernel}s${g.stride}p${g.pad}`;
}

/** Largest unrolled loop body (multiply-adds) and accumulator count a CPU-adapter kernel may have. */
const DIRECT_MAX_PRODUCTS = 2304;
const DIRECT_MAX_ACCUMULATORS = 288;

/** Fraction of a blocked dimension that is real work rather than overhang past its end. */
function usefulFraction(size: number, block: number): number {
  return size / (Math.ceil(size / block) * block);
}

/** A higher score wins; a tie goes to the bigger loop body, which spends less on loop bookkeeping. */
function better(score: number, products: number, bestScore: number, bestProducts: number): boolean {
  return score > bestScore * 1.001 || (score > bestScore * 0.999 && products > bestProducts);
}

/**
 * The pixel block (forward or input gradient) with the most useful multiply-adds per memory load, within
 * the code-size limits. `taps` kernel taps per axis at `stride` reach each output block.
 */
function bestPixelTile(
  channelCount: number,
  outH: number,
  outW: number,
  taps: number,
  stride: number,
): DirectTile {
  let best: DirectTile = { kind: "direct", channels: 1, rows: 1, cols: 1, workgroup: 64 };
  let bestScore = 0;
  let bestProducts = 0;
  for (const channels of [1, 2, 3, 4, 6, 8, 12, 16]) {
    for (const rows of [1, 2, 4, 8]) {
      for (const cols of [1, 2, 4, 8, 16]) {
        const accumulators = channels * rows * cols;
        const products = accumulators * taps * taps;
        if (products > DIRECT_MAX_PRODUCTS || accumulators > DIRECT_MAX_ACCUMULATORS) continue;
        const patch = reached(rows, stride, taps).length * reached(cols, stride, taps).length;
        const score = products / (patch + channels * taps * taps) * usefulFraction(channelCount, channels) *
          usefulFraction(outH, rows) * usefulFraction(outW, cols);
        if (better(score, products, bestScore, bestProducts)) {
          bestScore = score;
          bestProducts = products;
          best = { kind: "direct", channels, rows, cols, workgroup: 64 };
        }
      }
    }
  }
  return best;
}

/** The weight-gradient block with the most useful multiply-adds per load, within the code-size limits. */
function bestWeightTile(geometry: ConvGeometry, outH: number, outW: number): DirectWeightTile {
  const { cin, cout, kernel, stride } = geometry;
  const taps = kernel * kernel;
  let best: DirectWeightTile = {
    kind: "direct",
    outChannels: 1,
    inChannels: 1,
    rows: 1,
    cols: 1,
    workgroup: 16,
  };
  let bestScore = 0;
  let bestProducts = 0;
  for (const outChannels of [1, 2, 4, 5, 8, 16]) {
    for (const inChannels of [1, 2, 4, 8, 16]) {
      for (const rows of [1, 2, 4]) {
        for (const cols of [1, 2, 4, 8]) {
          const accumulators = outChannels * inChannels * taps;
          const products = accumulators * rows * cols;
          if (products > DIRECT_MAX_PRODUCTS || accumulators > DIRECT_MAX_ACCUMULATORS) continue;
          const patch = reached(rows, stride, kernel).length * reached(cols, stride, kernel).length;
          const score = products / (outChannels * rows * cols + inChannels * patch) *
            usefulFraction(cout, outChannels) * usefulFraction(cin, inChannels) * usefulFraction(outH, rows) *
            usefulFraction(outW, cols);
          if (better(score, products, bestScore, bestProducts)) {
            bestScore = score;
            bestProducts = products;
            best = { kind: "direct", outChannels, inChannels, rows, cols, workgroup: 16 };
          }
        }
      }
    }
  }
  // Few invocations (a 3-channel stem): smaller workgroups so both CPU threads get one.
  const lanes = Math.ceil(cout / best.outChannels) * Math.ceil(cin / best.inChannels);
  return lanes >= 64 ? best : { ...best, workgroup: 4 };
}

/**
 * Default tilings. GPUs get the GEMM tiling. CPU adapters get direct blocks chosen to maximise useful
 * multiply-adds per memory load (the cost that dominates there) while keeping the unrolled loop body
 * within 2,304 multiply-adds and 288 accumulators: bigger bodies compile for minutes. At the ResNet-19
 * shapes this picks what bench/conv2d.bench.ts measured fastest: 8 channels x 4x8 pixels for 3x3
 * kernels; 8x4 channels x 2x4 pixels for their weight gradient at stride 1 and 16x2 channels at stride 2
 * (about 20% faster there than 8x4).
 */
export function defaultConvTilings(geometry: ConvGeometry, cpu: boolean): {
  forward: GemmTile | DirectTile;
  gradInput: GemmTile | DirectTile;
  gradWeight: GemmTile | DirectWeightTile;
} {
  if (!cpu) {
    const gemm: GemmTile = { kind: "gemm", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
    return { forward: gemm, gradInput: gemm, gradWeight: gemm };
  }
  const { kernel, stride, cin, cout, height, width } = geometry;
  const [outH, outW] = outputSize(geometry);
  return {
    forward: bestPixelTile(cout, outH, outW, kernel, stride),
    // Within one phase of the input gradient, about kernel/stride taps per axis at stride 1.
    gradInput: bestPixelTile(
      cin,
      Math.ceil(height / stride),
      Math.ceil(width / stride),
      Math.ceil(kernel / stride),
      1,
    ),
    gradWeight: bestWeightTile(geometry, outH, outW),
  };
}

/** `(batch, cin, H, W) x (cout, cin, k, k) -> (batch, cout, Ho, Wo)`; buffers [x, weight, out]. */
export function conv2dForwardKernel(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvKernel {
  return tiling.kind === "gemm" ? gemmForward(geometry, tiling) : directForward(geometry, tiling);
}

/**
 * The input gradient, one kernel per phase (stride^2 of them, less phases holding no input position).
 * Buffers of each: [gradOut, weight, gradIn]. Every element of gradIn is written by exactly one phase
 * (phases that no kernel tap reaches write zeros).
 */
export function conv2dGradInputKernels(geometry: ConvGeometry, tiling: GemmTile | DirectTile): ConvKernel[] {
  return tiling.kind === "gemm" ? gemmGradInput(geometry, tiling) : directGradInput(geometry, tiling);
}

/** The weight gradient `(cout, cin, k, k)`; buffers [gradOut, x, gradWeight]. */
export function conv2dGradWeightKernel(
  geometry: ConvGeometry,
  tiling: GemmTile | DirectWeightTile,
): ConvKernel {
  return tiling.kind === "gemm" ? gemmGradWeight(geometry, tiling) : directGradWeight(geometry, tiling);
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
        `    if (ok) { value = ${operand.source}[at]; }`,
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
  return { key: spec.key, workgroups, wgsl };
}

function gemmForward(geometry: ConvGeometry, tile: GemmTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
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
    bindings: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
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
        bindings: `@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> gradIn: array<f32>;`,
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
    bindings: `@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> gradWeight: array<f32>;`,
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

function checkDirect(sizes: Record<string, number>, workgroup: number): void {
  for (const [name, value] of Object.entries({ ...sizes, workgroup })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`conv2d: direct tile ${name} must be a positive integer, got ${value}`);
    }
  }
  if (workgroup > 256) throw new Error(`conv2d: direct tile workgroup ${workgroup} is over 256 invocations`);
}

/** Invocations indexed along x (folded into z past 65535 workgroups), channel blocks along y. */
function laneGrid(lanes: number, workgroup: number, blocksY: number) {
  const groups = Math.max(1, Math.ceil(lanes / workgroup));
  const x = Math.min(groups, MAX_WORKGROUPS_X);
  return {
    workgroups: [x, blocksY, Math.ceil(groups / x)] as [number, number, number],
    lane: `(wid.x + wid.z * ${x}u) * ${workgroup}u + tid`,
  };
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
function patchLoads(name: string, rows: number[], cols: number[], plane: string, indent: string): string {
  const lines: string[] = [];
  for (const r of rows) {
    for (const c of cols) {
      lines.push(
        `${indent}let ${name}${r}_${c} = load(${plane} + rowAt${r} + ${c}, rowOk${r} && colOk${c});`,
      );
    }
  }
  return lines.join("\n");
}

/** A guarded load from `source`: the index is only used where `ok`, so it may be negative elsewhere. */
function loadFunction(source: string): string {
  return `fn load(at: i32, ok: bool) -> f32 {
  return select(0.0, ${source}[select(0u, u32(at), ok)], ok);
}`;
}

function directForward(geometry: ConvGeometry, tile: DirectTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { channels, rows, cols, workgroup } = tile;
  checkDirect({ channels, rows, cols }, workgroup);
  const [outH, outW] = outputSize(geometry);
  const tilesY = Math.ceil(outH / rows);
  const tilesX = Math.ceil(outW / cols);
  const grid = laneGrid(batch * tilesY * tilesX, workgroup, Math.ceil(cout / channels));
  const taps = kernel * kernel;
  const wgsl = () => {
    const patchRows = reached(rows, stride, kernel);
    const patchCols = reached(cols, stride, kernel);
    const accumulators: string[] = [];
    const weightRows: string[] = [];
    const products: string[] = [];
    const stores: string[] = [];
    for (let m = 0; m < channels; m++) {
      weightRows.push(`  let weightRow${m} = min(co0 + ${m}u, ${cout - 1}u) * ${cin * taps}u;`);
      for (let ky = 0; ky < kernel; ky++) {
        for (let kx = 0; kx < kernel; kx++) {
          products.push(
            `    let w${m}_${ky}_${kx} = weight[weightRow${m} + tapBase + ${ky * kernel + kx}u];`,
          );
          for (let y = 0; y < rows; y++) {
            for (let x = 0; x < cols; x++) {
              const acc = `acc${m}_${y}_${x}`;
              products.push(
                `    ${acc} = fma(w${m}_${ky}_${kx}, in${y * stride + ky}_${x * stride + kx}, ${acc});`,
              );
            }
          }
        }
      }
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          accumulators.push(`  var acc${m}_${y}_${x} = 0.0;`);
          stores.push(
            `  if (co0 + ${m}u < ${cout}u && oy0 + ${y}u < ${outH}u && ox0 + ${x}u < ${outW}u) {\n` +
              `    out[outBase + ${m * outH * outW}u + ${y * outW + x}u] = acc${m}_${y}_${x};\n  }`,
          );
        }
      }
    }
    return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

${loadFunction("x")}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${grid.lane};
  if (lane >= ${batch * tilesY * tilesX}u) { return; }
  let sample = lane / ${tilesY * tilesX}u;
  let tile = lane % ${tilesY * tilesX}u;
  let oy0 = (tile / ${tilesX}u) * ${rows}u;
  let ox0 = (tile % ${tilesX}u) * ${cols}u;
  let co0 = wid.y * ${channels}u;
  let iy0 = i32(oy0 * ${stride}u) - ${pad};
  let ix0 = i32(ox0 * ${stride}u) - ${pad};
${patchBounds(patchRows, patchCols, "iy0", "ix0", height, width)}
${weightRows.join("\n")}
${accumulators.join("\n")}
  for (var ci = 0u; ci < ${cin}u; ci++) {
    let plane = i32(sample * ${cin * height * width}u + ci * ${height * width}u) + ix0;
${patchLoads("in", patchRows, patchCols, "plane", "    ")}
    let tapBase = ci * ${taps}u;
${products.join("\n")}
  }
  let outBase = sample * ${cout * outH * outW}u + co0 * ${outH * outW}u + oy0 * ${outW}u + ox0;
${stores.join("\n")}
}
`;
  };
  return {
    key: `conv2d_forward:${geometryKey(geometry)}:direct${channels}/${rows}x${cols}/${workgroup}`,
    workgroups: grid.workgroups,
    wgsl,
  };
}

function directGradInput(geometry: ConvGeometry, tile: DirectTile): ConvKernel[] {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { channels, rows, cols, workgroup } = tile;
  checkDirect({ channels, rows, cols }, workgroup);
  const [outH, outW] = outputSize(geometry);
  const kernels: ConvKernel[] = [];
  for (let py = 0; py < stride; py++) {
    for (let px = 0; px < stride; px++) {
      const phaseRows = phase(py, height, kernel, stride, pad);
      const phaseCols = phase(px, width, kernel, stride, pad);
      if (phaseRows.count === 0 || phaseCols.count === 0) continue;
      const tilesY = Math.ceil(phaseRows.count / rows);
      const tilesX = Math.ceil(phaseCols.count / cols);
      const lanes = batch * tilesY * tilesX;
      const grid = laneGrid(lanes, workgroup, Math.ceil(cin / channels));
      const reachedByTaps = phaseRows.taps > 0 && phaseCols.taps > 0;
      const wgsl = () => {
        // Patch row r holds gradOut row oyStart + r; output row y with tap j reads row y - j + taps - 1.
        const patchRows = reached(rows, 1, phaseRows.taps);
        const patchCols = reached(cols, 1, phaseCols.taps);
        const accumulators: string[] = [];
        const weightColumns: string[] = [];
        const products: string[] = [];
        const stores: string[] = [];
        for (let m = 0; m < channels; m++) {
          weightColumns.push(`  let weightColumn${m} = min(ci0 + ${m}u, ${cin - 1}u) * ${kernel * kernel}u;`);
          for (let jy = 0; jy < phaseRows.taps; jy++) {
            for (let jx = 0; jx < phaseCols.taps; jx++) {
              const tap = (phaseRows.tap0 + stride * jy) * kernel + phaseCols.tap0 + stride * jx;
              products.push(`    let w${m}_${jy}_${jx} = weight[tapBase + weightColumn${m} + ${tap}u];`);
              for (let y = 0; y < rows; y++) {
                for (let x = 0; x < cols; x++) {
                  const acc = `acc${m}_${y}_${x}`;
                  const g = `g${y - jy + phaseRows.taps - 1}_${x - jx + phaseCols.taps - 1}`;
                  products.push(`    ${acc} = fma(w${m}_${jy}_${jx}, ${g}, ${acc});`);
                }
              }
            }
          }
          for (let y = 0; y < rows; y++) {
            for (let x = 0; x < cols; x++) {
              accumulators.push(`  var acc${m}_${y}_${x} = 0.0;`);
              stores.push(
                `  if (ci0 + ${m}u < ${cin}u && qy0 + ${y}u < ${phaseRows.count}u && qx0 + ${x}u < ${phaseCols.count}u) {\n` +
                  `    gradIn[inBase + ${m * height * width}u + ${
                    y * stride * width + x * stride
                  }u] = acc${m}_${y}_${x};\n  }`,
              );
            }
          }
        }
        const reduction = reachedByTaps
          ? `${weightColumns.join("\n")}
  for (var co = 0u; co < ${cout}u; co++) {
    let plane = i32(sample * ${cout * outH * outW}u + co * ${outH * outW}u) + oxStart;
${patchLoads("g", patchRows, patchCols, "plane", "    ")}
    let tapBase = co * ${cin * kernel * kernel}u;
${products.join("\n")}
  }`
          // No kernel tap reaches this phase: its gradient is zero (the bindings stay declared and used).
          : `  _ = load(0, false);\n  _ = weight[0];`;
        return `
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> gradIn: array<f32>;

${loadFunction("gradOut")}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${grid.lane};
  if (lane >= ${lanes}u) { return; }
  let sample = lane / ${tilesY * tilesX}u;
  let tile = lane % ${tilesY * tilesX}u;
  let qy0 = (tile / ${tilesX}u) * ${rows}u;
  let qx0 = (tile % ${tilesX}u) * ${cols}u;
  let ci0 = wid.y * ${channels}u;
  let oyStart = i32(qy0) + ${phaseRows.offset - (phaseRows.taps - 1)};
  let oxStart = i32(qx0) + ${phaseCols.offset - (phaseCols.taps - 1)};
${
          reachedByTaps
            ? patchBounds(
              reached(rows, 1, phaseRows.taps),
              reached(cols, 1, phaseCols.taps),
              "oyStart",
              "oxStart",
              outH,
              outW,
            )
            : ""
        }
${accumulators.join("\n")}
${reduction}
  let inBase = sample * ${cin * height * width}u + ci0 * ${height * width}u +
    (${py}u + qy0 * ${stride}u) * ${width}u + ${px}u + qx0 * ${stride}u;
${stores.join("\n")}
}
`;
      };
      kernels.push({
        key: `conv2d_grad_input:${
          geometryKey(geometry)
        }:phase${py},${px}:direct${channels}/${rows}x${cols}/${workgroup}`,
        workgroups: grid.workgroups,
        wgsl,
      });
    }
  }
  return kernels;
}

function directGradWeight(geometry: ConvGeometry, tile: DirectWeightTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const { outChannels, inChannels, rows, cols, workgroup } = tile;
  checkDirect({ outChannels, inChannels, rows, cols }, workgroup);
  const [outH, outW] = outputSize(geometry);
  const tilesY = Math.ceil(outH / rows);
  const tilesX = Math.ceil(outW / cols);
  const inBlocks = Math.ceil(cin / inChannels);
  const lanes = Math.ceil(cout / outChannels) * inBlocks;
  const grid = laneGrid(lanes, workgroup, 1);
  const taps = kernel * kernel;
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
      setup.push(`  let gradRow${o} = min(co0 + ${o}u, ${cout - 1}u) * ${outH * outW}u;`);
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const inside = [rowInside(y), colInside(x)].filter(Boolean).join(" && ") || "true";
          gradLoads.push(
            `    let g${o}_${y}_${x} = loadGrad(i32(gradBase + gradRow${o} + ${y * outW + x}u), ${inside});`,
          );
        }
      }
    }
    for (let i = 0; i < inChannels; i++) {
      setup.push(`  let plane${i} = i32(min(ci0 + ${i}u, ${cin - 1}u) * ${height * width}u);`);
      const products: string[] = [];
      for (let o = 0; o < outChannels; o++) {
        for (let ky = 0; ky < kernel; ky++) {
          for (let kx = 0; kx < kernel; kx++) {
            const acc = `acc${o}_${i}_${ky}_${kx}`;
            accumulators.push(`  var ${acc} = 0.0;`);
            stores.push(
              `  if (co0 + ${o}u < ${cout}u && ci0 + ${i}u < ${cin}u) {\n` +
                `    gradWeight[(co0 + ${o}u) * ${cin * taps}u + (ci0 + ${i}u) * ${taps}u + ${
                  ky * kernel + kx
                }u] = ${acc};\n  }`,
            );
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
${patchLoads("p", patchRows, patchCols, `sampleBase + plane${i}`, "      ")}
${products.join("\n")}
    }`);
    }
    return `
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> gradWeight: array<f32>;

${loadFunction("x")}

fn loadGrad(at: i32, ok: bool) -> f32 {
  return select(0.0, gradOut[select(0u, u32(at), ok)], ok);
}

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let lane = ${grid.lane};
  if (lane >= ${lanes}u) { return; }
  let co0 = (lane / ${inBlocks}u) * ${outChannels}u;
  let ci0 = (lane % ${inBlocks}u) * ${inChannels}u;
${setup.join("\n")}
${accumulators.join("\n")}
  for (var step = 0u; step < ${batch * tilesY * tilesX}u; step++) {
    let sample = step / ${tilesY * tilesX}u;
    let tile = step % ${tilesY * tilesX}u;
    let oy0 = (tile / ${tilesX}u) * ${rows}u;
    let ox0 = (tile % ${tilesX}u) * ${cols}u;
    let gradBase = sample * ${cout * outH * outW}u + oy0 * ${outW}u + ox0;
${gradLoads.join("\n")}
    let iy0 = i32(oy0 * ${stride}u) - ${pad};
    let ix0 = i32(ox0 * ${stride}u) - ${pad};
${patchBounds(patchRows, patchCols, "iy0", "ix0", height, width, "    ")}
    let sampleBase = i32(sample * ${cin * height * width}u) + ix0;
${blocks.join("\n")}
  }
${stores.join("\n")}
}
`;
  };
  return {
    key: `conv2d_grad_weight:${
      geometryKey(geometry)
    }:direct${outChannels}x${inChannels}/${rows}x${cols}/${workgroup}`,
    workgroups: grid.workgroups,
    wgsl,
  };
}
