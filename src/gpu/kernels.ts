/**
 * Compiles each kernel specialisation once and records dispatches into one pending command encoder,
 * which is submitted only when a result must leave the GPU (readback, upload) or the batch grows long.
 * In deferred mode (`runDeferred`) the queue operations are recorded instead of executed, so that a
 * host step (a collective over ranks) can sit between two kernels of a synchronously recorded forward.
 */
import { gpu, throwIfGpuFailed } from "./device.ts";
import { nextTimestampWrites, profileFull, profiling, resolveQueries } from "./profile.ts";

/** A compute kernel specialised by its shape constants; equal keys must mean equal WGSL. */
export interface Kernel {
  /** `kernelKey(family, spec)` (kernels/common.ts) of the specification the WGSL was generated from. */
  key: string;
  /** Generates the WGSL source; called once per key. Entry point `main`, bindings in group 0. */
  wgsl: () => string;
}

/** Dispatches recorded before an automatic submit, so the GPU starts while the CPU records more. */
const MAX_PENDING_DISPATCHES = 512;
const UNIFORM_BYTES = 256;

const pipelines = new Map<string, GPUComputePipeline>();
/** Each key's WGSL, kept only while checkKernelKeys is on. */
const codeByKey = new Map<string, string>();
let checkingKeys = false;
/** Keys that differ only in constants the WGSL does not use (a batch size) share one compiled pipeline. */
const pipelinesByCode = new Map<string, GPUComputePipeline>();
/** Group 0's layout per pipeline: a bind group made with a fresh layout object costs twice as much. */
const layouts = new Map<GPUComputePipeline, GPUBindGroupLayout>();
const bindGroups = new Map<string, GPUBindGroup>();
/**
 * Enough for every bind group of the largest step we run on a CPU adapter: ResNet-19's (T = 2, batch 16)
 * makes 101,820 dispatches through uniform windows, each window its own bind group. With room for 16,384
 * the cache was cleared six times a step and all of them were made again: 2.4 s of CPU per step, its
 * steps 2.4% slower, and no smaller resident set (1.94 GB against 1.91 GB with them kept).
 */
const MAX_BIND_GROUPS = 131072;
let bindGroupsCreated = 0;
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;
let encoder: GPUCommandEncoder | undefined;
let pass: GPUComputePassEncoder | undefined;
let pendingDispatches = 0;
let dispatchCount = 0;
const pendingProfiles: Promise<void>[] = [];
/** Uniform blocks by position among the dispatches since the last submit, so a step binds the same ones. */
const uniformSlots: GPUBuffer[] = [];
let uniformsUsed = 0;

/**
 * A queue operation of deferred mode: a submit, a write (its bytes copied when recorded: uniform slots
 * and callers' arrays are rewritten before the replay), or a host step on a range read back from the GPU.
 */
type DeferredAction =
  | { kind: "submit"; commands: GPUCommandBuffer }
  | { kind: "write"; buffer: GPUBuffer; offset: number; bytes: Uint8Array<ArrayBuffer> }
  | {
    kind: "host";
    staging: GPUBuffer;
    buffer: GPUBuffer;
    offset: number;
    bytes: number;
    step: (data: Float32Array) => void;
  };
/** The actions recorded so far while in deferred mode; undefined in the ordinary, immediate mode. */
let deferredActions: DeferredAction[] | undefined;

/** `queue.writeBuffer` now, or, in deferred mode, a recorded copy of `bytes` written at the replay. */
function queueWrite(buffer: GPUBuffer, offset: number, bytes: Uint8Array<ArrayBuffer>): void {
  if (deferredActions) deferredActions.push({ kind: "write", buffer, offset, bytes: bytes.slice() });
  else gpu().device.queue.writeBuffer(buffer, offset, bytes);
}

function refuseInDeferredMode(what: string): void {
  if (deferredActions) {
    throw new Error(`spikegpu: ${what} inside runDeferred: results are only available after its replay`);
  }
}

/**
 * Checks the rule "equal keys mean equal WGSL" at run time (for tests and debugging): every dispatch
 * generates its kernel's WGSL again and throws when a key already compiled had other code.
 */
export function checkKernelKeys(on: boolean): void {
  checkingKeys = on;
  if (!on) codeByKey.clear();
}

function checkKey(kernel: Kernel): void {
  const code = kernel.wgsl();
  const known = codeByKey.get(kernel.key);
  if (known === undefined) codeByKey.set(kernel.key, code);
  else if (known !== code) {
    throw new Error(`spikegpu: kernel key ${kernel.key} names two different WGSL sources`);
  }
}

