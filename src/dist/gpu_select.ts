/**
 * One GPU per rank on a server with several. Deno's WebGPU cannot pick an adapter by index: its
 * `requestAdapter` takes only `powerPreference` and `forceFallbackAdapter`, and wgpu returns the first
 * adapter that fits. So the choice is made below WebGPU, in the Vulkan stack, before the first
 * `requestAdapter` of this process, in this order:
 *
 * 1. The user's own: MESA_VK_DEVICE_SELECT or DRI_PRIME already set, or SPIKEGPU_GPU_SELECT=none: left as
 *    they are (also what a scheduler that hides other GPUs, e.g. Slurm's cgroup device confinement or a
 *    container's NVIDIA_VISIBLE_DEVICES, needs: every rank then sees only its own GPU).
 * 2. Mesa's device-select Vulkan layer (an implicit layer shipped with Mesa's Vulkan drivers; it filters
 *    every driver's devices, not only Mesa's): the rank's GPU by PCI address, DRI_PRIME=pci-DDDD_BB_DD_F,
 *    with MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1 so the other GPUs are hidden from this process.
 *    The GPUs are the PCI display controllers (class 0x03, less a management controller's VGA chip) in
 *    address order; local rank r takes the r-th (modulo their count), or, when CUDA_VISIBLE_DEVICES holds
 *    one index (a launcher's one-GPU-per-rank assignment), that one.
 *
 * What is verified and what is not is in docs/distributed.md.
 */

const LAYER_MANIFESTS = [
  "/usr/share/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json",
  "/etc/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json",
];

/** How this rank's GPU was chosen, for the rank's adapter line. */
export interface GpuSelection {
  /** The user's own selection, Mesa's device-select layer by PCI address, or none (the default adapter). */
  method: "user" | "mesa-device-select" | "none";
  /** What was chosen, in words. */
  detail: string;
}

/** PCI vendors of the VGA chips of servers' management controllers (ASPEED, Matrox): never a compute GPU. */
const BMC_VENDORS = new Set(["0x1a03", "0x102b"]);

/**
 * PCI addresses ("0000:65:00.0") of the GPUs: display controllers (class 0x03) other than a management
 * controller's VGA chip, in address order (CUDA's order under CUDA_DEVICE_ORDER=PCI_BUS_ID).
 */
export function displayControllers(root = "/sys/bus/pci/devices"): string[] {
  const found: string[] = [];
  try {
    for (const entry of Deno.readDirSync(root)) {
      try {
        const pciClass = Deno.readTextFileSync(`${root}/${entry.name}/class`).trim();
        const vendor = Deno.readTextFileSync(`${root}/${entry.name}/vendor`).trim();
        if (/^0x03/.test(pciClass) && !BMC_VENDORS.has(vendor)) found.push(entry.name);
      } catch {
        // A device without a readable class is not a GPU we could select.
      }
    }
  } catch {
    return [];
  }
  return found.sort();
}

/** Sets the environment so that this process's WebGPU adapter is GPU `localRank` of this server. */
export function selectGpu(localRank: number): GpuSelection {
  const env = (name: string) => Deno.env.get(name);
  if (env("SPIKEGPU_GPU_SELECT") === "none") return { method: "none", detail: "SPIKEGPU_GPU_SELECT=none" };
  for (const name of ["MESA_VK_DEVICE_SELECT", "DRI_PRIME"]) {
    const value = env(name);
    if (value !== undefined) return { method: "user", detail: `${name}=${value}` };
  }
  const gpus = displayControllers();
  if (gpus.length < 2) {
    return { method: "none", detail: `${gpus.length} PCI display controller(s): nothing to choose` };
  }
  const layer = LAYER_MANIFESTS.find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (!layer) {
    return {
      method: "none",
      detail:
        `${gpus.length} GPUs but no Mesa device-select layer (install mesa-vulkan-drivers, or confine ` +
        "each rank to its GPU in the launcher)",
    };
  }
  // A launcher that gives each rank one GPU the CUDA way (Slurm's --gpus-per-task, a site's wrapper) says
  // which one: its index, in PCI order, wins over the local rank.
  const cuda = env("CUDA_VISIBLE_DEVICES");
  const byCuda = cuda !== undefined && /^\d+$/.test(cuda);
  const index = (byCuda ? Number(cuda) : localRank) % gpus.length;
  const value = `pci-${gpus[index].replace(/[:.]/g, "_")}`;
  Deno.env.set("DRI_PRIME", value);
  Deno.env.set("MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE", "1");
  return {
    method: "mesa-device-select",
    detail: `DRI_PRIME=${value} (GPU ${index} of ${gpus.length}, by ${
      byCuda ? `CUDA_VISIBLE_DEVICES=${cuda}` : "local rank"
    })`,
  };
}
