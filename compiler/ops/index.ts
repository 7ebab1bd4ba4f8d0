// Importing this module registers every op definition.
import "./elementwise.js";
