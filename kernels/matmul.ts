/**
 * Dense matrix products for Linear (and anyone else who needs a GEMM): a tiled kernel with workgroup
 * shared-memory tiles and per-thread register tiles, plus the column sum that gives a bias gradient.
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
 * gradient `g^T x` is `transA`: the reduction over the batch runs inside each workgroup, with no atomics.
 */
import type { Kernel } from "../src/gpu/kernels.ts";

/** The blocking of one GEMM specialisation; part of the kernel key so benches can sweep it. */
export interface MatmulTile {
  /** Rows and columns of C per workgroup. */
  blockM: number;
  blockN: number;
  /** Depth of the K slice staged in shared memory per step. */
  blockK: number;
  /** Rows and columns of C per thread (held in registers). */
  threadM: number;
  threadN: number;
}

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Adds `bias[n]` (length N) to every row of C. */
  bias?: boolean;
  /** Blocking; `chooseMatmulTile(M, N)` when omitted. */
  tile?: MatmulTile;
}

export interface GridKernel extends Kernel {
  workgroups: [number, number];
}

/** Tile configurations from large to small, each with at most 256 threads. */
export const MATMUL_TILES: readonly MatmulTile[] = [
  { blockM: 128, blockN: 128, blockK: 8, threadM: 8, threadN: 8 },
  { blockM: 64, blockN: 64, blockK: 16, threadM: 4, threadN: 4 },
  { blockM: 32, blockN: 32, blockK: 16, threadM: 2, threadN: 2 },
];

/** Workgroups wanted to keep a large GPU busy before a bigger tile is worth its lower parallelism. */
const TARGET_WORKGROUPS = 128;

/** The largest tile that still yields enough workgroups for C (M x N); the smallest otherwise. */
export function chooseMatmulTile(M: number, N: number): MatmulTile {
  for (const tile of MATMUL_TILES) {
    if (Math.ceil(M / tile.blockM) * Math.ceil(N / tile.blockN) >= TARGET_WORKGROUPS) return tile;
  }
  return MATMUL_TILES[MATMUL_TILES.length - 1];
}

function checkTile(tile: MatmulTile): void {
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
  const tile = shape.tile ?? chooseMatmulTile(M, N);
  checkTile(tile);
  const { blockM, blockN, blockK, threadM, threadN } = tile;
  const threadsX = blockN / threadN;
  const threadsY = blockM / threadM;
  const threads = threadsX * threadsY;
  // One padding column keeps the transposing tile stores free of shared-memory bank conflicts.
  const strideA = blockM + 1;
  const strideB = blockN + 1;
  const key =
    `matmul:${M}x${N}x${K}:${transA ? "T" : "N"}${transB ? "T" : "N"}:${bias ? "bias" : "nobias"}:` +
    `${blockM}x${blockN}x${blockK}:${threadM}x${threadN}`;

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

const COLUMN_TILE = 16;
const ROW_LANES = 16;

/**
 * `out[n] = sum_m in[m*cols + n]` for a row-major `(rows, cols)` matrix: the bias gradient. Each
 * workgroup owns 16 columns; 16 lanes stride down the rows and combine in shared memory (no atomics).
 */
export function columnSumKernel(rows: number, cols: number): GridKernel {
  return {
    key: `column_sum:${rows}x${cols}`,
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
