/**
 * The direct tiling's weight gradient: partial sums over `splits` invocations per sample group (or per
 * channel range of one sample), then a kernel that adds them.
 */
import { kernelKey } from "../common.ts";
import { type ConvGeometry, outputSize, reached } from "./geometry.ts";
import type { ConvDispatch, ConvKernel, ConvPlan } from "./plan.ts";
import type { DirectWeightTile } from "./tiles.ts";
import {
  checkDirect,
  guardedLoad,
  laneGrid,
  laneIndex,
  paramsCode,
  patchBounds,
  patchLoads,
  readCode,
  storeCode,
} from "./wgsl.ts";
import {
  channelRangeRead,
  sampleGroups,
  storageRead,
  weightChannelRanges,
  windowAt,
  windowCapacity,
  windowedRead,
} from "./windows.ts";

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
    key: kernelKey("conv2d_grad_weight_reduce", { weights, partialCount, windowBytes }),
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

export function directGradWeight(geometry: ConvGeometry, tile: DirectWeightTile): ConvPlan {
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
    key: kernelKey("conv2d_grad_weight", { geometry, tile }),
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
