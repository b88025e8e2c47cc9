/** Shared by the conv2d and autocast tests: one tiling's three passes against a conv fixture. */
import {
  conv2dForwardPlan,
  conv2dGradInputPlan,
  conv2dGradWeightPlan,
  type ConvGeometry,
  type DirectTile,
  type DirectWeightTile,
  type GemmTile,
  outputSize,
} from "../kernels/conv2d/mod.ts";
import { dispatchConvPlan } from "../src/ops/conv2d.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertTensorClose, type Fixture, FORWARD, GRADIENT } from "./helpers.ts";

/**
 * Runs the forward and input-gradient plans of `pixels` and the weight-gradient plan of `weights` on the
 * operand tensors (f32, or f16 for a geometry with halfOperands) and checks them against the fixture's
 * `out`, `grad_x` and `grad_weight`.
 */
export async function assertPlansMatch(
  f: Fixture,
  geometry: ConvGeometry,
  [pixels, weights]: [GemmTile | DirectTile, GemmTile | DirectWeightTile],
  { x, weight, up }: { x: Tensor; weight: Tensor; up: Tensor },
): Promise<void> {
  const what = `${f.name} with tiles ${JSON.stringify(pixels)} ${JSON.stringify(weights)}`;
  const out = Tensor.empty([geometry.batch, geometry.cout, ...outputSize(geometry)], { name: `out ${what}` });
  dispatchConvPlan(conv2dForwardPlan(geometry, pixels), {
    x: x.buffer,
    weight: weight.buffer,
    out: out.buffer,
  });
  await assertTensorClose(out, f, "out", FORWARD);
  const gradX = Tensor.empty(f.shape("x"), { name: `grad_x ${what}` });
  dispatchConvPlan(conv2dGradInputPlan(geometry, pixels), {
    gradOut: up.buffer,
    weight: weight.buffer,
    gradIn: gradX.buffer,
  });
  await assertTensorClose(gradX, f, "grad_x", GRADIENT);
  const gradWeight = Tensor.empty(f.shape("weight"), { name: `grad_weight ${what}` });
  dispatchConvPlan(conv2dGradWeightPlan(geometry, weights), {
    gradOut: up.buffer,
    x: x.buffer,
    gradWeight: gradWeight.buffer,
  });
  await assertTensorClose(gradWeight, f, "grad_weight", GRADIENT);
  for (const t of [out, gradX, gradWeight]) t.dispose();
}
