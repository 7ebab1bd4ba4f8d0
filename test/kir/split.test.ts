import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { evalDim, sym } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { BINDING_OFFSET_ALIGN } from "../../compiler/kir/split.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { assertValid } from "../../compiler/verify.js";
import { planMemory } from "../../runtime/plan.js";
import { assertClose } from "../util/helpers.js";
import { SMALL_VIT_BLOCK, seeded, splitCases } from "./split-cases.js";

/** A 4 KiB binding limit: 1024 f32 elements per bound tensor. */
const TINY: Target = { ...DEFAULT_TARGET, maxStorageBindingBytes: 4096 };

/** Every binding of every step fits the limit and starts at an aligned byte offset inside its root. */
function checkBindings(p: Program, limit: number): void {
  const env = new Map<string, number>();
  for (const s of p.steps)
    for (const a of s.args) {
      const b = p.buffers[a];
      const bytes = evalDim(b.size, env) * 4;
      assert.ok(bytes <= limit, `step ${s.nodes.join(",")} binds %${b.name} (${bytes} bytes)`);
      if (b.offset !== undefined) {
        assert.equal((b.offset * 4) % BINDING_OFFSET_ALIGN, 0, `%${b.name} offset ${b.offset}`);
        const root = p.buffers[b.aliasOf!];
        assert.ok(
          b.offset + evalDim(b.size, env) <= evalDim(root.size, env),
          `%${b.name} inside %${root.name}`,
        );
      }
    }
}

function checkOnKir(g: Graph, feeds: Map<string, Tensor>, minSteps: number, tol = 1e-4): Program {
  assertValid(g);
  const p = buildProgram(g, TINY);
  checkBindings(p, TINY.maxStorageBindingBytes);
  const whole = buildProgram(g, DEFAULT_TARGET);
  assert.ok(
    p.steps.length >= whole.steps.length + minSteps,
    `${p.steps.length} steps split vs ${whole.steps.length} whole`,
  );
  assert.ok(
    p.buffers.some((b) => b.offset !== undefined && b.offset > 0),
    "some chunk binds at an offset",
  );
  const want = runGraph(g, feeds);
  const got = runProgramOnKir(p, feeds, { target: TINY });
  for (const [name, w] of want) assertClose(got.get(name)!, w, tol, name);
  // The memory plan covers every offset view inside its slot.
  const plan = planMemory(p.buffers, new Map());
  for (const b of p.buffers)
    if (b.offset !== undefined && plan.slotOf.has(b.id))
      assert.ok(
        plan.offsets.get(b.id)! + plan.bytes.get(b.id)! <= plan.slots[plan.slotOf.get(b.id)!],
        `%${b.name} inside its slot`,
      );
  return p;
}

for (const c of splitCases())
  test(`split to a 4 KiB binding limit on KIR: ${c.name}`, () => {
    const p = checkOnKir(c.graph, c.feeds, c.minExtraSteps);
    if (c.kernels !== undefined) assert.equal(p.kernels.length, c.kernels, "equal chunks share kernels");
  });

test("split to a 4 KiB binding limit on KIR: a small ViT block (.tokr, batch 4)", () => {
  const g = compileTokr(SMALL_VIT_BLOCK, "small-vit.tokr");
  const feeds = new Map([["x", seeded("f32", [4, 16, 32], 7)]]);
  const p = checkOnKir(g, feeds, 8, 1e-3);
  // Every activation is [4, 16, 32] f32 = 8 KiB > 4 KiB, so every unit splits: each step runs as 2
  // chunks of 2 images. A split unit reads no strided views and gets no generic kernels, so `p` is
  // exactly the program built without either: 13 units (LayerNorm, 3 QKV MatMuls, 3 head-split
  // Transposes, attention, its output Transpose, out-proj MatMul+bias+residual, LayerNorm,
  // MatMul+bias+Gelu, MatMul+bias+residual) x 2 chunks = 26 steps, and the equal chunks dedupe to
  // the unsplit program's 7 kernels (the QKV MatMuls share one, as do the head-split Transposes, the
  // LayerNorms and the two residual MatMuls).
  const whole = buildProgram(g, DEFAULT_TARGET, { stridedViews: false, genericKernels: false });
  const split = buildProgram(g, TINY, { stridedViews: false });
  const shape = (q: Program): string[] => q.steps.map((s) => `${q.kernels[s.kernel].name}: ${s.nodes}`);
  assert.equal(whole.steps.length, 13);
  assert.equal(whole.kernels.length, 7);
  assert.equal(p.steps.length, 2 * whole.steps.length);
  assert.equal(p.kernels.length, whole.kernels.length);
  assert.deepEqual(shape(p), shape(split));
  for (const s of p.steps)
    for (const a of s.args) {
      const b = p.buffers[a];
      if (b.kind !== "constant")
        assert.notEqual(b.offset, undefined, `step ${s.nodes} binds %${b.name} whole`);
    }
  // Unsplit, the same block folds its four Transposes into strided reads: 13 - 4 = 9 steps.
  const folded = buildProgram(g, DEFAULT_TARGET);
  assert.equal(folded.steps.length, 9);
  const transposes = g.nodes.filter((n) => n.op === "Transpose").map((n) => n.outputs[0].name);
  assert.equal(transposes.length, 4);
  assert.ok(folded.steps.every((s) => !transposes.some((t) => s.nodes.includes(t))));
});

