import assert from "node:assert/strict";
import { test } from "node:test";
import { type KArray, runKernel } from "../../compiler/kir/interp.js";
import { roundF16 } from "../../compiler/ir/tensor.js";
import type { Kernel } from "../../compiler/kir/types.js";
import {
  type CudaEmulator,
  EmulatorRunError,
  type ThreadOrder,
  buildEmulator,
} from "../../backends/cuda/cpu.js";
import { emulateKernel } from "../../backends/cuda/emulate.js";
import { renderModule } from "../../backends/cuda/render.js";
import { missingTools } from "../../backends/cuda/toolchain.js";
import * as K from "./cuda-kernels.js";
import { rand } from "./cases/types.js";
import { skipUnlessRequired } from "../util/helpers.js";

// Hand-written kernels rendered to CUDA, compiled with g++ and cuda_cpu.h, run under both thread
// orders and compared with the KIR interpreter (the oracle) and with hand-computed values.

const gxxMissing = missingTools().filter((m) => m.startsWith("g++"));
const skip = skipUnlessRequired(gxxMissing.length ? `needs g++: ${gxxMissing.join("; ")}` : false);
if (skip) console.log(`# skipping CUDA emulation tests: ${skip}`);

const KERNELS: Kernel[] = [
  K.treeSum("tree_sum"),
  K.treeSum("tree_sum_nobar", true),
  K.warpReduce("warp_reduce"),
  K.transpose("transpose"),
  K.transpose("transpose_nobar", true),
  K.halfOps("half_ops"),
  K.allPrims("all_prims"),
  K.earlyExit("early_exit"),
  K.divergent("divergent"),
  K.outOfBounds("oob"),
];
const byName = new Map(KERNELS.map((k) => [k.name, k]));
const ORDERS: readonly ThreadOrder[] = ["forward", "reverse"];

let emu: CudaEmulator | undefined;
function emulator(): CudaEmulator {
  emu ??= buildEmulator(renderModule(KERNELS, "cuda-emu test").source);
  return emu;
}

type Arrays = Record<string, KArray>;
const f32 = (v: readonly number[]): Float32Array => Float32Array.from(v);
const clone = (a: Arrays): Arrays =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v.slice()])) as Arrays;

