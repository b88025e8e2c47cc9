/** The direct tiling's forward pass: register-blocked output channels x pixels, reading through windows. */
import { kernelKey } from "../common.ts";
import { blockedWeightKernel, blockedWeightSize } from "./blocked_weights.ts";
import { type ConvGeometry, outputSize, reached } from "./geometry.ts";
import type { ConvDispatch, ConvKernel, ConvPlan } from "./plan.ts";
import type { DirectTile } from "./tiles.ts";
import {
  channelLoop,
  checkDirect,
  fmaChain,
  guardedLoad,
  laneGrid,
  laneIndex,
  paramsCode,
  patchBounds,
  patchLoads,
  readCode,
  splitFields,
  storeCode,
} from "./wgsl.ts";
import { reductionRead, rowsPerWindow, storageRead, windowAt, windowedRead } from "./windows.ts";

export function directForward(geometry: ConvGeometry, tile: DirectTile): ConvPlan {
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
    key: kernelKey("conv2d_forward", { geometry, tile }),
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
