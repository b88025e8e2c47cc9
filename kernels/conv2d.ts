/**
 * 2-D convolution (no bias, square kernel, zero padding) as implicit GEMMs: the im2col matrix is never
 * stored; each GEMM's tile loader gathers it from the NCHW tensors.
 *
 * - forward:      out[co, (n,oy,ox)]     = sum over (ci,ky,kx) of w[co, ci,ky,kx] * x[n, ci, oy*s-p+ky, ox*s-p+kx]
 * - grad input:   gx[ci, (n,iy,ix)]      = sum over (co,ky,kx) of w[co, ci,ky,kx] * gy[n, co, (iy+p-ky)/s, ...]
 * - grad weight:  gw[co, (ci,ky,kx)]     = sum over (n,oy,ox)  of gy[n, co, oy,ox] * x[n, ci, oy*s-p+ky, ...]
 *
 * The input gradient is split by output phase (iy mod s, ix mod s): in one phase only the kernel taps with
 * ky = (iy + p) mod s (mod s) reach a whole output row, so each phase is a dense GEMM over those taps and a
 * stride-2 convolution does no multiply-by-zero work. The weight gradient reduces over N*Ho*Wo inside one
 * workgroup (it owns its output tile), so no atomics are needed.
 *
 * All three share one tiled GEMM: a workgroup computes a tileM x tileN block of the output, staging
 * tileK-deep slices of both operands in workgroup memory; each invocation accumulates a threadM x threadN
 * block in registers.
 */
import type { Kernel } from "../src/gpu/kernels.ts";

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
  tileM: number;
  tileN: number;
  tileK: number;
  threadM: number;
  threadN: number;
}

export interface ConvKernel extends Kernel {
  workgroups: [number, number, number];
}

/** Tile sizes measured fastest at the ResNet-19 shapes on llvmpipe (see bench/conv2d.bench.ts). */
export const DEFAULT_FORWARD_TILE: GemmTile = { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
export const DEFAULT_GRAD_INPUT_TILE: GemmTile = { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
export const DEFAULT_GRAD_WEIGHT_TILE: GemmTile = { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };

const MAX_WORKGROUPS_X = 65535;

export function outputSize(geometry: ConvGeometry): [number, number] {
  const { height, width, kernel, stride, pad } = geometry;
  return [
    Math.floor((height + 2 * pad - kernel) / stride) + 1,
    Math.floor((width + 2 * pad - kernel) / stride) + 1,
  ];
}

/** Multiply-adds times two of one forward pass (the backward passes each do the same amount). */
export function convFlops(geometry: ConvGeometry): number {
  const [outH, outW] = outputSize(geometry);
  const { batch, cin, cout, kernel } = geometry;
  return 2 * batch * cout * outH * outW * cin * kernel * kernel;
}

function geometryKey(g: ConvGeometry): string {
  return `${g.batch}x${g.cin}x${g.height}x${g.width}:${g.cout}:k${g.kernel}s${g.stride}p${g.pad}`;
}

function tileKey(t: GemmTile): string {
  return `${t.tileM}x${t.tileN}x${t.tileK}/${t.threadM}x${t.threadN}`;
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
  for (const [name, value] of Object.entries(tile)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`conv2d: tile ${name} must be a positive integer`);
  }
  if (tileM % threadM || tileN % threadN) {
    throw new Error(`conv2d: tile ${tileKey(tile)}: tileM/threadM and tileN/threadN must be whole`);
  }
  const threads = (tileM / threadM) * (tileN / threadN);
  for (const width of [tileM, tileN]) {
    if (width % threads && threads % width) {
      throw new Error(`conv2d: tile ${tileKey(tile)}: ${threads} invocations cannot split a ${width}-wide tile evenly`);
    }
  }
  if (threads > 1024) throw new Error(`conv2d: tile ${tileKey(tile)} needs ${threads} invocations, over 1024`);
  if ((tileM + tileN) * tileK * 4 > 32768) {
    throw new Error(`conv2d: tile ${tileKey(tile)} needs more than 32 KiB of workgroup memory`);
  }
  return threads;
}

function loaderCode(operand: Operand, shared: string, width: number, base: string, plan: LoaderPlan, tileK: number) {
  const setup: string[] = [];
  const body: string[] = [];
  for (let j = 0; j < plan.columnsPerThread; j++) {
    const column = j === 0 ? "tid % WIDTH" : `tid % WIDTH + ${j * (width / plan.columnsPerThread)}u`;
    const local = column.replaceAll("WIDTH", `${width}u`);
    setup.push(`  let ${shared}Col${j} = ${local};`);
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
    for (let i = 0; i < threadM; i++) reads.push(`      let a${i} = tileA[kk * ${tileM}u + rowBase + ${i}u];`);
    for (let j = 0; j < threadN; j++) reads.push(`      let b${j} = tileB[kk * ${tileN}u + colBase + ${j}u];`);
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
        stores.push(`        ${spec.output}[${spec.storeIndex(j, `(m0 + rowBase + ${i}u)`)}] = acc${i}_${j};`);
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

/** `(batch, cin, H, W) x (cout, cin, k, k) -> (batch, cout, Ho, Wo)`; buffers [x, weight, out]. */
export function conv2dForwardKernel(geometry: ConvGeometry, tile: GemmTile = DEFAULT_FORWARD_TILE): ConvKernel {
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
    storeColumn: (j, c) => `    let outBase${j} = (${c} / ${outPixels}u) * ${cout * outPixels}u + ${c} % ${outPixels}u;`,
    storeIndex: (j, row) => `outBase${j} + ${row} * ${outPixels}u`,
    output: "out",
  });
}

/** The kernel taps and input positions of one output phase of the input gradient, along one axis. */
interface Phase {
  /** First input position of the phase (iy = first + stride * q). */
  first: number;
  /** Input positions in the phase. */
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
    first,
    count: Math.max(0, Math.ceil((size - first) / stride)),
    tap0,
    taps: tap0 < kernel ? Math.ceil((kernel - tap0) / stride) : 0,
    offset: (first + pad - tap0) / stride,
  };
}

/**
 * The input gradient, one kernel per output phase (stride^2 of them; phases with no input positions are
 * left out). Buffers of each: [gradOut, weight, gradIn]. Every element of gradIn is written by exactly one
 * phase (phases reached by no kernel tap write zeros).
 */
export function conv2dGradInputKernels(
  geometry: ConvGeometry,
  tile: GemmTile = DEFAULT_GRAD_INPUT_TILE,
): ConvKernel[] {
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
    let at = (${k} / ${Math.max(1, phaseTaps)}u) * ${cin * kernel * kernel}u + aBase${j} + ky * ${kernel}u + kx;`,
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

/** The weight gradient `(cout, cin, k, k)`; buffers [gradOut, x, gradWeight]. */
export function conv2dGradWeightKernel(
  geometry: ConvGeometry,
  tile: GemmTile = DEFAULT_GRAD_WEIGHT_TILE,
): ConvKernel {
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