export function pipelineFor(kernel: Kernel): GPUComputePipeline {
  if (checkingKeys) checkKey(kernel);
  let pipeline = pipelines.get(kernel.key);
  if (!pipeline) {
    const code = kernel.wgsl();
    pipeline = pipelinesByCode.get(code);
    if (!pipeline) {
      const { device } = gpu();
      const module = device.createShaderModule({ code, label: kernel.key });
      pipeline = device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
        label: kernel.key,
      });
      pipelinesByCode.set(code, pipeline);
    }
    pipelines.set(kernel.key, pipeline);
  }
  return pipeline;
}

function currentPass(): GPUComputePassEncoder {
  if (!pass) {
    encoder ??= gpu().device.createCommandEncoder();
    pass = encoder.beginComputePass();
  }
  return pass;
}

function currentEncoder(): GPUCommandEncoder {
  if (pass) {
    pass.end();
    pass = undefined;
  }
  encoder ??= gpu().device.createCommandEncoder();
  return encoder;
}

/**
 * Records one dispatch. `buffers[i]` is bound at `@group(0) @binding(i)`, whole or as a range (the
 * binding's storage or uniform type comes from the WGSL); `uniform`, when given, is a small block of
 * per-call scalars (learning rate, step) bound after the buffers.
 */
export function dispatch(
  kernel: Kernel,
  buffers: readonly (GPUBuffer | GPUBufferBinding)[],
  workgroups: readonly [number, number?, number?],
  uniform?: ArrayBuffer | ArrayBufferView,
): void {
  const { device, maxWorkgroupsPerDimension } = gpu();
  const [x, y = 1, z = 1] = workgroups;
  if (x === 0 || y === 0 || z === 0) return;
  if (x > maxWorkgroupsPerDimension || y > maxWorkgroupsPerDimension || z > maxWorkgroupsPerDimension) {
    throw new Error(
      `spikegpu: kernel ${kernel.key} asked for ${x}x${y}x${z} workgroups, more than ${maxWorkgroupsPerDimension} ` +
        "per dimension",
    );
  }
  const pipeline = pipelineFor(kernel);
  const bindings = [...buffers];
  if (uniform) {
    // Rewriting a slot is safe: queue writes are ordered after the submits that read its last contents.
    const buffer = uniformSlots[uniformsUsed++] ??= device.createBuffer({
      size: UNIFORM_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const bytes = ArrayBuffer.isView(uniform)
      ? new Uint8Array(uniform.buffer as ArrayBuffer, uniform.byteOffset, uniform.byteLength)
      : new Uint8Array(uniform);
    queueWrite(buffer, 0, bytes);
    bindings.push(buffer);
  }
  const bindGroup = bindGroupFor(pipeline, bindings);
  if (profiling()) {
    // One pass per dispatch so its timestamps measure this kernel alone.
    if (profileFull()) flush();
    if (pass) pass.end();
    encoder ??= device.createCommandEncoder();
    pass = encoder.beginComputePass({ timestampWrites: nextTimestampWrites(kernel.key) });
  }
  const p = currentPass();
  p.setPipeline(pipeline);
  p.setBindGroup(0, bindGroup);
  p.dispatchWorkgroups(x, y, z);
  dispatchCount++;
  if (++pendingDispatches >= MAX_PENDING_DISPATCHES) flush();
}

/**
 * The bind group of `pipeline` over `bindings`, made once per distinct set of buffers and ranges: the
 * pool hands each training step the same buffers as the last, and creating the default step's ~1,000
 * bind groups anew took 52 ms of its 440 ms on a CPU adapter.
 */
function bindGroupFor(
  pipeline: GPUComputePipeline,
  bindings: readonly (GPUBuffer | GPUBufferBinding)[],
): GPUBindGroup {
  let key = String(idOf(pipeline));
  for (const b of bindings) {
    key += b instanceof GPUBuffer ? `|${idOf(b)}` : `|${idOf(b.buffer)}:${b.offset ?? 0}:${b.size ?? ""}`;
  }
  let group = bindGroups.get(key);
  if (!group) {
    let layout = layouts.get(pipeline);
    if (!layout) layouts.set(pipeline, layout = pipeline.getBindGroupLayout(0));
    const entries = bindings.map((b, binding) => ({
      binding,
      resource: b instanceof GPUBuffer ? { buffer: b } : b,
    }));
    // A run whose buffers keep changing would otherwise grow the cache without bound.
    if (bindGroups.size >= MAX_BIND_GROUPS) bindGroups.clear();
    group = gpu().device.createBindGroup({ layout, entries });
    bindGroups.set(key, group);
    bindGroupsCreated++;
  }
  return group;
}

function idOf(object: object): number {
  let id = objectIds.get(object);
  if (id === undefined) objectIds.set(object, id = nextObjectId++);
  return id;
}

/** Drops every cached bind group; call before destroying buffers they may hold. */
export function forgetBindGroups(): void {
  bindGroups.clear();
}

export function copyBuffer(
  src: GPUBuffer,
  srcOffset: number,
  dst: GPUBuffer,
  dstOffset: number,
  bytes: number,
) {
  currentEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
}

/** Submits everything recorded so far. */
export function flush(): void {
  throwIfGpuFailed();
  if (!encoder) return;
  if (pass) pass.end();
  const collect = resolveQueries(encoder);
  const commands = encoder.finish();
  pass = undefined;
  encoder = undefined;
  pendingDispatches = 0;
  if (deferredActions) deferredActions.push({ kind: "submit", commands });
  else gpu().device.queue.submit([commands]);
  uniformsUsed = 0;
  if (collect) pendingProfiles.push(collect());
}

/** Waits for all submitted work; surfaces a lost device or GPU error instead of hanging. */
export async function synchronize(): Promise<void> {
  refuseInDeferredMode("synchronize");
  flush();
  await gpu().device.queue.onSubmittedWorkDone();
  await Promise.all(pendingProfiles.splice(0));
  throwIfGpuFailed();
}

/** Copies `bytes` from `buffer` to the CPU. */
export async function readBuffer(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  refuseInDeferredMode("readBuffer");
  const { device } = gpu();
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    currentEncoder().copyBufferToBuffer(buffer, offset, staging, 0, size);
    flush();
    await staging.mapAsync(GPUMapMode.READ);
    throwIfGpuFailed();
    return staging.getMappedRange().slice(0, bytes);
  } finally {
    staging.destroy();
  }
}

/** Writes CPU data into a buffer, after the commands already recorded (which may still use it). */
export function writeBuffer(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
  flush();
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    queueWrite(buffer, offset, bytes);
  } else {
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    queueWrite(buffer, offset, padded);
  }
}

