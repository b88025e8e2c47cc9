/**
 * End-to-end op chain against PyTorch (tests/oracle/op_chain.py): a miniature spiking residual block
 * with a classifier head, built from the ops directly, so the ops' composition on one tape (a tensor
 * used by two branches, gradients crossing BN batch statistics and LIF time loops) is checked as a whole.
 */
import { synchronize } from "../src/gpu/kernels.ts";
import { batchNorm } from "../src/ops/batch_norm.ts";
import { conv2d } from "../src/ops/conv2d.ts";
import { add, flatten } from "../src/ops/elementwise.ts";
import { lif } from "../src/ops/lif.ts";
import { linear } from "../src/ops/linear.ts";
import { crossEntropy } from "../src/ops/loss.ts";
import { adaptiveAvgPool2d } from "../src/ops/pool.ts";
import { meanOverTime } from "../src/ops/time.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { assertMargins, checkOp, Fixture, setupGpu } from "./helpers.ts";

const T = 2;
const BATCH_NORMS = ["bn1", "bn2", "bn_shortcut"] as const;
const WEIGHTS = ["conv1.weight", "conv2.weight", "shortcut.weight", "linear.weight", "linear.bias"] as const;
type BatchNormName = (typeof BATCH_NORMS)[number];

Deno.test("op chain conv-BN-LIF-residual-pool-linear-CE: loss, logits, running statistics and every gradient match PyTorch", async () => {
  await setupGpu();
  const f = await Fixture.load("op_chain_t2");
  // No membrane within 1e-4 of the threshold or the Dspike region's edges (tests/oracle/op_chain.py).
  assertMargins(f, 1e-4);
  const bnKeys = BATCH_NORMS.flatMap((name) => [`${name}.weight`, `${name}.bias`]);
  const statistics = BATCH_NORMS.flatMap((name) => [`${name}.running_mean`, `${name}.running_var`]);
  await checkOp(f, {
    inputs: {
      x: "x",
      labels: "labels",
      ...Object.fromEntries([...WEIGHTS, ...bnKeys].map((key) => [key, key])),
      ...Object.fromEntries(statistics.map((key) => [key, `${key}_before`])),
    },
    grads: Object.fromEntries(["x", ...WEIGHTS, ...bnKeys].map((key) => [key, `grad_${key}`])),
    backward: "loss",
    run: (t) => {
      const norm = (name: BatchNormName, input: Tensor) =>
        batchNorm(input, {
          weight: t[`${name}.weight`],
          bias: t[`${name}.bias`],
          runningMean: t[`${name}.running_mean`],
          runningVar: t[`${name}.running_var`],
        }, { training: true });
      const spikes1 = lif(norm("bn1", conv2d(t.x, t["conv1.weight"], { stride: 1, padding: 1 })), { T });
      const main = norm("bn2", conv2d(spikes1, t["conv2.weight"], { stride: 2, padding: 1 }));
      const shortcut = norm("bn_shortcut", conv2d(spikes1, t["shortcut.weight"], { stride: 2, padding: 0 }));
      const spikes2 = lif(add(main, shortcut), { T });
      const features = flatten(adaptiveAvgPool2d(spikes2, 1));
      const logits = meanOverTime(linear(features, t["linear.weight"], t["linear.bias"]), T);
      // The forward updated the running statistics in place.
      return {
        loss: crossEntropy(logits, t.labels),
        logits,
        ...Object.fromEntries(statistics.map((key) => [`${key}_after`, t[key]])),
      };
    },
  });
  await synchronize();
});
