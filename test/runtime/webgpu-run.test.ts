/**
 * Kernels and programs on a real WebGPU adapter (Dawn + lavapipe in CI), compared with values
 * computed in JS. Skips with the reason when there is no adapter.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { mul as dmul } from "../../compiler/ir/sym.js";
import { makeTensor, roundF16, type Tensor } from "../../compiler/ir/tensor.js";
import type { Kernel } from "../../compiler/kir/types.js";
import { erf } from "../../compiler/ops/elementwise.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { compileProgram, loadProgramArtifact, writeProgramArtifact } from "../../runtime/artifact.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import {
  ARITH,
  binaryKernel,
  boolKernel,
  castKernel,
  COMPARE,
  constKernel,
  FLOAT_ARITH,
  FLOAT_UNARY,
  INT_UNARY,
  subgroupKernel,
  unaryKernel,
  workgroupKernel,
} from "../backends/wgsl-prims.js";
import { gpuRuntime } from "./webgpu-harness.js";
import {
  accumulateKernel,
  affineKernel,
  makeProgram,
  mulKernel,
  N,
  type BufSpec,
} from "./webgpu-programs.js";

type Ctx = { skip(reason: string): void };

async function withGpu(t: Ctx, f: (rt: WebGpuRuntime) => Promise<void>): Promise<void> {
  const rt = await gpuRuntime({ f16: true });
  if (typeof rt === "string") return t.skip(rt);
  await f(rt);
}

/** Runs one kernel over all its buffers (bound in parameter order). */
async function runOne(rt: WebGpuRuntime, k: Kernel, bufs: BufSpec[], inputs: Record<string, Tensor>) {
  const p = makeProgram(rt.target, bufs, [k], [[0, bufs.map((_, i) => i)]]);
  const prog = await rt.load(compileProgram(p, "wgsl", rt.target, renderWgsl));
  return prog.run(new Map(Object.entries(inputs)));
}

function close(
  actual: ArrayLike<number>,
  expected: readonly number[],
  tol: number,
  what: string,
  abs = false,
): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      assert.ok(Number.isNaN(e) && Number.isNaN(a), `${what}[${i}]: got ${a}, expected ${e}`);
      continue;
    }
    if (a === e) continue;
    const err = abs ? Math.abs(a - e) : Math.abs(a - e) / Math.max(1, Math.abs(e));
    worst = Math.max(worst, err);
    assert.ok(err <= tol, `${what}[${i}]: got ${a}, expected ${e} (error ${err}, tol ${tol})`);
  }
  return worst;
}

const UNARY_JS: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  erf,
  floor: Math.floor,
  ceil: Math.ceil,
};
const BINARY_JS: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  mod: (a, b) => a % b,
  min: Math.min,
  max: Math.max,
  pow: Math.pow,
  lt: (a, b) => +(a < b),
  le: (a, b) => +(a <= b),
  gt: (a, b) => +(a > b),
  ge: (a, b) => +(a >= b),
  eq: (a, b) => +(a === b),
  ne: (a, b) => +(a !== b),
};

