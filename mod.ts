/**
 * spikegpu: spiking neural networks trained with Surrogate Module Learning (SML, ICML 2023), every
 * tensor op a WGSL kernel on WebGPU. Import this file by URL from a Deno script.
 *
 * @module
 */

/** The package version (semver), the same as deno.json's. */
export { VERSION } from "./src/pipeline/version.ts";

// GPU runtime
/** Acquire the process-wide WebGPU adapter and device; call once before creating tensors. */
export { describeAdapter, gpu, initGpu } from "./src/gpu/device.ts";
export type { AdapterDescription, Gpu, GpuOptions } from "./src/gpu/device.ts";
/** Buffer-pool statistics (bytes in use, peak) and submission control. */
export { poolStats, resetPeak, trimPool } from "./src/gpu/pool.ts";
export { flush, synchronize } from "./src/gpu/kernels.ts";

// Tensors and autograd
/** A GPU tensor: shape, dtype, upload (`fromData`), readback (`read`), `dispose`. */
export { Tensor } from "./src/tensor/tensor.ts";
export type { DType, TensorData } from "./src/tensor/tensor.ts";
/** Scopes free a step's intermediates at once; a Tape also records gradients for `backward`. */
export { Scope, untracked } from "./src/tensor/scope.ts";
export { noGrad, Tape } from "./src/tensor/tape.ts";

// Differentiable ops
export { add, fill, flatten, leakyRelu, reshape, scale, zeros } from "./src/ops/elementwise.ts";
export { conv2d } from "./src/ops/conv2d.ts";
/** Mixed precision: `autocast(fn)` runs fn's convolutions on f16 operands; `toHalf` rounds f32 to f16. */
export { autocast, toHalf } from "./src/ops/autocast.ts";
export { batchNorm } from "./src/ops/batch_norm.ts";
/** SyncBatchNorm: training batch norms inside `withBatchNormReduction` normalise over every rank's batch. */
export { withBatchNormReduction } from "./src/ops/batch_norm_reduction.ts";
export { linear } from "./src/ops/linear.ts";
export { lif } from "./src/ops/lif.ts";
export type { LifOptions, Surrogate } from "./src/ops/lif.ts";
export { adaptiveAvgPool2d } from "./src/ops/pool.ts";
export { expandTime, meanOverTime } from "./src/ops/time.ts";
export { crossEntropy, temperatureKl, weightedSum } from "./src/ops/loss.ts";

// Layers and models
export { Module, ModuleList } from "./src/nn/module.ts";
export { BatchNorm, Conv2d, Lif, Linear } from "./src/nn/layers.ts";
/** The seeded generator layers initialise their weights from, one stream per (seed, parameter name). */
export { InitRng } from "./src/nn/init.ts";
/** Firing rates, synaptic operations and the energy estimate of a forward pass. */
export { ActivityRecorder, E_AC_PJ, E_MAC_PJ } from "./src/nn/activity.ts";
export type { ActivityReport } from "./src/nn/activity.ts";
/** Build "resnet18", "resnet34", "resnet19" or "plain" by name, with surrogate module options. */
export { createModel, MODEL_NAMES } from "./src/models/registry.ts";
export type { ModelOptions, SpikingModel } from "./src/models/model.ts";
export { SpikingResNet } from "./src/models/spiking_resnet.ts";
export { PlainSpikingCnn } from "./src/models/plain_cnn.ts";
export { SurrogateModule } from "./src/models/surrogate_module.ts";
/** Surrogate modules attached after named layers of one's own model (see examples/custom_model.ts). */
export { NamedAttachments } from "./src/models/named_attachments.ts";
export type { NamedAttachmentOptions } from "./src/models/named_attachments.ts";
export type { AttachmentTaps, ForwardResult, SurrogateConfig } from "./src/models/attachment.ts";

// SML
/** The SML loss (SPEC §6): hard cross-entropy and soft mutual KL parts. */
export { SML_DEFAULTS, smlLoss } from "./src/sml/loss.ts";
export type { SmlLoss, SmlLossOptions } from "./src/sml/loss.ts";
/** Gradient through the SNN vs through the surrogate module at each attachment point. */
export { formatProbeReport, probeGradients } from "./src/sml/gradient_probe.ts";

