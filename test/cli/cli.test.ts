import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { COMMANDS, main } from "../../compiler/cli/main.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { repoRoot, t } from "../util/helpers.js";

let dir = "";

interface Result {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs the CLI in-process with the temp directory as working directory. */
async function tokr(...argv: string[]): Promise<Result> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

function write(name: string, text: string): void {
  writeFileSync(join(dir, name), text);
}

function tensors(name: string, entries: [string, Tensor][]): void {
  writeSafetensorsFile(join(dir, name), new Map(entries));
}

/** s = x + y; m = s * w with w a ref<> weight; B is bound from x. */
const SMALL_IR = `graph @small(%x: f32[B, 3], %y: f32[3]) {
  sym B
  const %w: f32[3] = ref<"w">
  %s = Add(%x, %y) : f32[B, 3]
  %m = Mul(%s, %w) : f32[B, 3]
  return %s, %m
}
`;

/** A 70-element weight (over the inline limit of 64) and a scalar constant that stays inline. */
const BIG_IR = `graph @big(%x: f32[2, 70]) {
  const %b: f32[70] = ref<"bias">
  const %two: f32[] = dense<[2]>
  %y = Add(%x, %b) : f32[2, 70]
  %z = Mul(%y, %two) : f32[2, 70]
  return %z
}
`;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "tokr-cli-"));
  write("small.ir", SMALL_IR);
  write("big.ir", BIG_IR);
  // Line 2, column 19 is the ':' where ')' is missing.
  write("syntax.ir", "graph @g(%x: f32[2]) {\n  %y = Add(%x, %x : f32[2]\n  return %y\n}\n");
  write("types.ir", "graph @g(%x: f32[2]) {\n  %y = Add(%x, %x) : f32[3]\n  return %y\n}\n");
  write("garbage.safetensors", "garbage");
  write("model.onnx", "");
  write("prog.tokr", "");
  tensors("in.safetensors", [
    ["x", t("f32", [2, 3], [1, 2, 3, 4, 5, 6])],
    ["y", t("f32", [3], [10, 20, 30])],
  ]);
  tensors("w.safetensors", [["w", t("f32", [3], [1, 0.5, -1])]]);
  tensors("w-shape.safetensors", [["w", t("f32", [4], [1, 2, 3, 4])]]);
  tensors("bias.safetensors", [
    [
      "bias",
      t(
        "f32",
        [70],
        Array.from({ length: 70 }, (_, i) => i),
      ),
    ],
  ]);
  tensors("in-big.safetensors", [["x", t("f32", [2, 70], new Array<number>(140).fill(1))]]);
  tensors("in-shape.safetensors", [
    ["x", t("f32", [2, 4], new Array<number>(8).fill(0))],
    ["y", t("f32", [3], [0, 0, 0])],
  ]);
  tensors("in-dtype.safetensors", [
    ["x", t("f64", [2, 3], [1, 2, 3, 4, 5, 6])],
    ["y", t("f32", [3], [0, 0, 0])],
  ]);
  tensors("in-missing.safetensors", [["x", t("f32", [1, 3], [1, 2, 3])]]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

const values = (x: Tensor | undefined) => [...(x?.data ?? [])];

describe("tokr run", () => {
  it("runs an IR file end to end through safetensors files", async () => {
    const r = await tokr(
      "run",
      "small.ir",
      "--inputs",
      "in.safetensors",
      "--weights",
      "w.safetensors",
      "-o",
      "out.safetensors",
    );
    assert.deepEqual(r, { code: 0, out: "", err: "" });
    const out = readSafetensorsFile(join(dir, "out.safetensors"));
    assert.deepEqual([...out.keys()], ["s", "m"]);
    // s = [[1,2,3],[4,5,6]] + [10,20,30]; m = s * [1, 0.5, -1].
    assert.deepEqual([...out.get("s")!.shape], [2, 3]);
    assert.deepEqual(values(out.get("s")), [11, 22, 33, 14, 25, 36]);
    assert.deepEqual(values(out.get("m")), [11, 11, -33, 14, 12.5, -36]);
  });

  it("prints the outputs when no -o is given", async () => {
    const r = await tokr("run", "small.ir", "--inputs", "in.safetensors", "--weights", "w.safetensors");
    assert.equal(r.code, 0);
    assert.equal(
      r.out,
      "%s: f32[2, 3] = [11, 22, 33, 14, 25, 36]\n%m: f32[2, 3] = [11, 11, -33, 14, 12.5, -36]\n",
    );
  });

  const runErr = async (inputs: string, weights = "w.safetensors") => {
    const r = await tokr("run", "small.ir", "--inputs", inputs, "--weights", weights);
    assert.equal(r.code, 1);
    assert.equal(r.out, "");
    assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace without --debug");
    return r.err;
  };

  it("reports a wrong input shape", async () => {
    assert.match(
      await runErr("in-shape.safetensors"),
      /^tokr: error: in-shape\.safetensors: input 'x' has shape \[2, 4\], expected f32\[B, 3\]/m,
    );
  });

  it("reports a wrong input dtype", async () => {
    assert.equal(
      await runErr("in-dtype.safetensors"),
      "tokr: error: in-dtype.safetensors: input 'x' has dtype f64, expected f32\n",
    );
  });

  it("reports a missing input", async () => {
    assert.equal(
      await runErr("in-missing.safetensors"),
      "tokr: error: in-missing.safetensors: missing input 'y' of type f32[3]\n",
    );
  });

  it("reports missing and mismatched weights by key", async () => {
    const none = await tokr("run", "small.ir", "--inputs", "in.safetensors");
    assert.equal(none.code, 1);
    assert.match(none.err, /running small\.ir needs data for 1 ref<> constant\(s\) \(w\): pass --weights/);
    assert.equal(
      await runErr("in.safetensors", "in.safetensors"),
      "tokr: error: in.safetensors lacks 1 weight(s) the graph needs: w\n",
    );
    assert.equal(
      await runErr("in.safetensors", "w-shape.safetensors"),
      "tokr: error: weight 'w' in w-shape.safetensors is f32[4], but constant %w is f32[3]\n",
    );
  });

  it("reports a malformed safetensors file by name", async () => {
    assert.equal(
      await runErr("garbage.safetensors"),
      "tokr: error: garbage.safetensors: file is 7 bytes, too short for the 8-byte header length\n",
    );
    assert.match(
      await runErr("absent.safetensors"),
      /^tokr: error: absent\.safetensors: cannot read file: no such file or directory\n$/,
    );
  });

  it("reports IR syntax errors as file:line:col", async () => {
    const r = await tokr("run", "syntax.ir");
    assert.equal(r.code, 1);
    assert.match(r.err, /^syntax\.ir:2:19: error: .*'\)'/);
    assert.equal(r.err.trimEnd().split("\n").length, 1);
  });

  it("reports verifier diagnostics at the node's line", async () => {
    const r = await tokr("print", "types.ir");
    assert.equal(r.code, 1);
    assert.equal(r.err, "types.ir:2:3: error: Add: output %y is declared f32[3] but the op gives f32[2]\n");
  });

  it("prints a stack trace only with --debug", async () => {
    const plain = await tokr(
      "run",
      "small.ir",
      "--inputs",
      "garbage.safetensors",
      "--weights",
      "w.safetensors",
    );
    const debug = await tokr(
      "run",
      "small.ir",
      "--inputs",
      "garbage.safetensors",
      "--weights",
      "w.safetensors",
      "--debug",
    );
    assert.equal(plain.code, 1);
    assert.equal(debug.code, 1);
    assert.doesNotMatch(plain.err, /\n\s+at /);
    assert.ok(debug.err.startsWith(plain.err), "the same message comes first");
    assert.match(debug.err, /SafetensorsError: garbage\.safetensors: file is 7 bytes[^\n]*\n\s+at /);
    const first = await tokr(
      "--debug",
      "run",
      "small.ir",
      "--inputs",
      "garbage.safetensors",
      "--weights",
      "w.safetensors",
    );
    assert.ok(first.err.startsWith(plain.err) && /\n\s+at /.test(first.err), "--debug before the command");
  });

  it("names the issue for inputs it cannot run yet", async () => {
    // model.onnx is empty: the importer (issue #4) rejects it by name.
    const onnx = await tokr("run", "model.onnx");
    assert.equal(onnx.code, 1);
    assert.equal(onnx.err, "tokr: error: model.onnx: empty file, not an ONNX model\n");
    // prog.tokr is empty: the .tokr frontend (issue #3) reports that it defines no model.
    assert.match((await tokr("run", "prog.tokr")).err, /^prog\.tokr:1:1: error: the file defines no model\n/);
    assert.match(
      (await tokr("run", "nothere.ir")).err,
      /^tokr: error: nothere\.ir: no such file or directory\n$/,
    );
  });
});

describe("tokr usage errors", () => {
  const cases: [string, string[], RegExp][] = [
    ["no command", [], /^usage: tokr COMMAND/],
    ["unknown command", ["frob"], /^tokr: error: unknown command 'frob'/],
    [
      "unknown flag",
      ["run", "small.ir", "--bogus"],
      /^tokr: error: unknown option '--bogus'\nusage: tokr run INPUT/,
    ],
    ["unknown short flag", ["inspect", "small.ir", "-z"], /^tokr: error: unknown option '-z'/],
    ["missing positional", ["run"], /^tokr: error: missing INPUT\n/],
    ["extra positional", ["print", "a.ir", "b.ir"], /^tokr: error: unexpected argument 'b\.ir'/],
    [
      "option without value",
      ["run", "small.ir", "--inputs"],
      /^tokr: error: option '--inputs' needs a value/,
    ],
    [
      "value for a boolean",
      ["inspect", "small.ir", "--json=yes"],
      /^tokr: error: option '--json' takes no value/,
    ],
    [
      "bad --target",
      ["compile", "small.ir", "--target", "tpu", "-o", "d"],
      /--target must be one of cpu, wgsl, cuda, got 'tpu'/,
    ],
    ["missing --target", ["compile", "small.ir", "-o", "d"], /missing required option --target/],
    [
      "bad integer",
      ["bench", "small.ir", "--iterations", "0"],
      /--iterations must be an integer >= 1, got '0'/,
    ],
    ["wrong extension", ["check", "small.ir"], /expected a \.tokr file/],
    ["unknown pass", ["passes", "small.ir", "--pipeline", "nope"], /--pipeline: unknown pass 'nope'/],
  ];
  for (const [what, argv, re] of cases) {
    it(`exits 2 on ${what}`, async () => {
      const r = await tokr(...argv);
      assert.equal(r.code, 2);
      assert.equal(r.out, "");
      assert.match(r.err, re);
    });
  }

  it("prints --help for every command on stdout with exit 0", async () => {
    for (const c of COMMANDS) {
      const r = await tokr(c.name, "--help");
      assert.equal(r.code, 0, c.name);
      assert.ok(r.out.startsWith(`usage: tokr ${c.name} `), r.out);
      assert.match(r.out, /--debug/);
    }
    const top = await tokr("--help");
    assert.equal(top.code, 0);
    for (const c of COMMANDS) assert.match(top.out, new RegExp(`^  ${c.name} `, "m"));
  });
});

describe("tokr inspect, print, passes", () => {
  it("reports per-node FLOPs symbolically with a total", async () => {
    const r = await tokr("inspect", "small.ir");
    assert.equal(r.code, 0);
    // Add and Mul over f32[B, 3]: one op per element, 3*B each.
    assert.equal(
      r.out,
      [
        "graph @small: 2 nodes",
        "#  op   outputs        flops",
        "0  Add  %s: f32[B, 3]  3*B",
        "1  Mul  %m: f32[B, 3]  3*B",
        "total flops: 6*B",
        "",
      ].join("\n"),
    );
    const j = await tokr("inspect", "small.ir", "--json");
    const report = JSON.parse(j.out) as { nodes: { op: string; flops: unknown }[]; totalFlops: unknown };
    assert.deepEqual(
      report.nodes.map((n) => [n.op, n.flops]),
      [
        ["Add", "3*B"],
        ["Mul", "3*B"],
      ],
    );
    assert.equal(report.totalFlops, "6*B");
    const big = JSON.parse((await tokr("inspect", "big.ir", "--json")).out) as { totalFlops: unknown };
    assert.equal(big.totalFlops, 280); // two elementwise ops over 140 elements
  });

  it("prints canonical IR", async () => {
    const r = await tokr("print", "small.ir");
    assert.deepEqual(r, { code: 0, out: SMALL_IR, err: "" });
  });

  it("runs a pass pipeline", async () => {
    const r = await tokr("passes", "small.ir", "--pipeline", "dce");
    assert.equal(r.code, 0);
    assert.equal(r.out, SMALL_IR); // nothing is dead
  });
});

describe("tokr compile --target cpu", () => {
  it("writes an artifact that tokr run executes", async () => {
    const c = await tokr(
      "compile",
      "big.ir",
      "--target",
      "cpu",
      "-o",
      "art",
      "--weights",
      "bias.safetensors",
    );
    assert.deepEqual(c, { code: 0, out: "", err: "" });
    assert.deepEqual(readdirSync(join(dir, "art")).sort(), [
      "graph.ir",
      "manifest.json",
      "weights.safetensors",
    ]);
    const graph = readFileSync(join(dir, "art", "graph.ir"), "utf8");
    assert.match(graph, /const %b: f32\[70\] = ref<"bias">/);
    assert.match(graph, /const %two: f32\[\] = dense<\[2\]>/); // small constants stay inline
    const manifest = JSON.parse(readFileSync(join(dir, "art", "manifest.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(manifest.target, "cpu");
    assert.deepEqual(manifest.inputs, [{ name: "x", type: "f32[2, 70]" }]);
    const w = readSafetensorsFile(join(dir, "art", "weights.safetensors"));
    assert.deepEqual([...w.keys()], ["bias"]);

    const r = await tokr("run", "art", "--inputs", "in-big.safetensors", "-o", "out-big.safetensors");
    assert.deepEqual(r, { code: 0, out: "", err: "" });
    // z[i, j] = (1 + j) * 2.
    const z = readSafetensorsFile(join(dir, "out-big.safetensors")).get("z")!;
    assert.deepEqual(values(z).slice(0, 3), [2, 4, 6]);
    assert.equal(z.data[70 + 69], 140);
  });

  it("refuses unbound weights", async () => {
    const r = await tokr("compile", "big.ir", "--target", "cpu", "-o", "art2");
    assert.equal(r.code, 1);
    assert.match(r.err, /compiling big\.ir needs data for 1 ref<> constant\(s\) \(bias\)/);
  });
});

describe("bin/tokr.js", () => {
  const mainJs = join(repoRoot, "dist", "compiler", "cli", "main.js");
  const srcDir = join(repoRoot, "compiler", "cli");
  // Run from source (tsx), a dist built earlier may be older than the CLI sources.
  const stale =
    fileURLToPath(import.meta.url).endsWith(".ts") &&
    existsSync(mainJs) &&
    readdirSync(srcDir).some((f) => statSync(join(srcDir, f)).mtimeMs > statSync(mainJs).mtimeMs);
  const skip = !existsSync(mainJs)
    ? "dist/compiler/cli/main.js is absent: build with `npm run build` (npm test does)"
    : stale
      ? "dist/ is older than compiler/cli/: rebuild with `npm run build`"
      : false;
  it("runs as a subprocess with exit codes", { skip }, () => {
    const bin = join(repoRoot, "bin", "tokr.js");
    const ok = spawnSync(
      process.execPath,
      [bin, "run", "small.ir", "--inputs", "in.safetensors", "--weights", "w.safetensors"],
      {
        cwd: dir,
        encoding: "utf8",
      },
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^%s: f32\[2, 3\] = \[11, 22, 33, 14, 25, 36\]$/m);
    const bad = spawnSync(process.execPath, [bin, "run", "syntax.ir"], { cwd: dir, encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^syntax\.ir:2:19: error: /);
    const usage = spawnSync(process.execPath, [bin, "frob"], { cwd: dir, encoding: "utf8" });
    assert.equal(usage.status, 2);
  });
});
