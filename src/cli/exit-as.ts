/** An error reported as usual (message, no stack) but ending the process with another code: `plan --detailed-exitcode` makes every error 1. */
export class ExitAs extends Error {
  constructor(
    readonly inner: unknown,
    readonly code: number,
  ) {
    super(inner instanceof Error ? inner.message : String(inner));
  }
}
