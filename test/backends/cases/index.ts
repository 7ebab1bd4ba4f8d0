import { cases as elementwise } from "./elementwise.js";
import { cases as attention } from "./attention.js";
import { cases as linalg } from "./linalg.js";
import { cases as tokens } from "./tokens.js";
import { cases as norm } from "./norm.js";
import { cases as reduce } from "./reduce.js";
import { cases as shape } from "./shape.js";
import type { OpCase } from "./types.js";

/**
 * Every backend op case, by op family. Each family file exports `cases: OpCase[]`; add a
 * family here when its lowerings land.
 */
export const ALL_CASES: readonly OpCase[] = [
  ...elementwise,
  ...shape,
  ...reduce,
  ...norm,
  ...linalg,
  ...attention,
  ...tokens,
];
