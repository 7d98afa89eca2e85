import { describe, expect, it } from "vitest";
import { toMs } from "../../worker-sdk/src/duration";
import { NonRetryableError, SpindleError, TaskTimeoutError, toErrorData } from "../../worker-sdk/src/errors";

describe("durations", () => {
  it("reads strings with units and plain milliseconds", () => {
    expect(toMs("10s")).toBe(10_000);
    expect(toMs("5m")).toBe(300_000);
    expect(toMs("1h")).toBe(3_600_000);
    expect(toMs("2d")).toBe(172_800_000);
    expect(toMs("250ms")).toBe(250);
    expect(toMs("1.5s")).toBe(1_500);
    expect(toMs(750)).toBe(750);
  });
  it("refuses what is not a duration, naming the field", () => {
    expect(() => toMs("ten seconds", "timeout.executionTimeout")).toThrow(/timeout\.executionTimeout: "ten seconds" is not a duration/);
    expect(() => toMs(-1)).toThrow(SpindleError);
  });
});

describe("errors as data", () => {
  class PaymentDeclined extends Error {}
  it("keeps the type name and message of what a task threw", () => {
    expect(toErrorData(new TypeError("bad"))).toMatchObject({ code: "task.failed", name: "TypeError", message: "bad", retryable: true });
    expect(toErrorData(new PaymentDeclined("card"))).toMatchObject({ name: "PaymentDeclined", message: "card" });
    expect(toErrorData("plain string")).toMatchObject({ name: "Error", message: "plain string" });
  });
  it("marks a NonRetryableError and an invalid input as not retryable", () => {
    expect(toErrorData(new NonRetryableError("no"))).toMatchObject({ name: "NonRetryableError", retryable: false });
    expect(toErrorData(new SpindleError("input.invalid", "x"))).toMatchObject({ retryable: false });
    expect(toErrorData(new TaskTimeoutError("late"))).toMatchObject({ code: "task.timeout", name: "TimeoutError" });
  });
});
