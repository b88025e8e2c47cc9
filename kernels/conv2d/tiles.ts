/** The tilings a convolution pass can run with: GEMM for GPUs, direct (register-blocked) for CPU adapters. */

/** GEMM tiling: a workgroup owns tileM x tileN outputs, each invocation threadM x threadN of them. */
export interface GemmTile {
  kind: "gemm";
  tileM: number;
  tileN: number;
  tileK: number;
  threadM: number;
  threadN: number;
}

/**
 * Direct tiling for the forward pass and the input gradient: each invocation computes `channels` output
 * channels (cout forward, cin for the input gradient) of a rows x cols block of pixels.
 */
export interface DirectTile {
  kind: "direct";
  channels: number;
  rows: number;
  cols: number;
  workgroup: number;
  /** Largest uniform binding (bytes, a multiple of 256) an operand is read through; 0: all from storage. */
  windowBytes: number;
  /**
   * When a sample of the reduced operand (x forward, gradOut for the input gradient) does not fit a window:
   * read ranges of its channels through windows, summing the output over their dispatches (default true),
   * rather than the whole operand from storage.
   */
  channelSplit?: boolean;
}

/**
 * Direct tiling for the weight gradient: each invocation owns `outChannels` x `inChannels` x k x k weight
 * gradients over every `splits`-th rows x cols block of its sample group's output, loading each block of
 * the upstream gradient and each input patch once for all taps.
 */
export interface DirectWeightTile {
  kind: "direct";
  outChannels: number;
  inChannels: number;
  rows: number;
  cols: number;
  workgroup: number;
  splits: number;
  /** Largest uniform binding (bytes, a multiple of 256) an operand is read through; 0: all from storage. */
  windowBytes: number;
  /**
   * When a sample of gradOut or x does not fit a window: read one sample's ranges of output and input
   * channels through windows per dispatch, adding each sample's sums to the earlier samples' (default
   * true), rather than both operands from storage.
   */
  channelSplit?: boolean;
}