function close(got: KArray, want: KArray, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const ok = Number.isNaN(want[i])
      ? Number.isNaN(got[i])
      : Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i]));
    if (!ok) assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (tol ${tol})`);
  }
}

/** Emulated CUDA vs the interpreter, both orders; returns the forward-order emulated arrays. */
function check(
  name: string,
  arrays: Arrays,
  env: Record<string, number>,
  tol = 1e-6,
  subgroupSize = 32,
): Arrays {
  const k = byName.get(name)!;
  const want = clone(arrays);
  runKernel(k, want, env, { subgroupSize });
  let first: Arrays | undefined;
  for (const order of ORDERS) {
    const got = clone(arrays);
    emulateKernel(emulator(), k, got, env, order);
    for (const p of k.params)
      if (p.access === "read_write") close(got[p.name], want[p.name], tol, `${name} ${order} ${p.name}`);
    first ??= got;
  }
  return first!;
}

test("cuda emu: workgroup tree reduction matches the interpreter and hand sums", { skip }, () => {
  const x = rand(1, 256);
  const got = check("tree_sum", { x: f32(x), y: new Float32Array(4) }, {}, 1e-6);
  for (let g = 0; g < 4; g++) {
    const s = x.slice(g * 64, g * 64 + 64).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(got.y[g] - s) < 1e-4, `group ${g}: ${got.y[g]} vs ${s}`);
  }
});

test("cuda emu: dropping the barrier after the shared store gives wrong sums", { skip }, () => {
  const x = f32(rand(2, 256, 0.5, 1.5));
  const want = x.reduce((a, b) => a + b, 0) / 4; // rough per-group size; exact sums below
  assert.ok(want > 0);
  const wrongIn: ThreadOrder[] = [];
  for (const order of ORDERS) {
    const a: Arrays = { x, y: new Float32Array(4) };
    emulateKernel(emulator(), byName.get("tree_sum_nobar")!, a, {}, order);
    for (let g = 0; g < 4; g++) {
      const s = x.slice(g * 64, g * 64 + 64).reduce((p, q) => p + q, 0);
      if (!(Math.abs(a.y[g] - s) < 1e-3)) {
        wrongIn.push(order);
        break;
      }
    }
  }
  assert.ok(wrongIn.length > 0, "the missing barrier went unnoticed in both orders");
});

test("cuda emu: warp sum/max/shuffle_xor over 32 lanes", { skip }, () => {
  const x = rand(3, 128);
  const got = check(
    "warp_reduce",
    {
      x: f32(x),
      sum: new Float32Array(128),
      mx: new Float32Array(128),
      swapped: new Float32Array(128),
      lane: new Int32Array(128),
    },
    {},
    1e-6,
  );
  for (let i = 0; i < 128; i++) {
    const w = x.slice(i - (i % 32), i - (i % 32) + 32);
    assert.ok(Math.abs(got.sum[i] - w.reduce((a, b) => a + b, 0)) < 1e-5);
    assert.equal(got.mx[i], Math.fround(Math.max(...w)));
    assert.equal(got.swapped[i], Math.fround(x[i ^ 5]));
    assert.equal(got.lane[i], 32000 + (i % 32));
  }
});

test("cuda emu: shared-memory transpose needs its barrier", { skip }, () => {
  const W = 16;
  const H = 24;
  const inp = f32(Array.from({ length: W * H }, (_, i) => i));
  const got = check("transpose", { inp, out: new Float32Array(W * H) }, { W, H }, 0);
  for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) assert.equal(got.out[c * H + r], r * W + c);
  const wrong = ORDERS.filter((order) => {
    const a: Arrays = { inp, out: new Float32Array(W * H) };
    emulateKernel(emulator(), byName.get("transpose_nobar")!, a, { W, H }, order);
    return a.out.some((v, i) => v !== got.out[i]);
  });
  assert.deepEqual(wrong, ["forward", "reverse"]);
});

test("cuda emu: f16 storage and arithmetic round like the interpreter", { skip }, () => {
  const N = 50;
  const a = Float32Array.from(rand(4, N, -2, 2), roundF16);
  const b = Float32Array.from(rand(5, N, -2, 2), roundF16);
  const got = check("half_ops", { a, b, y: new Float32Array(N), n: new Int32Array(N) }, { N }, 0);
  for (let i = 0; i < N; i++)
    assert.equal(got.y[i], roundF16(roundF16(roundF16(Math.tanh(a[i])) * b[i]) + roundF16(0.1)));
});

test("cuda emu: every primitive matches the interpreter", { skip }, () => {
  const N = 200;
  const x = f32(rand(6, N, -3, 3).map((v, i) => (i === 7 ? 0.25 : i === 8 ? 0 : v)));
  check("all_prims", { x, y: new Float32Array(N), k: new Int32Array(N) }, { N }, 2e-6);
});

function runFails(
  name: string,
  arrays: Arrays,
  env: Record<string, number>,
  pattern: RegExp,
  asan = false,
): void {
  const e = asan ? buildEmulator(renderModule(KERNELS, "cuda-emu test").source, { asan: true }) : emulator();
  assert.throws(
    () => emulateKernel(e, byName.get(name)!, arrays, env),
    (err: unknown) => err instanceof EmulatorRunError && pattern.test(err.stderr),
  );
}

test("cuda emu: a barrier after an early return is reported", { skip }, () => {
  runFails("early_exit", { y: new Float32Array(64) }, {}, /exited while others wait at __syncthreads/);
});

test("cuda emu: barriers at different sites are reported as divergent", { skip }, () => {
  runFails("divergent", { y: new Float32Array(64) }, {}, /divergent barrier/);
});

test("cuda emu: AddressSanitizer build runs the kernels cleanly and catches an overrun", { skip }, () => {
  const asan = buildEmulator(renderModule(KERNELS, "cuda-emu test").source, { asan: true });
  const x = rand(7, 256);
  const a: Arrays = { x: f32(x), y: new Float32Array(4) };
  emulateKernel(asan, byName.get("tree_sum")!, a, {}, "reverse");
  assert.ok(Math.abs(a.y[0] - x.slice(0, 64).reduce((p, q) => p + q, 0)) < 1e-4);
  const b: Arrays = {
    x: f32(x),
    sum: new Float32Array(128),
    mx: new Float32Array(128),
    swapped: new Float32Array(128),
    lane: new Int32Array(128),
  };
  emulateKernel(asan, byName.get("warp_reduce")!, b, {});
  runFails("oob", { y: new Float32Array(8) }, { N: 8 }, /heap-buffer-overflow[\s\S]*kernels\.cu/, true);
});
