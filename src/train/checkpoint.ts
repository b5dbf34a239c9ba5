// Checkpoints written atomically: everything goes into a hidden temporary folder, each file is flushed,
// then the folder is renamed to checkpoints/step-NNNNNNN (rename is atomic on POSIX). A killed run leaves
// at most a hidden temporary folder, never a partial checkpoint; the last K checkpoints are kept.
import { accessSync, constants, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fsyncDir, readJsonFile, writeFileAtomic } from "../util/fs.js";

export const CHECKPOINT_STATE = "trainer_state.json";

export interface CheckpointInfo {
  step: number;
  dir: string;
}

export class CheckpointManager {
  readonly root: string;

  constructor(outDir: string, readonly keep: number) {
    this.root = join(outDir, "checkpoints");
  }

  static dirName(step: number): string {
    return `step-${String(step).padStart(7, "0")}`;
  }

  /** Complete checkpoints, oldest first. */
  list(): CheckpointInfo[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .filter((n) => /^step-\d+$/.test(n) && existsSync(join(this.root, n, CHECKPOINT_STATE)))
      .map((n) => ({ step: Number(n.slice(5)), dir: join(this.root, n) }))
      .sort((a, b) => a.step - b.step);
  }

  latest(): CheckpointInfo | undefined {
    const l = this.list();
    return l[l.length - 1];
  }

  /**
   * Writes a checkpoint. `fill(tmpDir)` writes the model/adapter and native training state into tmpDir;
   * the trainer state JSON is written last, then the folder is renamed into place.
   */
  async save(step: number, state: Record<string, unknown>, fill: (tmpDir: string) => Promise<void>): Promise<CheckpointInfo> {
    mkdirSync(this.root, { recursive: true });
    // Node's recursive mkdir reports a read-only folder as ENOENT; say what is wrong, naming the folder.
    try {
      accessSync(this.root, constants.W_OK);
    } catch (e) {
      throw new Error(`${this.root}: cannot write checkpoint ${CheckpointManager.dirName(step)}: the folder is not writable (${(e as NodeJS.ErrnoException).code})`);
    }
    this.cleanTemporaries();
    const tmp = join(this.root, `.tmp-${CheckpointManager.dirName(step)}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      await fill(tmp);
      // Crash test hook: a process killed in the middle of writing a checkpoint (tests only).
      if (process.env.INSTILL_TEST_KILL_DURING_CHECKPOINT === String(step)) process.kill(process.pid, "SIGKILL");
      writeFileAtomic(join(tmp, CHECKPOINT_STATE), JSON.stringify({ step, ...state }, null, 1));
      fsyncDir(tmp);
      const final = join(this.root, CheckpointManager.dirName(step));
      if (existsSync(final)) rmSync(final, { recursive: true, force: true });
      renameSync(tmp, final);
      fsyncDir(this.root);
      this.prune();
      return { step, dir: final };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * The checkpoint a resumed run continues from and its trainer state: undefined when `resume` is off, an error when
   * it is on and there is no checkpoint. Each method then checks that the state fits its run.
   */
  resumePoint<T>(resume: boolean | undefined): { latest: CheckpointInfo; state: T } | undefined {
    if (!resume) return undefined;
    const latest = this.latest();
    if (!latest) throw new Error(`--resume: no checkpoint found in ${this.root}`);
    return { latest, state: this.readState<T>(latest) };
  }

  readState<T = Record<string, unknown>>(c: CheckpointInfo): T {
    return readJsonFile<T>(join(c.dir, CHECKPOINT_STATE), "checkpoint state");
  }

  private prune(): void {
    const l = this.list();
    for (const c of l.slice(0, Math.max(0, l.length - this.keep))) rmSync(c.dir, { recursive: true, force: true });
  }

  /** Removes temporary folders left by killed runs (not our own in-flight one). */
  cleanTemporaries(): void {
    if (!existsSync(this.root)) return;
    for (const n of readdirSync(this.root)) {
      if (n.startsWith(".tmp-") && !n.endsWith(`-${process.pid}`)) {
        const p = join(this.root, n);
        if (statSync(p).isDirectory()) rmSync(p, { recursive: true, force: true });
      }
    }
  }
}
