import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { elementwiseKernel, KernelBuilder } from "../../compiler/kir/builder.js";
import { add, i32, lit, unary } from "../../compiler/kir/expr.js";
import { DEFAULT_TARGET, type Kernel } from "../../compiler/kir/types.js";
import { checkKernelLimits, renderWgsl, WgslError } from "../../backends/wgsl/render.js";
import { compileProgram } from "../../runtime/artifact.js";
import { WgslCompileError } from "../../runtime/webgpu/pipelines.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import {
  binaryKernel,
  boolKernel,
  castKernel,
  constKernel,
  N,
  subgroupKernel,
  unaryKernel,
  workgroupKernel,
} from "./wgsl-prims.js";

const ALL: Kernel[] = [
  unaryKernel("f32"),
  unaryKernel("f16"),
  unaryKernel("i32"),
  binaryKernel("f32"),
  binaryKernel("f16"),
  binaryKernel("i32"),
  boolKernel(),
  castKernel(),
  constKernel(),
  workgroupKernel(),
  subgroupKernel(),
];

describe("WGSL renderer: structure", () => {
  it("is deterministic (the source is the pipeline cache key)", () => {
    for (const k of ALL) assert.equal(renderWgsl(k), renderWgsl(structuredClone(k)));
  });

  it("binds storage buffers in parameter order, then the symbol uniform", () => {
    const src = renderWgsl(binaryKernel("f32"));
    assert.match(src, /@binding\(0\) var<storage, read> b_a: array<f32>;/);
    assert.match(src, /@binding\(1\) var<storage, read> b_b: array<f32>;/);
    assert.match(src, /@binding\(2\) var<storage, read_write> b_out: array<f32>;/);
    assert.match(src, /@binding\(3\) var<storage, read_write> b_cmp: array<u32>;/);
    assert.match(src, /struct Syms \{ s_N: i32 \}\n@group\(0\) @binding\(4\) var<uniform> u: Syms;/);
    assert.match(src, /u\.s_N/);
  });

  it("omits the uniform when a kernel reads no symbol", () => {
    const src = renderWgsl(constKernel());
    assert.doesNotMatch(src, /var<uniform>/);
  });

  it("enables f16 and subgroups only when used, and includes only used helpers", () => {
    const f32 = renderWgsl(unaryKernel("f32"));
    assert.doesNotMatch(f32, /enable/);
    assert.match(f32, /fn tokr_erf\(/);
    assert.doesNotMatch(f32, /tokr_pow/);
    assert.match(renderWgsl(unaryKernel("f16")), /^enable f16;$/m);
    assert.match(renderWgsl(unaryKernel("f16")), /f16\(tokr_erf\(f32\(/);
    assert.match(renderWgsl(subgroupKernel()), /^enable subgroups;$/m);
    assert.match(renderWgsl(binaryKernel("f32")), /fn tokr_pow\(/);
  });

  it("spells special constants without literals WGSL rejects", () => {
    const src = renderWgsl(constKernel());
    assert.doesNotMatch(src, /Infinity|NaN/);
    assert.match(src, /tokr_inf_f32\(\)/);
    assert.match(src, /\(-tokr_inf_f16\(\)\)/);
    assert.match(src, /tokr_nan_f32\(\)/);
    assert.match(src, /\(-2147483647i - 1i\)/);
    assert.match(src, /\(-0\.0f\)/);
  });

  it("renders statements structurally", () => {
    const k = elementwiseKernel("ew", N, 32, (kb) => {
      const x = kb.buffer("x", "f32", "read");
      const y = kb.buffer("y", "f32", "read_write");
      return (i) => kb.store(y, i, unary("exp", kb.load(x, i)));
    });
    const src = renderWgsl(k);
    assert.match(src, /@compute @workgroup_size\(32, 1, 1\)\nfn main\(/);
    assert.match(src, /let v_i: i32 = /);
    assert.match(src, /if \(\(v_i < u\.s_N\)\) \{\n {4}b_y\[v_i\] = exp\(b_x\[v_i\]\);\n {2}\}/);
  });

  it("checks device limits, naming the kernel", () => {
    const kb = new KernelBuilder("wide", [1, 1, 1]);
    for (let j = 0; j < 9; j++) kb.store(kb.buffer(`p${j}`, "f32", "read_write"), i32(0), lit(1, "f32"));
    const k = kb.build();
    assert.throws(() => checkKernelLimits(k, DEFAULT_TARGET), /kernel wide: 9 storage buffers, .* allows 8/);
    checkKernelLimits(k, { ...DEFAULT_TARGET, maxStorageBuffersPerStage: 10 });
    assert.throws(() => checkKernelLimits(unaryKernel("f16"), DEFAULT_TARGET), WgslError);
    assert.throws(
      () => checkKernelLimits(new KernelBuilder("big", [32, 32, 1]).build(), DEFAULT_TARGET),
      /kernel big: workgroup of 1024 invocations/,
    );
  });
});

describe("WGSL renderer: Dawn compiles every primitive", () => {
  it("every primitive kernel compiles without errors", async (t) => {
    const rt = await gpuRuntime({ f16: true });
    if (typeof rt === "string") return t.skip(rt);
    for (const k of ALL) {
      if (k.features.includes("f16") && !rt.target.f16) continue;
      if (k.features.includes("subgroups") && !rt.target.subgroups) continue;
      const cp = compileProgram(
        { name: "p", symbols: [], buffers: [], kernels: [k], steps: [], inputs: [], outputs: [] },
        "wgsl",
        rt.target,
        renderWgsl,
      );
      await rt.pipelines.get(cp.kernels[0]);
    }
  });

  it("invalid WGSL is an error with the kernel name and line:column", async (t) => {
    const rt = await gpuRuntime({ f16: true });
    if (typeof rt === "string") return t.skip(rt);
    const k = elementwiseKernel("broken", N, 8, (kb) => {
      const y = kb.buffer("y", "f32", "read_write");
      return (i) => kb.store(y, i, add(lit(1, "f32"), lit(2, "f32")));
    });
    const good = renderWgsl(k);
    const source = good.replace("(1.0f + 2.0f)", "(1.0f + 2u)");
    const line = source.split("\n").findIndex((l) => l.includes("2u")) + 1;
    await assert.rejects(
      rt.pipelines.get({
        name: "broken",
        source,
        symbols: ["N"],
        params: k.params,
        workgroupSize: [8, 1, 1],
        grid: k.grid,
      }),
      (e: unknown) => {
        assert.ok(e instanceof WgslCompileError);
        assert.match(e.message, new RegExp(`^kernel broken: broken\\.wgsl:${line}:\\d+: `));
        assert.match(e.message, /\^/);
        return true;
      },
    );
  });
});
