/** The liveness memory planner (runtime/plan.ts): pure, no device. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type Dim, sym } from "../../compiler/ir/sym.js";
import type { ProgramBuffer } from "../../compiler/kir/program.js";
import { deviceBytes, planMemory } from "../../runtime/plan.js";

let nextId = 0;
function buf(
  kind: ProgramBuffer["kind"],
  size: Dim,
  firstUse: number,
  lastUse: number,
  extra: Partial<ProgramBuffer> = {},
): ProgramBuffer {
  const id = nextId++;
  return {
    id,
    name: `b${id}`,
    dtype: "f32",
    dims: [size],
    storage: "f32",
    size,
    kind,
    firstUse,
    lastUse,
    ...extra,
  };
}
function fresh(): void {
  nextId = 0;
}

describe("memory planner", () => {
  it("reuses a chain's buffers: x -> a -> b -> c -> out needs two slots", () => {
    fresh();
    const bufs = [
      buf("input", 100, 0, 0),
      buf("intermediate", 100, 0, 1),
      buf("intermediate", 100, 1, 2),
      buf("intermediate", 100, 2, 3),
      buf("output", 100, 3, 3),
    ];
    const p = planMemory(bufs, {});
    assert.deepEqual(p.slots, [400, 400]);
    assert.deepEqual([...p.slotOf.values()], [0, 1, 0, 1, 0]);
    assert.equal(p.peakBytes, 800);
    assert.equal(p.liveBytes, 800);
    assert.equal(p.unplannedBytes, 2000);
  });

  it("never shares a slot between buffers live in the same step (inclusive ends)", () => {
    fresh();
    const bufs = [buf("input", 10, 0, 0), buf("output", 10, 0, 0)];
    const p = planMemory(bufs, {});
    assert.notEqual(p.slotOf.get(0), p.slotOf.get(1));
  });

  it("inputs live from before the first step, outputs until after the last", () => {
    fresh();
    // The input is first used at step 2, yet was uploaded before step 0: no sharing with t.
    const bufs = [
      buf("input", 10, 2, 2),
      buf("intermediate", 10, 0, 1),
      buf("output", 10, 1, 1),
      buf("intermediate", 10, 2, 3),
    ];
    const p = planMemory(bufs, {});
    assert.notEqual(p.slotOf.get(0), p.slotOf.get(1));
    assert.notEqual(p.slotOf.get(2), p.slotOf.get(3)); // the output is still needed after the run
    assert.equal(p.slotOf.get(3), p.slotOf.get(1)); // the freed intermediate slot is reused
  });

  it("picks the smallest free slot that fits, else grows the largest", () => {
    fresh();
    const bufs = [
      buf("intermediate", 1000, 0, 1),
      buf("intermediate", 10, 0, 1),
      buf("intermediate", 8, 2, 3), // both free: the 40-byte slot fits
      buf("intermediate", 500, 2, 3), // only the 4000-byte slot is left
      buf("intermediate", 2000, 4, 5), // grows the largest free slot
    ];
    const p = planMemory(bufs, {});
    assert.equal(p.slotOf.get(2), p.slotOf.get(1));
    assert.equal(p.slotOf.get(3), p.slotOf.get(0));
    assert.equal(p.slotOf.get(4), p.slotOf.get(0));
    assert.deepEqual(p.slots, [8000, 40]);
  });

  it("views share their root's slot and extend its lifetime; constants and externals are not planned", () => {
    fresh();
    const bufs = [
      buf("input", 16, 0, 0),
      buf("intermediate", 16, 0, 0),
      buf("intermediate", 16, 3, 3, { aliasOf: 1 }), // a view of b1 used later
      buf("intermediate", 16, 1, 2),
      buf("constant", 1000, 0, 3),
      buf("output", 16, 3, 3),
    ];
    const p = planMemory(bufs, {});
    assert.equal(p.slotOf.get(2), p.slotOf.get(1));
    assert.notEqual(p.slotOf.get(3), p.slotOf.get(1)); // b1 lives to step 3 through its view
    assert.equal(p.slotOf.get(4), undefined);
    assert.equal(p.constantBytes, 4000);
    const ext = planMemory(bufs, {}, new Set([0]));
    assert.equal(ext.slotOf.get(0), undefined);
  });

  it("evaluates symbolic sizes under the binding and pads to 4 bytes", () => {
    fresh();
    const N = sym("N");
    const bufs = [buf("input", N, 0, 0), buf("output", N, 0, 0, { storage: "f16", dtype: "f16" })];
    const p = planMemory(bufs, { N: 3 });
    assert.deepEqual([p.bytes.get(0), p.bytes.get(1)], [12, 8]);
    assert.equal(planMemory(bufs, { N: 0 }).bytes.get(0), 4);
    assert.equal(deviceBytes("f16", 5), 12);
  });

  it("property: overlapping lifetimes never share a slot; peak lies between live and unplanned bytes", () => {
    const arb = fc.array(
      fc.record({
        start: fc.integer({ min: 0, max: 20 }),
        len: fc.integer({ min: 0, max: 6 }),
        size: fc.integer({ min: 1, max: 5000 }),
        kind: fc.constantFrom("input", "output", "intermediate", "scratch") as fc.Arbitrary<
          ProgramBuffer["kind"]
        >,
      }),
      { minLength: 1, maxLength: 30 },
    );
    fc.assert(
      fc.property(arb, (specs) => {
        fresh();
        const bufs = specs.map((s) => buf(s.kind, s.size, s.start, s.start + s.len));
        const p = planMemory(bufs, {});
        const life = (b: ProgramBuffer): [number, number] => [
          b.kind === "input" ? -1 : b.firstUse,
          b.kind === "output" ? Infinity : b.lastUse,
        ];
        for (const a of bufs)
          for (const b of bufs) {
            if (a.id >= b.id) continue;
            const [s1, e1] = life(a);
            const [s2, e2] = life(b);
            if (s1 <= e2 && s2 <= e1) assert.notEqual(p.slotOf.get(a.id), p.slotOf.get(b.id));
          }
        for (const b of bufs) assert.ok(p.slots[p.slotOf.get(b.id)!] >= p.bytes.get(b.id)!);
        assert.ok(p.liveBytes <= p.peakBytes && p.peakBytes <= p.unplannedBytes);
      }),
    );
  });
});
