/**
 * A process started without XDG_RUNTIME_DIR gets a private runtime folder before the adapter loads, so
 * libwayland's "XDG_RUNTIME_DIR is invalid or not set" lines never reach the user; the folder is the
 * process's own (mode 0700) and is gone after it exits.
 */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";

Deno.test("gpu: a run with XDG_RUNTIME_DIR unset prints no XDG_RUNTIME_DIR error and leaves no folder", async () => {
  const device = new URL("../src/gpu/device.ts", import.meta.url).href;
  const script = await Deno.makeTempFile({ prefix: "spikegpu-xdg-", suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { describeAdapter, initGpu } from "${device}";
    const { adapter } = await initGpu();
    const dir = Deno.env.get("XDG_RUNTIME_DIR");
    console.log(JSON.stringify({ dir, mode: dir && Deno.statSync(dir).mode! & 0o777, adapter: describeAdapter(adapter) }));`,
  );
  const env = Deno.env.toObject();
  delete env.XDG_RUNTIME_DIR;
  try {
    // The train task's permissions: the folder is made in the temp folder.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-env", `--allow-write=${tmpdir()}`, script],
      clearEnv: true,
      env: { ...env, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    assert.doesNotMatch(out + err, /XDG_RUNTIME_DIR/, "no libwayland complaint");
    const { dir, mode } = JSON.parse(out.trim().split("\n").at(-1)!);
    assert.match(dir, /spikegpu-runtime-/, "a private runtime folder was set");
    assert.equal(mode, 0o700, "readable by the process's user only");
    assert.equal(await Deno.stat(dir).then(() => "exists", () => "gone"), "gone", "removed at exit");
  } finally {
    await Deno.remove(script);
  }
});
