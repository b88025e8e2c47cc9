/**
 * What this adapter can do at best, as a yardstick for the kernel benches: the multiply-add throughput of
 * invocations whose accumulators stay in registers, how it falls when they do not, and what one load costs
 * through a uniform window and from a storage buffer, in multiply-adds.
 *
 * On a CPU adapter (llvmpipe/lavapipe) an invocation is one SIMD lane and a load is a per-lane gather, so
 * a kernel's ceiling is set by how many multiply-adds it does per load. The convolutions' register-blocked
 * bodies do 10-20 per load; the rows "one load per N multiply-adds" show where that caps them.
 *
 *   XDG_RUNTIME_DIR=/tmp deno bench -A bench/adapter.bench.ts
 */
import { describeAdapter, initGpu } from "../src/gpu/device.ts";
import { dispatch, type Kernel, synchronize } from "../src/gpu/kernels.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { measure, type Measurement, printTable } from "./harness.ts";

const gpu = await initGpu();
console.log(`adapter: ${describeAdapter(gpu.adapter)}`);

const WORKGROUP = 64;
const INVOCATIONS = 32 * 1024;
/** Multiply-adds per invocation and run: runs of 40 ms or more on a CPU adapter. */
const MULTIPLY_ADDS = 32768;
/** Window elements (a 64 KiB uniform binding of vec4s). */
const WINDOW = 16384;

type Source = "uniform" | "storage";

interface ProbeKernel extends Kernel {
  /** Floating-point operations of one dispatch. */
  flops: number;
}

/**
 * Each invocation runs `accumulators` independent chains `acc = fma(acc, m, v)`, `unroll` links each per
 * loop round, where m comes from the buffer and v is one of `loads` values loaded per round at an index
 * that differs per round and, unless `sameAddress`, per invocation (none: a value loaded once, before the
 * loop).
 */
function probeKernel(
  accumulators: number,
  unroll: number,
  loads: number,
  source: Source,
  sameAddress = false,
): ProbeKernel {
  const rounds = Math.round(MULTIPLY_ADDS / (accumulators * unroll));
  const read = source === "uniform"
    ? (i: string) => `values[${i} >> 2u][${i} & 3u]`
    : (i: string) => `values[${i}]`;
  const declaration = source === "uniform"
    ? `var<uniform> values: array<vec4f, ${WINDOW / 4}>`
    : "var<storage, read> values: array<f32>";
  const setup = [`let m = ${read("lane & 7u")};`];
  const body: string[] = [];
  if (loads === 0) setup.push(`let v0 = ${read("(lane + 3u) & 1023u")};`);
  for (let l = 0; l < loads; l++) {
    const lanePart = sameAddress ? "" : "lane * 7u + ";
    body.push(`let v${l} = ${read(`(${lanePart}round * ${loads}u + ${l}u) & ${WINDOW - 1}u`)};`);
  }
  for (let a = 0; a < accumulators; a++) setup.push(`var acc${a} = f32(lane + ${a}u) * 1e-3;`);
  for (let u = 0; u < unroll; u++) {
    for (let a = 0; a < accumulators; a++) {
      body.push(`acc${a} = fma(acc${a}, m, v${(u * accumulators + a) % Math.max(1, loads)});`);
    }
  }
  const sum = Array.from({ length: accumulators }, (_, a) => `acc${a}`).join(" + ");
  return {
    key: `adapter_probe:${accumulators}x${unroll}/${loads}/${source}${sameAddress ? "/same" : ""}`,
    wgsl: () => `
@group(0) @binding(0) ${declaration};
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3u) {
  let lane = id.x;
  ${setup.join("\n  ")}
  for (var round = 0u; round < ${rounds}u; round++) {
    ${body.join("\n    ")}
  }
  out[lane] = ${sum};
}
`,
    flops: 2 * INVOCATIONS * rounds * accumulators * unroll,
  };
}

const values = Tensor.fromData(Float32Array.from({ length: WINDOW }, (_, i) => 0.5 + (i % 7) * 1e-3), [
  WINDOW,
]);
const out = Tensor.empty([INVOCATIONS]);

async function probe(label: string, kernel: ProbeKernel): Promise<Measurement> {
  const run = () => dispatch(kernel, [values.buffer, out.buffer], [INVOCATIONS / WORKGROUP]);
  return await measure(label, { flops: kernel.flops }, run, 5);
}

const registers: Measurement[] = [];
for (const accumulators of [4, 8, 12, 16, 32, 64, 128]) {
  const unroll = Math.max(1, 64 / accumulators);
  registers.push(
    await probe(`${accumulators} accumulators, no loads`, probeKernel(accumulators, unroll, 0, "uniform")),
  );
}
printTable("multiply-add throughput by accumulators per invocation", registers);

const loaded: Measurement[] = [];
for (const source of ["uniform", "storage"] as const) {
  // One storage load per multiply-add would take seconds.
  for (const perLoad of source === "uniform" ? [64, 16, 4, 1] : [64, 16, 4]) {
    const loads = 64 / perLoad;
    loaded.push(
      await probe(
        `8 accumulators, one ${source} load per ${perLoad} multiply-adds`,
        probeKernel(8, 8, loads, source),
      ),
    );
  }
}
// A weight read by every lane of a direct convolution: no cheaper when all lanes load the same address.
for (const source of ["uniform", "storage"] as const) {
  loaded.push(
    await probe(
      `8 accumulators, one ${source} load per 16, every lane the same address`,
      probeKernel(8, 8, 4, source, true),
    ),
  );
}
// A convolution body's shape: many accumulators (they spill), a uniform load per 16-32 multiply-adds.
for (const perLoad of [32, 16]) {
  loaded.push(
    await probe(
      `128 accumulators, one uniform load per ${perLoad} multiply-adds`,
      probeKernel(128, 1, 128 / perLoad, "uniform"),
    ),
  );
}
printTable("the same with loads (64 or 128 multiply-adds per round)", loaded);

const ceiling = Math.max(...registers.map((m) => m.gflops!));
const base = registers.find((row) => row.label.startsWith("8 "))!.gflops!;
console.log(`\n  ceiling: ${ceiling.toFixed(1)} GFLOP/s (8 accumulators: ${base.toFixed(1)})`);
for (const source of ["uniform", "storage"] as const) {
  // Against the loop without loads: the extra time of the loads, in multiply-adds of that loop.
  const m = loaded.find((row) => row.label.includes(`${source} load per 4 `))!;
  console.log(`  one ${source} load costs about ${(4 * (base / m.gflops! - 1)).toFixed(1)} multiply-adds`);
}

const registerProbe = probeKernel(8, 8, 0, "uniform");
Deno.bench("8 accumulators, no loads", async () => {
  dispatch(registerProbe, [values.buffer, out.buffer], [INVOCATIONS / WORKGROUP]);
  await synchronize();
});
