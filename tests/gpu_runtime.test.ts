/**
 * The GPU runtime's promises: oversize tensors are refused by name, buffers and pipelines are reused
 * across identical steps, f16 round-trips where the adapter has it, and a lost device is an error.
 */
import assert from "node:assert/strict";
import { gpu, VULKAN_MANIFEST_DIRS } from "../src/gpu/device.ts";
import {
  bindGroupCount,
  compiledKernelCount,
  deferHostStep,
  readBuffer,
  runDeferred,
  synchronize,
  writeBuffer,
} from "../src/gpu/kernels.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { poolStats, resetPeak } from "../src/gpu/pool.ts";
import { add, leakyRelu } from "../src/ops/elementwise.ts";
import { Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { setupGpu, TestRng } from "./helpers.ts";

Deno.test("gpu: a tensor larger than the storage binding limit is refused with its name, size and the limit", async () => {
  await setupGpu();
  const limit = Math.min(gpu().maxStorageBindingBytes, gpu().maxBufferBytes);
  const elements = Math.floor(limit / 4) + 1024;
  assert.throws(
    () => Tensor.empty([elements], { name: "huge_activation" }),
    new RegExp(
      `tensor huge_activation \\[${elements}\\] f32 needs \\d+ bytes, more than .*limit of ${limit} bytes`,
    ),
  );
});

Deno.test("gpu: a repeated step allocates no buffer, compiles no pipeline and makes no bind group after the first", async () => {
  await setupGpu();
  const x = Tensor.fromData(Float32Array.from({ length: 300 }, (_, i) => i / 100 - 1), [3, 100], {
    requiresGrad: true,
  });
  const step = () => {
    const tape = new Tape();
    const y = tape.run(() => add(leakyRelu(x), x));
    tape.backward(y);
    tape.dispose();
    x.grad?.dispose();
    x.grad = null;
  };
  step();
  await synchronize();
  const before = poolStats();
  const kernels = compiledKernelCount();
  const bindGroups = bindGroupCount();
  for (let i = 0; i < 3; i++) step();
  await synchronize();
  const after = poolStats();
  assert.equal(after.buffersCreated, before.buffersCreated);
  assert.equal(after.bytesInUse, before.bytesInUse, "nothing leaks across steps");
  assert.equal(compiledKernelCount(), kernels);
  assert.equal(bindGroupCount(), bindGroups, "each step's tensors land in the last step's buffers");
  x.dispose();
});

Deno.test("tape: backward with freeForward frees each op's forward tensors once used: same gradients, lower peak", async () => {
  await setupGpu();
  const x = Tensor.fromData(new TestRng(1).uniforms(4096), [4, 1024], {
    requiresGrad: true,
  });
  const run = async (freeForward: boolean) => {
    const tape = new Tape();
    // A chain of eight ops: every forward tensor stays alive until backward reaches its op.
    const y = tape.run(() => {
      let h = x;
      for (let i = 0; i < 8; i++) h = add(leakyRelu(h), h);
      return h;
    });
    resetPeak();
    const start = poolStats().bytesInUse;
    tape.backward(y, undefined, { freeForward });
    const { peakBytesInUse, bytesInUse } = poolStats();
    const growth = { peak: peakBytesInUse - start, end: bytesInUse - start };
    if (freeForward) assert.throws(() => y.buffer, /used after dispose/);
    const grad = await x.grad!.readFloat();
    tape.dispose();
    x.grad!.dispose();
    x.grad = null;
    return { ...growth, grad };
  };
  const kept = await run(false);
  const freed = await run(true);
  assert.deepEqual(freed.grad, kept.grad);
  // 16 forward tensors of 16 KiB: kept, backward ends above where it started (x's gradient); freed, it
  // ends with all but the input's and its own gradient's buffers given back, and peaks lower.
  const tensorBytes = 4096 * 4;
  assert.ok(kept.end >= tensorBytes, `keeping: ${kept.end} bytes more after backward`);
  assert.ok(freed.end <= -15 * tensorBytes, `freeing: ${freed.end} bytes more after backward`);
  assert.ok(freed.peak < kept.peak, `backward's peak: ${freed.peak} bytes freeing, ${kept.peak} keeping`);
  x.dispose();
});

Deno.test("gpu: f16 tensors upload and read back where the adapter has shader-f16", async () => {
  await setupGpu();
  if (!gpu().hasF16) {
    assert.throws(() => Tensor.fromData(new Uint16Array(4), [4], { dtype: "f16" }), /no shader-f16/);
    return;
  }
  const values = [0, 1, -2.5, 65504, 0.0001];
  const t = Tensor.fromData(values, [5], { dtype: "f16" });
  const back = await t.readFloat();
  assert.deepEqual(Array.from(back.slice(0, 4)), [0, 1, -2.5, 65504]);
  assert.ok(Math.abs(back[4] - 0.0001) < 1e-6);
  t.dispose();
});

Deno.test("gpu: a lost device surfaces as an error naming it, not a hang", async () => {
  const script = `
    import { initGpu, gpu } from "${new URL("../src/gpu/device.ts", import.meta.url).href}";
    import { synchronize } from "${new URL("../src/gpu/kernels.ts", import.meta.url).href}";
    import { fill } from "${new URL("../src/ops/elementwise.ts", import.meta.url).href}";
    await initGpu();
    gpu().device.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    try {
      fill([16], 1);
      await synchronize();
      console.log("no error");
    } catch (error) {
      console.log(error.message);
    }`;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.match(new TextDecoder().decode(stdout), /GPU device lost .*restart it from the last checkpoint/);
});

Deno.test("gpu: with a Vulkan driver installed and no backend chosen, Vulkan is used and Mesa's GL driver is never loaded", async () => {
  // The choice is made on Linux only, and /proc/self/maps shows which drivers a process loaded.
  if (Deno.build.os !== "linux") return;
  const script = `
    import { initGpu } from "${new URL("../src/gpu/device.ts", import.meta.url).href}";
    const { adapter } = await initGpu();
    const maps = Deno.readTextFileSync("/proc/self/maps");
    console.log(JSON.stringify({ backend: adapter.backend, gl: /dri\\/\\w+_dri\\.so|libEGL_mesa/.test(maps) }));`;
  const env = { ...Deno.env.toObject() };
  delete env.DENO_WEBGPU_BACKEND;
  const { stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const report = JSON.parse(new TextDecoder().decode(stdout) || "null");
  assert.ok(report, new TextDecoder().decode(stderr));
  const vulkanInstalled = VULKAN_MANIFEST_DIRS.some((dir) => {
    try {
      return Array.from(Deno.readDirSync(dir)).some((entry) => entry.name.endsWith(".json"));
    } catch {
      return false;
    }
  });
  if (!vulkanInstalled) return assert.equal(report.backend, "auto");
  assert.deepEqual(report, { backend: "vulkan", gl: false });
});

Deno.test("gpu: deferred mode replays kernels, uploads and a host step in the order they were recorded", async () => {
  await setupGpu();
  const data = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * 3);
  // x -> y = leakyRelu(x) -> y doubled (on the host) -> (y + x) + an upload made after the host step.
  const steps = (double: (y: Tensor) => void | Promise<void>) => {
    const x = Tensor.fromData(data, [300]);
    const y = leakyRelu(x);
    const rest = () => {
      const w = Tensor.fromData(data.map((v) => v + 1), [300]);
      const sum = add(y, x);
      const out = add(sum, w);
      for (const t of [x, y, sum, w]) t.dispose();
      return out;
    };
    const doubled = double(y);
    return doubled instanceof Promise ? doubled.then(rest) : rest();
  };
  const eager = await steps(async (y) => {
    writeBuffer(y.buffer, (await y.readFloat()).map((v) => 2 * v));
  });
  const reference = await eager.readFloat();
  eager.dispose();
  const undoubled = await steps(() => {});
  assert.notDeepEqual(await undoubled.readFloat(), reference, "the host step changes the result");
  undoubled.dispose();
  let calls = 0;
  let refused: Promise<string> | undefined;
  const deferred = await runDeferred(() => {
    const out = steps((y) =>
      deferHostStep(y.buffer, 0, y.byteLength, (values) => {
        calls++;
        for (let i = 0; i < values.length; i++) values[i] *= 2;
      })
    ) as Tensor;
    assert.equal(calls, 0, "a host step runs at the replay, not while recording");
    refused = readBuffer(out.buffer, 4).then(() => "read", (error) => error.message);
    return out;
  });
  assert.match(await refused!, /readBuffer inside runDeferred/);
  assert.equal(calls, 1);
  assert.deepEqual(await deferred.readFloat(), reference);
  deferred.dispose();
});

Deno.test("gpu: kernels with uniform blocks recorded in deferred mode give the immediate mode's results", async () => {
  await setupGpu();
  // Two SGD steps with different learning rates, an upload (a submit) between them: the second step
  // rewrites the uniform slot the first one used, so the replay must write each step's own copy.
  const run = () => {
    const weight = Tensor.fromData(Float32Array.from({ length: 64 }, (_, i) => i / 10), [64]);
    const optimizer = createOptimizer("sgd", [weight], { lr: 0.1, momentum: 0.9 });
    for (const lr of [0.1, 0.25, 0.05]) {
      weight.grad?.dispose();
      weight.grad = Tensor.fromData(Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * lr)), [64]);
      optimizer.lr = lr;
      optimizer.step();
      optimizer.zeroGrad();
    }
    return { weight, optimizer };
  };
  const immediate = run();
  const expected = await immediate.weight.readFloat();
  const deferred = await runDeferred(run);
  assert.deepEqual(await deferred.weight.readFloat(), expected);
  for (const { weight, optimizer } of [immediate, deferred]) {
    optimizer.dispose();
    weight.grad?.dispose();
    weight.dispose();
  }
});
