import type { Pass } from "./manager.js";

// Passes and named pipelines share one namespace so that a pipeline string can mix them.
const PASSES = new Map<string, Pass>();
const PIPELINES = new Map<string, { readonly description: string; readonly passes: readonly string[] }>();

/** Registers a pass under its name; names are unique across passes and pipelines. */
export function registerPass(pass: Pass): Pass {
  if (PASSES.has(pass.name) || PIPELINES.has(pass.name)) throw new Error(`pass name '${pass.name}' is taken`);
  PASSES.set(pass.name, pass);
  return pass;
}

/** Registers a named pipeline: a list of pass (or pipeline) names, expanded when parsed. */
export function registerPipeline(name: string, description: string, passes: readonly string[]): void {
  if (PASSES.has(name) || PIPELINES.has(name)) throw new Error(`pipeline name '${name}' is taken`);
  PIPELINES.set(name, { description, passes: [...passes] });
}

export function getPass(name: string): Pass | undefined {
  return PASSES.get(name);
}

export function getPipeline(name: string): readonly string[] | undefined {
  return PIPELINES.get(name)?.passes;
}

/** Every registered pass, in registration order. */
export function allPasses(): readonly Pass[] {
  return [...PASSES.values()];
}

/** Every registered pipeline with its description and pass names. */
export function allPipelines(): readonly { name: string; description: string; passes: readonly string[] }[] {
  return [...PIPELINES].map(([name, p]) => ({ name, ...p }));
}
