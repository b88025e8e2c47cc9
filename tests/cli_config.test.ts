import assert from "node:assert/strict";
import { helpText, parseConfig } from "../src/cli/config.ts";
import { DEFAULTS } from "../src/pipeline/config.ts";
import { PIPELINES } from "../pipelines/presets.ts";

Deno.test("config: no flags gives the embedded MNIST default with two surrogate modules", () => {
  const { config } = parseConfig([]);
  assert.equal(config.dataset, "mnist");
  assert.equal(config.preset, "mnist");
  assert.deepEqual(config.sbPlaces, DEFAULTS.sbPlaces);
  assert.equal(config.sbPlaces.length, 2);
  assert.equal(config.noSb, false);
});

Deno.test("config: a preset supplies defaults and explicit flags override them", () => {
  const { config, overrides } = parseConfig([
    "--preset",
    "cifar10-resnet19",
    "--data-dir",
    "/data",
    "--T",
    "4",
  ]);
  assert.equal(config.model, "resnet19");
  assert.equal(config.batchSize, PIPELINES["cifar10-resnet19"].config.batchSize);
  assert.equal(config.T, 4);
  assert.ok("T" in overrides && !("batchSize" in overrides));
});

Deno.test("config: list flags parse (--sb-places 3,4,6 --sb-kernels 753,31 --augment autoaugment,cutout)", () => {
  const { config } = parseConfig([
    "--sb-places",
    "3,4",
    "--sb-kernels",
    "753,31",
    "--augment",
    "autoaugment,cutout",
  ]);
  assert.deepEqual(config.sbPlaces, [3, 4]);
  assert.deepEqual(config.sbKernels, [[7, 5, 3], [3, 1]]);
  assert.deepEqual(config.augment, ["autoaugment", "cutout"]);
});

const BAD: [string[], RegExp][] = [
  [["--T", "0"], /--T: got "0", expected a whole number >= 1/],
  [["--T", "two"], /--T: got "two"/],
  [["--batch-size", "-3"], /--batch-size/],
  [["--lr", "0"], /--lr/],
  [["--lambda", "1.5"], /--lambda: .*\[0, 1\]/],
  [["--optimizer", "rmsprop"], /--optimizer: .*sgd, adam, adamw/],
  [["--dataset", "svhn"], /--dataset: .*mnist/],
  [["--model", "vgg"], /--model: .*resnet18/],
  [["--sb-kernels", "9"], /--sb-kernels: .*7, 5, 3, 1/],
  [["--sb-places", "3,0"], /--sb-places/],
  [["--augment", "none,cutout"], /--augment: .*none alone/],
  [
    ["--augment", "standard,blur"],
    /--augment: got "standard,blur", expected one of none, standard, autoaugment/,
  ],
  [["--no-such-flag"], /no-such-flag.*--help/],
  [["--dataset", "cifar10"], /--data-dir: the cifar10 data set needs its folder/],
  [["--test-only"], /--test-only: needs weights/],
  [["--warmup-epochs", "5", "--epochs", "3"], /--warmup-epochs: .*fewer than --epochs/],
  [
    ["--resume", "a.ckpt", "--init-weights", "b.safetensors"],
    /--init-weights: cannot be combined with --resume/,
  ],
  [["--sb-places", "3,3,3", "--sb-kernels", "753,753"], /--sb-kernels: .*one group or 3/],
];

for (const [args, message] of BAD) {
  Deno.test(`config: ${args.join(" ")} is refused with a message naming the flag`, () => {
    assert.throws(() => parseConfig(args), message);
  });
}

Deno.test("config: --help lists every flag with its default", () => {
  const text = helpText();
  for (const flag of ["--dataset", "--sb-places", "--no-sb", "--resume", "--export-weights", "--log-every"]) {
    assert.ok(text.includes(flag), `help lacks ${flag}`);
  }
  assert.match(text, /--T\s+time steps \(>= 1\) \(default 1\)/);
});
