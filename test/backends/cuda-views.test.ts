/**
 * Strided views through the CUDA renderer (the same KIR): the head split around attention, its
 * q/k/v read and output stored through strides, compiled to .cu and run on the CPU emulator in
 * f32 and bf16 storage against the CPU reference.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, emulateProgram } from "../../backends/cuda/program.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { missingTools } from "../../backends/cuda/toolchain.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { headSplitFeeds, headSplitGraph } from "../kir/views-fixtures.js";
import { assertClose, skipUnlessRequired } from "../util/helpers.js";

const missing = missingTools();
const skipEmu = skipUnlessRequired(
  missing.some((m) => m.startsWith("g++")) ? `needs g++: ${missing.join("; ")}` : false,
);

// bf16 keeps 8 significand bits: values of magnitude ~1.5 through a few roundings, 5e-2 absolute.
for (const [name, target, tol] of [
  ["f32", CUDA_TARGET, 1e-5],
  ["bf16", { ...CUDA_TARGET, bf16: true }, 5e-2],
] as const)
  test(`cuda emulation: strided head split around attention (${name})`, { skip: skipEmu }, () => {
    const g = headSplitGraph();
    const p = buildProgram(g, target);
    const copies = new Set(
      g.nodes.filter((n) => n.op === "Transpose" || n.op === "Slice").map((n) => n.outputs[0].name),
    );
    assert.equal(p.steps.filter((s) => s.nodes.some((n) => copies.has(n))).length, 0);
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-views-"));
    try {
      const emu = buildEmulator(readFileSync(compileCudaProgram(p, dir, { nvcc: false }).cu, "utf8"));
      for (const batch of [1, 3]) {
        const feeds = headSplitFeeds(batch);
        const want = runGraph(g, feeds);
        for (const order of ["forward", "reverse"] as const) {
          const got = emulateProgram(emu, p, feeds, order);
          for (const [n, w] of want) assertClose(got.get(n)!, w, tol, `${n} batch ${batch} ${order}`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
