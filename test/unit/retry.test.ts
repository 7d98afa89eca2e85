import { describe, expect, it } from "vitest";
import { backoffDelayMs, decideRetry } from "../../src/core/retry";

const error = (retryable: boolean) => ({ code: "task.failed", name: "Error", message: "x", retryable });

describe("decideRetry", () => {
  it("retries until the retries run out", () => {
    const task = { retries: 2 };
    expect(decideRetry(task, 0, error(true))).toEqual({ retry: true, delayMs: 0 });
    expect(decideRetry(task, 1, error(true))).toEqual({ retry: true, delayMs: 0 });
    expect(decideRetry(task, 2, error(true))).toEqual({ retry: false });
  });
  it("never retries a non-retryable error", () => {
    expect(decideRetry({ retries: 5 }, 0, error(false))).toEqual({ retry: false });
  });
  it("backs off factor^n seconds, capped at maxSeconds", () => {
    const backoff = { factor: 2, maxSeconds: 10 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(backoff, n))).toEqual([2_000, 4_000, 8_000, 10_000, 10_000]);
    expect(decideRetry({ retries: 3, backoff }, 1, error(true))).toEqual({ retry: true, delayMs: 4_000 });
    expect(backoffDelayMs({ factor: 1.5, maxSeconds: 60 }, 2)).toBe(2_250);
  });
});
