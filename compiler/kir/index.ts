/** Kernel IR entry points for backends and runtimes: the program contract, scheduling, running. */
export type { Program, ProgramBuffer, Step } from "./program.js";
export * from "./types.js";
export { buildProgram, nodeLabel, nodeName, ScheduleError, type ScheduleOptions } from "./schedule.js";
export { runProgramOnKir, type ProgramRunOptions } from "./run-program.js";
export { kernelSymbols } from "./builder.js";
