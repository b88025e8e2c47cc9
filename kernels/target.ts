/**
 * The hardware the kernel tilings are chosen for. GPUs get the tilings that stage operands in workgroup
 * memory (conv2d's tiled implicit GEMM, the shared-memory matmul); software adapters (Mesa's
 * llvmpipe/lavapipe, which run a workgroup as SIMD vectors of invocations on a few worker threads) get the
 * register-blocked "direct" tilings, which read operands through uniform windows and are chosen by cost
 * models priced below. src/ops/target.ts decides which one the adapter in use is.
 */

/** A software adapter as the tiling choices see it; GPUs are described by its absence. */
export interface SoftwareTarget {
  /** Worker threads that run workgroups at once (llvmpipe starts one per core). */
  threads: number;
}

/**
 * WebGPU's default maxUniformBufferBindingSize, which every adapter supports: the largest uniform window
 * (conv2d) or uniform operand (matmul) a kernel binds.
 */
export const UNIFORM_WINDOW_BYTES = 65536;

/** SIMD width of llvmpipe's compute shaders on AVX2: a workgroup runs in groups of this many invocations. */
export const SOFTWARE_SIMD_LANES = 8;

/**
 * What one invocation's memory accesses cost on a software adapter, in multiply-adds of that invocation.
 * A storage load or store is a loop over the SIMD lanes with a branch per lane; a uniform load is one
 * branch-free gather, about as cheap whether or not all lanes read the same address.
 *
 * bench/adapter.bench.ts measures them against a loop whose accumulators stay in registers (README,
 * "Performance"): about 130 multiply-adds a storage load and 10 a uniform load, on 2 cores (AVX2). The
 * kernels' own bodies hold more accumulators than there are registers, so each of their multiply-adds also
 * moves spilled accumulators and costs several of the bench's: fitted to conv2d's timings on the default
 * network and ResNet-19, a storage access costs about 30 of their multiply-adds and a uniform load 4.
 * The matmul chooser was tuned with 50 and 5; at these prices it picks the same blocks for every GEMM of
 * the default network and differs only where one operand is read through a uniform and the other from
 * storage at shapes the default network does not have.
 */
export const SOFTWARE_ADAPTER_COSTS = {
  /** A load through a uniform binding. */
  uniformLoad: 4,
  /** A load or store of one element of a storage buffer. */
  storageAccess: 30,
  /** Starting one workgroup. */
  workgroup: 1000,
  /** Recording and starting one dispatch. */
  dispatch: 200_000,
} as const;
