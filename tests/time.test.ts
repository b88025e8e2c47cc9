import assert from "node:assert/strict";
import { expandTime, meanOverTime } from "../src/ops/time.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertTensorClose, Fixture, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

for (const steps of [1, 2, 4]) {
  Deno.test(`time T=${steps}: expandTime and meanOverTime and their gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load("time_fold");
    for (const op of ["expand", "mean"] as const) {
      const x = f.tensor(`x_${op}_${steps}`, { requiresGrad: true });
      const up = f.tensor(`up_${op}_${steps}`);
      const tape = new Tape();
      const out = tape.run(() => op === "expand" ? expandTime(x, steps) : meanOverTime(x, steps));
      assert.deepEqual([...out.shape], f.shape(`out_${op}_${steps}`));
      await assertTensorClose(out, f, `out_${op}_${steps}`, FORWARD);
      tape.backward(out, up);
      await assertTensorClose(x.grad, f, `grad_${op}_${steps}`, GRADIENT);
      tape.dispose();
      x.dispose();
      up.dispose();
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
