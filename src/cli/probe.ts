/**
 * `--probe`: the gradient-error probe on one training batch. With modules, it shows at each attachment
 * point the gradient through the SNN, through the module, their cosine and the total; then the same
 * points with the modules dropped (plain surrogate-gradient training from the same weights).
 */
import type { SpikingModel } from "../models/registry.ts";
import type { BatchSource } from "../pipeline/stage.ts";
import { upload } from "../pipeline/train_step.ts";
import { formatProbeReport, probeGradients } from "../sml/gradient_probe.ts";
import { Scope } from "../tensor/scope.ts";
import type { RunConfig } from "../pipeline/config.ts";

export async function runProbe(
  config: RunConfig,
  model: SpikingModel,
  source: BatchSource,
): Promise<void> {
  const iterator = source.epoch(0)[Symbol.asyncIterator]();
  const first = await iterator.next();
  await iterator.return?.();
  if (first.done) throw new Error("--probe: the training set yielded no batch");
  const units = model.attachments.length ? model.attachments : defaultUnits(config, model);
  const loss = { temperature: config.temperature, alpha: config.alpha, lambda: config.lambda };
  const scope = new Scope();
  try {
    const batch = scope.run(() => upload(first.value));
    model.train();
    if (model.surrogates.length) {
      const withModules = await probeGradients(model, batch.input, batch.labels, units, loss);
      console.log(
        formatProbeReport(
          `gradient probe, ${config.model} with ${model.surrogates.length} modules`,
          withModules,
        ),
      );
    }
    model.useSurrogates = false;
    const without = await probeGradients(model, batch.input, batch.labels, units, loss);
    model.useSurrogates = true;
    console.log(
      formatProbeReport(`gradient probe, ${config.model} without modules (cross-entropy only)`, without),
    );
  } finally {
    scope.dispose();
  }
}

/** For a model built with --no-sb, probe where the modules would attach (--sb-places). */
function defaultUnits(config: RunConfig, model: SpikingModel): number[] {
  const units: number[] = [];
  let unit = 0;
  for (const step of config.sbPlaces) {
    unit += step;
    if (unit <= model.blockCount) units.push(unit - 1);
  }
  return units;
}
