// Hand-written types of the native addon (node-llama-cpp's AddonTypes.ts style): the one contract
// between native/napi and TypeScript. Keep it in step with native/napi/*_wrap.cc.

export type Dtype =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int8"
  | "uint8"
  | "int16"
  | "int32"
  | "int64"
  | "bool";

export type TypedArrayFor<D extends Dtype> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "float16" | "bfloat16"
      ? Uint16Array
      : D extends "int8"
        ? Int8Array
        : D extends "uint8" | "bool"
          ? Uint8Array
          : D extends "int16"
            ? Int16Array
            : D extends "int32"
              ? Int32Array
              : BigInt64Array;

/** A host tensor as it crosses the boundary: a TypedArray, its shape and dtype. */
export interface HostTensor<D extends Dtype = Dtype> {
  data: TypedArrayFor<D>;
  shape: number[];
  dtype?: D;
}

export interface ProgressEvent {
  [name: string]: number | string | undefined;
  message?: string;
}

export interface RuntimeInfo {
  torchVersion: string;
  cudaBuild: boolean;
  cudaAvailable: boolean;
  cudaDevices: string[];
  intraOpThreads: number;
  interOpThreads: number;
  blas: { name: string; path: string; config: string; reference: boolean };
  addonVersion: string;
  napiVersion: number;
}

export interface MatmulBenchResult {
  n: number;
  iterations: number;
  seconds: number;
  gflops: number;
}

export interface Addon {
  runtimeInfo(): RuntimeInfo;
  setThreads(n: number): void;
  getThreads(): number;
  tensorRoundTrip<D extends Dtype>(t: HostTensor<D>): Required<HostTensor<D>>;
  matmulBench(options: {
    n?: number;
    seconds?: number;
    onProgress?: (e: ProgressEvent) => void;
  }): Promise<MatmulBenchResult>;
}
