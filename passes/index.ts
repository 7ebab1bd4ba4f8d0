// Importing this module registers every pass and the named pipelines; add new passes here.
import { canonicalizePass } from "./canonicalize.js";
import { dcePass } from "./dce.js";
import { discoverBlocksPass } from "./discover-blocks.js";
import { foldConstantsPass } from "./fold-constants.js";
import { foldMatmulTransposePass } from "./fold-matmul-transpose.js";
import { foldShapeChainsPass } from "./fold-shape-chains.js";
import { fuseAttentionPass } from "./fuse-attention.js";
import { fuseGeluPass } from "./fuse-gelu.js";
import { fuseLayerNormPass } from "./fuse-layernorm.js";
import { insertTokenMergingPass } from "./insert-token-merging.js";
import { insertTokenPoolingPass } from "./insert-token-pooling.js";
import { insertTokenPruningPass } from "./insert-token-pruning.js";
import { registerPass, registerPipeline } from "./registry.js";
import { shapeInferPass } from "./shape-infer.js";

registerPass(shapeInferPass);
registerPass(canonicalizePass);
registerPass(foldConstantsPass);
registerPass(dcePass);
registerPass(foldShapeChainsPass);
registerPass(fuseAttentionPass);
registerPass(foldMatmulTransposePass);
registerPass(fuseLayerNormPass);
registerPass(fuseGeluPass);
registerPass(discoverBlocksPass);
registerPass(insertTokenMergingPass);
registerPass(insertTokenPruningPass);
registerPass(insertTokenPoolingPass);

registerPipeline("default", "the cleanup every compile runs", [
  "shape-infer",
  "canonicalize",
  "fold-constants",
  "dce",
]);

registerPipeline("onnx-structure", "recognise exported structure: shape chains, attention, norms, GELU", [
  "fold-shape-chains",
  "fuse-attention",
  "fuse-layernorm",
  "fuse-gelu",
  "fold-matmul-transpose",
  "canonicalize",
  "fold-constants",
  "dce",
  "discover-blocks",
]);

// Merging first: a prune or pool placed after a merge then sees its token sizes and threads them.
registerPipeline("reduce", "apply the token-reduction policies attached to the graph", [
  "insert-token-merging",
  "insert-token-pruning",
  "insert-token-pooling",
  "dce",
]);
