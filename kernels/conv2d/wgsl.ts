/** WGSL fragments the direct kernels share: operand reads, per-dispatch parameters, lane grids, patches. */
import { MAX_WORKGROUPS_X } from "../common.ts";
import { BINDING_ALIGN, type TensorRead } from "./windows.ts";

export function checkDirect(sizes: Record<string, number>, workgroup: number, windowBytes: number): void {
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
export function laneGrid(lanes: number, workgroup: number, blocksY: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(lanes / workgroup));
  const x = Math.min(groups, MAX_WORKGROUPS_X);
  return [x, blocksY, Math.ceil(groups / x)];
}

export function laneIndex(workgroup: number): string {
  return `(wid.x + wid.z * ${MAX_WORKGROUPS_X}u) * ${workgroup}u + tid`;
}

export function capitalised(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

/** The binding of an operand and `read<Name>(i)`, which reads element i of the bound range as f32. */
export function readCode(read: TensorRead, binding: number): string {
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
export function guardedLoad(read: TensorRead): string {
  const name = capitalised(read.name);
  return `fn load${name}(at: i32, ok: bool) -> f32 {
  return select(0.0, read${name}(select(0u, u32(at), ok)), ok);
}`;
}

export function paramsCode(fields: string[], binding: number): string {
  return `struct Params {
${fields.map((f) => `  ${f}: u32,`).join("\n")}
}
@group(0) @binding(${binding}) var<uniform> params: Params;`;
}

/** The extra per-dispatch parameters of a split reduction over channel `c`. */
export function splitFields(c: string): string[] {
  return [`${c}Start`, `${c}End`, "accumulate"];
}

/** The loop over the reduction channel `c`: all `channels`, or the dispatch's range when split. */
export function channelLoop(c: string, channels: number, split: boolean): string {
  return split
    ? `for (var ${c} = params.${c}Start; ${c} < params.${c}End; ${c}++)`
    : `for (var ${c} = 0u; ${c} < ${channels}u; ${c}++)`;
}

/**
 * Stores accumulator `acc` at `target[at]`; under a split reduction every range after the first adds
 * what the earlier ones stored.
 */
export function storeCode(target: string, at: string, acc: string, split: boolean): string {
  if (!split) return `    ${target}[${at}] = ${acc};`;
  return `    let at_${acc} = ${at};
    if (params.accumulate != 0u) { ${acc} += ${target}[at_${acc}]; }
    ${target}[at_${acc}] = ${acc};`;
}

/**
 * `acc + a0*b0 + a1*b1 + ...` as nested fma() calls, for `terms` "a, b". One accumulator's products are
 * written together so that the CPU compiler keeps it in a register across them: ordered by kernel tap, every
 * product would reload and store its accumulator (a block has more accumulators than there are registers).
 */
export function fmaChain(acc: string, terms: string[]): string {
  return terms.reduce((sum, term) => `fma(${term}, ${sum})`, acc);
}

/** WGSL declarations of the per-row and per-column bounds flags and row offsets of an input patch. */
export function patchBounds(
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
export function patchLoads(
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
