/** Writes a ResNet-19 (width 8, two modules of width 16) as safetensors for tests/oracle/check_export.py. */
import { initGpu } from "../../src/gpu/device.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { saveSafetensors } from "../../src/io/state_dict.ts";
import { createModel } from "../../src/models/registry.ts";

await initGpu();
const model = createModel("resnet19", {
  numClasses: 10,
  T: 2,
  width: 8,
  seed: 3,
  modules: { positions: [3, 3], width: 16 },
});
await saveSafetensors(Deno.args[0], model);
await synchronize();
console.log(`wrote ${Deno.args[0]}`);
