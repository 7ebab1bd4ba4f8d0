import { CliError } from "./cli.js";

/**
 * Features the CLI already accepts on its command line but that later issues build. One table,
 * so that the issue that lands a feature deletes its row and every message stays accurate.
 */
export const PENDING = {
  cuda: { issue: 7, what: "running CUDA artifacts from the CLI" },
} as const;

export type PendingFeature = keyof typeof PENDING;

/** The error for a feature that is not built yet: names the feature and the issue that builds it. */
export function notImplemented(feature: PendingFeature, detail?: string): CliError {
  const p = PENDING[feature];
  return new CliError(`${detail ?? p.what}: not implemented yet (issue #${p.issue}: ${p.what})`);
}
