// Checkpoint I/O through the addon (native/napi/io_wrap.cc + src/model/checkpoint.ts).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  inspectCheckpoint,
  readCheckpointWeights,
  readPeftAdapter,
  readSafetensors,
  writePeftAdapter,
  writeSafetensors,
} from "../../src/model/checkpoint.js";
import { loadAddon } from "../../src/native/binding.js";
import type { HostTensor } from "../../src/native/types.js";
import { hasShared, repoRoot, sharedDir } from "../helpers/native.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-io-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("safetensors through the addon", () => {
  it("round-trips tensors of several dtypes bit for bit, atomically", async () => {
    const p = join(tmp, "a.safetensors");
    const t: Record<string, HostTensor> = {
      w: { data: Float32Array.from([1.5, -2, NaN, Infinity]), shape: [2, 2], dtype: "float32" },
      h: { data: Uint16Array.from([0x3c00, 0x8001]), shape: [2], dtype: "float16" },
      ids: { data: BigInt64Array.from([-(2n ** 63n), 7n]), shape: [2], dtype: "int64" },
      m: { data: Uint8Array.from([1, 0, 1]), shape: [3], dtype: "bool" },
    };
    await writeSafetensors(p, t, { format: "pt" });
    const r = await readSafetensors(p);
    expect(r.metadata).toEqual({ format: "pt" });
    for (const [k, v] of Object.entries(t)) {
      const got = r.tensors.get(k)!;
      expect(got.dtype).toBe(v.dtype);
      expect(got.shape).toEqual(v.shape);
      expect(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength)).toEqual(
        Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
      );
    }
    expect(readdirSync(tmp).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const h = loadAddon().readSafetensorsHeader(p);
    expect(h.headerBytes % 8).toBe(0);
    expect(h.tensors.map((e) => e.name)).toEqual(["ids", "w", "h", "m"]); // element size desc, then name
  });

  it("rejects a corrupted file with an Error naming the file and tensor", async () => {
    const p = join(tmp, "bad.safetensors");
    const header = JSON.stringify({ w: { dtype: "F32", shape: [4], data_offsets: [0, 8] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(p, Buffer.concat([len, Buffer.from(header), Buffer.alloc(8)]));
    await expect(readSafetensors(p)).rejects.toThrow(/bad\.safetensors: tensor 'w': .*need 16/);
    expect(() => loadAddon().readSafetensorsHeader(p)).toThrow(/bad\.safetensors/);
    await expect(readSafetensors(join(tmp, "missing.safetensors"))).rejects.toThrow(/not found/);
  });

  it("reads pytorch_model.bin with the restricted unpickler; refuses what it cannot read safely", async () => {
    const d = join(tmp, "pickle");
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    writeFileSync(join(d, "pytorch_model.bin"), "x");
    await expect(readCheckpointWeights(d)).rejects.toThrow(/pytorch_model\.bin: not a torch\.save zip archive/);
    const bin = join(repoRoot, "test", "fixtures", "torch-bin");
    const info = inspectCheckpoint(join(bin, "tiny-t5"));
    expect(info.files).toEqual([join(bin, "tiny-t5", "pytorch_model.bin")]);
    expect(info.tensors.length).toBe(31);
    expect(info.tensors[0]).toMatchObject({ name: "shared.weight", dtype: "float32", shape: [12, 4] });
    expect(loadAddon().readWeightsHeader(join(bin, "tiny-t5-bf16.bin"))[0]).toMatchObject({ name: "shared.weight", dtype: "bfloat16" });
    const w = new Map(await readCheckpointWeights(join(bin, "tiny-t5")));
    const values = JSON.parse(readFileSync(join(bin, "values.json"), "utf8"));
    expect(Array.from(w.get("lm_head.weight")!.data as Float32Array)).toEqual(values["lm_head.weight"].values);
    expect(() => loadAddon().readWeightsHeader(join(bin, "evil-os-system.bin"))).toThrow(/posix\.system.*nothing from the file was executed/);
  });

  it("bf16/fp16 safetensors load to float32 exactly by default; convertCheckpoint writes and widens them bit for bit", async () => {
    const { T5Model, makeBatch } = await import("../../src/model/model.js");
    const { convertCheckpoint } = await import("../../src/model/checkpoint.js");
    const src = join(tmp, "f32-model");
    const m = await T5Model.init("tiny", { seed: 2, vocabSize: 300 });
    await m.save(src);
    m.dispose();
    const batch = makeBatch([[5, 9, 17, 1]]);
    for (const dtype of ["bfloat16", "float16"] as const) {
      const half = join(tmp, `half-${dtype}`);
      const r = await convertCheckpoint(src, half, { dtype });
      expect(r.copied).toContain("config.json");
      const st = await readSafetensors(join(half, "model.safetensors"));
      expect([...st.tensors.values()].every((t) => t.dtype === dtype)).toBe(true);
      const back = join(tmp, `back-${dtype}`);
      await convertCheckpoint(half, back, { dtype: "float32" });
      const w = (await readSafetensors(join(back, "model.safetensors"))).tensors.get("shared.weight")!.data as Float32Array;
      const h = st.tensors.get("shared.weight")!.data as Uint16Array;
      for (let i = 0; i < 256; i++) expect(w[i]).toBe(dtype === "bfloat16" ? bf16ToFloat(h[i]!) : halfToFloat(h[i]!));
      // Loading the half file (float32 by default) = loading its exact float32 widening.
      const a = await T5Model.load(half);
      const b = await T5Model.load(back);
      try {
        expect(await a.evalLoss([makeBatch([[5, 9, 17, 1]], [[4, 8, 1]])])).toEqual(await b.evalLoss([makeBatch([[5, 9, 17, 1]], [[4, 8, 1]])]));
        expect(await a.generate(batch, { maxNewTokens: 4 })).toEqual(await b.generate(batch, { maxNewTokens: 4 }));
      } finally {
        a.dispose();
        b.dispose();
      }
    }
    // Kept as stored: bfloat16 runs on CPU.
    const s = await T5Model.load(join(tmp, "half-bfloat16"), { dtype: "stored" });
    try {
      const [ids] = await s.generate(batch, { maxNewTokens: 4 });
      expect(ids!.length).toBeLessThanOrEqual(4);
    } finally {
      s.dispose();
    }
  });

  it("T5Model.load keeps bfloat16 as stored when asked, else loads float32", async () => {
    const { T5Model } = await import("../../src/model/model.js");
    const src = join(repoRoot, "test", "fixtures", "torch-bin");
    const d = join(tmp, "bf16-model");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "config.json"), readFileSync(join(src, "tiny-t5", "config.json")));
    writeFileSync(join(d, "pytorch_model.bin"), readFileSync(join(src, "tiny-t5-bf16.bin")));
    const f32 = await T5Model.load(d);
    const bf16 = await T5Model.load(d, { dtype: "stored" });
    try {
      expect(f32.parameterCount().total).toBe(476);
      expect(bf16.bytes).toBeGreaterThan(0);
      expect(bf16.bytes).toBeLessThan(f32.bytes * 0.6); // 2 bytes per parameter instead of 4
    } finally {
      f32.dispose();
      bf16.dispose();
    }
    await expect(T5Model.load(d, { dtype: "int8" as never })).rejects.toThrow(/options\.dtype: expected/);
  });
});

