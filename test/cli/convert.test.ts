// Checkpoints as the hub ships them, through the CLI (one spawn per user-facing failure) and the API: a ByT5-shaped
// model generating sentinels, pytorch_model.bin read by the restricted unpickler and converted with `instill convert`,
// a malicious .bin refused without running it, and config.json sizes checked against the weights. bf16/fp16: see
// test/native/io.test.ts.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { convertCheckpoint, readSafetensors, writeSafetensors } from "../../src/model/checkpoint.js";
import { T5Model, makeBatch } from "../../src/model/model.js";
import { installTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { cliPath, repoRoot } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}
const tmp = mkdtempSync(join(tmpdir(), "instill-convert-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fixtures = join(repoRoot, "test", "fixtures", "torch-bin");

/** A WordLevel tokenizer.json with `n` ids (pad 0, eos 1, unk 2, then w3..), for the 12-id fixture model. */
function wordTokenizer(dir: string, n: number): void {
  const vocab: Record<string, number> = { "<pad>": 0, "</s>": 1, "<unk>": 2 };
  for (let i = 3; i < n; i++) vocab[`w${i}`] = i;
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(
    join(dir, "tokenizer.json"),
    JSON.stringify({
      version: "1.0", truncation: null, padding: null, normalizer: null, post_processor: null, decoder: null,
      added_tokens: [special("<pad>", 0), special("</s>", 1), special("<unk>", 2)],
      pre_tokenizer: { type: "Whitespace" },
      model: { type: "WordLevel", vocab, unk_token: "<unk>" },
    }),
  );
}

describe("checkpoints as the hub ships them", () => {
  it("a ByT5-shaped model (vocab 384) generating sentinels decodes as HF (was: id 292 outside [0, 259))", async () => {
    const dir = join(tmp, "byt5");
    installTokenizer("byte", dir);
    const m = await T5Model.init("tiny", { seed: 1, vocabSize: loadTokenizer(dir).vocabSize });
    try {
      expect(m.config.vocab_size).toBe(384);
      await m.save(dir);
    } finally {
      m.dispose();
    }
    // Make the model emit sentinels: the decoder's final norm keeps one feature, lm_head maps it to <extra_id_33>
    // (id 292) or, for the other sign, <extra_id_34> (293); every other logit is 0.
    const st = await readSafetensors(join(dir, "model.safetensors"));
    const norm = st.tensors.get("decoder.final_layer_norm.weight")!;
    const head = st.tensors.get("lm_head.weight")!;
    const d = norm.shape[0]!;
    (norm.data as Float32Array).fill(0)[0] = 1;
    (head.data as Float32Array).fill(0);
    (head.data as Float32Array)[292 * d] = 1000;
    (head.data as Float32Array)[293 * d] = -1000;
    await writeSafetensors(join(dir, "model.safetensors"), st.tensors, st.metadata);
    const g = run(["generate", "--model", dir, "--input", "hello", "--max-new-tokens", "3", "--json", "--keep-special"]);
    expect(g.status, g.stderr).toBe(0);
    const j = JSON.parse(g.stdout) as { ids: number[]; text: string };
    expect(j.ids.length).toBe(3);
    expect(j.ids.every((i) => i === 292 || i === 293)).toBe(true); // raw ids stay available
    expect(j.text).toMatch(/^<extra_id_3[34]> <extra_id_3[34]> <extra_id_3[34]>$/);
    expect(loadTokenizer(dir).decode(j.ids)).toBe(""); // skip_special_tokens, generate's default
  }, 300_000);

  it("pytorch_model.bin (torch.save) loads, and `instill convert` writes the same model as safetensors", async () => {
    const bin = join(tmp, "bin");
    cpSync(join(fixtures, "tiny-t5"), bin, { recursive: true });
    wordTokenizer(bin, 12);
    const out = join(tmp, "bin-st");
    const c = run(["convert", "--model", bin, "--out", out, "--json"]);
    expect(c.status, c.stderr).toBe(0);
    const cj = JSON.parse(c.stdout);
    expect(cj.tensors).toBe(29);
    expect(cj.dropped).toEqual(["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]);
    expect(cj.copied).toEqual(expect.arrayContaining(["config.json", "tokenizer.json"]));
    const batch = makeBatch([[3, 4, 5, 1]]);
    const a = await T5Model.load(bin);
    const b = await T5Model.load(out);
    try {
      expect(await b.generate(batch, { maxNewTokens: 5 })).toEqual(await a.generate(batch, { maxNewTokens: 5 }));
      expect(await b.evalLoss([makeBatch([[3, 4, 5, 1]], [[6, 7, 1]])])).toEqual(await a.evalLoss([makeBatch([[3, 4, 5, 1]], [[6, 7, 1]])]));
    } finally {
      a.dispose();
      b.dispose();
    }
    await expect(convertCheckpoint(bin, out)).rejects.toThrow(/exists; choose an empty folder/);
  }, 300_000);

  it("a .bin whose pickle calls os.system is refused and nothing runs; legacy files are refused clearly", async () => {
    const marker = "/tmp/instill-torch-bin-pwned"; // the fixture's payload: touch this file
    if (existsSync(marker)) unlinkSync(marker);
    const evil = join(tmp, "evil");
    cpSync(join(fixtures, "tiny-t5"), evil, { recursive: true });
    cpSync(join(fixtures, "evil-os-system.bin"), join(evil, "pytorch_model.bin"));
    const r = run(["convert", "--model", evil, "--out", join(tmp, "evil-out")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${join(evil, "pytorch_model.bin")}: data.pkl byte`);
    expect(r.stderr).toMatch(/posix\.system, which a weights-only load does not allow/);
    expect(r.stderr).toMatch(/nothing from the file was executed/);
    await expect(T5Model.load(evil)).rejects.toThrow(/posix\.system/);
    expect(existsSync(marker)).toBe(false);
    await expect(convertCheckpoint(join(fixtures, "legacy.bin"), join(tmp, "legacy-out"))).rejects.toThrow(/legacy torch\.save format .* not supported/);
  }, 300_000);

  it("config.json sizes that disagree with the weights are refused before allocating, naming file and key", async () => {
    const cases = [
      ["vocab_size", 1e12, /tensor shared\.weight in pytorch_model\.bin has shape \[12, 4\]/],
      ["num_layers", 1e9, /pytorch_model\.bin holds 1 encoder blocks/],
      ["d_model", 8, /shared\.weight in pytorch_model\.bin has shape \[12, 4\]/],
    ] as const;
    for (const [key, value, needle] of cases) {
      const dir = join(tmp, `cfg-${key}`);
      cpSync(join(fixtures, "tiny-t5"), dir, { recursive: true });
      wordTokenizer(dir, 12);
      const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      cfg[key] = value;
      writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
      const prefix = `${join(dir, "config.json")}: field "${key}" is ${value}`;
      if (key === "vocab_size") {
        const r = run(["generate", "--model", dir, "--input", "w3"]); // the user-facing failure of the issue
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(prefix);
        expect(r.stderr).toMatch(needle);
        expect(r.stderr).not.toMatch(/bad_alloc|allocator|can't allocate/);
      } else {
        const e = await T5Model.load(dir).then(() => undefined, (err: Error) => err);
        expect(e?.message).toContain(prefix);
        expect(e?.message).toMatch(needle);
      }
    }
  }, 300_000);
});
