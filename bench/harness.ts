/**
 * Kernel throughput measurement: runs a recorded GPU workload after warm-up, waits for the GPU, and
 * reports the median time per run with GFLOP/s or GB/s. Where the adapter has timestamp queries the time
 * is the GPU's own (summed over the run's dispatches); otherwise wall time, which on a software adapter
 * is dominated by the kernels anyway.
 */
import { gpu } from "../src/gpu/device.ts";
import { synchronize } from "../src/gpu/kernels.ts";
import { startProfiling, stopProfiling } from "../src/gpu/profile.ts";

export interface Work {
  /** Floating-point operations per run (2 per multiply-add). */
  flops?: number;
  /** Bytes read plus written per run. */
  bytes?: number;
}

export interface Measurement {
  label: string;
  medianMs: number;
  gflops?: number;
  gbps?: number;
}

export async function measure(
  label: string,
  work: Work,
  run: () => void,
  runs = 5,
  warmup = 1,
): Promise<Measurement> {
  for (let i = 0; i < warmup; i++) run();
  await synchronize();
  const times: number[] = [];
  const timestamps = gpu().hasTimestamps;
  for (let i = 0; i < runs; i++) {
    if (timestamps) startProfiling();
    const start = performance.now();
    run();
    await synchronize();
    const wall = performance.now() - start;
    times.push(timestamps ? stopProfiling().reduce((sum, k) => sum + k.milliseconds, 0) : wall);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)];
  const seconds = medianMs / 1000;
  return {
    label,
    medianMs,
    gflops: work.flops ? work.flops / seconds / 1e9 : undefined,
    gbps: work.bytes ? work.bytes / seconds / 1e9 : undefined,
  };
}

export function printTable(title: string, rows: readonly Measurement[]): void {
  console.log(`\n${title}`);
  for (const row of rows) {
    const rate = row.gflops !== undefined
      ? `${row.gflops.toFixed(2)} GFLOP/s`
      : `${row.gbps!.toFixed(2)} GB/s`;
    console.log(`  ${row.label.padEnd(56)} ${row.medianMs.toFixed(2).padStart(9)} ms  ${rate}`);
  }
}
