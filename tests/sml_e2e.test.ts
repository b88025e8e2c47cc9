/**
 * Acceptance of SML training end to end against the PyTorch oracle (tests/oracle/sml_e2e.py, a
 * re-implementation of SPEC §2-6 with autograd's own back-propagation through time): one training-mode
 * forward and backward of a spiking ResNet with two surrogate modules under the SML loss.
 *
 * The oracle uses batch 4 instead of 2 (with two samples the modules' BN layers make the gradient a
 * cancellation that even PyTorch float32 cannot reproduce to 1e-3; see the oracle's docstring) and picks
 * inputs whose membrane potentials keep a margin from the threshold and the surrogate region's edges, so
 * float rounding cannot flip a spike on any adapter; each test checks that record first (assertMargins).
 */
import assert from "node:assert/strict";
import { createModel, type SpikingModel } from "../src/models/registry.ts";
import { loadSafetensors } from "../src/io/state_dict.ts";
import { smlLoss } from "../src/sml/loss.ts";
import { probeGradients } from "../src/sml/gradient_probe.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import {
  assertClose,
  assertMargins,
  assertTensorClose,
  Fixture,
  FIXTURES,
  FORWARD,
  GRADIENT,
  setupGpu,
} from "./helpers.ts";

const CLASSES = 10;
const LOSS_OPTIONS = { temperature: 3, alpha: 0.5, lambda: 0.9 };
/**
 * The least distance of any membrane potential from the threshold and the surrogate region's edges:
 * about 4x the largest float32 drift of the tiny networks' replays; the full-width network has 25 times
 * as many potentials, where a search of 40 inputs reaches 1e-6.
 */
const TINY_MARGIN = 1e-5;
const FULL_MARGIN = 1e-6;
/** Linear layers feeding a training-mode BN: the exact bias gradient is zero (BN removes the mean). */
const ZERO_GRADIENT_SUFFIX = "prediction.2.bias";

function norm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

function inputsOf(f: Fixture): { input: Tensor; labels: Tensor } {
  const labels = f.ints("labels");
  return { input: f.tensor("input"), labels: Tensor.fromData(labels, [labels.length], { name: "labels" }) };
}

/** Runs forward + SML loss + backward on a tape; checks the forward values against the fixture first. */
async function trainStepMatches(model: SpikingModel, f: Fixture): Promise<void> {
  const { input, labels } = inputsOf(f);
  const tape = new Tape();
  try {
    const { out, sml } = tape.run(() => {
      const out = model.forward(input);
      return { out, sml: smlLoss(out.logits, out.moduleLogits, labels, LOSS_OPTIONS) };
    });
    assert.equal(out.moduleLogits.length, 2);
    await assertTensorClose(out.logits, f, "logits", FORWARD);
    for (const [j, y] of out.moduleLogits.entries()) {
      await assertTensorClose(y, f, `module_logits.${j}`, FORWARD);
    }
    await assertTensorClose(sml.loss, f, "loss", FORWARD);
    await assertTensorClose(sml.hard, f, "hard", FORWARD);
    await assertTensorClose(sml.soft, f, "soft", FORWARD);
    tape.backward(sml.loss);
  } finally {
    tape.dispose();
    input.dispose();
    labels.dispose();
  }
}

for (const arch of ["resnet18", "resnet19"]) {
  for (const T of [1, 2]) {
    Deno.test(
      `sml e2e ${arch} T=${T} (width 4, module width 8): logits, loss parts, every gradient and the BN ` +
        "statistics after the step match PyTorch",
      async () => {
        await setupGpu();
        const f = await Fixture.load(`sml_${arch}_t${T}`);
        assertMargins(f, TINY_MARGIN);
        const model = createModel(arch, {
          numClasses: CLASSES,
          T,
          width: 4,
          modules: { positions: [3, 3], width: 8 },
        });
        try {
          await loadSafetensors(`${FIXTURES}sml_${arch}_weights.safetensors`, model);
          await trainStepMatches(model, f);

          const parameters = model.namedParameters();
          const expectedGradients = [...f.arrays.keys()].filter((k) => k.startsWith("grad."));
          assert.deepEqual(parameters.map(([name]) => `grad.${name}`).sort(), expectedGradients.sort());
          for (const [name, parameter] of parameters) {
            if (name.endsWith(ZERO_GRADIENT_SUFFIX)) {
              // Exactly zero in exact arithmetic; float32 leaves rounding noise, judged against the scale
              // of the same layer's weight gradient.
              const weightName = name.replace(/bias$/, "weight");
              const weight = parameters.find(([n]) => n === weightName)![1];
              const biasNorm = norm(await parameter.grad!.readFloat());
              const weightNorm = norm(await weight.grad!.readFloat());
              assert.ok(
                biasNorm <= 1e-4 * weightNorm,
                `${name}: gradient norm ${biasNorm} vs weight ${weightNorm}`,
              );
              continue;
            }
            await assertTensorClose(parameter.grad, f, `grad.${name}`, GRADIENT);
          }

          let statistics = 0;
          for (const entry of model.stateEntries()) {
            if (entry.kind === "parameter") continue;
            const expected = f.get(`after.${entry.name}`);
            statistics++;
            if (entry.kind === "counter") {
              assert.equal(entry.counter.value, Number((expected.data as BigInt64Array)[0]), entry.name);
            } else {
              await assertTensorClose(entry.tensor, f, `after.${entry.name}`, FORWARD);
            }
          }
          assert.equal(statistics, [...f.arrays.keys()].filter((k) => k.startsWith("after.")).length);
        } finally {
          model.dispose();
        }
      },
    );
  }
}

