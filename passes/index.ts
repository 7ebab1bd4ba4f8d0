// Importing this module registers every pass and the named pipelines; add new passes here.
import { canonicalizePass } from "./canonicalize.js";
import { dcePass } from "./dce.js";
import { foldConstantsPass } from "./fold-constants.js";
import { registerPass, registerPipeline } from "./registry.js";
import { shapeInferPass } from "./shape-infer.js";

registerPass(shapeInferPass);
registerPass(canonicalizePass);
registerPass(foldConstantsPass);
registerPass(dcePass);

registerPipeline("default", "the cleanup every compile runs", [
  "shape-infer",
  "canonicalize",
  "fold-constants",
  "dce",
]);