describe.skipIf(!hasShared)("fixture checkpoints", () => {
  it("inspects and reads the t5-parity checkpoint", async () => {
    const dir = join(sharedDir, "fixtures", "t5-parity", "relu-tied");
    const info = inspectCheckpoint(dir);
    expect(info.format).toBe("single");
    expect(info.tensors.length).toBe(60);
    const shared = info.tensors.find((t) => t.name === "shared.weight")!;
    expect(shared.shape).toEqual([info.config!.vocab_size, info.config!.d_model]);
    const w = new Map(await readCheckpointWeights(dir));
    const s = w.get("shared.weight")!;
    // Independent parse of the raw bytes: header length, JSON, offsets.
    const raw = readFileSync(join(dir, "model.safetensors"));
    const n = Number(raw.readBigUInt64LE(0));
    const hdr = JSON.parse(raw.subarray(8, 8 + n).toString("utf8"));
    const [b] = hdr["shared.weight"].data_offsets as [number, number];
    expect((s.data as Float32Array)[0]).toBe(raw.readFloatLE(8 + n + b));
  });
});

describe("PEFT adapters through the addon", () => {
  it("writes PEFT's layout and reads it back", async () => {
    const dir = join(tmp, "adapter");
    const r = 2;
    const A: HostTensor = { data: Float32Array.from({ length: r * 4 }, (_, i) => i), shape: [r, 4], dtype: "float32" };
    const B: HostTensor = { data: Float32Array.from({ length: 3 * r }, (_, i) => -i), shape: [3, r], dtype: "float32" };
    await writePeftAdapter(dir, [{ module: "encoder.block.0.layer.0.SelfAttention.q", A, B }], {
      r,
      alpha: 8,
      baseModelNameOrPath: "t5-small",
    });
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", task_type: "SEQ_2_SEQ_LM", r: 2, lora_alpha: 8, target_modules: ["q"] });
    const h = loadAddon().readSafetensorsHeader(join(dir, "adapter_model.safetensors"));
    expect(h.tensors.map((t) => t.name).sort()).toEqual([
      "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight",
      "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight",
    ]);
    const a = await readPeftAdapter(dir);
    expect(a.scaling).toBe(4);
    expect(a.modules[0].module).toBe("encoder.block.0.layer.0.SelfAttention.q");
    expect(Array.from(a.modules[0].B.data as Float32Array)).toEqual(Array.from(B.data as Float32Array));
    await expect(
      writePeftAdapter(join(tmp, "bad-adapter"), [{ module: "q", A, B }], { r: 3, alpha: 8 }),
    ).rejects.toThrow(/r = 3/);
  });
});

function bf16ToFloat(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