function scheduleError(g: Graph, target: Target = TINY): string {
  try {
    buildProgram(g, target);
  } catch (e) {
    assert.ok(e instanceof ScheduleError, String(e));
    return e.message;
  }
  return assert.fail("expected a ScheduleError");
}

test("a weight every chunk reads whole above the limit is an error naming node, tensor, size, limit", () => {
  const b = new GraphBuilder("big_weight");
  const x = b.input("x", "f32", [4, 8]);
  const w = b.constant(seeded("f32", [8, 200], 3), "w_big");
  const y = b.op("MatMul", [x, w]);
  const g = b.output(y);
  const msg = scheduleError(g);
  assert.match(msg, /MatMul/);
  assert.match(msg, /%w_big \(f32\[8, 200\] = 6400 bytes\)/);
  assert.match(msg, /4096 bytes/);
  assert.match(msg, /reads %w_big whole/);
  // The default 128 MiB limit schedules it whole.
  assert.equal(buildProgram(g, DEFAULT_TARGET).steps.length, 1);
});

test("an op whose chunks along the outer axis are not independent is an error, not a wrong split", () => {
  const b = new GraphBuilder("softmax_outer");
  const x = b.input("x", "f32", [1500, 2]);
  const g = b.output(b.op("Softmax", [x], { axis: 0 }));
  assert.match(scheduleError(g), /Softmax has no split rule for axis 0/);
});

test("a MatMul whose perm_a moves the split axis inward is refused, not chunked along the wrong axis", () => {
  // Output [8, 8, 32] splits on axis 0 = A's stored axis 1, which is not contiguous in [8, 8, 32].
  const b = new GraphBuilder("perm_a_inner");
  const x = b.input("x", "f32", [8, 8, 32]);
  const w = b.constant(seeded("f32", [32, 32], 3), "w");
  const g = b.output(b.op("MatMul", [x, w], { perm_a: [1, 0, 2] }));
  assert.match(scheduleError(g), /MatMul.*chunks of %x along its axis 1 are not contiguous/);
});

test("a symbolic split axis is left to the runtime's check (the schedule cannot know the size)", () => {
  const b = new GraphBuilder("sym");
  b.symbol("B");
  const x = b.input("x", "f32", [sym("B"), 2000]);
  const g = b.output(b.op("Relu", [x]));
  const p = buildProgram(g, TINY);
  assert.equal(p.steps.length, 1);
});

test("the default 128 MiB limit splits a 4 GiB pointwise op into 32 chunks of one kernel; CUDA never splits", () => {
  const b = new GraphBuilder("huge");
  const x = b.input("x", "f32", [1 << 20, 1024]);
  const g = b.output(b.op("Relu", [x]));
  // Scheduling allocates nothing: shapes only.
  const p = buildProgram(g, DEFAULT_TARGET);
  assert.equal(p.steps.length, 32);
  assert.equal(p.kernels.length, 1, "equal chunks share one kernel");
  checkBindings(p, DEFAULT_TARGET.maxStorageBindingBytes);
  const plan = planMemory(p.buffers, new Map());
  assert.deepEqual(plan.slots, [4 * 2 ** 30, 4 * 2 ** 30], "input and output stay whole buffers");
  const cuda = buildProgram(g, CUDA_TARGET);
  assert.equal(cuda.steps.length, 1);
  assert.ok(cuda.buffers.every((bb) => bb.offset === undefined));
});
