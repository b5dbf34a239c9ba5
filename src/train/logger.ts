// JSONL metrics log: one JSON object per line, appended and flushed, readable while the run goes on.
import { appendFileSync, mkdirSync, existsSync, readFileSync, statSync, truncateSync } from "node:fs";
import { dirname } from "node:path";
import { withPath, writeFileAtomic } from "../util/fs.js";

export class JsonlLogger {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  /** Appends one line; if the append fails (disk full...) the file is cut back to its old size, so no torn line stays. */
  log(record: Record<string, unknown>): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...record }) + "\n";
    const before = existsSync(this.path) ? statSync(this.path).size : 0;
    try {
      appendFileSync(this.path, line);
    } catch (e) {
      try {
        truncateSync(this.path, before);
      } catch {
        /* the file could not be opened at all: nothing was written */
      }
      throw withPath(this.path, e);
    }
  }

  /** After a resume from `step`: drops records of steps after it (written by the interrupted run). */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const kept = JsonlLogger.read(this.path).filter((r) => typeof r.step !== "number" || (r.step as number) <= step);
    writeFileAtomic(this.path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  static read(path: string): Record<string, unknown>[] {
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l, i) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw new Error(`${path}:${i + 1}: invalid JSON line`);
        }
      });
  }
}
