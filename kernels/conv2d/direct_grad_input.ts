/**
 * The direct tiling's input gradient: one register-blocked kernel per phase (iy mod stride, ix mod stride),
 * and a plain fill for phases no kernel tap reaches.
 */
import { kernelKey } from "../common.ts";
import { blockedWeightKernel, blockedWeightSize } from "./blocked_weights.ts";
import { type ConvGeometry, outputSize, phase, reached } from "./geometry.ts";
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

/**
 * Windowed weights are read from the blocked, transposed copy (`weightBlocks`, input channel major within
 * each range of output channels), so the weights of a range of input channels are one window.
 */
export function directGradInput(geometry: ConvGeometry, tile: DirectTile): ConvPlan {
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
        key: kernelKey("conv2d_grad_input", { geometry, tile, phase: [py, px] }),
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
    key: kernelKey("conv2d_grad_input_zero", { geometry, phase: [py, px] }),
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
