// The shared handle lifetime (native/napi/handle.h) on classes other than T5Model: the optimizer step read while a
// call trains is the one from before the call, native bytes are reported, busy and Symbol.asyncDispose exist on
// every class, and refusals use one wording.
import { describe, expect, it } from "vitest";
import { T5Model, makeBatch } from "../../src/model/model.js";
import { loadAddon } from "../../src/native/binding.js";
import { hasAddon } from "../helpers/native.js";

describe.skipIf(!hasAddon)("native handles", () => {
  it("T5: step and bytes are read on the main thread only; the step shown during a call is the one before it", async () => {
    const m = await T5Model.init("tiny", { seed: 1, vocabSize: 64 });
    try {
      expect(m.bytes).toBeGreaterThan(0);
      m.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 10 });
      const batch = makeBatch([[3, 4, 5]], [[6, 1]]);
      const running = m.trainSteps([batch, batch, batch]);
      expect(m.busy).toBe(true);
      expect(m.step).toBe(0);
      await running;
      expect(m.step).toBe(3);
    } finally {
      await m[Symbol.asyncDispose]();
    }
    expect(m.bytes).toBe(0);
  });

  it("TopkIndex and DioNative: busy, bytes, asyncDispose and the shared refusal wording", async () => {
    const addon = loadAddon();
    const index = new addon.TopkIndex({ dim: 4 });
    index.add({ data: Float32Array.from({ length: 40 }, (_, i) => Math.sin(i)), shape: [10, 4], dtype: "float32" });
    expect(index.bytes).toBeGreaterThan(0);
    const search = index.search({ data: Float32Array.from([1, 0, 0, 0]), shape: [1, 4], dtype: "float32" }, 3);
    expect(index.busy).toBe(true);
    await expect(index[Symbol.asyncDispose]()).rejects.toThrow(/TopkIndex\.dispose: refused while a call \(search\) is still running/);
    await search;
    await index[Symbol.asyncDispose]();
    expect(index.disposed).toBe(true);
    expect(() => index.add({ data: new Float32Array(4), shape: [1, 4] })).toThrow(/^TopkIndex\.add: disposed$/);

    const dio = new addon.DioNative();
    expect(() => dio.info()).toThrow(/^DioNative\.info: init\(\) it first$/);
    await dio[Symbol.asyncDispose]();
    expect(dio.disposed).toBe(true);
    expect(() => new addon.ProcessGroup(undefined as never)).toThrow(TypeError);
  });
});
