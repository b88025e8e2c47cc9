/**
 * Dense matrix products for Linear (and anyone else who needs a GEMM), plus the column sum that gives a
 * bias gradient. Two tilings of the GEMM, both with the shape baked into the WGSL:
 * - "shared": workgroups stage tiles of A and B in workgroup memory, threads accumulate register tiles
 *   from them. The layout for GPUs.
 * - "direct": no workgroup memory; each thread owns a register block of C and runs the whole K reduction
 *   for it. The layout for CPU adapters (llvmpipe), where every storage or workgroup-memory load is a
 *   per-lane scalar loop costing about twenty cycles per float, so the loads per multiply-add are what
 *   count and staging in workgroup memory only adds loads. An operand of at most 64 KiB can instead be
 *   read through a uniform binding, a branch-free gather about ten times cheaper.
 *
 * Layout conventions of `matmulKernel`:
 * - Every matrix is a dense row-major f32 array with no padding or offset.
 * - It computes `C (M x N) = op(A) (M x K) . op(B) (K x N)` (+ `bias[n]` on every row when `bias`).
 * - `transA = false`: A is stored `(M, K)`, element (m, k) at `m*K + k`.
 *   `transA = true`: A is stored `(K, M)` and used transposed, element (m, k) at `k*M + m`.
 * - `transB = false`: B is stored `(K, N)`, element (k, n) at `k*N + n`.
 *   `transB = true`: B is stored `(N, K)` and used transposed, element (k, n) at `n*K + k`.
 * - Bindings in order: A, B, bias (only when `bias`), C. Dispatch `kernel.workgroups`.
 * So Linear's forward `x W^T + b` is `transB` with bias, its input gradient `g W` is plain, and its weight
 * gradient `g^T x` is `transA`: the reduction over the batch runs inside one workgroup (shared) or one
 * thread (direct), with no atomics.
 */
import { gridFor, kernelKey } from "./common.ts";
import {
  SOFTWARE_ADAPTER_COSTS,
  SOFTWARE_SIMD_LANES,
  type SoftwareTarget,
  UNIFORM_WINDOW_BYTES,
} from "./target.ts";
import type { Kernel } from "../src/gpu/kernels.ts";

/**
 * Shared-memory blocking, for GPUs: each workgroup stages blockK-deep slices of A and B in workgroup
 * memory and each thread accumulates threadM x threadN outputs from them.
 */
export interface SharedMatmulTile {
  kind: "shared";
  /** Rows and columns of C per workgroup. */
  blockM: number;
  blockN: number;
  /** Depth of the K slice staged in shared memory per step. */
  blockK: number;
  /** Rows and columns of C per thread (held in registers). */
  threadM: number;
  threadN: number;
}

/**
 * Register blocking without workgroup memory, for CPU adapters: each thread owns threadM x threadN
 * outputs and, per k, loads the threadM values of A and threadN values of B they need once.
 */
export interface DirectMatmulTile {
  kind: "direct";
  threadM: number;
  threadN: number;
  /** Threads per workgroup: a CPU adapter runs each workgroup on one core. */
  workgroup: number;
  /**
   * Read A (B) through a uniform binding of its whole buffer, which then needs UNIFORM usage and at most
   * UNIFORM_WINDOW_BYTES: on llvmpipe a uniform load is a branch-free gather, about ten times cheaper
   * than a storage load.
   */
  uniformA?: boolean;
  uniformB?: boolean;
}

/** A software adapter, and which operands the caller lets the direct tiling bind as uniforms. */
export interface CpuTarget extends SoftwareTarget {
  /** Whether A's (B's) buffer can be bound as a uniform: UNIFORM usage, at most UNIFORM_WINDOW_BYTES. */
  uniformA?: boolean;
  uniformB?: boolean;
}

/** The blocking of one GEMM specialisation; part of the kernel key so benches can sweep it. */
export type MatmulTile = SharedMatmulTile | DirectMatmulTile;

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Adds `bias[n]` (length N) to every row of C. */
  bias?: boolean;
  /** Blocking; the GPU choice of `defaultMatmulTile` when omitted. */
  tile?: MatmulTile;
}

export interface GridKernel extends Kernel {
  workgroups: [number, number];
}

