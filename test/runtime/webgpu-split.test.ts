/**
 * Binding-limit splitting on a real WebGPU adapter (Dawn + lavapipe in CI): programs scheduled for
 * a 4 KiB binding limit bind chunks at 256-byte aligned offsets of larger buffers and must match
 * the CPU reference. Skips with the reason when there is no adapter (fails under TOKR_REQUIRE_BACKENDS=1).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { compileProgram, loadProgramArtifact, writeProgramArtifact } from "../../runtime/artifact.js";
import { planMemory } from "../../runtime/plan.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { SMALL_VIT_BLOCK, seeded, splitCases } from "../kir/split-cases.js";
import { assertClose } from "../util/helpers.js";
import { gpuRuntime } from "./webgpu-harness.js";

type Ctx = { skip(reason: string): void };

async function withGpu(t: Ctx, f: (rt: WebGpuRuntime) => Promise<void>): Promise<void> {
  const rt = await gpuRuntime();
  if (typeof rt === "string") return t.skip(rt);
  await f(rt);
}

const tiny = (rt: WebGpuRuntime): Target => ({ ...rt.target, maxStorageBindingBytes: 4096 });

/** Schedules for a 4 KiB limit, runs on the device (optionally through an artifact), compares to runGraph. */
async function check(
  rt: WebGpuRuntime,
  g: Graph,
  feeds: Map<string, Tensor>,
  tol: number,
  viaArtifact = false,
) {
  const target = tiny(rt);
  const p = buildProgram(g, target);
  assert.ok(
    p.buffers.some((b) => (b.offset ?? 0) > 0),
    "the program binds chunks at nonzero offsets",
  );
  let cp = compileProgram(p, "wgsl", target, renderWgsl);
  if (viaArtifact) {
    const files = writeProgramArtifact(cp);
    cp = await loadProgramArtifact((name) => Promise.resolve(files.get(name)!), "split");
    assert.deepEqual(
      cp.buffers.map((b) => b.offset),
      p.buffers.map((b) => b.offset),
      "offsets survive the artifact",
    );
  }
  const prog = await rt.load(cp);
  try {
    const want = runGraph(g, feeds);
    // Twice: the second run reuses the prepared bind groups and slots.
    for (let r = 0; r < 2; r++) {
      const got = await prog.run(feeds);
      for (const [name, w] of want) assertClose(got.get(name)!, w, tol, `${name} (run ${r})`);
    }
    const plan = prog.lastPlan!;
    for (const b of p.buffers)
      if (b.offset !== undefined && plan.slotOf.has(b.id))
        assert.ok(plan.offsets.get(b.id)! + plan.bytes.get(b.id)! <= plan.slots[plan.slotOf.get(b.id)!]);
  } finally {
    prog.destroy();
  }
}

describe("WGSL programs split to a 4 KiB binding limit match the CPU reference", () => {
  for (const c of splitCases())
    it(c.name, (t) => withGpu(t, (rt) => check(rt, c.graph, c.feeds, 1e-4, c.name.startsWith("gather"))));

  it("a small ViT block (.tokr, batch 4)", (t) =>
    withGpu(t, async (rt) => {
      const g = compileTokr(SMALL_VIT_BLOCK, "small-vit.tokr");
      await check(rt, g, new Map([["x", seeded("f32", [4, 16, 32], 7)]]), 1e-3, true);
    }));
});

describe("memory plan with offset views", () => {
  it("sizes a slot to cover the furthest chunk and reports byte offsets", () => {
    const base = { dtype: "f32", storage: "f32", firstUse: 0, lastUse: 1 } as const;
    const plan = planMemory(
      [
        { ...base, id: 0, name: "x", dims: [100], size: 100, kind: "input" },
        { ...base, id: 1, name: "y", dims: [100], size: 100, kind: "intermediate", firstUse: 1 },
        {
          ...base,
          id: 2,
          name: "y[64:100]",
          dims: [36],
          size: 36,
          kind: "intermediate",
          aliasOf: 1,
          offset: 64,
        },
        {
          ...base,
          id: 3,
          name: "y[0:64]",
          dims: [64],
          size: 64,
          kind: "intermediate",
          aliasOf: 1,
          firstUse: 0,
        },
      ],
      new Map(),
    );
    assert.equal(plan.offsets.get(2), 256);
    assert.equal(plan.offsets.get(3), 0);
    assert.equal(plan.bytes.get(2), 144);
    // The group of y lives from step 0 (its first chunk) and spans 400 bytes.
    assert.equal(plan.slots[plan.slotOf.get(2)!], 400);
    assert.notEqual(plan.slotOf.get(0), plan.slotOf.get(1), "x and y overlap in time");
  });
});
