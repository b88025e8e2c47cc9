/**
 * The cost model of docs/distributed.md: per step, the bytes every rank all-reduces (f32 gradients and
 * the BN statistics that ride along), the ring all-reduce time at 25/100/400 Gbit/s, the PCIe readback
 * and upload of the staging buffer, and the scaling efficiency that leaves for 8, 64 and 256 GPUs, with
 * and without overlapping the all-reduce with backward. `deno run bench/dist_cost_model.ts` prints the
 * tables; the sizes are the models' own (counted by building them; see the doc).
 */

interface Case {
  name: string;
  /** f32 values all-reduced per step: parameters + BN running statistics. */
  values: number;
  /** Forward multiply-adds per sample, all time steps (backbone convolutions and linear layers). */
  macsPerSample: number;
  batchPerGpu: number;
}

const CASES: Case[] = [
  // resnet19 width 64, T=2, 2 modules (preset cifar10-resnet19): 22,969,182 parameters, 15,744 BN values;
  // 2.216 G MACs per 32x32 sample (activity recorder, both time steps).
  {
    name: "headline ResNet-19 (CIFAR-10, T=2)",
    values: 22_969_182 + 15_744,
    macsPerSample: 2.216e9,
    batchPerGpu: 64,
  },
  // resnet34 width 64, T=2, 2 modules (preset imagenet-resnet34): 37,227,360 parameters, 24,832 BN values;
  // 3.67 G MACs per 224x224 image and time step (torchvision's ResNet-34 count) x 2.
  {
    name: "ResNet-34 (ImageNet, T=2)",
    values: 37_227_360 + 24_832,
    macsPerSample: 2 * 3.67e9,
    batchPerGpu: 32,
  },
];
const GPUS = [8, 64, 256];
const LINKS_GBIT = [25, 100, 400];
/** Per-message latency of a ring step (InfiniBand/RoCE class). */
const LATENCY_S = 5e-6;
/** Effective PCIe 4.0 x16 bandwidth each way. */
const PCIE_BYTES_PER_S = 25e9;
/** Achieved training throughput per GPU, two assumptions: f32 WebGPU kernels, and tensor-core class. */
const ACHIEVED_FLOPS = [10e12, 50e12];

function ringSeconds(bytes: number, ranks: number, gbit: number): number {
  return (2 * (ranks - 1) / ranks) * bytes / (gbit * 1e9 / 8) + 2 * (ranks - 1) * LATENCY_S;
}

const ms = (s: number) => (1000 * s).toFixed(1);
for (const c of CASES) {
  const bytes = 4 * c.values;
  const staging = 2 * bytes / PCIE_BYTES_PER_S;
  console.log(
    `\n${c.name}: ${(bytes / 2 ** 20).toFixed(1)} MiB all-reduced per step; staging (PCIe readback + ` +
      `upload) ${ms(staging)} ms; batch ${c.batchPerGpu} per GPU`,
  );
  for (const flops of ACHIEVED_FLOPS) {
    // Training = forward + backward (input and weight gradients): 3 x the forward's 2 FLOPs per MAC.
    const compute = 6 * c.macsPerSample * c.batchPerGpu / flops;
    const backward = (2 / 3) * compute;
    console.log(`  compute ${ms(compute)} ms per step at ${flops / 1e12} TFLOP/s achieved:`);
    console.log(
      `    GPUs  link        all-reduce  efficiency (no overlap / all-reduce overlapped with backward)`,
    );
    for (const gpus of GPUS) {
      for (const gbit of LINKS_GBIT) {
        const ring = ringSeconds(bytes, gpus, gbit);
        const plain = compute / (compute + staging + ring);
        const overlapped = compute / (compute + Math.max(0, staging + ring - backward));
        console.log(
          `    ${String(gpus).padStart(4)}  ${String(gbit).padStart(3)} Gbit/s  ${
            ms(ring).padStart(7)
          } ms  ` +
            `${(100 * plain).toFixed(1)}% / ${(100 * overlapped).toFixed(1)}%`,
        );
      }
    }
  }
}
