/**
 * f16 convolutions (autocast): the f32 -> f16 rounding bit for bit against torch's `.half()`, and conv2d's
 * three passes on f16 operands against PyTorch's float64 conv of the same roundings, through the op and
 * through each kernel tiling (GEMM, direct from storage, direct through uniform windows).
 */
import assert from "node:assert/strict";
import type { ConvGeometry, DirectTile, DirectWeightTile, GemmTile } from "../kernels/conv2d/mod.ts";
import { autocast, autocastActive, toHalf } from "../src/ops/autocast.ts";
import { conv2d } from "../src/ops/conv2d.ts";
import { assertPlansMatch } from "./conv_plan_check.ts";
import { checkOp, compare, Fixture, FORWARD, setupGpu } from "./helpers.ts";

Deno.test("toHalf rounds f32 to f16 bit for bit as torch's .half() (ties to even, subnormals, overflow)", async () => {
  await setupGpu();
  const f = await Fixture.load("half_rounding");
  const values = f.tensor("values");
  const half = toHalf(values);
  assert.equal(half.dtype, "f16");
  const bits = (await half.read()) as Uint16Array;
  const expected = f.ints("bits");
  const isNan = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
  for (let i = 0; i < expected.length; i++) {
    if (isNan(expected[i])) {
      assert.ok(isNan(bits[i]), `value ${f.floats("values")[i]}: NaN expected, got bits ${bits[i]}`);
    } else {
      assert.equal(bits[i], expected[i], `value ${f.floats("values")[i]}`);
    }
  }
  for (const t of [values, half]) t.dispose();
});

Deno.test("autocast is active only inside its body, also when the body throws", () => {
  assert.equal(autocastActive(), false);
  autocast(() => assert.equal(autocastActive(), true));
  assert.throws(() =>
    autocast(() => {
      throw new Error("inside");
    }), /inside/);
  assert.equal(autocastActive(), false);
});

const CASES = ["large_s1", "large_s2", "k1_s2", "k7_s2"];

for (const name of CASES) {
  Deno.test(`conv2d under autocast ${name}: f16 operands, f32 accumulation, as PyTorch computes them`, async () => {
    await setupGpu();
    const f = await Fixture.load(`conv2d_f16_${name}`);
    // The test must tell f16 operands from f32 ones: here the f32 output misses by 5x to 10x the tolerance.
    assert.ok(compare(f.floats("out_f32"), f.floats("out"), FORWARD).ratio > 4);
    const [stride, padding] = f.ints("config");
    // The backward runs outside autocast and still uses the f16 kernels its forward chose.
    await checkOp(f, {
      inputs: ["x", "weight"],
      grads: { x: "grad_x", weight: "grad_weight" },
      up: "up",
      run: ({ x, weight }) => {
        const out = autocast(() => conv2d(x, weight, { stride, padding }));
        assert.equal(out.dtype, "f32");
        return { out };
      },
    });
  });
}

const GEMM: GemmTile = { kind: "gemm", tileM: 8, tileN: 32, tileK: 8, threadM: 4, threadN: 2 };

function direct(channels: number, windowBytes: number): DirectTile {
  return { kind: "direct", channels, rows: 2, cols: 3, workgroup: 8, windowBytes };
}

function directWeights(splits: number, windowBytes: number): DirectWeightTile {
  const tile = { kind: "direct", outChannels: 5, inChannels: 3, rows: 3, cols: 2, workgroup: 8 } as const;
  return { ...tile, splits, windowBytes };
}

/**
 * In the large fixtures a sample of x (2,304 elements) fits a 16 KiB window, not an 8 KiB one, and the
 * weights need several 8 KiB windows: windows of f16 operands start and end on 256-byte boundaries that
 * fall mid-sample, as for f32 ones.
 */
const TILINGS: [GemmTile | DirectTile, GemmTile | DirectWeightTile][] = [
  [GEMM, GEMM],
  [direct(3, 0), directWeights(1, 0)],
  [direct(5, 8192), directWeights(3, 16384)],
  [direct(3, 16384), directWeights(2, 8192)],
];

for (const name of ["large_s1", "large_s2"]) {
  Deno.test(`conv2d kernels on f16 operands ${name}: each tiling matches PyTorch`, async () => {
    await setupGpu();
    const f = await Fixture.load(`conv2d_f16_${name}`);
    const [batch, cin, height, width] = f.shape("x");
    const [cout, , kernel] = f.shape("weight");
    const [stride, pad] = f.ints("config");
    const geometry: ConvGeometry = {
      batch,
      cin,
      cout,
      height,
      width,
      kernel,
      stride,
      pad,
      halfOperands: true,
    };
    const operands = ["x", "weight", "up"].map((key) => f.tensor(key));
    const [x, weight, up] = operands.map(toHalf);
    for (const tiles of TILINGS) await assertPlansMatch(f, geometry, tiles, { x, weight, up });
    for (const t of [...operands, x, weight, up]) t.dispose();
  });
}
