import assert from "node:assert/strict";
import { dispatchTotal } from "../src/gpu/kernels.ts";
import type { Optimizer, OptimizerOptions, OptimizerState } from "../src/optim/optimizer.ts";
import { createOptimizer, type OptimizerKind } from "../src/optim/registry.ts";
import { Scope } from "../src/tensor/scope.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, Fixture, setupGpu, type Tolerance } from "./helpers.ts";

/** The cases of tests/oracle/optim.py, with the same hyperparameters. */
const CASES: Record<string, { kind: OptimizerKind; options: OptimizerOptions }> = {
  sgd: { kind: "sgd", options: { lr: 0.1 } },
  sgd_momentum: { kind: "sgd", options: { lr: 0.1, momentum: 0.9 } },
  sgd_nesterov: { kind: "sgd", options: { lr: 0.1, momentum: 0.9, nesterov: true } },
  sgd_weight_decay: { kind: "sgd", options: { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
  sgd_skip: { kind: "sgd", options: { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3 } },
  adam: { kind: "adam", options: { lr: 1e-3 } },
  adam_weight_decay: { kind: "adam", options: { lr: 1e-3, weightDecay: 1e-2 } },
  adamw: { kind: "adamw", options: { lr: 0.01, weightDecay: 0.02 } },
  adamw_skip: { kind: "adamw", options: { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.02 } },
};

const PARAMETERS = 3;
const STEPS = 5;

/**
 * Relative 1e-5, as the optimizer issue asks. The floor (1e-5 of the tensor's RMS) is for elements
 * that pass near zero where gradients of opposite sign cancel: there f32 roundoff of the terms (~1e-7
 * of their size) is large next to the element itself. Measured without the floor, every parameter passes
 * at under 0.07 of the tolerance, but exp_avg of parameter 2 in adamw_skip (72x) and its momentum buffer
 * in sgd_skip (6x) do not; with it, the worst element is under 0.02 of the tolerance.
 */
const OPTIMIZER: Tolerance = { rtol: 1e-5, scaleFloor: 1e-5 };

function initialParams(f: Fixture): Tensor[] {
  return Array.from({ length: PARAMETERS }, (_, i) => f.tensor(`param${i}_initial`, { requiresGrad: true }));
}

/** Sets the fixture's gradients of `step` (leaving null those the oracle left None); returns how many. */
function setGradients(f: Fixture, params: readonly Tensor[], step: number): number {
  const hasGrad = f.floats("has_grad");
  let count = 0;
  params.forEach((param, i) => {
    if (hasGrad[step * PARAMETERS + i]) {
      param.grad = f.tensor(`grad${i}_step${step}`);
      count++;
    }
  });
  return count;
}

/** Steps `optimizer` through steps `from .. to-1` as a training loop would: each in a scope, then zeroGrad. */
async function run(
  f: Fixture,
  optimizer: Optimizer,
  from: number,
  to: number,
  check: boolean,
): Promise<void> {
  for (let step = from; step < to; step++) {
    const scope = new Scope();
    const withGradients = scope.run(() => setGradients(f, optimizer.params, step));
    const before = dispatchTotal();
    optimizer.step();
    assert.equal(dispatchTotal() - before, withGradients, `${f.name}: one dispatch per updated parameter`);
    optimizer.zeroGrad();
    scope.dispose();
    if (!check) continue;
    for (let i = 0; i < PARAMETERS; i++) {
      const key = `param${i}_step${step}`;
      assertClose(await optimizer.params[i].readFloat(), f.floats(key), OPTIMIZER, `${f.name}/${key}`);
    }
  }
}

for (const [name, { kind, options }] of Object.entries(CASES)) {
  Deno.test(`optim ${name}: 5 steps match torch.optim, parameters and state`, async () => {
    await setupGpu();
    const f = await Fixture.load(`optim_${name}`);
    const params = initialParams(f);
    const optimizer = createOptimizer(kind, params, options);
    await run(f, optimizer, 0, STEPS, true);
    const state = await optimizer.exportState();
    assert.equal(state.kind, kind);
    assert.equal(state.step, STEPS);
    assert.equal(state.lr, options.lr);
    const slots = Object.keys(state.slots).sort();
    assert.deepEqual(slots, kind === "sgd" ? ["momentum_buffer"] : ["exp_avg", "exp_avg_sq", "step"]);
    for (const slot of slots) {
      for (let i = 0; i < PARAMETERS; i++) {
        const key = `state_${slot}${i}`;
        if (f.arrays.has(key)) {
          assertClose(state.slots[slot][i], f.floats(key), OPTIMIZER, `${f.name}/${key}`);
        } else {
          // Plain SGD: torch keeps no momentum buffer.
          assert.equal(state.slots[slot][i].length, 0, `${f.name}/${key} should be empty`);
        }
      }
    }
    optimizer.dispose();
    for (const param of params) param.dispose();
  });
}

for (const [name, { kind, options }] of Object.entries(CASES)) {
  const splits = name.endsWith("_skip") ? [1, 3] : [3];
  for (const split of splits) {
    Deno.test(`optim ${name}: export after ${split} steps, import into a new optimizer, resume == straight`, async () => {
      await setupGpu();
      const f = await Fixture.load(`optim_${name}`);
      const straightParams = initialParams(f);
      const straight = createOptimizer(kind, straightParams, options);
      await run(f, straight, 0, STEPS, false);

      const params = initialParams(f);
      const first = createOptimizer(kind, params, options);
      await run(f, first, 0, split, false);
      const saved = await first.exportState();
      first.dispose();
      if (split === 1) {
        // Parameter 1 had no gradient at step 0: like torch, it has no state yet.
        for (const arrays of Object.values(saved.slots)) assert.equal(arrays[1].length, 0);
      }
      // Built with another lr and weight decay: the import restores both, as torch's load_state_dict does.
      const resumed = createOptimizer(kind, params, {
        ...options,
        lr: options.lr * 3,
        weightDecay: (options.weightDecay ?? 0) + 0.5,
      });
      resumed.importState(saved);
      assert.equal(resumed.lr, options.lr);
      await run(f, resumed, split, STEPS, false);

      for (let i = 0; i < PARAMETERS; i++) {
        assert.deepEqual(await params[i].readFloat(), await straightParams[i].readFloat(), `parameter ${i}`);
      }
      const expected = await straight.exportState();
      const actual = await resumed.exportState();
      assert.deepEqual(actual, expected);
      for (const t of [straight, resumed, ...params, ...straightParams]) t.dispose();
    });
  }
}

Deno.test("optim: importState rejects another kind, parameter count or shape, and leaves the state as it was", async () => {
  await setupGpu();
  const params = [
    Tensor.fromData([1, 2, 3, 4], [2, 2], { name: "w" }),
    Tensor.fromData([5], [1], { name: "b" }),
  ];
  const adam = createOptimizer("adam", params, { lr: 0.1 });
  for (const param of params) param.grad = Tensor.fromData(new Float32Array(param.size).fill(1), param.shape);
  adam.step();
  const good = await adam.exportState();
  const sgdState = await createOptimizer("sgd", params, { lr: 0.1, momentum: 0.9 }).exportState();
  assert.throws(() => adam.importState(sgdState), /adam: cannot import the state of a sgd optimizer/);
  const oneParameter: OptimizerState = {
    ...good,
    slots: Object.fromEntries(Object.entries(good.slots).map(([k, v]) => [k, v.slice(0, 1)])),
  };
  assert.throws(
    () => adam.importState(oneParameter),
    /adam: state slot exp_avg has 1 arrays for 2 parameters/,
  );
  const wrongShape: OptimizerState = {
    ...good,
    slots: { ...good.slots, exp_avg: [new Float32Array(3), good.slots.exp_avg[1]] },
  };
  assert.throws(
    () => adam.importState(wrongShape),
    /adam: state slot exp_avg of parameter 0 \(w \[2, 2\]\) has 3 values, expected 4/,
  );
  const missingSlot: OptimizerState = {
    ...good,
    slots: { exp_avg: good.slots.exp_avg, step: good.slots.step },
  };
  assert.throws(() => adam.importState(missingSlot), /adam: state has slots \[exp_avg, step\], expected/);
  const badHyper: OptimizerState = { ...good, hyper: { ...good.hyper, beta1: true } };
  assert.throws(
    () => adam.importState(badHyper),
    /adam: imported hyperparameter beta1 is true, expected a number/,
  );
  assert.deepEqual(await adam.exportState(), good);
  adam.dispose();
  for (const param of params) param.dispose();
});

Deno.test("optim: constructor and step errors name the problem", async () => {
  await setupGpu();
  const w = Tensor.fromData([1, 2, 3], [3], { name: "w" });
  assert.throws(() => createOptimizer("sgd", [w], { lr: -1 }), /sgd: lr is -1/);
  assert.throws(
    () => createOptimizer("sgd", [w], { lr: 0.1, nesterov: true }),
    /Nesterov momentum needs momentum > 0/,
  );
  assert.throws(() => createOptimizer("adamw", [w], { lr: 0.1, betas: [1, 0.9] }), /adamw: betas\[0\] is 1/);
  assert.throws(() => createOptimizer("adam", [w, w], { lr: 0.1 }), /parameter 1 \(w\) is listed twice/);
  assert.throws(
    () => createOptimizer("rmsprop" as OptimizerKind, [w], { lr: 0.1 }),
    /unknown kind "rmsprop"/,
  );
  const sgd = createOptimizer("sgd", [w], { lr: 0.1 });
  w.grad = Tensor.fromData([1, 2], [2], { name: "g" });
  assert.throws(() => sgd.step(), /sgd: parameter 0 \(w\) has \[3\] but its grad g is f32 \[2\]/);
  sgd.zeroGrad();
  assert.equal(w.grad, null);
  sgd.dispose();
  assert.throws(() => sgd.step(), /sgd: step\(\) after dispose\(\)/);
  w.dispose();
});

Deno.test("optim: zeroGrad disposes the gradients; parameters without one are left alone", async () => {
  await setupGpu();
  const a = Tensor.fromData([1, 2], [2], { name: "a" });
  const b = Tensor.fromData([3, 4], [2], { name: "b" });
  const grad = Tensor.fromData([10, 10], [2], { name: "grad_a" });
  a.grad = grad;
  const sgd = createOptimizer("sgd", [a, b], { lr: 0.5 });
  sgd.step();
  assert.deepEqual([...await a.read()], [-4, -3]);
  assert.deepEqual([...await b.read()], [3, 4]);
  sgd.zeroGrad();
  assert.equal(a.grad, null);
  assert.ok(grad.disposed);
  sgd.dispose();
  a.dispose();
  b.dispose();
});
