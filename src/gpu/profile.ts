/**
 * Per-kernel GPU time from timestamp queries: while profiling, each dispatch gets its own compute pass
 * with begin/end timestamps, and `profileReport` sums the durations by kernel key. For benches and
 * performance work only: separate passes and query resolution slow a step down.
 */
import { gpu } from "./device.ts";

/** Dispatches per query set: WebGPU allows 4096 queries, two per dispatch. */
const CAPACITY = 2048;

interface Session {
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  keys: string[];
  totals: Map<string, { ns: number; count: number }>;
}

let session: Session | undefined;

/** Starts recording per-kernel GPU time with timestamp queries (adapters with `timestamp-query`). */
export function startProfiling(): void {
  const { device, hasTimestamps } = gpu();
  if (!hasTimestamps) throw new Error("profile: this adapter has no timestamp-query feature");
  session = {
    querySet: device.createQuerySet({ type: "timestamp", count: 2 * CAPACITY }),
    resolve: device.createBuffer({
      size: 16 * CAPACITY,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    }),
    keys: [],
    totals: new Map(),
  };
}

export function profiling(): boolean {
  return session !== undefined;
}

/** Timestamp writes for the pass of the next dispatch, or undefined when full (flush first). */
export function nextTimestampWrites(key: string): GPUComputePassTimestampWrites | undefined {
  if (!session || session.keys.length >= CAPACITY) return undefined;
  const index = session.keys.length;
  session.keys.push(key);
  return {
    querySet: session.querySet,
    beginningOfPassWriteIndex: 2 * index,
    endOfPassWriteIndex: 2 * index + 1,
  };
}

/** Whether the pending queries fill the set (the caller flushes and collects). */
export function profileFull(): boolean {
  return session !== undefined && session.keys.length >= CAPACITY;
}

/** Resolves the pending queries into the totals; `encoder` must be the last one before submission. */
export function resolveQueries(encoder: GPUCommandEncoder): (() => Promise<void>) | undefined {
  const s = session;
  if (!s || s.keys.length === 0) return undefined;
  const count = s.keys.length;
  const keys = s.keys.splice(0);
  encoder.resolveQuerySet(s.querySet, 0, 2 * count, s.resolve, 0);
  const staging = gpu().device.createBuffer({
    size: 16 * count,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  encoder.copyBufferToBuffer(s.resolve, 0, staging, 0, 16 * count);
  return async () => {
    await staging.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.destroy();
    for (let i = 0; i < count; i++) {
      const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
      const total = s.totals.get(keys[i]) ?? { ns: 0, count: 0 };
      total.ns += ns;
      total.count++;
      s.totals.set(keys[i], total);
    }
  };
}

/** GPU time of one kernel specialisation over the profiled span. */
export interface KernelTime {
  /** The kernel's cache key (family and specialisation). */
  key: string;
  /** Total GPU time. */
  milliseconds: number;
  /** Dispatches. */
  count: number;
}

/** Stops profiling and returns the kernels by total time, longest first. */
export function stopProfiling(): KernelTime[] {
  const s = session;
  session = undefined;
  if (!s) return [];
  s.querySet.destroy();
  s.resolve.destroy();
  return [...s.totals].map(([key, t]) => ({ key, milliseconds: t.ns / 1e6, count: t.count }))
    .sort((a, b) => b.milliseconds - a.milliseconds);
}
