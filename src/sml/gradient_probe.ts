/**
 * The paper's gradient analysis, measured: at each attachment point, the gradient of the loss w.r.t.
 * the block's output spikes splits into the part arriving through the rest of the SNN (surrogate
 * gradients all the way) and the part arriving through the surrogate module (an ANN path). The probe
 * reports both, their norms and their cosine similarity, and the SNN-path gradient of a model without
 * modules at the same points.
 */
import { record } from "../tensor/tape.ts";
import { Tape } from "../tensor/tape.ts";
import { untracked } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { map } from "../ops/elementwise.ts";
import type { AttachmentTaps, ForwardResult } from "../models/attachment.ts";
import { smlLoss, type SmlLossOptions } from "./loss.ts";

/** What the probe needs of a model. */
export interface ProbedModel {
  /** Forward with taps at the attachment points. */
  forward(input: Tensor, taps?: AttachmentTaps): ForwardResult;
  /** Every parameter. */
  parameters(): Tensor[];
}

/** The gradient at one attachment point, split by path. */
export interface PointReport {
  /** 1-based unit (block or layer) number. */
  unit: number;
  /** Norm of the gradient arriving through the rest of the SNN. */
  snnNorm: number;
  /** Null for a model without a module at this point. */
  moduleNorm: number | null;
  /** cos(SNN-path gradient, module-path gradient). */
  cosine: number | null;
  /** Norm of the total gradient the block output receives. */
  totalNorm: number;
}

/** The probe's result for one batch. */
export interface ProbeReport {
  /** The batch's loss. */
  loss: number;
  /** One report per attachment point. */
  points: PointReport[];
}

/** An identity op whose backward hands a copy of the passing gradient to `sink`. */
function tap(x: Tensor, sink: (gradient: Tensor) => void): Tensor {
  const out = x.view(x.shape, `${x.name}_tap`);
  return record(out, [x], (g) => {
    sink(untracked(() => map("probe_copy", [g], "a")));
    return [g];
  });
}

async function flat(t: Tensor | undefined): Promise<Float32Array | null> {
  if (!t) return null;
  const values = await t.readFloat();
  t.dispose();
  return values;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Runs one training-mode forward and backward of `model` on a batch and measures the gradients at
 * `units` (0-based unit indices; for a model with modules, its attachment points). Parameter gradients
 * produced here are discarded, so probing does not disturb training.
 */
export async function probeGradients(
  model: ProbedModel,
  input: Tensor,
  labels: Tensor,
  units: readonly number[],
  lossOptions: SmlLossOptions = {},
): Promise<ProbeReport> {
  const snn: Tensor[] = [];
  const viaModule: Tensor[] = [];
  const taps: AttachmentTaps = {
    units,
    snnPath: (i, x) => tap(x, (g) => (snn[i] = g)),
    modulePath: (i, x) => tap(x, (g) => (viaModule[i] = g)),
  };
  const tape = new Tape();
  let lossValue: number;
  try {
    const { loss } = tape.run(() => {
      const { logits, moduleLogits } = model.forward(input, taps);
      return smlLoss(logits, moduleLogits, labels, lossOptions);
    });
    tape.backward(loss);
    lossValue = (await loss.readFloat())[0];
  } finally {
    tape.dispose();
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
  const points: PointReport[] = [];
  for (let i = 0; i < units.length; i++) {
    const g = await flat(snn[i]);
    const m = await flat(viaModule[i]);
    if (!g) throw new Error(`gradient probe: no gradient reached unit ${units[i] + 1} through the SNN`);
    const snnNorm = Math.sqrt(dot(g, g));
    const moduleNorm = m ? Math.sqrt(dot(m, m)) : null;
    const total = m ? g.map((v, k) => v + m[k]) : g;
    points.push({
      unit: units[i] + 1,
      snnNorm,
      moduleNorm,
      cosine: m && moduleNorm ? dot(g, m) / (snnNorm * moduleNorm || 1) : null,
      totalNorm: Math.sqrt(dot(total, total)),
    });
  }
  return { loss: lossValue, points };
}

/** The report as a table under `title`. */
export function formatProbeReport(title: string, report: ProbeReport): string {
  const lines = [
    `${title} (loss ${report.loss.toFixed(4)})`,
    "  unit   |g_snn|      |g_module|   cos(snn,module)  |g_total|",
  ];
  for (const p of report.points) {
    lines.push(
      `  ${String(p.unit).padStart(4)}   ${p.snnNorm.toExponential(3).padEnd(11)}  ` +
        `${(p.moduleNorm?.toExponential(3) ?? "-").padEnd(11)}  ${
          (p.cosine?.toFixed(4) ?? "-").padStart(15)
        }  ` +
        `${p.totalNorm.toExponential(3)}`,
    );
  }
  return lines.join("\n");
}
