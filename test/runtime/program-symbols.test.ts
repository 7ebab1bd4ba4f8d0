/**
 * Every symbol a kernel reads must be bound by the program's symbols or the step's `bind`:
 * compileProgram, loadProgramArtifact and the runners refuse a program that leaves one unbound
 * (a runner would otherwise pass an undefined uniform, i.e. 0), naming the step and the kernel.
 * The CUDA paths (artifact build and the CPU emulator) check the same before any work.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { RunError } from "../../backends/cpu/interpreter.js";
import type { CudaEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, emulateProgram } from "../../backends/cuda/program.js";
import { CudaRenderError } from "../../backends/cuda/render.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import type { Program } from "../../compiler/kir/program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import "../../compiler/ops/index.js";
import {
  ArtifactError,
  compileProgram,
  loadProgramArtifact,
  writeProgramArtifact,
} from "../../runtime/artifact.js";
import { GpuRuntimeError } from "../../runtime/webgpu/device.js";
import { gpuRuntime } from "./webgpu-harness.js";

/** relu(x) for x: f32[B, 4]: one step whose kernel reads B. */
function reluProgram(): Program {
  const b = new GraphBuilder("relu_b");
  b.symbol("B");
  const x = b.input("x", "f32", [sym("B"), 4]);
  return buildProgram(b.output(b.op("Relu", [x])), DEFAULT_TARGET);
}

const UNBOUND =
  /relu_b: step 0 \(nodes .+\) runs kernel \S+, which reads symbol B; neither the program nor the step binds it/;

describe("unbound kernel symbols", () => {
  it("compileProgram refuses a step whose kernel reads a symbol nobody binds", () => {
    const p = reluProgram();
    assert.equal(p.steps.length, 1);
    const compile = (q: Program) => compileProgram(q, "wgsl", DEFAULT_TARGET, renderWgsl);
    assert.deepEqual(compile(p).kernels[0].symbols, ["B"]);
    assert.throws(
      () => compile({ ...p, symbols: [] }),
      (e: Error) => {
        assert.ok(e instanceof ArtifactError);
        assert.match(e.message, UNBOUND);
        assert.ok(e.message.includes(p.kernels[0].name), e.message);
        return true;
      },
    );
    // A step's own `bind` (generic kernels) counts as binding the symbol.
    const bound = { ...p, symbols: [], steps: p.steps.map((s) => ({ ...s, bind: { B: 2 } })) };
    assert.equal(compile(bound).steps[0].bind?.B, 2);
  });

  it("loadProgramArtifact refuses a manifest that drops the program's symbol", async () => {
    const files = writeProgramArtifact(compileProgram(reluProgram(), "wgsl", DEFAULT_TARGET, renderWgsl));
    const manifest = JSON.parse(new TextDecoder().decode(files.get("manifest.json"))) as {
      program: { symbols: unknown[] };
    };
    manifest.program.symbols = [];
    files.set("manifest.json", new TextEncoder().encode(JSON.stringify(manifest)));
    await assert.rejects(
      loadProgramArtifact(async (name) => files.get(name)!, "mem"),
      (e: Error) =>
        e instanceof ArtifactError && /^mem\/manifest\.json: /.test(e.message) && UNBOUND.test(e.message),
    );
  });

  it("the WebGPU runner refuses a compiled program edited to leave a symbol unbound", async (t) => {
    const rt = await gpuRuntime();
    if (typeof rt === "string") return t.skip(rt);
    const cp = compileProgram(reluProgram(), "wgsl", rt.target, renderWgsl);
    await assert.rejects(rt.load({ ...cp, symbols: [] }), (e: Error) => {
      return e instanceof GpuRuntimeError && UNBOUND.test(e.message);
    });
    const out = await (await rt.load(cp)).run(new Map([["x", makeTensor("f32", [1, 4], [-1, 2, -3, 4])]]));
    assert.deepEqual(Array.from([...out.values()][0].data), [0, 2, 0, 4]);
  });

  it("the CUDA artifact build and the CUDA emulator refuse it before any work", () => {
    const p = { ...reluProgram(), symbols: [] };
    const dir = mkdtempSync(join(tmpdir(), "tokr-unbound-"));
    try {
      assert.throws(
        () => compileCudaProgram(p, join(dir, "out"), { nvcc: false }),
        (e: Error) => e instanceof CudaRenderError && UNBOUND.test(e.message),
      );
      assert.equal(existsSync(join(dir, "out")), false, "nothing written for a refused program");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The emulator is never reached: the check runs before buffers are built or kernels launched.
    const emu = {
      run: () => assert.fail("the emulator ran a program with an unbound symbol"),
    } as unknown as CudaEmulator;
    const x = makeTensor("f32", [1, 4], [-1, 2, -3, 4]);
    assert.throws(
      () => emulateProgram(emu, p, new Map([["x", x]])),
      (e: Error) => e instanceof RunError && UNBOUND.test(e.message),
    );
  });
});