// Optimisation
export { createOptimizer, OPTIMIZER_NAMES } from "./src/optim/registry.ts";
export type { OptimizerKind } from "./src/optim/registry.ts";
export type { Optimizer, OptimizerOptions, OptimizerState } from "./src/optim/optimizer.ts";
export { SGD } from "./src/optim/sgd.ts";
export { Adam, AdamW } from "./src/optim/adam.ts";
/** Dynamic loss scaling for f16 training (torch's GradScaler), decided on the GPU: no readback per step. */
export { GradScaler } from "./src/optim/grad_scaler.ts";
export type { GradScalerOptions, GradScalerReading, GradScalerState } from "./src/optim/grad_scaler.ts";
export { learningRateAt } from "./src/optim/schedule.ts";
export type { ScheduleOptions } from "./src/optim/schedule.ts";

// Weights and checkpoints
/** Safetensors under the reference implementation's state_dict key names (tests/fixtures/reference). */
export { loadSafetensors, loadStateDict, saveSafetensors, stateDict } from "./src/io/state_dict.ts";
export { encodeSafetensors, parseSafetensors, readSafetensors } from "./src/io/safetensors.ts";
export { readCheckpoint, writeCheckpoint } from "./src/io/checkpoint.ts";
export type { Checkpoint } from "./src/io/checkpoint.ts";
/** The SNN as a NIR graph file (HDF5) for snnTorch, Norse, Lava and neuromorphic toolchains: docs/nir.md. */
export { exportNir, nirGraph } from "./src/io/nir.ts";
export type { NirExportOptions, NirExportSummary } from "./src/io/nir.ts";
/** A NIR graph of a spikegpu architecture back into a model, to fine-tune here. */
export { importNir } from "./src/io/nir_import.ts";
export type { NirImportOptions } from "./src/io/nir_import.ts";

// Pipeline stages
/** The stages of a run, to compose or replace: source, train step, evaluation, loop, run folder. */
export { compose } from "./src/pipeline/stage.ts";
export type { BatchSource, Stage } from "./src/pipeline/stage.ts";
export { evalStep, trainStep, upload } from "./src/pipeline/train_step.ts";
export type {
  DeviceBatch,
  EvalStepContext,
  HostBatch,
  LossFunction,
  LossStage,
  TrainStepContext,
} from "./src/pipeline/train_step.ts";
export { MetricsAccumulator } from "./src/pipeline/metrics.ts";
export { evaluate, runTraining } from "./src/pipeline/train_loop.ts";
export type { LoopObserver, LoopOptions, RunSummary, TrainingRun } from "./src/pipeline/train_loop.ts";
export { RunFolder } from "./src/pipeline/run_folder.ts";
export type { EpochRecord, HeadMetrics, StepRecord } from "./src/pipeline/run_folder.ts";
export { captureCheckpoint, restoreCheckpoint } from "./src/pipeline/training_state.ts";
export type { Progress, StateSources } from "./src/pipeline/training_state.ts";

// Pipelines
/**
 * Ready pipelines (the paper's presets) a script runs in a line, `await run(cifar10ResNet19, { dataDir,
 * epochs: 1 })`, and re-composes: `withStages(pipeline, { source, model, loss, optimizer, schedule,
 * observers })` swaps any stage for one's own.
 */
export { prepareRun, run } from "./src/pipeline/run.ts";
export type { PreparedRun, RunOptions, RunResult } from "./src/pipeline/run.ts";
export { byName, definePipeline, withConfig, withStages } from "./src/pipeline/pipeline.ts";
export type { BuiltModel, DataShape, Pipeline, Stages } from "./src/pipeline/pipeline.ts";
export { CONFIGURED_STAGES, modelOptionsFor } from "./src/pipeline/stages.ts";
export { openSources } from "./src/pipeline/sources.ts";
export type { Sources } from "./src/pipeline/sources.ts";
/** The run configuration: every option with its flag, help, check and default. */
export { DEFAULTS, OPTIONS, resolveConfig } from "./src/pipeline/config.ts";
export type { RunConfig, RunOption } from "./src/pipeline/config.ts";
export type { OptionKind } from "./src/pipeline/option_kinds.ts";
export {
  cifar100ResNet18,
  cifar100ResNet19,
  cifar10DvsResNet18,
  cifar10ResNet18,
  cifar10ResNet19,
  esImagenetResNet18,
  imagenetResNet34,
  mnist,
  mnistPlain,
  PIPELINES,
} from "./pipelines/presets.ts";