/** Shared-memory tile configurations from large to small, each with at most 256 threads. */
export const MATMUL_TILES: readonly SharedMatmulTile[] = [
  { kind: "shared", blockM: 128, blockN: 128, blockK: 8, threadM: 8, threadN: 8 },
  { kind: "shared", blockM: 64, blockN: 64, blockK: 16, threadM: 4, threadN: 4 },
  { kind: "shared", blockM: 32, blockN: 32, blockK: 16, threadM: 2, threadN: 2 },
];

/** Workgroups wanted to keep a large GPU busy before a bigger tile is worth its lower parallelism. */
const TARGET_WORKGROUPS = 128;

/** The largest shared tile that still yields enough workgroups for C (M x N); the smallest otherwise. */
function chooseSharedTile(M: number, N: number): SharedMatmulTile {
  for (const tile of MATMUL_TILES) {
    if (Math.ceil(M / tile.blockM) * Math.ceil(N / tile.blockN) >= TARGET_WORKGROUPS) return tile;
  }
  return MATMUL_TILES[MATMUL_TILES.length - 1];
}

/** The tiling for `shape`: shared memory on GPUs (`cpu` omitted), direct on a CPU adapter. */
export function defaultMatmulTile(shape: MatmulShape, cpu?: CpuTarget): MatmulTile {
  return cpu ? chooseDirectTile(shape, cpu) : chooseSharedTile(shape.M, shape.N);
}

function checkTile(tile: MatmulTile): void {
  if (tile.kind === "direct") {
    const { threadM, threadN, workgroup } = tile;
    if (![threadM, threadN, workgroup].every((v) => Number.isInteger(v) && v >= 1) || workgroup > 256) {
      throw new Error(
        `matmul: direct tile ${JSON.stringify(tile)} is invalid: sizes must be positive integers and the ` +
          "workgroup at most 256 threads",
      );
    }
    return;
  }
  const { blockM, blockN, blockK, threadM, threadN } = tile;
  const threads = (blockM / threadM) * (blockN / threadN);
  if (
    blockM % threadM !== 0 || blockN % threadN !== 0 || !Number.isInteger(threads) || threads > 256 ||
    blockK < 1
  ) {
    throw new Error(
      `matmul: tile ${
        JSON.stringify(tile)
      } is invalid: blockM/threadM and blockN/threadN must divide exactly ` +
        "and give at most 256 threads",
    );
  }
}

/** `C = op(A) op(B) (+ bias)`; see the file comment for layouts. */
export function matmulKernel(shape: MatmulShape): GridKernel {
  const { M, N, K, transA = false, transB = false, bias = false } = shape;
  for (const [name, value] of [["M", M], ["N", N], ["K", K]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`matmul: ${name} must be a positive integer, not ${value}`);
    }
  }
  const full = { M, N, K, transA, transB, bias };
  const tile = shape.tile ?? chooseSharedTile(M, N);
  checkTile(tile);
  return tile.kind === "direct" ? directMatmul(full, tile) : sharedMatmul(full, tile);
}

