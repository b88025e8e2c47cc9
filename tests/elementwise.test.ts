import assert from "node:assert/strict";
import { add, fill, leakyRelu, reshape, scale } from "../src/ops/elementwise.ts";
import { Tape } from "../src/tensor/tape.ts";
import { assertTensorClose, Fixture, FORWARD, GRADIENT, setupGpu } from "./helpers.ts";

for (const label of ["small", "odd", "large"]) {
  Deno.test(`elementwise ${label}: add, leaky_relu, scale and their gradients match PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`elementwise_${label}`);
    const a = f.tensor("a", { requiresGrad: true });
    const b = f.tensor("b", { requiresGrad: true });
    const up = f.tensor("up");
    const addTape = new Tape();
    const sum = addTape.run(() => add(a, b));
    await assertTensorClose(sum, f, "add", FORWARD);
    addTape.backward(sum, up);
    await assertTensorClose(a.grad, f, "grad_add_a", GRADIENT);
    await assertTensorClose(b.grad, f, "grad_add_b", GRADIENT);
    addTape.dispose();
    a.grad!.dispose();
    a.grad = null;

    const reluTape = new Tape();
    const { relu, scaled } = reluTape.run(() => ({ relu: leakyRelu(a), scaled: scale(a, 0.25) }));
    await assertTensorClose(relu, f, "leaky_relu", FORWARD);
    await assertTensorClose(scaled, f, "scale", FORWARD);
    reluTape.backward(relu, up);
    await assertTensorClose(a.grad, f, "grad_leaky_relu", GRADIENT);
    reluTape.dispose();
    for (const t of [a, b, up]) t.dispose();
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
