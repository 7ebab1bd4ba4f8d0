import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { bf16BitsToF32, f32ToBf16Bits, roundBf16 } from "../../compiler/kir/bf16.js";
import { elementwiseKernel } from "../../compiler/kir/builder.js";
import * as E from "../../compiler/kir/expr.js";
import { type KArray, runKernel } from "../../compiler/kir/interp.js";
import { lowerCtx, lowerNode } from "../../compiler/kir/lower.js";
import { runLowered } from "../../compiler/kir/run.js";
import { type Kernel, type Lowering, type Target, storageType } from "../../compiler/kir/types.js";
import { type CudaEmulator, buildEmulator } from "../../backends/cuda/cpu.js";
import { bindingMismatches, emulateKernel, emulateLowering } from "../../backends/cuda/emulate.js";
import { compileFatbin } from "../../backends/cuda/nvcc.js";
import { renderModule } from "../../backends/cuda/render.js";
import { CUDA_BF16_TARGET } from "../../backends/cuda/target.js";
import { findNvcc, missingTools } from "../../backends/cuda/toolchain.js";
import { renderWgsl, WgslError } from "../../backends/wgsl/render.js";
import { ALL_CASES } from "./cases/index.js";
import { type Prepared, compare, prepare } from "./cases/run.js";
import type { OpCase } from "./cases/types.js";
import { skipUnlessRequired } from "../util/helpers.js";

// bf16 on the CUDA target: the rounding helpers by hand, cuda_cpu.h's conversions bit for bit
// against the interpreter, and every backend op case lowered with f32 tensors stored as bf16,
// emulated in both thread orders and compared with the interpreter and the op's reference.

const gxx = missingTools().filter((m) => m.startsWith("g++"));
const skipEmu = skipUnlessRequired(gxx.length ? `needs g++: ${gxx.join("; ")}` : false);
const skipNvcc = skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME)");
if (skipEmu) console.log(`# skipping emulated bf16 tests: ${skipEmu}`);

const T: Target = CUDA_BF16_TARGET;

test("bf16 rounding: nearest even on 8 significant bits, inf/NaN/-0 kept", () => {
  assert.equal(roundBf16(1), 1);
  assert.equal(roundBf16(1 + 2 ** -8), 1, "a tie rounds to the even mantissa 0");
  assert.equal(roundBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6, "a tie rounds to the even mantissa 2");
  assert.equal(roundBf16(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7, "above the tie rounds up");
  assert.equal(roundBf16(-3.14159), -3.140625);
  assert.equal(roundBf16(3.4028234663852886e38), Infinity, "f32 max rounds past the largest bf16");
  assert.equal(roundBf16(3.3895313892515355e38), 3.3895313892515355e38, "largest bf16 is exact");
  assert.ok(Object.is(roundBf16(-0), -0));
  assert.equal(roundBf16(-Infinity), -Infinity);
  assert.ok(Number.isNaN(roundBf16(NaN)));
  assert.equal(f32ToBf16Bits(NaN), 0x7fff);
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(bf16BitsToF32(0xc049), -3.140625);
  // Subnormals keep 7 bits below the smallest normal (bf16 shares f32's exponent range).
  assert.equal(roundBf16(2 ** -133), 2 ** -133);
  assert.equal(roundBf16(2 ** -133 * 1.5), 2 ** -132, "a subnormal tie rounds to even");
});

/** f32 -> bf16 -> f32 and bf16 arithmetic (rounded per operation) in one kernel. */
function convertKernel(): Kernel {
  return elementwiseKernel("bf16_convert", sym("N"), 64, (kb) => {
    const x = kb.buffer("x", "f32", "read");
    const h = kb.buffer("h", "bf16", "read_write");
    const y = kb.buffer("y", "f32", "read_write");
    const z = kb.buffer("z", "bf16", "read_write");
    return (i) => {
      const b = kb.let("b", E.cast(kb.load(x, i), "bf16"));
      kb.store(h, i, b);
      kb.store(y, i, E.cast(b, "f32"));
      const s = kb.let("s", E.add(E.mul(b, b), E.lit(0.3, "bf16")));
      kb.store(z, i, E.select(E.gt(b, E.lit(0, "bf16")), E.unary("exp", s), E.max(s, b)));
    };
  });
}

const specials = [
  0,
  -0,
  1,
  1 + 2 ** -8,
  1 + 3 * 2 ** -8,
  65504,
  3.4e38,
  -3.4e38,
  Infinity,
  -Infinity,
  NaN,
  1e-40,
  -2.5e-39,
  0.1,
  -7.3125,
  255.5,
  256.5,
  1.00390625,
  1.01171875,
];

test(
  "bf16 emulated: cuda_cpu.h conversions and per-operation rounding equal the interpreter bit for bit",
  {
    skip: skipEmu,
  },
  () => {
    const k = convertKernel();
    const emu = buildEmulator(renderModule([k], "bf16 convert").source);
    const rnd = Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 9) - 4));
    const xs = Float32Array.from([...specials, ...rnd]);
    const n = xs.length;
    const fresh = (): Record<string, KArray> => ({
      x: xs.slice(),
      h: new Float32Array(n),
      y: new Float32Array(n),
      z: new Float32Array(n),
    });
    const want = fresh();
    runKernel(k, want, { N: n });
    for (let i = 0; i < n; i++) assert.ok(Object.is(want.y[i], roundBf16(xs[i])), `interp ${xs[i]}`);
    for (const order of ["forward", "reverse"] as const) {
      const got = fresh();
      emulateKernel(emu, k, got, { N: n }, order);
      for (const a of ["h", "y", "z"])
        for (let i = 0; i < n; i++)
          assert.ok(
            Object.is(got[a][i], want[a][i]) || (Number.isNaN(got[a][i]) && Number.isNaN(want[a][i])),
            `${a}[${i}] (x = ${xs[i]}): emulated ${got[a][i]}, interpreter ${want[a][i]}`,
          );
    }
  },
);

