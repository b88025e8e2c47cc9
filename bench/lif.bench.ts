/**
 * LIF throughput: the forward (saving u_t) and backward-through-time kernels at T = 100, batch 16,
 * 4096 neurons, in GB/s of the bytes they must move, next to a plain copy kernel moving as many bytes.
 * The LIF is memory-bound: each direction reads two values and writes one per neuron and step, so its
 * GB/s should approach the copy's.
 */
import { mapKernel } from "../kernels/elementwise.ts";
import { lifBackwardKernel, lifForwardKernel, type LifSpec } from "../kernels/lif.ts";
import { initGpu } from "../src/gpu/device.ts";
import { dispatch, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, printTable } from "./harness.ts";

await initGpu();

const T = 100;
const batch = 16;
const neuronsPerSample = 4096;
const spec: LifSpec = {
  neurons: batch * neuronsPerSample,
  steps: T,
  tau: 0.5,
  threshold: 1.0,
  surrogate: { kind: "dspike", gamma: 2.5, region: 1 },
};
const n = T * spec.neurons;
const shape = [T * batch, neuronsPerSample];
const x = Tensor.fromData(Float32Array.from({ length: n }, (_, i) => 0.6 + Math.sin(i * 0.37)), shape);
const gradSpikes = Tensor.fromData(Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11)), shape);
const spikes = Tensor.empty(shape);
const membrane = Tensor.empty(shape);
const gradX = Tensor.empty(shape);
const forward = lifForwardKernel(spec, true);
const backward = lifBackwardKernel(spec);
const runForward = () => dispatch(forward, [x.buffer, spikes.buffer, membrane.buffer], forward.workgroups);
const runBackward = () =>
  dispatch(backward, [membrane.buffer, gradSpikes.buffer, gradX.buffer], backward.workgroups);

// Forward: read x, write spikes and u. Backward: read u and dL/ds, write dL/dx. 4 bytes each.
const directionBytes = 3 * 4 * n;
// The copy moves the same bytes as forward + backward: 3n values read and written.
const copyValues = 3 * n;
const copySource = Tensor.empty([copyValues]);
const copyTarget = Tensor.empty([copyValues]);
const copy = mapKernel(copyValues, 1, "a");
const runCopy = () => dispatch(copy, [copySource.buffer, copyTarget.buffer], copy.workgroups);

const label = `T=${T} B=${batch} N=${neuronsPerSample}`;
const rows = [
  await measure(`lif forward ${label}`, { bytes: directionBytes }, runForward),
  await measure(`lif backward ${label}`, { bytes: directionBytes }, runBackward),
  await measure(`lif forward+backward ${label}`, { bytes: 2 * directionBytes }, () => {
    runForward();
    runBackward();
  }),
  await measure(
    `copy of the same ${(2 * directionBytes / 1e6).toFixed(1)} MB`,
    { bytes: 2 * directionBytes },
    runCopy,
  ),
];
printTable("LIF (kernels only)", rows);
console.log(
  `  forward+backward reaches ${(100 * rows[2].gbps! / rows[3].gbps!).toFixed(0)}% of the copy's GB/s`,
);

Deno.bench(`lif forward+backward ${label}`, async () => {
  runForward();
  runBackward();
  await synchronize();
});
Deno.bench(`copy of the same bytes (${copyValues} values)`, async () => {
  runCopy();
  await synchronize();
});
