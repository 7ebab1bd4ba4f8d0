// Importing this module registers every op definition.
import "./elementwise.js";
import "./linalg.js";
import "./norm.js";
import "./reduce.js";
import "./attention.js";
import "./tokens.js";
import "./tokens-score.js";
import "./tokens-pool.js";
import "./shape.js";
import "./gather.js";
