/**
 * The GEMM tiling: implicit GEMM with tileK-deep slices of both operands staged in workgroup memory (im2col
 * gathered on the fly, never stored). One kernel forward and for the weight gradient, one per phase for the
 * input gradient.
 */
import { kernelKey, MAX_WORKGROUPS_X } from "../common.ts";
import { type ConvGeometry, outputSize, phase } from "./geometry.ts";
import type { ConvKernel } from "./plan.ts";
import type { GemmTile } from "./tiles.ts";
import { capitalised, readCode } from "./wgsl.ts";
import { storageRead } from "./windows.ts";

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

export function gemmForward(geometry: ConvGeometry, tile: GemmTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const half = geometry.halfOperands ?? false;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const reduce = cin * taps;
  const outPixels = outH * outW;
  const columns = batch * outPixels;
  return gemmKernel({
    key: kernelKey("conv2d_forward", { geometry, tile }),
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

export function gemmGradInput(geometry: ConvGeometry, tile: GemmTile): ConvKernel[] {
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
        key: kernelKey("conv2d_grad_input", { geometry, tile, phase: [py, px] }),
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

export function gemmGradWeight(geometry: ConvGeometry, tile: GemmTile): ConvKernel {
  const { batch, cin, cout, height, width, kernel, stride, pad } = geometry;
  const half = geometry.halfOperands ?? false;
  const [outH, outW] = outputSize(geometry);
  const taps = kernel * kernel;
  const columns = cin * taps;
  const outPixels = outH * outW;
  const reduce = batch * outPixels;
  return gemmKernel({
    key: kernelKey("conv2d_grad_weight", { geometry, tile }),
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
