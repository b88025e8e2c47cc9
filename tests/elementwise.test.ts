import assert from "node:assert/strict";
import { add, fill, leakyRelu, reshape, scale } from "../src/ops/elementwise.ts";
import { Tape } from "../src/tensor/tape.ts";
import { checkOp, Fixture, setupGpu } from "./helpers.ts";

for (const label of ["small", "odd", "large"]) {
  Deno.test(`elementwise ${label}: add, leaky_relu, scale and their gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`elementwise_${label}`);
    await checkOp(f, {
      inputs: ["a", "b"],
      grads: { a: "grad_add_a", b: "grad_add_b" },
      up: "up",
      run: ({ a, b }) => ({ add: add(a, b) }),
    });
    await checkOp(f, {
      inputs: ["a"],
      grads: { a: "grad_leaky_relu" },
      up: "up",
      run: ({ a }) => ({ leaky_relu: leakyRelu(a) }),
    });
    await checkOp(f, { inputs: ["a"], run: ({ a }) => ({ scale: scale(a, 0.25) }) });
  });
}

Deno.test("elementwise: a tensor past one grid row (more than 65535 workgroups' worth) is covered", async () => {
  await setupGpu();
  const n = 65535 * 256 + 1000;
  const x = fill([n], 2);
  const y = add(x, x);
  const values = await y.read();
  assert.equal(values[0], 4);
  assert.equal(values[n - 1], 4);
  x.dispose();
  y.dispose();
});

Deno.test("reshape: gradients flow back in the original shape; gradients used twice accumulate", async () => {
  await setupGpu();
  const tape = new Tape();
  const x = fill([2, 3], 1, "x");
  x.requiresGrad = true;
  const out = tape.run(() => {
    const r = reshape(x, [6]);
    return add(r, r);
  });
  tape.backward(out);
  assert.deepEqual([...x.grad!.shape], [2, 3]);
  assert.deepEqual([...await x.grad!.read()], [2, 2, 2, 2, 2, 2]);
  tape.dispose();
  x.dispose();
});