for (const T of [1, 2]) {
  Deno.test(
    `gradient probe resnet18 T=${T}: SNN-path and module-path gradients at the attachment points match ` +
      "PyTorch and sum to the block-output gradient",
    async () => {
      await setupGpu();
      const f = await Fixture.load(`sml_resnet18_t${T}`);
      assertMargins(f, TINY_MARGIN);
      const model = createModel("resnet18", {
        numClasses: CLASSES,
        T,
        width: 4,
        modules: { positions: [3, 3], width: 8 },
      });
      const { input, labels } = inputsOf(f);
      try {
        await loadSafetensors(`${FIXTURES}sml_resnet18_weights.safetensors`, model);
        const units = [...f.ints("probe.units")].map((u) => u - 1);
        const report = await probeGradients(model, input, labels, units, LOSS_OPTIONS);
        assertClose([report.loss], f.floats("loss"), FORWARD, "probe loss");
        assert.deepEqual(report.points.map((p) => p.unit), [...f.ints("probe.units")]);
        const column = (key: "snnNorm" | "moduleNorm" | "cosine" | "totalNorm") =>
          report.points.map((p) => p[key] ?? NaN);
        assertClose(column("snnNorm"), f.floats("probe.snn_norm"), GRADIENT, "probe |g_snn|");
        assertClose(column("moduleNorm"), f.floats("probe.module_norm"), GRADIENT, "probe |g_module|");
        assertClose(column("cosine"), f.floats("probe.cosine"), GRADIENT, "probe cosine");
        assertClose(column("totalNorm"), f.floats("probe.total_norm"), GRADIENT, "probe |g_total|");
        for (const p of report.points) {
          assert.ok(p.cosine! >= -1 && p.cosine! <= 1, `cosine ${p.cosine} at unit ${p.unit}`);
          // |g_snn + g_module|^2 = |g_snn|^2 + |g_module|^2 + 2 cos |g_snn| |g_module|.
          const recomposed = Math.sqrt(
            p.snnNorm ** 2 + p.moduleNorm! ** 2 + 2 * p.cosine! * p.snnNorm * p.moduleNorm!,
          );
          assertClose([recomposed], [p.totalNorm], GRADIENT, `unit ${p.unit} total from its parts`);
        }
        for (const p of model.parameters()) assert.equal(p.grad, null, `probe left a gradient on ${p.name}`);
      } finally {
        model.dispose();
        input.dispose();
        labels.dispose();
      }
    },
  );
}

Deno.test(
  "sml e2e full-width resnet19 (width 64, module width 256, T=2) from the seeded init: logits, loss, " +
    "gradient norms and sampled gradient elements match PyTorch",
  async () => {
    await setupGpu();
    const f = await Fixture.load("sml_resnet19_full");
    assertMargins(f, FULL_MARGIN);
    const model = createModel("resnet19", {
      numClasses: CLASSES,
      T: 2,
      seed: Number(f.ints("seed")[0]),
      modules: { positions: [3, 3] },
    });
    try {
      await trainStepMatches(model, f);
      const parameters = model.namedParameters();
      assert.deepEqual(
        parameters.map(([name]) => `gradnorm.${name}`).sort(),
        [...f.arrays.keys()].filter((k) => k.startsWith("gradnorm.")).sort(),
      );
      for (const [name, parameter] of parameters) {
        const gradient = await parameter.grad!.readFloat();
        const expectedNorm = f.floats(`gradnorm.${name}`)[0];
        if (name.endsWith(ZERO_GRADIENT_SUFFIX)) {
          const weight = parameters.find(([n]) => n === name.replace(/bias$/, "weight"))![1];
          const weightNorm = norm(await weight.grad!.readFloat());
          assert.ok(norm(gradient) <= 1e-4 * weightNorm, `${name}: gradient norm ${norm(gradient)}`);
          continue;
        }
        assertClose([norm(gradient)], [expectedNorm], GRADIENT, `${name} gradient norm`);
        // Elements near zero are judged against the whole tensor's scale (its RMS), as `compare` does.
        const rms = expectedNorm / Math.sqrt(gradient.length);
        const expected = f.floats(`sample.${name}`);
        [...f.ints(`sample_index.${name}`)].forEach((index, i) => {
          const error = Math.abs(gradient[index] - expected[i]);
          assert.ok(
            error <= GRADIENT.rtol * (Math.abs(expected[i]) + rms),
            `${name}[${index}] is ${gradient[index]}, expected ${expected[i]} (tensor RMS ${rms})`,
          );
        });
      }
    } finally {
      model.dispose();
    }
  },
);
