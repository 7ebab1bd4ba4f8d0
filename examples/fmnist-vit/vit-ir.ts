import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { sym } from "../../compiler/ir/sym.js";

/** Hyper-parameters of torchvision's VisionTransformer as trained for Fashion-MNIST (../shared/models). */
export interface VitConfig {
  readonly image: number;
  readonly patch: number;
  readonly channels: number;
  readonly hidden: number;
  readonly heads: number;
  readonly mlp: number;
  readonly layers: number;
  readonly classes: number;
  readonly eps: number;
}

export const FMNIST_VIT: VitConfig = {
  image: 28,
  patch: 2,
  channels: 1,
  hidden: 64,
  heads: 4,
  mlp: 128,
  layers: 6,
  classes: 10,
  eps: 1e-6,
};

/** Row-major 2-D transpose on the host (PyTorch Linear stores [out, in]; MatMul wants [in, out]). */
function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return makeTensor(t.dtype, [c, r], out);
}

/**
 * The torchvision ViT forward pass written as tokr IR, with weights from the PyTorch state dict
 * (names as in vit_fmnist.safetensors). Input `pixels` f32[B, C, H, W]; output `logits` f32[B, classes].
 */
export function buildVit(weights: ReadonlyMap<string, Tensor>, cfg: VitConfig = FMNIST_VIT): Graph {
  const w = (name: string): Tensor => {
    const t = weights.get(name);
    if (!t) throw new Error(`weight '${name}' is missing`);
    return t;
  };
  const b = new GraphBuilder("fmnist_vit");
  b.symbol("B");
  const grid = cfg.image / cfg.patch;
  const n = grid * grid + 1;
  const d = cfg.hidden;
  const hd = d / cfg.heads;
  const param = (name: string, t?: Tensor): Value =>
    b.constant(t ?? w(name), name.replace(/\W+/g, "_"), name);
  const linear = (x: Value, prefix: string, scope: string): Value => {
    const wt = b.constant(
      transpose2d(w(`${prefix}.weight`)),
      `${prefix}.weight`.replace(/\W+/g, "_"),
      `${prefix}.weight`,
    );
    const y = b.op("MatMul", [x, wt], {}, { scope });
    return b.op("Add", [y, param(`${prefix}.bias`)], {}, { scope });
  };
  const i64 = (vals: number[], shape = [vals.length]): Value => b.const("i64", shape, vals);

  const pixels = b.input(
    "pixels",
    "f32",
    [sym("B"), cfg.channels, cfg.image, cfg.image],
    ["batch", "channel", null, null],
  );
  let x = b.op("Conv", [pixels, param("conv_proj.weight"), param("conv_proj.bias")], {
    kernel_shape: [cfg.patch, cfg.patch],
    strides: [cfg.patch, cfg.patch],
  });
  x = b.op("Reshape", [x, i64([0, d, grid * grid])]);
  x = b.op("Transpose", [x], { perm: [0, 2, 1] });
  const batch = b.op("Gather", [b.op("Shape", [x]), i64([0])], { axis: 0 });
  const clsShape = b.op("Concat", [batch, i64([1, d])], { axis: 0 });
  const cls = b.op("Expand", [param("class_token"), clsShape]);
  x = b.op("Concat", [cls, x], { axis: 1 });
  x = b.op("Add", [x, param("encoder.pos_embedding")]);

  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.encoder_layer_${l}`;
    const scope = `blocks.${l}`;
    const ln = (v: Value, name: string): Value =>
      b.op(
        "LayerNormalization",
        [v, param(`${p}.${name}.weight`), param(`${p}.${name}.bias`)],
        { axis: -1, epsilon: cfg.eps },
        { scope },
      );
    const h = ln(x, "ln_1");
    const inW = transpose2d(w(`${p}.self_attention.in_proj_weight`));
    let qkv = b.op(
      "MatMul",
      [
        h,
        b.constant(inW, `${p}.in_proj_weight_t`.replace(/\W+/g, "_"), `${p}.self_attention.in_proj_weight`),
      ],
      {},
      { scope: `${scope}.attn` },
    );
    qkv = b.op("Add", [qkv, param(`${p}.self_attention.in_proj_bias`)], {}, { scope: `${scope}.attn` });
    qkv = b.op("Reshape", [qkv, i64([0, n, 3, cfg.heads, hd])], {}, { scope: `${scope}.attn` });
    qkv = b.op("Transpose", [qkv], { perm: [2, 0, 3, 1, 4] }, { scope: `${scope}.attn` });
    const part = (i: number): Value =>
      b.op("Gather", [qkv, i64([i], [])], { axis: 0 }, { scope: `${scope}.attn` });
    let a = b.op("attention", [part(0), part(1), part(2)], {}, { scope: `${scope}.attn` });
    a = b.op("Transpose", [a], { perm: [0, 2, 1, 3] }, { scope: `${scope}.attn` });
    a = b.op("Reshape", [a, i64([0, n, d])], {}, { scope: `${scope}.attn` });
    a = linear(a, `${p}.self_attention.out_proj`, `${scope}.attn`);
    x = b.op("Add", [x, a], {}, { scope });
    let m = ln(x, "ln_2");
    m = linear(m, `${p}.mlp.0`, `${scope}.mlp`);
    m = b.op("Gelu", [m], {}, { scope: `${scope}.mlp` });
    m = linear(m, `${p}.mlp.3`, `${scope}.mlp`);
    x = b.op("Add", [x, m], {}, { scope });
  }
  x = b.op("LayerNormalization", [x, param("encoder.ln.weight"), param("encoder.ln.bias")], {
    axis: -1,
    epsilon: cfg.eps,
  });
  x = b.op("Gather", [x, i64([0], [])], { axis: 1 });
  const wt = b.constant(transpose2d(w("heads.head.weight")), "heads_head_weight", "heads.head.weight");
  const y = b.op("MatMul", [x, wt]);
  const logits = b.ops("Add", [y, param("heads.head.bias")], {}, 1, { names: ["logits"] })[0];
  return b.output(logits);
}
