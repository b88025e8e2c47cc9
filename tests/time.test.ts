import assert from "node:assert/strict";
import { expandTime, meanOverTime } from "../src/ops/time.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { checkOp, Fixture, setupGpu } from "./helpers.ts";

for (const steps of [1, 2, 4]) {
  Deno.test(`time T=${steps}: expandTime and meanOverTime and their gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load("time_fold");
    for (const op of ["expand", "mean"] as const) {
      await checkOp(f, {
        inputs: { x: `x_${op}_${steps}` },
        grads: { x: `grad_${op}_${steps}` },
        up: `up_${op}_${steps}`,
        run: ({ x }) => ({
          [`out_${op}_${steps}`]: op === "expand" ? expandTime(x, steps) : meanOverTime(x, steps),
        }),
      });
    }
  });
}

Deno.test("meanOverTime: a batch that is not a multiple of T, or a bad T, throws naming the tensor", async () => {
  await setupGpu();
  const logits = Tensor.empty([6, 10], { name: "step_logits" });
  assert.throws(() => meanOverTime(logits, 4), /step_logits \[6, 10\] has 6 rows, not a multiple of T = 4/);
  assert.throws(() => expandTime(logits, 0), /T must be a positive integer/);
  logits.dispose();
});
