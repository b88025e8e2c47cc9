/** The target the kernel tilings of this process are chosen for (kernels/target.ts). */
import type { SoftwareTarget } from "../../kernels/target.ts";
import { gpu } from "../gpu/device.ts";

/**
 * The software adapter the ops tile their kernels for, or undefined for a GPU: by default whether the
 * adapter is a software one, unless `initGpu({ tiling })` or `setTiling` forced a choice. Its worker
 * threads: llvmpipe starts one per core.
 */
export function softwareTarget(): SoftwareTarget | undefined {
  return gpu().tiling === "software" ? { threads: navigator.hardwareConcurrency } : undefined;
}
