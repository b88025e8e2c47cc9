/**
 * The one WebGPU adapter and device a process uses: acquired headlessly, with the adapter's larger
 * storage limits requested, and with device loss and uncaptured errors turned into thrown errors at the
 * next submission instead of silent hangs.
 */

export interface AdapterDescription {
  /** The adapter's own description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H200". */
  name: string;
  /** The adapter's vendor, as it reports it. */
  vendor: string;
  /** The adapter's architecture, as it reports it. */
  architecture: string;
  /** "vulkan", "gl", ... as chosen by DENO_WEBGPU_BACKEND (set by `preferVulkan` or the user), or "auto". */
  backend: string;
  /** True for a software (CPU) adapter. */
  isFallbackAdapter: boolean;
}

/** The process's WebGPU device and what it allows. */
export interface Gpu {
  /** The device every kernel runs on. */
  device: GPUDevice;
  /** The adapter it came from. */
  adapter: AdapterDescription;
  /** The features enabled on the device. */
  features: ReadonlySet<string>;
  /** Largest storage buffer binding, in bytes. */
  maxStorageBindingBytes: number;
  /** Largest buffer, in bytes. */
  maxBufferBytes: number;
  /** Most workgroups per dispatch dimension. */
  maxWorkgroupsPerDimension: number;
  /** Whether `shader-f16` is enabled (f16 tensors and --f16). */
  hasF16: boolean;
  /** Whether `timestamp-query` is enabled (profiling). */
  hasTimestamps: boolean;
  /** The kernel tilings ops choose (see GpuOptions.tiling), resolved for this adapter. */
  tiling: "gpu" | "software";
}

/**
 * Which kernel tilings ops choose: "auto" the register-blocked, uniform-window tilings of kernels/target.ts
 * on a software adapter and the workgroup-memory tilings on a GPU; "gpu" or "software" forces one on any
 * adapter (so a test can run a GPU's tilings on a software adapter).
 */
export type TilingChoice = "auto" | "gpu" | "software";

/** How to acquire the adapter and device. */
export interface GpuOptions {
  /** Adapter preference; default "high-performance". */
  powerPreference?: GPUPowerPreference;
  /** Ask for `shader-f16`; an error if the adapter lacks it. */
  requireF16?: boolean;
  /** Default "auto". */
  tiling?: TilingChoice;
}

let current: Gpu | undefined;
let pending: Promise<Gpu> | undefined;
let failure: Error | undefined;

const NO_ADAPTER_HELP = "no WebGPU adapter found. Install a GPU driver with Vulkan support, or Mesa's " +
  "software adapters: `apt-get install -y mesa-vulkan-drivers` (lavapipe, Vulkan) or libgl1-mesa-dri " +
  "(llvmpipe, GL); then pick one with DENO_WEBGPU_BACKEND=vulkan or DENO_WEBGPU_BACKEND=gl";

/** Acquires the process-wide GPU once; later calls return the same one. */
export function initGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (current) {
    if (options.requireF16 && !current.hasF16) return Promise.reject(f16Missing(current.adapter));
    if (options.tiling) setTiling(options.tiling);
    return Promise.resolve(current);
  }
  pending ??= acquire(options).then((gpu) => (current = gpu)).finally(() => (pending = undefined));
  return pending;
}

/** The GPU acquired by `initGpu`; ops call this synchronously. */
export function gpu(): Gpu {
  if (!current) {
    throw new Error("spikegpu: the GPU is not initialised: `await initGpu()` before using tensors");
  }
  return current;
}

/**
 * Changes the tilings ops choose from now on. Ops recorded earlier keep theirs for their backward; kernels
 * are cached by tiling, so switching back and forth compiles nothing twice.
 */
export function setTiling(choice: TilingChoice): void {
  const gpu_ = gpu();
  gpu_.tiling = resolveTiling(choice, gpu_.adapter);
}

/** The one test of "is this a software adapter" that the kernel choice makes. */
function resolveTiling(choice: TilingChoice, adapter: AdapterDescription): Gpu["tiling"] {
  if (choice !== "auto") return choice;
  return adapter.isFallbackAdapter ? "software" : "gpu";
}

/** Throws the device-lost or uncaptured GPU error recorded since the last check, if any. */
export function throwIfGpuFailed(): void {
  if (!failure) return;
  const error = failure;
  // A lost device stays lost; other errors are reported once.
  if (!error.message.includes("device lost")) failure = undefined;
  throw error;
}

/** Records a GPU failure noticed asynchronously (e.g. an error scope); the next submission throws it. */
export function reportGpuFailure(error: Error): void {
  failure ??= error;
}

/**
 * The error to report for `error`, thrown by GPU work or a readback. A lost device first shows up as an
 * unrelated validation or mapping error and announces its loss a moment later, so this waits up to
 * `waitMs` for that and then reports the loss instead.
 */
export async function explainGpuError(error: unknown, waitMs = 250): Promise<unknown> {
  if (!current) return error;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lost = await Promise.race([
    current.device.lost.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waitMs))),
  ]);
  clearTimeout(timer);
  if (!lost || !failure) return error;
  return new Error(failure.message, { cause: error });
}