describe("WebGPU: every primitive against JS", () => {
  const xs = [-3.2, -1, -0.45, -0.1, 0, 0.05, 0.3, 0.49, 0.51, 1, 1.7, 2.5, 4, 9, 20, -20, 100];

  it("float unary ops (f32 and f16)", (t) =>
    withGpu(t, async (rt) => {
      for (const ty of ["f32", "f16"] as const) {
        if (ty === "f16" && !rt.target.f16) continue;
        const x = makeTensor(ty, [xs.length], xs);
        const out = await runOne(
          rt,
          unaryKernel(ty),
          [
            { name: "x", dtype: ty, dims: [N], kind: "input" },
            { name: "out", dtype: ty, dims: [dmul(N, FLOAT_UNARY.length)], kind: "output" },
          ],
          { x },
        );
        const got = out.get("out")!.data;
        FLOAT_UNARY.forEach((op, j) => {
          const col = xs.map((_, i) => got[i * FLOAT_UNARY.length + j]);
          const want = Array.from(x.data, (v) => (ty === "f16" ? roundF16 : Math.fround)(UNARY_JS[op](v)));
          if (op === "erf" && ty === "f32") {
            const worst = close(col, want, 4e-7, `erf f32`, true);
            assert.ok(worst < 4e-7, `erf max |error| ${worst}`);
          } else close(col, want, ty === "f16" ? 2e-3 : 2e-6, `${op} ${ty}`);
        });
      }
    }));

  it("erf helper stays within 4e-7 of erf over [-6, 6]", (t) =>
    withGpu(t, async (rt) => {
      const grid = Array.from({ length: 4801 }, (_, i) => -6 + i * 0.0025);
      const out = await runOne(
        rt,
        unaryKernel("f32"),
        [
          { name: "x", dtype: "f32", dims: [N], kind: "input" },
          { name: "out", dtype: "f32", dims: [dmul(N, FLOAT_UNARY.length)], kind: "output" },
        ],
        { x: makeTensor("f32", [grid.length], grid) },
      );
      const j = FLOAT_UNARY.indexOf("erf");
      const got = grid.map((_, i) => out.get("out")!.data[i * FLOAT_UNARY.length + j]);
      const x32 = grid.map(Math.fround);
      close(got, x32.map(erf), 4e-7, "erf", true);
    }));

  it("int unary and binary ops (truncating div/mod), comparisons", (t) =>
    withGpu(t, async (rt) => {
      const a = [7, -7, 7, -7, 0, 123456, -5, 3];
      const b = [2, 2, -2, -3, 5, 1000, -5, 9];
      const out = await runOne(
        rt,
        binaryKernel("i32"),
        [
          { name: "a", dtype: "i32", dims: [N], kind: "input" },
          { name: "b", dtype: "i32", dims: [N], kind: "input" },
          { name: "out", dtype: "i32", dims: [dmul(N, ARITH.length)], kind: "output" },
          { name: "cmp", dtype: "bool", dims: [dmul(N, COMPARE.length)], kind: "output" },
        ],
        { a: makeTensor("i32", [8], a), b: makeTensor("i32", [8], b) },
      );
      const jsInt: Record<string, (x: number, y: number) => number> = {
        ...BINARY_JS,
        div: (x, y) => Math.trunc(x / y),
      };
      const want = a.flatMap((x, i) => ARITH.map((op) => jsInt[op](x, b[i])));
      close(out.get("out")!.data, want, 0, "i32 arith");
      assert.equal(out.get("cmp")!.dtype, "bool");
      close(
        out.get("cmp")!.data,
        a.flatMap((x, i) => COMPARE.map((op) => BINARY_JS[op](x, b[i]))),
        0,
        "i32 cmp",
      );
      const un = await runOne(
        rt,
        unaryKernel("i32"),
        [
          { name: "x", dtype: "i32", dims: [N], kind: "input" },
          { name: "out", dtype: "i32", dims: [dmul(N, INT_UNARY.length)], kind: "output" },
        ],
        { x: makeTensor("i32", [4], [-3, 0, 5, -2147483647]) },
      );
      close(un.get("out")!.data, [3, 3, 0, 0, -5, 5, 2147483647, 2147483647], 0, "i32 unary");
    }));

  it("float binary ops including pow sign rules", (t) =>
    withGpu(t, async (rt) => {
      const a = [2, -2, -2, 0, 0, 3.5, -8, 1.5, -0.5, 5];
      const b = [3, 3, 2, 0, -1, -2, 3, 0.5, 2.5, 0];
      const out = await runOne(
        rt,
        binaryKernel("f32"),
        [
          { name: "a", dtype: "f32", dims: [N], kind: "input" },
          { name: "b", dtype: "f32", dims: [N], kind: "input" },
          { name: "out", dtype: "f32", dims: [dmul(N, FLOAT_ARITH.length)], kind: "output" },
          { name: "cmp", dtype: "bool", dims: [dmul(N, COMPARE.length)], kind: "output" },
        ],
        { a: makeTensor("f32", [a.length], a), b: makeTensor("f32", [b.length], b) },
      );
      const b32 = b.map(Math.fround);
      const want = a.flatMap((x, i) => FLOAT_ARITH.map((op) => Math.fround(BINARY_JS[op](x, b32[i]))));
      close(out.get("out")!.data, want, 1e-5, "f32 arith");
      close(
        out.get("cmp")!.data,
        a.flatMap((x, i) => COMPARE.map((op) => BINARY_JS[op](x, b32[i]))),
        0,
        "f32 cmp",
      );
    }));

  it("bool logic and select over u32 storage", (t) =>
    withGpu(t, async (rt) => {
      const a = [0, 0, 1, 1];
      const b = [0, 1, 0, 1];
      const out = await runOne(
        rt,
        boolKernel(),
        [
          { name: "a", dtype: "bool", dims: [N], kind: "input" },
          { name: "b", dtype: "bool", dims: [N], kind: "input" },
          { name: "out", dtype: "i32", dims: [dmul(N, 6)], kind: "output" },
        ],
        { a: makeTensor("bool", [4], a), b: makeTensor("bool", [4], b) },
      );
      const want = a.flatMap((x, i) => [x & b[i], x | b[i], 1 - x, +(x === b[i]), +(x !== b[i]), x ? 7 : 9]);
      close(out.get("out")!.data, want, 0, "logic");
    }));

  it("casts", (t) =>
    withGpu(t, async (rt) => {
      if (!rt.target.f16) return t.skip("adapter has no shader-f16");
      const xs2 = [-2.7, 0, 3.9, 1000.3, 0.1];
      const out = await runOne(
        rt,
        castKernel(),
        [
          { name: "x", dtype: "f32", dims: [N], kind: "input" },
          { name: "out", dtype: "f32", dims: [dmul(N, 4)], kind: "output" },
        ],
        { x: makeTensor("f32", [xs2.length], xs2) },
      );
      const want = xs2.flatMap((v) => [
        Math.trunc(v),
        v !== 0 ? 1 : 0,
        roundF16(v),
        Math.max(0, Math.trunc(v)),
      ]);
      // lavapipe keeps f16 registers at f32 precision: the f16 round trip is exact only to f16 precision.
      close(out.get("out")!.data, want, 1e-3, "casts");
    }));

  it("special constants: inf, -inf, nan, -0 in f32 and f16; i32 extremes", (t) =>
    withGpu(t, async (rt) => {
      if (!rt.target.f16) return t.skip("adapter has no shader-f16");
      const out = await runOne(
        rt,
        constKernel(),
        [
          { name: "f", dtype: "f32", dims: [6], kind: "output" },
          { name: "h", dtype: "f16", dims: [6], kind: "output" },
          { name: "n", dtype: "i32", dims: [2], kind: "output" },
        ],
        {},
      );
      const f = Array.from(out.get("f")!.data);
      assert.deepEqual(f.slice(0, 2), [Infinity, -Infinity]);
      // -0 may come back as +0 (drivers fold the sign of zero constants).
      assert.ok(Number.isNaN(f[2]) && f[3] === 0, `got ${f}`);
      assert.deepEqual(f.slice(4), [3.5, Math.fround(1e-30)]);
      const h = Array.from(out.get("h")!.data);
      assert.deepEqual([h[0], h[1], h[4], h[5]], [Infinity, -Infinity, 3.5, 0]);
      assert.ok(Number.isNaN(h[2]));
      assert.deepEqual(Array.from(out.get("n")!.data), [-(2 ** 31), 2 ** 31 - 1]);
    }));

  it("workgroup memory, barriers, loops with break, private arrays, early return", (t) =>
    withGpu(t, async (rt) => {
      const rows = 3;
      const x = Array.from({ length: rows * 64 }, (_, i) => (i % 7) - 3 + i / 64);
      const out = await runOne(
        rt,
        workgroupKernel(),
        [
          { name: "x", dtype: "f32", dims: [N, 64], kind: "input" },
          { name: "out", dtype: "f32", dims: [dmul(N, 2)], kind: "output" },
        ],
        { x: makeTensor("f32", [rows, 64], x) },
      );
      const want = Array.from({ length: rows }, (_, r) => [
        x.slice(r * 64, r * 64 + 64).reduce((a, b) => a + Math.fround(b), 0),
        3,
      ]).flat();
      close(out.get("out")!.data, want, 1e-5, "rows");
    }));

  it("subgroup collectives and builtins", (t) =>
    withGpu(t, async (rt) => {
      if (!rt.target.subgroups || rt.target.subgroupSize !== 8)
        return t.skip("needs subgroups of exactly 8 lanes (lavapipe)");
      const out = await runOne(
        rt,
        subgroupKernel(),
        [{ name: "out", dtype: "i32", dims: [48], kind: "output" }],
        {},
      );
      const want = Array.from({ length: 8 }, (_, l) => [28, 7, 0, l ^ 1, 8, l]).flat();
      close(out.get("out")!.data, want, 0, "subgroups");
    }));
});