/** The shared-memory kernel (see SharedMatmulTile). */
function sharedMatmul(shape: Required<Omit<MatmulShape, "tile">>, tile: SharedMatmulTile): GridKernel {
  const { M, N, K, transA, transB, bias } = shape;
  const { blockM, blockN, blockK, threadM, threadN } = tile;
  const threadsX = blockN / threadN;
  const threadsY = blockM / threadM;
  const threads = threadsX * threadsY;
  // One padding column keeps the transposing tile stores free of shared-memory bank conflicts.
  const strideA = blockM + 1;
  const strideB = blockN + 1;
  const key = kernelKey("matmul_shared", {
    M,
    N,
    K,
    transA,
    transB,
    bias,
    blockM,
    blockN,
    blockK,
    threadM,
    threadN,
  });

  // Consecutive threads load consecutive addresses of global memory, whichever way A and B are stored.
  const loadA = transA
    ? `let kk = i / ${blockM}u; let m = i % ${blockM}u; let gk = k0 + kk; let gm = row0 + m;
      var v = 0.0; if (gm < ${M}u && gk < ${K}u) { v = a[gk * ${M}u + gm]; }`
    : `let m = i / ${blockK}u; let kk = i % ${blockK}u; let gk = k0 + kk; let gm = row0 + m;
      var v = 0.0; if (gm < ${M}u && gk < ${K}u) { v = a[gm * ${K}u + gk]; }`;
  const loadB = transB
    ? `let n = i / ${blockK}u; let kk = i % ${blockK}u; let gk = k0 + kk; let gn = col0 + n;
      var v = 0.0; if (gn < ${N}u && gk < ${K}u) { v = b[gn * ${K}u + gk]; }`
    : `let kk = i / ${blockN}u; let n = i % ${blockN}u; let gk = k0 + kk; let gn = col0 + n;
      var v = 0.0; if (gn < ${N}u && gk < ${K}u) { v = b[gk * ${N}u + gn]; }`;

  const rows = [...Array(threadM).keys()];
  const cols = [...Array(threadN).keys()];
  const accName = (r: number, c: number) => `acc_${r}_${c}`;
  // Thread (tx, ty) owns rows ty + r*threadsY and columns tx + c*threadsX: neighbouring threads touch
  // neighbouring columns, so shared reads and global writes are contiguous.
  const body = `
${rows.flatMap((r) => cols.map((c) => `  var ${accName(r, c)} = 0.0;`)).join("\n")}
  for (var k0 = 0u; k0 < ${K}u; k0 += ${blockK}u) {
    for (var i = tid; i < ${blockM * blockK}u; i += ${threads}u) {
      ${loadA}
      tile_a[kk * ${strideA}u + m] = v;
    }
    for (var i = tid; i < ${blockN * blockK}u; i += ${threads}u) {
      ${loadB}
      tile_b[kk * ${strideB}u + n] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${blockK}u; kk++) {
${rows.map((r) => `      let a${r} = tile_a[kk * ${strideA}u + ly + ${r * threadsY}u];`).join("\n")}
${cols.map((c) => `      let b${c} = tile_b[kk * ${strideB}u + lx + ${c * threadsX}u];`).join("\n")}
${
    rows.flatMap((r) => cols.map((c) => `      ${accName(r, c)} = fma(a${r}, b${c}, ${accName(r, c)});`))
      .join("\n")
  }
    }
    workgroupBarrier();
  }
${
    rows.flatMap((r) =>
      cols.map((c) =>
        `  store(row0 + ly + ${r * threadsY}u, col0 + lx + ${c * threadsX}u, ${accName(r, c)});`
      )
    ).join("\n")
  }`;

  return {
    key,
    workgroups: [Math.ceil(N / blockN), Math.ceil(M / blockM)],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
${
      bias
        ? `@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;`
        : "@group(0) @binding(2) var<storage, read_write> c: array<f32>;"
    }

var<workgroup> tile_a: array<f32, ${blockK * strideA}>;
var<workgroup> tile_b: array<f32, ${blockK * strideB}>;

fn store(row: u32, col: u32, value: f32) {
  if (row < ${M}u && col < ${N}u) {
    c[row * ${N}u + col] = value${bias ? " + bias[col]" : ""};
  }
}

@compute @workgroup_size(${threadsX}, ${threadsY})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let lx = lid.x;
  let ly = lid.y;
  let tid = ly * ${threadsX}u + lx;
  let row0 = wid.y * ${blockM}u;
  let col0 = wid.x * ${blockN}u;
${body}
}
`,
  };
}

/** Thread-block sides the direct chooser considers. */
const DIRECT_SIDES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32];

/**
 * Accumulators (threadM * threadN) a direct block may hold, by the product's multiply-adds. Bigger blocks
 * load less per multiply-add but compile much longer in llvmpipe (on a busy 2-core machine: 4x4 0.4 s,
 * 8x8 1-2.5 s, 16x16 2-5 s, 32x32 10-28 s). Small products, whose time is mostly dispatch overhead, keep
 * small blocks; a bigger tier starts where a training run's calls win its extra compile time back.
 */
const ACCUMULATOR_TIERS = [
  { belowMultiplyAdds: 2 ** 14, accumulators: 16 },
  { belowMultiplyAdds: 2 ** 18, accumulators: 64 },
  { belowMultiplyAdds: 2 ** 31, accumulators: 256 },
  { belowMultiplyAdds: 2 ** 33, accumulators: 512 },
  { belowMultiplyAdds: Infinity, accumulators: 1024 },
];

/**
 * The direct blocking with the least estimated time on the CPU's worker threads. A thread's cost, in
 * multiply-adds at SOFTWARE_ADAPTER_COSTS' prices, is the floats it loads (threadM of A and threadN of B per k: per-lane loops from storage, gathers from a
 * uniform) and stores, plus its multiply-adds; threads past the matrix edge load clamped lines and count
 * in full. Small blocks give more threads but load more per multiply-add; the estimate picks the balance,
 * so on two threads a 32 x 64 x 512 product from storage gets eight 16 x 16 blocks in two workgroups of
 * four, while products with plenty of outputs get the largest blocks their tier allows. Operands that fit
 * a uniform binding are always read through one.
 */
function chooseDirectTile(shape: MatmulShape, cpu: CpuTarget): DirectMatmulTile {
  const { M, N, K } = shape;
  const uniformA = !!cpu.uniformA && M * K * 4 <= UNIFORM_WINDOW_BYTES;
  const uniformB = !!cpu.uniformB && N * K * 4 <= UNIFORM_WINDOW_BYTES;
  const { uniformLoad, storageAccess } = SOFTWARE_ADAPTER_COSTS;
  const loadA = uniformA ? uniformLoad : storageAccess;
  const loadB = uniformB ? uniformLoad : storageAccess;
  const limit = ACCUMULATOR_TIERS.find((tier) => M * N * K < tier.belowMultiplyAdds)!.accumulators;
  const threads = Math.max(1, cpu.threads);
  let best = { threadM: 1, threadN: 1, lanes: M * N };
  let bestTime = Infinity;
  for (const threadM of DIRECT_SIDES) {
    for (const threadN of DIRECT_SIDES) {
      const accumulators = threadM * threadN;
      if (accumulators > limit) continue;
      const lanes = Math.ceil(M / threadM) * Math.ceil(N / threadN);
      const perLane = K * (threadM * loadA + threadN * loadB + accumulators) + accumulators * storageAccess;
      const time = perLane * Math.ceil(lanes / threads);
      // Near ties go to the smaller block, which compiles faster.
      const bestAccumulators = best.threadM * best.threadN;
      if (
        time < bestTime * 0.99 || (time < bestTime * 1.01 && accumulators < bestAccumulators)
      ) {
        bestTime = time;
        best = { threadM, threadN, lanes };
      }
    }
  }
  // Whole SIMD groups per workgroup where there are enough threads; otherwise one workgroup per core.
  const perCore = Math.max(1, Math.floor(best.lanes / threads));
  const workgroup = Math.min(SOFTWARE_SIMD_LANES, 2 ** Math.floor(Math.log2(perCore)));
  return { kind: "direct", threadM: best.threadM, threadN: best.threadN, workgroup, uniformA, uniformB };
}

/** WGSL fragments for one operand of the direct kernel, from `operandCode`. */
interface OperandCode {
  /** The binding, and for scalar reads a function `<name>At(i)` returning element i. */
  declaration: (binding: number) => string;
  /** Per-thread index setup, outside the K loop. */
  setup: string[];
  /** Loads for the loop's current `k`. */
  loads: string[];
  /** The loaded value of thread-block line `t` (a row of A or a column of B). */
  value: (t: number) => string;
}

const COMPONENTS = ["x", "y", "z", "w"];

/**
 * Loads of one operand: `size` lines (rows of A or columns of B) of K values, of which this thread owns
 * `lines` from `first` on. `alongK`: each line is contiguous in memory (A plain, B transposed), so every
 * line costs a scalar load per k. Otherwise one k is contiguous across lines, read as vec4 where lines
 * and size allow (one load instruction instead of four; llvmpipe still fetches each float per lane).
 * Lines past the end are clamped into the matrix: their values are never stored, and no load branches.
 * `uniform`: the operand is a uniform array of vec4 (uniform arrays have a 16-byte stride), scalars read
 * by component.
 */
function operandCode(
  name: string,
  size: number,
  lines: number,
  first: string,
  K: number,
  alongK: boolean,
  uniform: boolean,
): OperandCode {
  const lineList = [...Array(lines).keys()];
  const vector = !alongK && size % 4 === 0 && lines % 4 === 0;
  const declaration = (binding: number) => {
    if (uniform) {
      return `@group(0) @binding(${binding}) var<uniform> ${name}: array<vec4<f32>, ${
        Math.ceil((size * K) / 4)
      }>;
fn ${name}At(i: u32) -> f32 { return ${name}[i / 4u][i % 4u]; }`;
    }
    return vector
      ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<f32>>;`
      : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn ${name}At(i: u32) -> f32 { return ${name}[i]; }`;
  };
  if (alongK) {
    return {
      declaration,
      setup: lineList.map((t) => `  let ${name}Line${t} = min(${first} + ${t}u, ${size - 1}u) * ${K}u;`),
      loads: lineList.map((t) => `    let ${name}${t} = ${name}At(${name}Line${t} + k);`),
      value: (t) => `${name}${t}`,
    };
  }
  if (vector) {
    const groups = [...Array(lines / 4).keys()];
    return {
      declaration,
      setup: groups.map((g) => `  let ${name}Group${g} = min(${first} / 4u + ${g}u, ${size / 4 - 1}u);`),
      loads: groups.map((g) => `    let ${name}${g} = ${name}[k * ${size / 4}u + ${name}Group${g}];`),
      value: (t) => `${name}${Math.floor(t / 4)}.${COMPONENTS[t % 4]}`,
    };
  }
  return {
    declaration,
    setup: lineList.map((t) => `  let ${name}Line${t} = min(${first} + ${t}u, ${size - 1}u);`),
    loads: lineList.map((t) => `    let ${name}${t} = ${name}At(k * ${size}u + ${name}Line${t});`),
    value: (t) => `${name}${t}`,
  };
}

/** The direct kernel (see DirectMatmulTile): one thread per threadM x threadN block of C, all of K. */
function directMatmul(shape: Required<Omit<MatmulShape, "tile">>, tile: DirectMatmulTile): GridKernel {
  const { M, N, K, transA, transB, bias } = shape;
  const { threadM, threadN, workgroup, uniformA = false, uniformB = false } = tile;
  for (const [operand, uniform, floats] of [["A", uniformA, M * K], ["B", uniformB, N * K]] as const) {
    if (uniform && floats * 4 > UNIFORM_WINDOW_BYTES) {
      throw new Error(
        `matmul: ${operand} (${floats} floats) is too large for a uniform binding of ${UNIFORM_WINDOW_BYTES} bytes`,
      );
    }
  }
  const blocksN = Math.ceil(N / threadN);
  const lanes = Math.ceil(M / threadM) * blocksN;
  const grid = gridFor(lanes, workgroup);
  const key = kernelKey("matmul_direct", {
    ...{ M, N, K, transA, transB, bias },
    ...{ threadM, threadN, workgroup, uniformA, uniformB },
  });
  const wgsl = () => {
    const a = operandCode("a", M, threadM, "m0", K, !transA, uniformA);
    const b = operandCode("b", N, threadN, "n0", K, transB, uniformB);
    const rows = [...Array(threadM).keys()];
    const cols = [...Array(threadN).keys()];
    const products = rows.flatMap((r) =>
      cols.map((c) => `    acc${r}_${c} = fma(${a.value(r)}, ${b.value(c)}, acc${r}_${c});`)
    );
    const vectorStore = N % 4 === 0 && threadN % 4 === 0;
    const groups = [...Array(Math.floor(threadN / 4)).keys()];
    const biasSetup = !bias
      ? []
      : vectorStore
      ? groups.map((g) => `  let bias${g} = bias[min(n0 / 4u + ${g}u, ${N / 4 - 1}u)];`)
      : cols.map((c) => `  let bias${c} = bias[min(n0 + ${c}u, ${N - 1}u)];`);
    // Bounds checks only where blocks overhang the matrix.
    const guarded = (conditions: string[], statement: string) => {
      const needed = conditions.filter(Boolean);
      return needed.length ? `  if (${needed.join(" && ")}) { ${statement} }` : `  ${statement}`;
    };
    const rowInside = (r: number) => (M % threadM === 0 ? "" : `m0 + ${r}u < ${M}u`);
    const colInside = (c: number) => (N % threadN === 0 ? "" : `n0 + ${c}u < ${N}u`);
    const stores = rows.flatMap((r) =>
      vectorStore
        ? groups.map((g) => {
          const value = `vec4(${[0, 1, 2, 3].map((i) => `acc${r}_${4 * g + i}`).join(", ")})`;
          return guarded(
            [rowInside(r), colInside(4 * g)],
            `c[(m0 + ${r}u) * ${N / 4}u + n0 / 4u + ${g}u] = ${value}${bias ? ` + bias${g}` : ""};`,
          );
        })
        : cols.map((col) =>
          guarded(
            [rowInside(r), colInside(col)],
            `c[(m0 + ${r}u) * ${N}u + n0 + ${col}u] = acc${r}_${col}${bias ? ` + bias${col}` : ""};`,
          )
        )
    );
    const output = vectorStore ? "vec4<f32>" : "f32";
    return `
${a.declaration(0)}
${b.declaration(1)}
${
      bias
        ? `@group(0) @binding(2) var<storage, read> bias: array<${output}>;
@group(0) @binding(3) var<storage, read_write> c: array<${output}>;`
        : `@group(0) @binding(2) var<storage, read_write> c: array<${output}>;`
    }

@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let lane = gid.x + gid.y * ${grid.rowStride}u;
  if (lane >= ${lanes}u) { return; }
  let m0 = (lane / ${blocksN}u) * ${threadM}u;
  let n0 = (lane % ${blocksN}u) * ${threadN}u;
${[...a.setup, ...b.setup, ...biasSetup].join("\n")}
${rows.flatMap((r) => cols.map((c) => `  var acc${r}_${c} = 0.0;`)).join("\n")}
  for (var k = 0u; k < ${K}u; k++) {
${[...a.loads, ...b.loads, ...products].join("\n")}
  }
${stores.join("\n")}
}
`;
  };
  return { key, workgroups: grid.workgroups, wgsl };
}

const COLUMN_TILE = 16;
const ROW_LANES = 16;

/**
 * `out[n] = sum_m in[m*cols + n]` for a row-major `(rows, cols)` matrix: the bias gradient. Buffers
 * [in, out]. On GPUs (`cpuThreads` omitted) each workgroup owns 16 columns and 16 lanes stride down the
 * rows, combining in shared memory. On CPU adapters each thread sums whole columns in registers, four at
 * a time where cols allows: the shared-memory combine would only add per-lane loads.
 */
export function columnSumKernel(rows: number, cols: number, cpuThreads?: number): GridKernel {
  return cpuThreads === undefined ? sharedColumnSum(rows, cols) : directColumnSum(rows, cols, cpuThreads);
}

function directColumnSum(rows: number, cols: number, cpuThreads: number): GridKernel {
  const width = cols % 4 === 0 ? 4 : 1;
  const element = width === 4 ? "vec4<f32>" : "f32";
  const lanes = cols / width;
  const perCore = Math.max(1, Math.floor(lanes / Math.max(1, cpuThreads)));
  const workgroup = Math.min(SOFTWARE_SIMD_LANES, 2 ** Math.floor(Math.log2(perCore)));
  const grid = gridFor(lanes, workgroup);
  return {
    key: kernelKey("column_sum_direct", { rows, cols, workgroup }),
    workgroups: grid.workgroups,
    wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<${element}>;
@group(0) @binding(1) var<storage, read_write> out: array<${element}>;

@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let lane = gid.x + gid.y * ${grid.rowStride}u;
  if (lane >= ${lanes}u) { return; }
  var sum = ${element}(0.0);
  for (var row = 0u; row < ${rows}u; row++) {
    sum += src[row * ${lanes}u + lane];
  }
  out[lane] = sum;
}
`,
  };
}

function sharedColumnSum(rows: number, cols: number): GridKernel {
  return {
    key: kernelKey("column_sum", { rows, cols }),
    workgroups: [Math.ceil(cols / COLUMN_TILE), 1],
    wgsl: () => `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, ${COLUMN_TILE * ROW_LANES}>;

@compute @workgroup_size(${COLUMN_TILE}, ${ROW_LANES})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let col = wid.x * ${COLUMN_TILE}u + lid.x;
  var sum = 0.0;
  if (col < ${cols}u) {
    for (var row = lid.y; row < ${rows}u; row += ${ROW_LANES}u) {
      sum += src[row * ${cols}u + col];
    }
  }
  partial[lid.y * ${COLUMN_TILE}u + lid.x] = sum;
  workgroupBarrier();
  for (var span = ${ROW_LANES / 2}u; span > 0u; span = span / 2u) {
    if (lid.y < span) {
      partial[lid.y * ${COLUMN_TILE}u + lid.x] += partial[(lid.y + span) * ${COLUMN_TILE}u + lid.x];
    }
    workgroupBarrier();
  }
  if (lid.y == 0u && col < ${cols}u) {
    out[col] = partial[lid.x];
  }
}
`,
  };
}
