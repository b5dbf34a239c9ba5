// Errors for malformed data: they name the file and the JSON path, e.g.
// "tasks/task123.json: Instances[17].output: expected a list of strings".

export class DataError extends Error {
  readonly file: string;
  readonly jsonPath: string;
  constructor(file: string, jsonPath: string, message: string) {
    super(`${file}: ${jsonPath ? jsonPath + ": " : ""}${message}`);
    this.name = "DataError";
    this.file = file;
    this.jsonPath = jsonPath;
  }
}

/** Appends a key to a JSON path the way the messages spell it: `a.b`, `a[3]`, `["Positive Examples"][0]`. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  return base ? `${base}.${key}` : key;
}

export function describeJson(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return "a string";
  return `${typeof v} ${JSON.stringify(v)}`;
}
