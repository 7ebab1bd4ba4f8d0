/**
 * Micro-batching on a real WebGPU adapter (Dawn + lavapipe in CI): a program with a dynamic batch
 * `B`, scheduled for a 4 KiB binding limit, is run with a batch whose bindings exceed it; the
 * runtime runs batch slices that fit and concatenates them. Programs that the schedule did not
 * prove batch-separable (Program.batchSymbol, compiler/kir/batch.ts) keep the error, naming why.
 * Skips with the reason when there is no adapter.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { compileProgram } from "../../runtime/artifact.js";
import type { GpuState } from "../../runtime/webgpu/device.js";
import type { GpuProgram } from "../../runtime/webgpu/program.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { seeded } from "../kir/split-cases.js";
import { assertClose } from "../util/helpers.js";
import { gpuRuntime } from "./webgpu-harness.js";

type Ctx = { skip(reason: string): void };

async function withGpu(t: Ctx, f: (rt: WebGpuRuntime) => Promise<void>): Promise<void> {
  const rt = await gpuRuntime();
  if (typeof rt === "string") return t.skip(rt);
  await f(rt);
}

const LIMIT = 4096;

// x row = 16 f32 = 64 bytes: a 4 KiB binding holds 64 rows of B.
const BATCHED = `
dim = 16
model m(x: f32[B, dim], z: f32[B, 3, dim]) -> (y: f32[B, dim], u: f32[B, 3, dim]) {
  param w: f32[dim, dim] = normal(std: 0.3)
  y = softmax(layernorm(matmul(x, w), axis: -1), axis: -1)
  u = z * 2.0 + reduce_mean(z, axes: [1], keepdims: 1)
}
`;

// y's leading symbol is B, u's is N: no common batch symbol.
const MIXED = `
dim = 16
model m(x: f32[B, dim], z: f32[N, dim]) -> (y: f32[B, dim], u: f32[N, dim]) {
  y = x * 2.0
  u = z + 1.0
}
`;

// Row statistics across the batch: slices would each subtract their own mean.
const ACROSS = `
model m(x: f32[B, 16]) -> (y: f32[B, 16]) {
  mu = reduce_mean(x, axes: [0], keepdims: 1)
  y = x - mu
}
`;

// Per-example transpose through B at axis 1 (separable), then a reshape regrouping B (not).
const MOVED = `
model m(x: f32[B, 4, 16]) -> (y: f32[B, 64], w: f32[B, 16, 4]) {
  t = transpose(x, perm: [1, 0, 2]) * 2.0
  y = reshape(t, [-1, 64])
  w = transpose(t, perm: [1, 2, 0])
}
`;

async function load(rt: WebGpuRuntime, src: string, limit: number): Promise<GpuProgram> {
  const target: Target = { ...rt.target, maxStorageBindingBytes: limit };
  const g = compileTokr(src, "microbatch.tokr");
  return rt.load(compileProgram(buildProgram(g, target), "wgsl", target, renderWgsl));
}

describe("WGSL micro-batching of symbolic bindings above the limit", () => {
  it("runs batch slices that fit and matches the CPU reference and a large-limit run", (t) =>
    withGpu(t, async (rt) => {
      const g = compileTokr(BATCHED, "microbatch.tokr");
      const small = await load(rt, BATCHED, LIMIT);
      const large = await load(rt, BATCHED, rt.target.maxStorageBindingBytes);
      try {
        for (const b of [150, 42, 3]) {
          const feeds = new Map([
            ["x", seeded("f32", [b, 16], 3 + b)],
            ["z", seeded("f32", [b, 3, 16], 5 + b)],
          ]);
          const want = runGraph(g, feeds);
          const got = await small.run(feeds);
          const ref = await large.run(feeds);
          for (const [name, w] of want) {
            assertClose(got.get(name)!, w, 1e-4, `${name} at B = ${b}`);
            assertClose(got.get(name)!, ref.get(name)!, 1e-6, `${name} vs large limit at B = ${b}`);
          }
          // Every binding of the last slice fits the limit; z rows are 192 bytes, so a slice holds
          // at most 21 examples: 150 runs as 7 slices of 21 and one of 3.
          const plan = small.lastPlan!;
          for (const [, bytes] of plan.bytes) assert.ok(bytes <= LIMIT, `binding of ${bytes} bytes`);
          const zId = small.program.inputs.find((id) => small.program.buffers[id].name === "z")!;
          assert.equal(plan.bytes.get(zId), (b % 21 || Math.min(b, 21)) * 192, `last slice at B = ${b}`);
        }
      } finally {
        small.destroy();
        large.destroy();
      }
    }));

  it("keeps the error when inputs have no common batch symbol", (t) =>
    withGpu(t, async (rt) => {
      const prog = await load(rt, MIXED, LIMIT);
      try {
        const feeds = new Map([
          ["x", seeded("f32", [100, 16], 1)],
          ["z", seeded("f32", [4, 16], 2)],
        ]);
        await assert.rejects(
          prog.run(feeds),
          /binds 'x' of 6400 bytes, above the max storage binding size 4096.*micro-batching does not apply: input 'z' \[N, 16\] and input 'x' \[B, 16\] have different leading symbols/,
        );
        // Within the limit it runs as one program.
        const ok = await prog.run(
          new Map([
            ["x", seeded("f32", [8, 16], 1)],
            ["z", seeded("f32", [4, 16], 2)],
          ]),
        );
        assert.deepEqual(ok.get("u")!.shape, [4, 16]);
      } finally {
        prog.destroy();
      }
    }));

  it("keeps the error, naming the node, when an op mixes examples along B", (t) =>
    withGpu(t, async (rt) => {
      for (const [src, feeds, node] of [
        [
          ACROSS,
          new Map([["x", seeded("f32", [100, 16], 1)]]),
          /microbatch\.tokr:3:\d+: node %\w+ \(ReduceMean\)/,
        ],
        [
          MOVED,
          new Map([["x", seeded("f32", [40, 4, 16], 1)]]),
          /microbatch\.tokr:4:\d+: node %\w+ \(Reshape\)/,
        ],
      ] as const) {
        const prog = await load(rt, src, LIMIT);
        try {
          assert.equal(prog.program.batchSymbol, undefined);
          const err = await prog.run(feeds).then(
            () => assert.fail("expected an error"),
            (e: unknown) => String(e),
          );
          assert.match(err, /above the max storage binding size 4096/);
          assert.match(
            err,
            /micro-batching does not apply: the graph mixes examples along its batch axis B at /,
          );
          assert.match(err, node);
        } finally {
          prog.destroy();
        }
      }
    }));

  it("micro-batches a program whose B moves off axis 0 and back (per-example transposes)", (t) =>
    withGpu(t, async (rt) => {
      const src = `
model m(x: f32[B, 4, 16]) -> (w: f32[B, 16, 4]) {
  w = transpose(transpose(x, perm: [1, 0, 2]) * 2.0, perm: [1, 2, 0])
}
`;
      const prog = await load(rt, src, LIMIT);
      try {
        assert.equal(prog.program.batchSymbol, "B");
        const feeds = new Map([["x", seeded("f32", [40, 4, 16], 7)]]);
        const want = runGraph(compileTokr(src, "microbatch.tokr"), feeds);
        const got = await prog.run(feeds);
        assertClose(got.get("w")!, want.get("w")!, 1e-6, "w");
        // 40 examples of 256 bytes are 10240 bytes: it ran in slices of at most 16.
        for (const [, bytes] of prog.lastPlan!.bytes) assert.ok(bytes <= LIMIT, `binding of ${bytes} bytes`);
      } finally {
        prog.destroy();
      }
    }));

  it("keeps the error for an artifact that records no batch symbol (older manifests)", (t) =>
    withGpu(t, async (rt) => {
      const target: Target = { ...rt.target, maxStorageBindingBytes: LIMIT };
      const cp = compileProgram(
        buildProgram(compileTokr(BATCHED, "microbatch.tokr"), target),
        "wgsl",
        target,
        renderWgsl,
      );
      assert.equal(cp.batchSymbol, "B");
      const { batchSymbol: _, ...old } = cp;
      const prog = await rt.load(old);
      try {
        await assert.rejects(
          prog.run(
            new Map([
              ["x", seeded("f32", [100, 16], 1)],
              ["z", seeded("f32", [100, 3, 16], 2)],
            ]),
          ),
          /micro-batching does not apply: the program records no batch symbol/,
        );
      } finally {
        prog.destroy();
      }
    }));

  it("keeps the error when one example alone is over the limit", (t) =>
    withGpu(t, async (rt) => {
      const prog = await load(rt, "model m(x: f32[B, 2048]) -> (y) {\n  y = x * 2.0\n}\n", LIMIT);
      try {
        await assert.rejects(
          prog.run(new Map([["x", seeded("f32", [2, 2048], 1)]])),
          /binds 'x' of 8192 bytes.*micro-batching does not apply: it is above the limit even for B = 1/,
        );
      } finally {
        prog.destroy();
      }
    }));

  it("keeps the error when a state buffer is bound", (t) =>
    withGpu(t, async (rt) => {
      const prog = await load(rt, BATCHED, LIMIT);
      const st = rt.createState("mb-x", "f32", [100, 16]);
      try {
        const feeds = new Map<string, Tensor | GpuState>([
          ["x", st],
          ["z", seeded("f32", [100, 3, 16], 2)],
        ]);
        await assert.rejects(prog.run(feeds), /micro-batching does not apply: input 'x' is a state buffer/);
        const dst = rt.createState("mb-y", "f32", [100, 16]);
        const host = new Map([
          ["x", seeded("f32", [100, 16], 1)],
          ["z", seeded("f32", [100, 3, 16], 2)],
        ]);
        await assert.rejects(
          prog.run(host, { outputsTo: new Map([["y", dst]]) }),
          /micro-batching does not apply: outputs are written to state buffers/,
        );
      } finally {
        rt.destroyState("mb-x");
        rt.destroyState("mb-y");
        prog.destroy();
      }
    }));
});
