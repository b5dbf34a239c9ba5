// The two seeded PRNGs, kept as two streams because what exists depends on each exactly as it is:
// - Rng (sfc32, splitmix32-seeded; state: four numbers, state() / new Rng(state)): training order (batch
//   schedules, TAGI's stage order), DIO's meta split, bootstrap resampling, the demo's base. Runs and resumed runs
//   are reproducible from the seed.
// - makeRng (mulberry32 over a splitmix32-mixed seed, a number or a string; a bare () => number): suite generation
//   and SNI instance sampling. The generated suite files, and so every demo number, are this stream's.
// Drawing either through the other would change what every existing seed produces.

export interface RngState {
  a: number;
  b: number;
  c: number;
  d: number;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | RngState) {
    if (typeof seed === "number") {
      if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
      // splitmix32 to spread the seed over the state.
      let s = seed >>> 0;
      const next = () => {
        s = (s + 0x9e3779b9) >>> 0;
        let z = s;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
      };
      this.a = next();
      this.b = next();
      this.c = next();
      this.d = next();
      for (let i = 0; i < 12; i++) this.nextUint32();
    } else {
      this.a = seed.a >>> 0;
      this.b = seed.b >>> 0;
      this.c = seed.c >>> 0;
      this.d = seed.d >>> 0;
    }
  }

  state(): RngState {
    return { a: this.a, b: this.b, c: this.c, d: this.d };
  }

  /** sfc32 */
  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i];
      xs[i] = xs[j];
      xs[j] = t;
    }
    return xs;
  }

  /** k distinct items, order random. */
  sample<T>(xs: readonly T[], k: number): T[] {
    return this.shuffle(xs.slice()).slice(0, Math.min(k, xs.length));
  }
}

/** makeRng's generator: uniform in [0, 1) per call. */
export type RandomFn = () => number;

function splitmix32(a: number): number {
  a = (a + 0x9e3779b9) | 0;
  let t = a ^ (a >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t = t ^ (t >>> 15);
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

/** A uniform [0, 1) generator from a seed (any number or string). */
export function makeRng(seed: number | string): RandomFn {
  let h: number;
  if (typeof seed === "string") {
    h = 2166136261;
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  } else {
    h = Math.floor(seed) | 0;
    h = splitmix32(h ^ Math.floor(seed / 4294967296));
  }
  let state = splitmix32(h >>> 0);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(rng: RandomFn, lo: number, hiInclusive: number): number {
  return lo + Math.floor(rng() * (hiInclusive - lo + 1));
}

export function pick<T>(rng: RandomFn, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)];
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T>(rng: RandomFn, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = xs[i];
    xs[i] = xs[j];
    xs[j] = t;
  }
  return xs;
}