/**
 * Records `body`'s GPU work without executing it, then replays it in the same queue order, running the
 * host steps (`deferHostStep`) where they were recorded. `body` runs synchronously and must not read
 * results back (readBuffer and synchronize are errors inside it); the promise resolves with its value
 * once every recorded submit, write and host step has been issued.
 */
export async function runDeferred<T>(body: () => T): Promise<T> {
  if (deferredActions) throw new Error("spikegpu: runDeferred cannot be nested");
  if (profiling()) throw new Error("spikegpu: runDeferred cannot run while kernels are being profiled");
  flush();
  const actions: DeferredAction[] = deferredActions = [];
  let result: T;
  try {
    result = body();
    flush();
  } catch (error) {
    // Dropped commands never run; what body recorded is lost with its error.
    encoder = pass = undefined;
    pendingDispatches = 0;
    uniformsUsed = 0;
    for (const action of actions) if (action.kind === "host") action.staging.destroy();
    throw error;
  } finally {
    deferredActions = undefined;
  }
  await replay(actions);
  return result;
}

async function replay(actions: readonly DeferredAction[]): Promise<void> {
  const { queue } = gpu().device;
  try {
    for (const action of actions) {
      if (action.kind === "submit") queue.submit([action.commands]);
      else if (action.kind === "write") queue.writeBuffer(action.buffer, action.offset, action.bytes);
      else {
        await action.staging.mapAsync(GPUMapMode.READ);
        throwIfGpuFailed();
        const data = new Float32Array(action.staging.getMappedRange().slice(0, action.bytes));
        action.staging.destroy();
        action.step(data);
        queue.writeBuffer(action.buffer, action.offset, data);
      }
    }
  } finally {
    // Destroying twice is allowed; a replay stopped by an error leaves no staging buffer behind.
    for (const action of actions) if (action.kind === "host") action.staging.destroy();
  }
}

/**
 * In deferred mode, records a host step: after the work recorded so far, `bytes` of `buffer` from
 * `offset` are read back as f32, `step` changes them in place (an all-reduce over ranks), and they are
 * written back before the work recorded after it.
 */
export function deferHostStep(
  buffer: GPUBuffer,
  offset: number,
  bytes: number,
  step: (data: Float32Array) => void,
): void {
  if (!deferredActions) throw new Error("spikegpu: deferHostStep is only possible inside runDeferred");
  if (bytes % 4 !== 0 || offset % 4 !== 0) {
    throw new Error(`spikegpu: deferHostStep needs whole f32 values; got ${bytes} bytes at offset ${offset}`);
  }
  const staging = gpu().device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  currentEncoder().copyBufferToBuffer(buffer, offset, staging, 0, bytes);
  flush();
  deferredActions.push({ kind: "host", staging, buffer, offset, bytes, step });
}

/** Number of dispatches recorded since the process started (for tests and benches). */
export function dispatchTotal(): number {
  return dispatchCount;
}

/** Bind groups made so far (a repeated step finds all of its own in the cache). */
export function bindGroupCount(): number {
  return bindGroupsCreated;
}

export function compiledKernelCount(): number {
  return pipelinesByCode.size;
}