test("bf16: the WGSL renderer refuses bf16 kernels", () => {
  assert.throws(
    () => renderWgsl(convertKernel()),
    (e: unknown) => {
      assert.ok(e instanceof WgslError);
      assert.match(e.message, /bf16_convert: uses bf16, which WGSL does not have/);
      return true;
    },
  );
});

// ---------- every op case in bf16 ----------

/** The case with f32 inputs rounded to bf16 (what the device holds), so the reference sees them too. */
function bf16Case(c: OpCase): OpCase {
  const round = (t: Tensor | null): Tensor | null =>
    t && t.dtype === "f32" ? makeTensor("f32", t.shape, Float64Array.from(t.data, roundBf16)) : t;
  // Each stored f32 value rounds to bf16 (relative 2^-9), and so does every intermediate tensor.
  return { ...c, inputs: c.inputs.map(round), tol: Math.max(c.tol ?? 0, BF16_TOL) };
}

/** Relative tolerance against the f32 reference: a few bf16 roundings (2^-9 each) along a chain. */
const BF16_TOL = 2 ** -5;
/** Emulated vs interpreted bf16: the same roundings; 1 bf16 ulp for f32 library-function last bits. */
const EMU_TOL = 2 ** -7;

interface Lowered {
  readonly c: OpCase;
  readonly p: Prepared;
  readonly lowering: Lowering;
}

function lowerAll(): { lowered: Lowered[]; kernels: Kernel[] } {
  const kernels: Kernel[] = [];
  const lowered = ALL_CASES.map((orig, i) => {
    const c = bf16Case(orig);
    const p = prepare(c);
    const name = `b${i}_${p.def.name.replace(/[^A-Za-z0-9_]/g, "_").toLowerCase()}`;
    const raw = lowerNode(p.def, lowerCtx(p.def, name, c.attrs ?? {}, p.inTypes, p.outTypes, T));
    const renamed = new Map<Kernel, Kernel>();
    const launches = raw.launches.map((l) => {
      let k = renamed.get(l.kernel);
      if (!k) {
        k = { ...l.kernel, name: `b${i}_${l.kernel.name}` };
        if (!kernels.some((x) => x.name === k!.name)) kernels.push(k);
        renamed.set(l.kernel, k);
      }
      return { ...l, kernel: k };
    });
    return { c, p, lowering: { ...raw, launches } };
  });
  return { lowered, kernels };
}

const all = lowerAll();
const source = renderModule(all.kernels, "backend op cases, bf16").source;
let emu: CudaEmulator | undefined;

test("bf16 op cases: f32 tensors are stored as bf16", () => {
  const withF32 = all.lowered.filter((l) => l.p.outTypes.some((t) => t.dtype === "f32"));
  assert.ok(withF32.length > 20);
  for (const l of withF32)
    for (const t of l.p.outTypes) if (t.dtype === "f32") assert.equal(storageType(t.dtype, T), "bf16");
  assert.ok(/__nv_bfloat16\* /.test(source), "bf16 buffers in the kernels' signatures");
});

test(
  `bf16 op cases: nvcc compiles the ${all.kernels.length} kernels for sm_80 and sm_90`,
  { skip: skipNvcc },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-bf16-"));
    try {
      const r = compileFatbin(source, dir, "ops_bf16");
      const entries = new Set(r.resources.map((u) => `${u.entry}@${u.arch}`));
      for (const k of all.kernels)
        for (const a of ["sm_80", "sm_90"]) assert.ok(entries.has(`tokr_${k.name}@${a}`), `${k.name} ${a}`);
      console.log(`# nvcc: ${all.kernels.length} bf16 kernels in ${r.seconds.toFixed(1)} s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

all.lowered.forEach(({ c, p, lowering }) => {
  test(`bf16 emu: ${c.name}`, { skip: skipEmu }, () => {
    // Every buffer parameter has the bound tensor's storage (no lowering hardcodes f32 for one).
    assert.deepEqual(bindingMismatches(lowering, p.inTypes, p.outTypes, T), []);
    emu ??= buildEmulator(source);
    const env = c.env ?? {};
    const interp = runLowered(lowering, c.inputs, p.outTypes, env, T, { subgroupSize: 32 });
    for (const order of ["forward", "reverse"] as const) {
      const got = emulateLowering(emu, lowering, c.inputs, p.outTypes, env, T, order);
      assert.deepEqual(compare({ ...c, tol: EMU_TOL }, got, interp), [], `${order} vs the interpreter`);
      assert.deepEqual(compare(c, got, p.want), [], `${order} vs the reference`);
    }
  });
});
