import assert from "node:assert/strict";
import { test } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { repoRoot } from "../util/helpers.js";

async function tokr(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: () => {}, cwd: repoRoot });
  return { code, out };
}

// MLP of one ViT block per image (N = 197, D = 64, hidden 128): LayerNorm 8·N·D, two MatMuls
// 2·N·D·128 each, bias Adds N·128 + N·D, Gelu 8·N·128 → 100864 + 6455296 + 37824 + 201728.
const MLP_FLOPS = 8 * 197 * 64 + 2 * 2 * 197 * 64 * 128 + 197 * 128 + 197 * 64 + 8 * 197 * 128;

test("tokr inspect --blocks lists the ViT's 6 blocks with 197 tokens and per-block FLOPs", async () => {
  const model = "examples/fmnist-vit/vit_fmnist_opset17.onnx";
  const r = await tokr("inspect", model, "--blocks");
  assert.equal(r.code, 0);
  const lines = r.out.split("\n").filter((l) => l.startsWith("  blocks."));
  assert.equal(lines.length, 6);
  assert.match(r.out, /^blocks: 6$/m);
  assert.match(
    lines[0],
    new RegExp(
      `^  blocks\\.0  tokens 197  flops \\d+\\*batch \\(attn \\d+\\*batch, mlp ${MLP_FLOPS}\\*batch\\)$`,
    ),
  );
  const j = JSON.parse((await tokr("inspect", model, "--blocks", "--json")).out) as {
    blocks: { scope: string; tokens: number; mlpFlops: string }[];
  };
  assert.deepEqual(
    j.blocks.map((b) => [b.scope, b.tokens, b.mlpFlops]),
    [0, 1, 2, 3, 4, 5].map((k) => [`blocks.${k}`, 197, `${MLP_FLOPS}*batch`]),
  );
});
