import assert from "node:assert/strict";
import { adaptiveAvgPool2d } from "../src/ops/pool.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { checkOp, Fixture, setupGpu } from "./helpers.ts";

const INPUTS = ["7x7", "5x3", "4x4", "1x1", "2x2", "3x3"];
const OUTPUTS: [number, number][] = [[1, 1], [2, 2], [3, 2]];

Deno.test("adaptiveAvgPool2d: outputs and gradients match PyTorch's bins for every input/output size", async () => {
  await setupGpu();
  const f = await Fixture.load("pool_adaptive");
  for (const input of INPUTS) {
    for (const [outH, outW] of OUTPUTS) {
      const name = `${input}_to_${outH}x${outW}`;
      // The square cases go through the single-number form, as the model heads call it.
      const size: number | [number, number] = outH === outW ? outH : [outH, outW];
      await checkOp(f, {
        inputs: { x: `x_${name}` },
        grads: { x: `grad_${name}` },
        up: `up_${name}`,
        run: ({ x }) => ({ [`out_${name}`]: adaptiveAvgPool2d(x, size) }),
      });
    }
  }
});

Deno.test("adaptiveAvgPool2d: a non-4-D input or a bad output size throws naming the tensor", async () => {
  await setupGpu();
  const flat = Tensor.empty([2, 512], { name: "features" });
  assert.throws(() => adaptiveAvgPool2d(flat, 1), /features \[2, 512\] must be \(N, C, H, W\)/);
  const maps = Tensor.empty([1, 2, 3, 3], { name: "maps" });
  assert.throws(() => adaptiveAvgPool2d(maps, 0), /output size 0/);
  flat.dispose();
  maps.dispose();
});
