// Commander argument parsers shared by the CLI commands: the error names the flag and the bad value.

export function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new TypeError(`${name}: expected an integer, got '${v}'`);
    return n;
  };
}

export function num(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new TypeError(`${name}: expected a number, got '${v}'`);
    return n;
  };
}

export function choice<T extends string>(name: string, allowed: readonly T[]) {
  return (v: string): T => {
    if (!(allowed as readonly string[]).includes(v)) throw new TypeError(`${name}: expected one of ${allowed.join(", ")}, got '${v}'`);
    return v as T;
  };
}

/** Sets obj[a][b][c] = value for path "a.b.c", creating the objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys[keys.length - 1]] = value;
}

/** `--set key.path=value`: the value as JSON when it parses, else the plain string. */
export function parseSet(s: string): [string, unknown] {
  const i = s.indexOf("=");
  if (i <= 0) throw new TypeError(`--set: expected key=value, got '${s}'`);
  const raw = s.slice(i + 1);
  let v: unknown = raw;
  try {
    v = JSON.parse(raw);
  } catch {
    /* a plain string */
  }
  return [s.slice(0, i), v];
}
