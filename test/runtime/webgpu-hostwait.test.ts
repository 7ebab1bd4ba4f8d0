/**
 * How the WebGPU runtime waits for a run's readback (runtime/webgpu/program.ts, `hostWait`): the
 * estimate it sleeps on, and that a sleeping runtime returns exactly what a polling one does on a
 * real adapter (Dawn + lavapipe in CI; skips with the reason when there is none).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { compileProgram } from "../../runtime/artifact.js";
import { HostWaitEstimate } from "../../runtime/webgpu/program.js";
import { seeded } from "../kir/split-cases.js";
import { assertClose } from "../util/helpers.js";
import { gpuRuntime } from "./webgpu-harness.js";

describe("HostWaitEstimate", () => {
  it("sleeps for nothing until a counted run long enough for a timer has been seen", () => {
    const w = new HostWaitEstimate();
    assert.equal(w.sleepMs(), 0);
    w.record(900); // the first run of a binding compiles pipelines: not counted
    assert.equal(w.sleepMs(), 0);
    w.record(2.5);
    assert.equal(w.sleepMs(), 0, "a 2.5 ms run is awaited at once");
  });

  it("sleeps for 80% of the fastest counted run, and follows faster runs down", () => {
    const w = new HostWaitEstimate();
    w.record(5000);
    w.record(50);
    assert.equal(w.sleepMs(), 40);
    w.record(80); // a run slowed by load does not lengthen the sleep
    assert.equal(w.sleepMs(), 40);
    w.record(20);
    assert.equal(w.sleepMs(), 16);
  });
});

// A chain of matmuls long enough (tens of ms on lavapipe) for the sleep to happen from run 2 on.
const SRC = `
dim = 256
model m(x: f32[dim, dim]) -> (y: f32[dim, dim]) {
  param w: f32[dim, dim] = normal(std: 0.07)
  y = matmul(matmul(matmul(matmul(x, w), w), w), w)
}
`;

describe("WebGPU runtime: sleeping before the readback", () => {
  it("gives the polling runtime's results, run after run, and the CPU reference's", async (t) => {
    const sleeping = await gpuRuntime({ hostWait: "sleep" });
    const polling = await gpuRuntime({ hostWait: "poll" });
    if (typeof sleeping === "string") return t.skip(sleeping);
    if (typeof polling === "string") return t.skip(polling);
    assert.equal(sleeping.ctx.hostWait, "sleep");
    assert.equal(polling.ctx.hostWait, "poll");
    const g = compileTokr(SRC, "hostwait.tokr");
    const [a, b] = await Promise.all(
      [sleeping, polling].map((rt) =>
        rt.load(compileProgram(buildProgram(g, rt.target), "wgsl", rt.target, renderWgsl)),
      ),
    );
    try {
      const slept: number[] = [];
      for (let r = 0; r < 5; r++) {
        const feeds = new Map([["x", seeded("f32", [256, 256], 11 + r)]]);
        const want = runGraph(g, feeds).get("y")!;
        const got = (await a.run(feeds)).get("y")!;
        assertClose(got, want, 1e-4, `run ${r} vs the CPU reference`);
        assert.deepEqual(got.data, (await b.run(feeds)).get("y")!.data, `run ${r}: sleeping vs polling`);
        // The first two runs of a binding have no estimate (the first is not counted); later ones
        // may sleep (the chain takes well over 4 ms). A run whose submit and error-scope checks
        // already took 80% of the estimate (a loaded machine) awaits at once, so only some must.
        if (r < 2) assert.equal(a.lastSleepMs, 0, `run ${r}`);
        else slept.push(a.lastSleepMs);
        assert.equal(b.lastSleepMs, 0, "the polling runtime never sleeps");
      }
      assert.ok(
        slept.some((ms) => ms > 0),
        `runs 2-4 slept ${slept.join(", ")} ms`,
      );
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});
