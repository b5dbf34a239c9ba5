// File helpers: atomic writes (temporary file, flush, rename) so a crash never leaves a half-written file.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync, existsSync, readFileSync } from "node:fs";
import { dirname, basename, join } from "node:path";

export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* some filesystems refuse fsync on directories */
  }
}

/** An fs error re-thrown with the file it was about (Node's write/fsync errors name no path); `code` is kept. */
export function withPath(path: string, e: unknown): Error {
  if (!(e instanceof Error)) return new Error(`${path}: ${String(e)}`);
  if (!e.message.includes(path)) e.message = `${path}: ${e.message}`;
  return e;
}

/**
 * Writes `data` to a temporary file next to `path`, flushes it and renames it into place: `path` is either its old
 * content or the new one, never a part. On failure (disk full, file-size limit, read-only folder) the temporary
 * file is removed and the error names `path`.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(tmp, "w");
    try {
      const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw withPath(path, e);
  }
  fsyncDir(dir);
}

export function readJsonFile<T = unknown>(path: string, what = "JSON file"): T {
  if (!existsSync(path)) throw new Error(`${path}: ${what} not found`);
  const text = readFileSync(path, "utf8");
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}