describe("WebGPU: programs", () => {
  /** x -> t1 = 2x + 1 -> t2 = -x... : out = (2x + 1) * (3(2x + 1) - 4). */
  const chain = (rt: WebGpuRuntime, data?: Tensor) =>
    makeProgram(
      rt.target,
      [
        { name: "x", dtype: "f32", dims: [N], kind: "input" },
        { name: "t1", dtype: "f32", dims: [N], kind: "intermediate" },
        { name: "t2", dtype: "f32", dims: [N], kind: "intermediate" },
        { name: "out", dtype: "f32", dims: [N], kind: "output" },
        ...(data ? [{ name: "w", dtype: "f32" as const, dims: [N], kind: "constant" as const, data }] : []),
      ],
      [affineKernel("affine1", 2, 1), affineKernel("affine2", 3, -4), mulKernel()],
      [
        [0, [0, 1]],
        [1, [1, 2]],
        [2, [1, 2, 3]],
      ],
    );
  const expect = (xs: readonly number[]) =>
    xs.map((x) => {
      const t1 = Math.fround(Math.fround(2 * x) + 1);
      return Math.fround(t1 * Math.fround(Math.fround(3 * t1) - 4));
    });

  it("runs a multi-step program with one pipeline per kernel, for several symbol values", (t) =>
    withGpu(t, async (rt) => {
      const prog = await rt.load(compileProgram(chain(rt), "wgsl", rt.target, renderWgsl));
      for (const n of [5, 130, 1, 0, 130]) {
        const xs = Array.from({ length: n }, (_, i) => i * 0.25 - 3);
        const out = await prog.run(new Map([["x", makeTensor("f32", [n], xs)]]));
        assert.deepEqual(out.get("out")!.shape, [n]);
        close(out.get("out")!.data, expect(xs), 0, `n=${n}`);
      }
      const plan = prog.lastPlan!;
      // x, t1, t2 and out: t2 can't reuse x's slot before step 1, so three slots at most.
      assert.ok(plan.slots.length <= 3, `slots ${plan.slots}`);
      assert.equal(
        plan.peakBytes,
        plan.slots.reduce((a, b) => a + b, 0),
      );
      assert.ok(plan.peakBytes < plan.unplannedBytes);
    }));

  it("reports clear input errors", (t) =>
    withGpu(t, async (rt) => {
      const prog = await rt.load(compileProgram(chain(rt), "wgsl", rt.target, renderWgsl));
      await assert.rejects(prog.run(new Map()), /missing input 'x'/);
      await assert.rejects(
        prog.run(new Map([["x", makeTensor("i32", [2], [1, 2])]])),
        /input 'x' has dtype i32/,
      );
      await assert.rejects(
        prog.run(new Map([["x", makeTensor("f32", [1, 2], [1, 2])]])),
        /rank 2, expected 1/,
      );
    }));

  it("converts i64 at the boundary (device i32) and rejects values beyond i32", (t) =>
    withGpu(t, async (rt) => {
      const p = makeProgram(
        rt.target,
        [
          { name: "x", dtype: "i64", dims: [N], kind: "input" },
          { name: "y", dtype: "i64", dims: [N], kind: "output" },
        ],
        [affineKernel("aff_i", 3, -1, "i32")],
        [[0, [0, 1]]],
      );
      const prog = await rt.load(compileProgram(p, "wgsl", rt.target, renderWgsl));
      const out = await prog.run(new Map([["x", makeTensor("i64", [3], [5, -7, 100000])]]));
      assert.equal(out.get("y")!.dtype, "i64");
      assert.deepEqual(Array.from(out.get("y")!.data), [14, -22, 299999]);
      await assert.rejects(
        prog.run(new Map([["x", makeTensor("i64", [1], [2 ** 40])]])),
        /does not fit the device's i32/,
      );
    }));

  it("state buffers persist across runs and can be updated in place", (t) =>
    withGpu(t, async (rt) => {
      const p = makeProgram(
        rt.target,
        [
          { name: "acc", dtype: "f32", dims: [N], kind: "input" },
          { name: "x", dtype: "f32", dims: [N], kind: "input" },
        ],
        [accumulateKernel()],
        [[0, [0, 1]]],
      );
      const prog = await rt.load(compileProgram(p, "wgsl", rt.target, renderWgsl));
      const acc = rt.createState("acc", "f32", [4]);
      rt.writeState("acc", makeTensor("f32", [4], [1, 2, 3, 4]));
      const x = makeTensor("f32", [4], [10, 20, 30, 40]);
      for (let r = 0; r < 3; r++)
        await prog.run(
          new Map<string, Tensor | typeof acc>([
            ["acc", acc],
            ["x", x],
          ]),
        );
      assert.deepEqual(Array.from((await rt.readState("acc")).data), [31, 62, 93, 124]);
      // An output redirected into a state is not read back.
      const c = await rt.load(compileProgram(chain(rt), "wgsl", rt.target, renderWgsl));
      const dst = rt.createState("dst", "f32", [4]);
      const out = await c.run(new Map([["x", x]]), { outputsTo: new Map([["out", dst]]) });
      assert.equal(out.size, 0);
      close((await rt.readState("dst")).data, expect([10, 20, 30, 40]), 0, "state output");
      rt.destroyState("acc");
      rt.destroyState("dst");
      assert.throws(() => rt.state("acc"), /no state buffer 'acc'/);
    }));

  it("artifact round trip: manifest + kernels/*.wgsl + weights run the same", (t) =>
    withGpu(t, async (rt) => {
      const w = makeTensor("f32", [4], [1, 2, 3, 4]);
      const p = makeProgram(
        rt.target,
        [
          { name: "x", dtype: "f32", dims: [N], kind: "input" },
          { name: "w", dtype: "f32", dims: [N], kind: "constant", data: w },
          { name: "out", dtype: "f32", dims: [N], kind: "output" },
        ],
        [mulKernel()],
        [[0, [0, 1, 2]]],
      );
      const cp = compileProgram(p, "wgsl", rt.target, renderWgsl);
      const files = writeProgramArtifact(cp, "test.tokr");
      assert.deepEqual([...files.keys()].sort(), [
        "kernels/000_mul.wgsl",
        "manifest.json",
        "weights.safetensors",
      ]);
      const manifest = JSON.parse(new TextDecoder().decode(files.get("manifest.json"))) as {
        program: { kernels: { grid: string[]; symbols: string[] }[]; buffers: { dims: string[] }[] };
      };
      assert.deepEqual(manifest.program.kernels[0].grid, [
        "min(65535, ceildiv(N, 64))",
        "ceildiv(N, 4194240)",
        "1",
      ]);
      assert.deepEqual(manifest.program.kernels[0].symbols, ["N"]);
      const loaded = await loadProgramArtifact(async (name) => {
        const f = files.get(name);
        if (!f) throw new Error("no such file");
        return f;
      }, "mem");
      assert.equal(loaded.kernels[0].source, cp.kernels[0].source);
      const x = makeTensor("f32", [4], [0.5, -1, 2, 8]);
      const a = await (await rt.load(cp)).run(new Map([["x", x]]));
      const b = await (await rt.load(loaded)).run(new Map([["x", x]]));
      assert.deepEqual(Array.from(b.get("out")!.data), [0.5, -2, 6, 32]);
      assert.deepEqual(Array.from(a.get("out")!.data), Array.from(b.get("out")!.data));
      await assert.rejects(
        loadProgramArtifact(
          async (name) => files.get(name) ?? Promise.reject(new Error("ENOENT")),
          "mem",
        ).then(() => loadProgramArtifact(async () => new TextEncoder().encode("{}"), "bad")),
        /bad\/manifest.json: format is undefined/,
      );
    }));
});

