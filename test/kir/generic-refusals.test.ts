/**
 * Program.genericRefusals: a member of a generic class that keeps its static kernels is named with
 * the reason (here: split by the binding limit), its class mates stay generic, the program still
 * equals the reference, and the artifact manifest carries the list.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { compileProgram, loadProgramArtifact, writeProgramArtifact } from "../../runtime/artifact.js";
import { assertClose } from "../util/helpers.js";
import { wave } from "./views-fixtures.js";

/** A 4 KiB binding limit: [32, 40] f32 (5120 bytes) splits, [32, 20] (2560 bytes) does not. */
const TINY: Target = { ...DEFAULT_TARGET, maxStorageBindingBytes: 4096 };

it("a class member split by the binding limit keeps static kernels and is named in genericRefusals", async () => {
  // relu(x * x) on [32, 40] and on [32, 20]: one class of units differing in one static dim.
  const b = new GraphBuilder("cls");
  const x = b.input("x", "f32", [32, 40]);
  const w = b.input("w", "f32", [32, 20]);
  const y = b.op("Relu", [b.op("Mul", [x, x])]);
  const z = b.op("Relu", [b.op("Mul", [w, w])]);
  const g = b.output(y, z);
  const whole = buildProgram(g, DEFAULT_TARGET);
  assert.equal(whole.genericRefusals, undefined);
  assert.equal(whole.kernels.length, 1);
  assert.ok(
    whole.steps.every((s) => s.bind !== undefined),
    "both members bind their width",
  );

  const p = buildProgram(g, TINY);
  assert.deepEqual(p.genericRefusals, [
    `node %${y.name} (Relu): split by the binding limit (chunks need static sizes)`,
  ]);
  const ofY = p.steps.filter((s) => s.nodes.includes(y.name));
  const ofZ = p.steps.filter((s) => s.nodes.includes(z.name));
  assert.equal(ofY.length, 2, "two chunks of 16 rows");
  assert.ok(ofY.every((s) => s.bind === undefined));
  assert.deepEqual(
    ofZ.map((s) => s.bind && Object.values(s.bind)),
    [[20]],
    "the other member stays generic",
  );
  const feeds = new Map([
    ["x", wave([32, 40], 3)],
    ["w", wave([32, 20], 4)],
  ]);
  const want = runGraph(g, feeds);
  const got = runProgramOnKir(p, feeds, { target: TINY });
  for (const [name, t] of want) assertClose(got.get(name)!, t, 1e-6, name);

  const files = writeProgramArtifact(compileProgram(p, "wgsl", TINY, renderWgsl));
  const loaded = await loadProgramArtifact(async (name) => files.get(name)!, "mem");
  assert.deepEqual(loaded.genericRefusals, p.genericRefusals);
});
