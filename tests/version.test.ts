/** One version: mod.ts's VERSION, deno.json's "version" and `train --version` agree. */
import assert from "node:assert/strict";
import { VERSION } from "../mod.ts";

Deno.test("version: VERSION is deno.json's version, and train --version prints it and exits", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.match(VERSION, /^\d+\.\d+\.\d+(-[\w.]+)?$/, "a semver version");
  assert.equal(config.version, VERSION, "deno.json's version");
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      new URL("../src/cli/train.ts", import.meta.url).pathname,
      "--version",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(
    new TextDecoder().decode(stdout),
    `spikegpu ${VERSION}\n`,
    "the version line and nothing else",
  );
});
