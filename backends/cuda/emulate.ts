import { kernelSymbols } from "../../compiler/kir/builder.js";
import { bf16BitsToF32, f32ToBf16Bits } from "../../compiler/kir/bf16.js";
import type { KArray } from "../../compiler/kir/interp.js";
import { fromDevice, toDevice } from "../../compiler/kir/run.js";
import {
  type KType,
  type Kernel,
  type Lowering,
  type Target,
  storageType,
} from "../../compiler/kir/types.js";
import { type DimEnv, evalDim, sym } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import type { TensorType } from "../../compiler/ir/types.js";
import type { CudaEmulator, EmuBuffer, EmuLaunch, ThreadOrder } from "./cpu.js";

/** Bytes per element of a storage type on the device. */
export function elemBytes(t: Exclude<KType, "bool">): number {
  return t === "f16" || t === "bf16" ? 2 : 4;
}

function f32ToF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0];
  const s = (b >>> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a >= 0x7f800000) return s | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0);
  if (a >= 0x477ff000) return s | 0x7c00;
  if (a >= 0x38800000) {
    const r = a - 0x38000000;
    const low = r & 0x1fff;
    return s | ((r >>> 13) + (low > 0x1000 || (low === 0x1000 && (r >>> 13) & 1) ? 1 : 0));
  }
  if (a < 0x33000000) return s;
  const e = a >>> 23;
  const m = (a & 0x7fffff) | 0x800000;
  const sh = 126 - e;
  let q = m >>> sh;
  const rem = m & ((1 << sh) - 1);
  const half = 1 << (sh - 1);
  if (rem > half || (rem === half && q & 1)) q++;
  return s | q;
}

function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A device-form array as the bytes the CUDA kernel sees (f16 / bf16 storage as 16-bit words). */
export function toBytes(a: KArray, t: Exclude<KType, "bool">): Uint8Array {
  if (t !== "f16" && t !== "bf16")
    return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
  const bits = t === "f16" ? f32ToF16Bits : f32ToBf16Bits;
  const h = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) h[i] = bits(a[i]);
  return new Uint8Array(h.buffer);
}

/** Device bytes back into the interpreter's array form (f16 as f32 values). */
export function fromBytes(b: Uint8Array, t: Exclude<KType, "bool">): KArray {
  const buf = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  switch (t) {
    case "f32":
      return new Float32Array(buf);
    case "i32":
      return new Int32Array(buf);
    case "u32":
      return new Uint32Array(buf);
    case "f16": {
      const h = new Uint16Array(buf);
      return Float32Array.from(h, f16BitsToF32);
    }
    case "bf16":
      return Float32Array.from(new Uint16Array(buf), bf16BitsToF32);
  }
}

/** One kernel launch of `kernel` with its grid and symbols evaluated in `env`. */
export function launchOf(kernel: Kernel, env: DimEnv, args: readonly number[]): EmuLaunch {
  const grid = kernel.grid.map((d) => evalDim(d, env)) as [number, number, number];
  return { kernel: kernel.name, grid, symbols: kernelSymbols(kernel).map((s) => evalDim(sym(s), env)), args };
}

/**
 * Runs one kernel like the KIR interpreter's `runKernel`: arrays bound by parameter name,
 * read_write arrays updated in place.
 */
export function emulateKernel(
  emu: CudaEmulator,
  kernel: Kernel,
  arrays: Readonly<Record<string, KArray>>,
  env: DimEnv,
  order: ThreadOrder = "forward",
): void {
  const bufs: EmuBuffer[] = kernel.params.map((p, id) => {
    const a = arrays[p.name];
    if (!a) throw new Error(`kernel ${kernel.name}: no array for parameter '${p.name}'`);
    const data = toBytes(a, p.t);
    return { id, bytes: data.length, data };
  });
  const writes = kernel.params.flatMap((p, id) => (p.access === "read_write" ? [id] : []));
  const out = emu.run(
    bufs,
    [
      launchOf(
        kernel,
        env,
        bufs.map((b) => b.id),
      ),
    ],
    writes,
    order,
  );
  for (const id of writes) {
    const p = kernel.params[id];
    arrays[p.name].set(fromBytes(out.get(id)!, p.t));
  }
}

/**
 * Parameters whose element type differs from the storage of the buffer bound to them (a lowering
 * that hardcodes f32 where the target stores bf16, say): the kernel would read or write the wrong
 * width. One message per mismatch, naming the kernel and parameter; empty when all agree.
 */
export function bindingMismatches(
  lowering: Lowering,
  inTypes: readonly (TensorType | null)[],
  outTypes: readonly TensorType[],
  target: Target,
): string[] {
  const out: string[] = [];
  for (const l of lowering.launches)
    l.kernel.params.forEach((p, i) => {
      const b = l.args[i];
      const st =
        b.kind === "scratch"
          ? lowering.scratch.find((s) => s.name === b.name)?.t
          : (b.kind === "input" ? inTypes[b.index] : outTypes[b.index]) &&
            storageType((b.kind === "input" ? inTypes[b.index] : outTypes[b.index])!.dtype, target);
      if (st && st !== p.t)
        out.push(
          `kernel ${l.kernel.name}: parameter '${p.name}' is ${p.t} but its ${b.kind} is stored as ${st}`,
        );
    });
  return out;
}

/** Runs an op's lowering on the emulator, like `runLowered` does on the interpreter. */
export function emulateLowering(
  emu: CudaEmulator,
  lowering: Lowering,
  inputs: readonly (Tensor | null)[],
  outTypes: readonly TensorType[],
  env: DimEnv,
  target: Target,
  order: ThreadOrder = "forward",
): Tensor[] {
  const bufs: EmuBuffer[] = [];
  const add = (t: Exclude<KType, "bool">, a: KArray): number => {
    const data = toBytes(a, t);
    bufs.push({ id: bufs.length, bytes: data.length, data });
    return bufs.length - 1;
  };
  const poison = (t: Exclude<KType, "bool">, n: number): number => {
    bufs.push({ id: bufs.length, bytes: n * elemBytes(t) });
    return bufs.length - 1;
  };
  const ins = inputs.map((t) => (t ? add(storageType(t.dtype, target), toDevice(t, target)) : -1));
  const outShapes = outTypes.map((t) => t.dims.map((d) => evalDim(d, env)));
  const outSt = outTypes.map((t) => storageType(t.dtype, target));
  const outs = outShapes.map((s, i) =>
    poison(
      outSt[i],
      s.reduce((a, b) => a * b, 1),
    ),
  );
  const scratch = new Map(lowering.scratch.map((s) => [s.name, poison(s.t, evalDim(s.size, env))]));
  const launches = lowering.launches.map((l) =>
    launchOf(
      l.kernel,
      env,
      l.args.map((b) => {
        const id =
          b.kind === "input" ? ins[b.index] : b.kind === "output" ? outs[b.index] : scratch.get(b.name);
        if (id === undefined || id < 0)
          throw new Error(`kernel ${l.kernel.name}: binding to a missing ${b.kind}`);
        return id;
      }),
    ),
  );
  const got = emu.run(bufs, launches, outs, order);
  return outTypes.map((t, i) => fromDevice(fromBytes(got.get(outs[i])!, outSt[i]), t.dtype, outShapes[i]));
}
