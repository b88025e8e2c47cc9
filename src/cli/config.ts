/**
 * The command line of `deno task train`: each entry of the run options (src/pipeline/config.ts) is a
 * flag; `--preset` picks the pipeline (pipelines/) whose values replace the defaults, and explicit flags
 * replace those.
 */
import { parseArgs } from "node:util";
import { PIPELINES } from "../../pipelines/presets.ts";
import { DEFAULTS, OPTIONS, readOption, resolveConfig, type RunConfig } from "../pipeline/config.ts";

interface FlagSpec {
  key: keyof RunConfig;
  type: "string" | "boolean";
  help: string;
}

/** Flag name -> config key, in --help order. */
export const FLAGS: Record<string, FlagSpec> = Object.fromEntries(
  Object.entries(OPTIONS).map(([key, spec]) => [
    spec.flag,
    {
      key: key as keyof RunConfig,
      type: spec.kind.flag,
      help: key === "preset" ? `${spec.help}: ${Object.keys(PIPELINES).join(", ")}` : spec.help,
    },
  ]),
);

/**
 * Parses argv into a validated config (the preset's values, then explicit flags) and the explicit flags'
 * values alone (`overrides`, what `run` takes on top of the pipeline).
 */
export function parseConfig(
  args: string[],
): { config: RunConfig; overrides: Partial<RunConfig>; help: boolean } {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [flag, spec] of Object.entries(FLAGS)) options[flag] = { type: spec.type };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new Error(`train: ${(error as Error).message}; see --help for the flags`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const flagged: Partial<Record<keyof RunConfig, unknown>> = {};
  for (const [flag, spec] of Object.entries(FLAGS)) {
    if (values[flag] !== undefined) flagged[spec.key] = readOption(spec.key, values[flag]);
  }
  const presetName = (flagged.preset as string | undefined) ?? DEFAULTS.preset;
  if (!(presetName in PIPELINES)) {
    throw new Error(
      `--preset: got ${JSON.stringify(presetName)}, expected one of ${Object.keys(PIPELINES).join(", ")}`,
    );
  }
  const overrides = flagged as Partial<RunConfig>;
  const config = resolveConfig(PIPELINES[presetName].config, { preset: presetName }, overrides);
  return { config, overrides, help: values.help === true };
}

/** `--help`'s text: every flag with its help and default, then the presets. */
export function helpText(): string {
  const lines = [
    "deno task train [flags]   train a spiking network with Surrogate Module Learning (SML)",
    "",
    "With no flags: a spiking ResNet-18 (narrow) with two surrogate modules on the embedded MNIST digits.",
    "",
  ];
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const value = DEFAULTS[spec.key];
    const shown = Array.isArray(value)
      ? value.map((v) => (Array.isArray(v) ? v.join("") : v)).join(",")
      : value === ""
      ? "-"
      : String(value);
    lines.push(`  --${flag.padEnd(18)} ${spec.help} (default ${spec.type === "boolean" ? "off" : shown})`);
  }
  lines.push(`  --${"help".padEnd(18)} print this text and exit`);
  lines.push(`  --${"version".padEnd(18)} print the version and exit`);
  lines.push("", "Presets set defaults for a data set and model (explicit flags win):");
  for (const [name, preset] of Object.entries(PIPELINES)) {
    lines.push(`  ${name.padEnd(22)} ${preset.description}`);
  }
  return lines.join("\n");
}