// Several processes (MPI): docs/distributed.md
/**
 * Joins the MPI job a launcher (mpirun, srun) started this process in, choosing this rank's GPU: call it
 * before anything touches WebGPU and pass the job to `run` / `prepareRun` (`{ job }`).
 */
export { joinJob } from "./src/dist/job.ts";
export type { Job } from "./src/dist/job.ts";
/** One rank's gradient all-reduce, metric sums and writer role (what `run` builds from a job). */
export { DataParallel } from "./src/dist/data_parallel.ts";
export type { Communicator } from "./src/dist/communicator.ts";
export type { GpuSelection } from "./src/dist/gpu_select.ts";
export type { AllreduceTiming, GradientAllreduce } from "./src/dist/gradient_allreduce.ts";
export type { Ranks } from "./src/pipeline/sources.ts";
export type { Shard } from "./src/data/loader.ts";

// Data
/** Data sets by name ("mnist" is embedded), the worker-pool loader and the seeded RNG behind them. */
export { createDataset, DATASET_NAMES, isEventDataset } from "./src/data/registry.ts";
export { DataLoader } from "./src/data/loader.ts";
export type { Batch, DataLoaderOptions, Dataset, DatasetOptions, Sample } from "./src/data/loader.ts";
export type { DatasetName } from "./src/data/dataset.ts";
export { Rng } from "./src/data/rng.ts";
/** Event-frame encoding: events (x, y, polarity, in time order) integrated into T frames of counts. */
export { integrateFrames } from "./src/data/cifar10_dvs.ts";
export { AUGMENT_NAMES, augmentFlags } from "./src/data/augment/settings.ts";
export type { AugmentName, AugmentSetting } from "./src/data/augment/settings.ts";

// Profiling
/** Per-kernel GPU time from timestamp queries. */
export { startProfiling, stopProfiling } from "./src/gpu/profile.ts";

// Types the exports above take or return, so that their documentation is complete.
export type { LayerActivity, Site } from "./src/nn/activity.ts";
export type { AdamFamily } from "./src/optim/adam.ts";
export type { AugmentFlags } from "./src/data/augment/settings.ts";
export type { Counter, StateEntry } from "./src/nn/module.ts";
export type { ArrayDType, StoredArray } from "./src/io/checkpoint.ts";
export type { DatasetSpec, Split } from "./src/data/dataset.ts";
export type { FaultRecord, MetricsRecord } from "./src/pipeline/run_folder.ts";
export type { MetricsSnapshot } from "./src/pipeline/metrics.ts";
export type { Attached } from "./src/models/attachment.ts";
export type { RngState } from "./src/data/rng.ts";
export type { BasicBlock, ResNetArch, SpikingResNetConfig } from "./src/models/spiking_resnet.ts";
export type { ConvUnit, Prediction } from "./src/models/surrogate_module.ts";
export type { ConvBnLif } from "./src/models/plain_cnn.ts";
export type { Backward, BackwardOptions, Entry } from "./src/tensor/tape.ts";
export type { BatchNormOptions, BatchNormState } from "./src/ops/batch_norm.ts";
export type { BatchNormReduction } from "./src/ops/batch_norm_reduction.ts";
export type { Conv2dOptions } from "./src/ops/conv2d.ts";
export type { NamedArray, SafetensorsDType } from "./src/io/safetensors.ts";
export type { PointReport, ProbedModel, ProbeReport } from "./src/sml/gradient_probe.ts";
export type { ExportOptions, LoadOptions } from "./src/io/state_dict.ts";
export type { KernelTime } from "./src/gpu/profile.ts";
export type { PoolStats } from "./src/gpu/pool.ts";
export type { TilingChoice } from "./src/gpu/device.ts";
export type { Owned } from "./src/tensor/scope.ts";
export type { SurrogateParameters } from "./src/ops/lif.ts";
export type { NirArray, NirGraph, NirGraphOptions, NirNode } from "./src/io/nir_graph.ts";
export type { Numbers } from "./src/data/cifar10_dvs.ts";
