import { describe, expect, it } from "vitest";
import { loadAddon } from "../../src/native/binding.js";
import type { Dtype, HostTensor } from "../../src/native/types.js";

const addon = loadAddon();

function sample(dtype: Dtype): HostTensor {
  const shape = [2, 3];
  switch (dtype) {
    case "float32": return { data: Float32Array.from([1.5, -2, 3.25, 0, 1e-7, -1e7]), shape, dtype };
    case "float64": return { data: Float64Array.from([Math.PI, -2, 3.25, 0, 1e-300, -1e300]), shape, dtype };
    case "float16": return { data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0, 1, 0x8001]), shape, dtype };
    case "bfloat16": return { data: Uint16Array.from([0x3f80, 0xc000, 0x7f7f, 0, 1, 0x8001]), shape, dtype };
    case "int8": return { data: Int8Array.from([-128, 127, 0, 1, -1, 5]), shape, dtype };
    case "uint8": return { data: Uint8Array.from([0, 255, 7, 1, 2, 3]), shape, dtype };
    case "int16": return { data: Int16Array.from([-32768, 32767, 0, 1, -1, 5]), shape, dtype };
    case "int32": return { data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 1, -1, 5]), shape, dtype };
    case "int64": return { data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, -1n, 5n]), shape, dtype };
    case "bool": return { data: Uint8Array.from([0, 1, 1, 0, 1, 0]), shape, dtype };
  }
}

describe("tensor marshalling", () => {
  const dtypes: Dtype[] = ["float32", "float64", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "bool"];
  for (const dtype of dtypes) {
    it(`round-trips ${dtype} bit for bit`, () => {
      const t = sample(dtype);
      const back = addon.tensorRoundTrip(t);
      expect(back.dtype).toBe(dtype);
      expect(back.shape).toEqual([2, 3]);
      expect(back.data.constructor).toBe(t.data.constructor);
      expect(Array.from(back.data as ArrayLike<number | bigint>)).toEqual(Array.from(t.data as ArrayLike<number | bigint>));
      expect(back.data.buffer).not.toBe(t.data.buffer);
    });
  }

  it("handles empty and scalar tensors and subarray views", () => {
    expect(addon.tensorRoundTrip({ data: new Float32Array(0), shape: [0, 4] }).shape).toEqual([0, 4]);
    expect(Array.from(addon.tensorRoundTrip({ data: Float32Array.from([7]), shape: [] }).data)).toEqual([7]);
    const big = Float64Array.from([9, 8, 7, 6]);
    const view = big.subarray(1, 3);
    expect(Array.from(addon.tensorRoundTrip({ data: view, shape: [2] }).data)).toEqual([8, 7]);
  });

  it("infers dtype from the TypedArray when omitted", () => {
    expect(addon.tensorRoundTrip({ data: Int32Array.from([1, 2]), shape: [2] }).dtype).toBe("int32");
  });

  it("rejects bad shapes, dtypes and values with JS errors, and the process lives on", () => {
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1, 2, 3]), shape: [2, 2] })).toThrow(RangeError);
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1, 2, 3]), shape: [2, 2] })).toThrow(/holds 4 elements but data has 3/);
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1]), shape: [1], dtype: "int32" as never })).toThrow(TypeError);
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1]), shape: [1], dtype: "complex64" as never })).toThrow(/unknown dtype/);
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1]), shape: [-1] })).toThrow(RangeError);
    expect(() => addon.tensorRoundTrip({ data: Float32Array.from([1]), shape: [1.5] })).toThrow(TypeError);
    expect(() => addon.tensorRoundTrip({ data: [1, 2] as never, shape: [2] })).toThrow(/tensor.data: expected a TypedArray/);
    expect(() => addon.tensorRoundTrip(undefined as never)).toThrow(TypeError);
    expect(() => addon.tensorRoundTrip({ data: Uint8Array.from([2]), shape: [1], dtype: "bool" })).toThrow(/only 0 and 1/);
    expect(() => addon.tensorRoundTrip({ data: Uint32Array.from([1]) as never, shape: [1] })).toThrow(/no default dtype/);
    // still alive and working
    expect(Array.from(addon.tensorRoundTrip({ data: Float32Array.from([1]), shape: [1] }).data)).toEqual([1]);
  });
});

describe("threads", () => {
  it("sets and reads intra-op threads and rejects 0", () => {
    const before = addon.getThreads();
    addon.setThreads(1);
    expect(addon.getThreads()).toBe(1);
    addon.setThreads(before);
    expect(() => addon.setThreads(0)).toThrow(RangeError);
  });
});

describe("async native calls", () => {
  it("a ~1 s native call does not block the event loop", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const progress: number[] = [];
    const t0 = Date.now();
    const r = await addon.matmulBench({ n: 256, seconds: 1.0, onProgress: (e) => progress.push(e.fraction as number) });
    clearInterval(timer);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(r.iterations).toBeGreaterThan(0);
    expect(r.gflops).toBeGreaterThan(0);
    expect(ticks).toBeGreaterThan(10); // timers fired during the native call
    expect(progress.length).toBeGreaterThan(1);
    expect(progress[progress.length - 1]).toBe(1);
  });

  it("argument errors reject synchronously with RangeError/TypeError", () => {
    expect(() => addon.matmulBench({ n: 0 })).toThrow(RangeError);
    expect(() => addon.matmulBench({ n: 8, onProgress: 3 as never })).toThrow(/onProgress: expected a function/);
  });
});
