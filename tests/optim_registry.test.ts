import assert from "node:assert/strict";
import { createOptimizer, OPTIMIZER_NAMES } from "../src/optim/registry.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { setupGpu } from "./helpers.ts";

Deno.test("optimizer registry: each name builds the optimizer that records itself under that name", async () => {
  await setupGpu();
  assert.deepEqual([...OPTIMIZER_NAMES], ["sgd", "adam", "adamw"]);
  for (const name of OPTIMIZER_NAMES) {
    const weight = Tensor.fromData(new Float32Array([1, 2]), [2], { name: "w" });
    const optimizer = createOptimizer(name, [weight], { lr: 0.1 });
    assert.equal((await optimizer.exportState()).kind, name);
    optimizer.dispose();
    weight.dispose();
  }
  assert.throws(
    () => createOptimizer("rmsprop" as never, [], { lr: 0.1 }),
    /unknown kind "rmsprop"; expected one of sgd, adam, adamw/,
  );
});
