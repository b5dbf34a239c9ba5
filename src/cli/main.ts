// The instill command line. Each command lives in its own module with a register function.
import { Command, CommanderError } from "commander";
import { InterruptedError } from "../train/trainer.js";
import { registerDoctor, packageVersion } from "./doctor.js";
import { registerTrain, registerEval } from "./train.js";
import { registerDemo } from "./demo.js";
import { registerSelectTrain } from "./select-train.js";
import { registerData } from "./data.js";
import { registerScore } from "./score.js";
import { registerTokenize } from "./tokenize.js";
import { registerLaunch } from "./launch.js";
import { registerSelect } from "./select.js";
import { registerSelectEmbedder } from "./select-embedder.js";
import { registerModel } from "./model.js";
import { registerGenerate } from "./generate.js";
import { registerConvert } from "./convert.js";
import { registerDio } from "./dio.js";
import { registerTagi } from "./tagi.js";
import { registerTagiAblate } from "./tagi-ablate.js";
import { setThreads } from "../native/binding.js";

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("instill")
    .description("Teach language models new tasks from their instructions (INSTA, TAGI, DIO on a LibTorch T5 core)")
    .version(packageVersion(), "-V, --version")
    .option("--threads <n>", "LibTorch intra-op threads (default: the machine's cores, or INSTILL_THREADS)")
    .showHelpAfterError()
    .hook("preAction", (cmd) => {
      const t = cmd.opts().threads as string | undefined;
      if (t !== undefined) {
        const n = Number(t);
        if (!Number.isInteger(n) || n < 1) throw new CommanderError(2, "instill.threads", `--threads: expected a positive integer, got '${t}'`);
        process.env.INSTILL_THREADS = String(n);
        setThreads(n);
      }
    });
  registerDoctor(program);
  registerDemo(program);
  registerTrain(program);
  registerEval(program);
  registerSelectTrain(program);
  registerData(program);
  registerScore(program);
  registerTokenize(program);
  registerLaunch(program);
  registerSelect(program);
  registerSelectEmbedder(program);
  registerModel(program);
  registerGenerate(program);
  registerConvert(program);
  registerDio(program);
  registerTagi(program);
  registerTagiAblate(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") {
        process.exitCode = 0;
        return;
      }
      if (e.code !== "commander.executeSubCommandAsync") {
        if (!e.message.startsWith("error:") && e.code.startsWith("instill")) process.stderr.write(`error: ${e.message}\n`);
        process.exitCode = e.exitCode || 1;
        return;
      }
    }
    process.stderr.write(`instill: ${(e as Error).message}\n`);
    if (process.env.INSTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = e instanceof InterruptedError ? 130 : 1;
  }
}
