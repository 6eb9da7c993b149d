/**
 * Waits for every step, then fails with the first failure (in the order given): for commands run side
 * by side, so that nothing is undone while one of them still runs.
 */
export async function allSettled(steps: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