function f16Missing(adapter: AdapterDescription): Error {
  return new Error(
    `spikegpu: f16 was requested but the adapter "${adapter.name}" (${adapter.backend}) has no shader-f16; ` +
      "train in f32, or use a Vulkan adapter (DENO_WEBGPU_BACKEND=vulkan) that supports it",
  );
}

/** Where the Vulkan loader looks for driver manifests on Linux unless VK_DRIVER_FILES names them. */
export const VULKAN_MANIFEST_DIRS = [
  "/etc/vulkan/icd.d",
  "/usr/local/share/vulkan/icd.d",
  "/usr/share/vulkan/icd.d",
];

/**
 * On Linux, picks the Vulkan backend when a Vulkan driver is installed and the user chose no backend.
 * wgpu's automatic choice ends on Vulkan there anyway (lavapipe outruns GL's llvmpipe,
 * docs/performance.md), but first loads and initialises Mesa's GL driver through EGL as well: a second LLVM
 * user with its own threads and exit handlers in the process. Returns the manifest that decided it.
 */
function preferVulkan(): string | undefined {
  if (Deno.build.os !== "linux" || Deno.env.get("DENO_WEBGPU_BACKEND") !== undefined) return undefined;
  const named = Deno.env.get("VK_DRIVER_FILES") ?? Deno.env.get("VK_ICD_FILENAMES");
  const manifest = named ? named.split(":")[0] : firstManifest();
  if (manifest) Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
  return manifest;
}

function firstManifest(): string | undefined {
  for (const dir of VULKAN_MANIFEST_DIRS) {
    try {
      for (const entry of Deno.readDirSync(dir)) {
        if (entry.name.endsWith(".json")) return `${dir}/${entry.name}`;
      }
    } catch {
      // A missing folder, or no read permission: no manifest there as far as we can tell.
    }
  }
  return undefined;
}

/**
 * On Linux, gives the process a private, empty runtime folder (mode 0700, removed at exit) when
 * XDG_RUNTIME_DIR is unset. Loading the adapter asks libwayland for a display, which without one prints
 * "error: XDG_RUNTIME_DIR is invalid or not set in the environment." twice: harmless on a headless
 * machine, but it reads like a failure. An empty folder of our own holds no display socket, so nothing
 * else changes. Needs write permission to the temp folder; without it the message stays.
 */
function provideRuntimeDir(): void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return;
  let dir: string;
  try {
    dir = Deno.makeTempDirSync({ prefix: "spikegpu-runtime-" });
    Deno.chmodSync(dir, 0o700);
  } catch {
    return;
  }
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already gone, or no longer ours to remove: a leftover empty temp folder is harmless.
    }
  });
}

async function acquire(options: GpuOptions): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new Error(`spikegpu: ${NO_ADAPTER_HELP}`);
  provideRuntimeDir();
  const vulkanManifest = preferVulkan();
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter && vulkanManifest) {
    throw new Error(
      `spikegpu: the Vulkan driver ${vulkanManifest} gave no WebGPU adapter; ` +
        "set DENO_WEBGPU_BACKEND=gl to use GL instead",
    );
  }
  if (!adapter) throw new Error(`spikegpu: ${NO_ADAPTER_HELP}`);
  const info = adapter.info;
  const description: AdapterDescription = {
    name: info.description || info.device || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? "auto",
    isFallbackAdapter: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
  };
  const hasF16 = adapter.features.has("shader-f16");
  if (options.requireF16 && !hasF16) throw f16Missing(description);
  const requiredFeatures: GPUFeatureName[] = [];
  if (hasF16) requiredFeatures.push("shader-f16");
  if (adapter.features.has("timestamp-query")) requiredFeatures.push("timestamp-query");
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: limits.maxComputeWorkgroupSizeY,
    },
  });
  device.lost.then((lost) => {
    failure = new Error(
      `spikegpu: GPU device lost (${lost.reason}): ${lost.message || "no detail"}; ` +
        "the run cannot continue: restart it from the last checkpoint",
    );
  });
  device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    // Not every runtime defines the GPUOutOfMemoryError class; its name is enough.
    const oom = error?.constructor?.name === "GPUOutOfMemoryError";
    failure ??= new Error(
      oom
        ? `spikegpu: GPU out of memory (${error.message}); try a smaller --batch-size`
        : `spikegpu: GPU error: ${error.message}`,
    );
  });
  return {
    device,
    adapter: description,
    features: new Set(device.features),
    maxStorageBindingBytes: device.limits.maxStorageBufferBindingSize,
    maxBufferBytes: device.limits.maxBufferSize,
    maxWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    hasF16,
    hasTimestamps: device.features.has("timestamp-query"),
    tiling: resolveTiling(options.tiling ?? "auto", description),
  };
}

/** One line naming the adapter, for logs and `--help`. */
export function describeAdapter(adapter: AdapterDescription): string {
  const fallback = adapter.isFallbackAdapter ? ", software" : "";
  return `${adapter.name} [backend ${adapter.backend}${fallback}]`;
}