describe("WebGPU: tokr compile/run --target wgsl", () => {
  it("compiles an IR file to a WGSL artifact whose run matches the CPU reference", (t) =>
    withGpu(t, async () => {
      const dir = mkdtempSync(join(tmpdir(), "tokr-wgsl-"));
      const io = (out: string[]) => ({
        stdout: (s: string) => void out.push(s),
        stderr: (s: string) => void out.push(s),
        cwd: dir,
      });
      writeFileSync(
        join(dir, "m.ir"),
        `graph @m(%x: f32[B, 3]) {\n  sym B\n  const %w: f32[3] = dense<[1, -2, 0.5]>\n  %s = Mul(%x, %w) : f32[B, 3]\n  %e = Erf(%s) : f32[B, 3]\n  return %e\n}\n`,
      );
      writeSafetensorsFile(
        join(dir, "in.safetensors"),
        new Map([["x", makeTensor("f32", [2, 3], [0.1, 0.2, -0.3, 1, 2, 3])]]),
      );
      const log: string[] = [];
      assert.equal(
        await main(["compile", "m.ir", "--target", "wgsl", "-o", "art"], io(log)),
        0,
        log.join(""),
      );
      assert.ok(existsSync(join(dir, "art", "kernels")));
      assert.equal(
        await main(["run", "art", "--inputs", "in.safetensors", "-o", "gpu.safetensors"], io(log)),
        0,
        log.join(""),
      );
      assert.equal(
        await main(["run", "m.ir", "--inputs", "in.safetensors", "-o", "cpu.safetensors"], io(log)),
        0,
        log.join(""),
      );
      const gpu = readSafetensorsFile(join(dir, "gpu.safetensors")).get("e")!;
      const cpu = readSafetensorsFile(join(dir, "cpu.safetensors")).get("e")!;
      close(gpu.data, Array.from(cpu.data), 1e-6, "e", true);
      const bad: string[] = [];
      assert.equal(await main(["run", "art", "--target", "cpu"], io(bad)), 1);
      assert.match(bad.join(""), /is a wgsl artifact; it cannot run with --target cpu/);
      rmSync(dir, { recursive: true, force: true });
    }));
});
