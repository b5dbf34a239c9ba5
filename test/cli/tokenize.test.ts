// `instill tokenize`: ids as JSON lines; file/line errors; the tokenizer directory is named when missing.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath, sharedDir, sharedOrSkipMessage } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}
const tmp = () => mkdtempSync(join(tmpdir(), "instill-tokcli-"));
const t5Dir = join(sharedDir, "data", "t5-tokenizer");
const haveT5 = sharedOrSkipMessage("tokenize CLI with T5") && existsSync(join(t5Dir, "tokenizer.json"));

describe("instill tokenize", () => {
  it("byte tokenizer: --text and --input print one JSON line per input", () => {
    const dir = tmp();
    writeFileSync(join(dir, "instill_tokenizer.json"), JSON.stringify({ type: "byte" }));
    const r = run(["tokenize", "--tokenizer", dir, "--text", "hé"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe("[107,198,172,1]\n");
    const input = join(dir, "in.jsonl");
    writeFileSync(input, '{"text": "a"}\n\n{"text": ""}\n{"text": "b", "id": 3}\n');
    const r2 = run(["tokenize", "--tokenizer", dir, "--input", input, "--no-eos"]);
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stdout.trim().split("\n").map((l) => JSON.parse(l))).toEqual([[100], [], [101]]);
    const r3 = run(["tokenize", "--tokenizer", dir, "--text", "hé", "--decode"]);
    expect(JSON.parse(r3.stdout)).toBe("hé");
    // ByT5 sentinels: <extra_id_0> = 259; dropped when decoding unless --keep-special (HF's spaced pieces)
    const r4 = run(["tokenize", "--tokenizer", dir, "--text", "a<extra_id_0>"]);
    expect(JSON.parse(r4.stdout)).toEqual([100, 259, 1]);
    expect(JSON.parse(run(["tokenize", "--tokenizer", dir, "--text", "a<extra_id_0>", "--decode"]).stdout)).toBe("a");
    expect(JSON.parse(run(["tokenize", "--tokenizer", dir, "--text", "a<extra_id_0>", "--decode", "--keep-special"]).stdout)).toBe("a <extra_id_0> </s>");
  });

  it("bad input lines name the file and line; a missing tokenizer names the path", () => {
    const dir = tmp();
    writeFileSync(join(dir, "instill_tokenizer.json"), JSON.stringify({ type: "byte" }));
    const input = join(dir, "bad.jsonl");
    writeFileSync(input, '{"text": "ok"}\n{"text": 5}\n');
    const r = run(["tokenize", "--tokenizer", dir, "--input", input]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`instill: ${input}:2: expected an object with a string "text" field`);
    writeFileSync(input, '{"text": "ok"}\n\n{oops\n');
    expect(run(["tokenize", "--tokenizer", dir, "--input", input]).stderr).toContain(`${input}:3: invalid JSON`);
    const missing = join(dir, "nope");
    const r2 = run(["tokenize", "--tokenizer", missing, "--text", "x"]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain(`tokenizer directory not found: ${missing}`);
    const r3 = run(["tokenize", "--tokenizer", dir]);
    expect(r3.status).toBe(1);
    expect(r3.stderr).toContain("exactly one of --text or --input");
  });

  it.skipIf(!haveT5)("T5 tokenizer.json from ../shared", () => {
    const r = run(["tokenize", "--tokenizer", t5Dir, "--text", "221609"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([1630, 2938, 4198, 1]);
  });
});
