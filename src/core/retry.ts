import type { BackoffData, ErrorData } from "@spindle/worker-sdk/protocol";

export type RetryDecision = { retry: true; delayMs: number } | { retry: false };

/**
 * Whether a failed attempt is retried, and after how long. `retryCount` is the number of retries
 * already made in this series. The n-th retry (n = retryCount + 1) waits `factor^n` seconds, capped at
 * `maxSeconds`; with no backoff configured a retry is queued at once, as in the seeds' SDK.
 */
export function decideRetry(
  task: { retries: number; backoff?: BackoffData | undefined },
  retryCount: number,
  error: ErrorData,
): RetryDecision {
  if (!error.retryable || retryCount >= task.retries) return { retry: false };
  return { retry: true, delayMs: backoffDelayMs(task.backoff, retryCount + 1) };
}

export function backoffDelayMs(backoff: BackoffData | undefined, retryNumber: number): number {
  if (!backoff) return 0;
  const seconds = Math.min(Math.pow(backoff.factor, retryNumber), backoff.maxSeconds);
  return Math.round(seconds * 1000);
}
