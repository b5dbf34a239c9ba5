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
