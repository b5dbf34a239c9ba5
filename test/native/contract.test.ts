// The addon's hand-written types (src/native/types.ts) against the real exports: every function and class the
// `Addon` interface names exists, every member of a class's interface (methods, accessors, Symbol.asyncDispose)
// is on its prototype, and the addon exports nothing and no prototype holds anything the types do not name.
import { join } from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { loadAddon } from "../../src/native/binding.js";
import { hasAddon, repoRoot } from "../helpers/native.js";

interface Contract {
  functions: string[];
  classes: Record<string, string[]>;
}

/** Reads `Addon` from types.ts with the TypeScript checker: functions, and classes with their instance members. */
function contractFromTypes(): Contract {
  const file = join(repoRoot, "src", "native", "types.ts");
  const program = ts.createProgram([file], { target: ts.ScriptTarget.ES2022, lib: ["lib.esnext.d.ts"], noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  const addon = source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === "Addon");
  if (!addon) throw new Error("types.ts: no interface Addon");
  const out: Contract = { functions: [], classes: {} };
  for (const prop of checker.getPropertiesOfType(checker.getTypeAtLocation(addon))) {
    const type = checker.getTypeOfSymbolAtLocation(prop, addon);
    const ctor = type.getConstructSignatures()[0];
    if (!ctor) {
      out.functions.push(prop.name);
      continue;
    }
    out.classes[prop.name] = checker.getPropertiesOfType(ctor.getReturnType()).map((m) => {
      // A computed name: [Symbol.asyncDispose]; the checker spells it "__@asyncDispose@<id>".
      const match = /^__@(\w+)@\d+$/.exec(m.name);
      return match ? `Symbol.${match[1]}` : m.name;
    });
  }
  return out;
}

function prototypeMembers(ctor: { prototype: object }): string[] {
  const proto = ctor.prototype;
  const names = Object.getOwnPropertyNames(proto).filter((n) => n !== "constructor");
  const symbols = Object.getOwnPropertySymbols(proto).map((s) => (s === Symbol.asyncDispose ? "Symbol.asyncDispose" : String(s)));
  return [...names, ...symbols];
}

describe.skipIf(!hasAddon)("src/native/types.ts matches the addon's exports", () => {
  let contract: Contract;
  let addon: Record<string, { prototype: object }>;
  beforeAll(() => {
    contract = contractFromTypes();
    addon = loadAddon() as unknown as Record<string, { prototype: object }>;
  });

  it("names exactly the exported functions and classes", () => {
    const exported = Object.keys(addon).sort();
    expect(exported).toEqual([...contract.functions, ...Object.keys(contract.classes)].sort());
    for (const f of contract.functions) expect(typeof addon[f], f).toBe("function");
  });

  it("names exactly the prototype members of every class, and every class is a handle", () => {
    for (const [name, members] of Object.entries(contract.classes)) {
      expect(prototypeMembers(addon[name]).sort(), name).toEqual([...members].sort());
      for (const m of ["dispose", "busy", "disposed", "bytes", "Symbol.asyncDispose"]) expect(members, `${name}.${m}`).toContain(m);
    }
  });
});
