// `instill convert`: a checkpoint as the hub ships it (pytorch_model.bin, sharded .bin, safetensors in any dtype)
// into a safetensors checkpoint folder, config.json and tokenizer files copied. .bin files are read by a restricted
// unpickler (tensor rebuilding only, as torch.load(weights_only=True)); nothing from the file is executed.
import type { Command } from "commander";
import { convertCheckpoint, type ConvertOptions, type ConvertResult } from "../model/checkpoint.js";

export interface ConvertCliOptions {
  model: string;
  out: string;
  dtype?: string;
  maxShardSize?: string;
  json?: boolean;
}

const DTYPES = ["stored", "float32", "float64", "bfloat16", "float16"] as const;

/** "5GB", "500MB", "1.5GiB", "1000000" -> bytes (as transformers' max_shard_size). */
export function parseSize(v: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(|B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$/i.exec(v);
  if (!m) throw new RangeError(`${flag}: expected a size such as 5GB, 500MB or a byte count, got '${v}'`);
  const unit = m[2]!.toUpperCase();
  const mult: Record<string, number> = { "": 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  const bytes = Math.floor(Number(m[1]) * mult[unit]!);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`${flag}: '${v}' is too large`);
  return bytes;
}

export async function convertCli(o: ConvertCliOptions): Promise<ConvertResult> {
  const dtype = o.dtype ?? "stored";
  if (!(DTYPES as readonly string[]).includes(dtype)) throw new RangeError(`--dtype: expected one of ${DTYPES.join(", ")}, got '${dtype}'`);
  const maxShardBytes = o.maxShardSize === undefined ? 0 : parseSize(o.maxShardSize, "--max-shard-size");
  return convertCheckpoint(o.model, o.out, { dtype: dtype as ConvertOptions["dtype"], maxShardBytes });
}

export function registerConvert(program: Command): void {
  program
    .command("convert")
    .description("convert a checkpoint (pytorch_model.bin, sharded .bin or safetensors) to a safetensors checkpoint folder")
    .requiredOption("--model <dir|file>", "source checkpoint folder (or one weights file)")
    .requiredOption("--out <dir>", "output folder (model.safetensors, config.json and tokenizer files)")
    .option("--dtype <dtype>", `stored (keep each tensor's dtype) | float32 | bfloat16 | float16 | float64`, "stored")
    .option("--max-shard-size <size>", "shard above this size (e.g. 5GB), writing model.safetensors.index.json")
    .option("--json", "print the result as JSON")
    .action(async (o: ConvertCliOptions) => {
      const r = await convertCli(o);
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else
        process.stdout.write(
          `wrote ${r.outDir}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(2)} MB in ${r.files.length} file(s)` +
            (r.dropped.length ? `; ${r.dropped.length} tied alias(es) written once (${r.dropped.join(", ")})` : "") +
            (r.copied.length ? `; copied ${r.copied.join(", ")}` : "") +
            "\n",
        );
    });
}
