import type { ChildResult, ErrorData, RunView } from "./protocol.js";

/**
 * Errors the SDK throws. Each has a dotted `code` (the same codes the HTTP API returns), so callers
 * can branch on `err.code` whatever side of a boundary the error came from.
 */
export class SpindleError extends Error {
  readonly code: string;
  readonly fields: { path: string; message: string }[] | undefined;

  constructor(code: string, message: string, options: { fields?: { path: string; message: string }[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "SpindleError";
    this.code = code;
    this.fields = options.fields;
  }

  static fromData(data: ErrorData): SpindleError {
    return new SpindleError(data.code, data.message, { fields: data.fields });
  }
}

/** Throw from a task to fail it at once, without the retries it has left. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** A run ended FAILED. `error` is the failed task's error (its code, type name and message). */
export class RunFailedError extends SpindleError {
  readonly runId: string;
  readonly error: ErrorData;
  readonly run: RunView;

  constructor(run: RunView) {
    const error = run.error ?? { code: "run.failed", name: "Error", message: "the run failed", retryable: false };
    super("run.failed", `run ${run.runId} (${run.workflow}) failed${error.task ? ` in task '${error.task}'` : ""}: ${error.name}: ${error.message}`);
    this.name = "RunFailedError";
    this.runId = run.runId;
    this.error = error;
    this.run = run;
  }
}

export class RunCancelledError extends SpindleError {
  readonly runId: string;

  constructor(runId: string) {
    super("run.cancelled", `run ${runId} was cancelled`);
    this.name = "RunCancelledError";
    this.runId = runId;
  }
}

/**
 * A durable task's replay called something other than what its event log recorded at a position:
 * the code changed, or is not deterministic between checkpoints. Fails the task without retries.
 */
export class NonDeterminismError extends SpindleError {
  /** The position in the log. */
  readonly seq: number;
  /** The call the log recorded there, e.g. `memo(memo:charge)` (empty when the engine found the conflict). */
  readonly recorded: string;
  /** The call the task made instead (or `nothing new`). */
  readonly called: string;

  constructor(seq: number, recorded: string, called: string, message?: string) {
    super(
      "replay.non_determinism",
      message ?? `non-deterministic replay at checkpoint ${seq}: the log recorded ${recorded} but the task now called ${called}`,
    );
    this.name = "NonDeterminismError";
    this.seq = seq;
    this.recorded = recorded;
    this.called = called;
  }
}

/** A child run of a durable task failed or was cancelled. `results` has every child's outcome. */
export class ChildRunError extends SpindleError {
  readonly runId: string;
  readonly error: ErrorData | null;
  readonly results: ChildResult[];

  constructor(child: ChildResult, results: ChildResult[] = [child]) {
    super(
      child.status === "CANCELLED" ? "run.cancelled" : "run.failed",
      `child run ${child.runId} ${child.status === "CANCELLED" ? "was cancelled" : `failed: ${child.error?.name ?? "Error"}: ${child.error?.message ?? ""}`}`,
    );
    this.name = "ChildRunError";
    this.runId = child.runId;
    this.error = child.error;
    this.results = results;
  }
}

/** The payload limit the engine applies unless it says otherwise (`SPINDLE_MAX_PAYLOAD_BYTES`). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * A task's output or a memo's result is larger than the engine stores. Not retryable: another
 * attempt would produce the same. Thrown before anything is sent.
 */
export class PayloadTooLargeError extends SpindleError {
  readonly bytes: number;
  readonly limit: number;

  constructor(what: string, bytes: number, limit: number) {
    super("payload.too_large", `${what} is ${bytes} bytes; the limit is ${limit} bytes`, { fields: [{ path: what, message: `is ${bytes} bytes; the limit is ${limit} bytes` }] });
    this.name = "PayloadTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** Refuses a JSON value over `limit` bytes (UTF-8) with a PayloadTooLargeError. */
export function checkPayloadSize(what: string, json: unknown, limit: number): void {
  const bytes = new TextEncoder().encode(JSON.stringify(json ?? null)).byteLength;
  if (bytes > limit) throw new PayloadTooLargeError(what, bytes, limit);
}

/** The reason a task's `abortSignal` fires when the engine's execution timeout passes. */
export class TaskTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** The reason a task's `abortSignal` fires when its run is cancelled. */
export class TaskCancelledError extends Error {
  constructor(message = "the run was cancelled") {
    super(message);
    this.name = "CancelledError";
  }
}

/** Turns anything a task threw into error data, keeping its message and type name. */
export function toErrorData(err: unknown): ErrorData {
  if (err instanceof NonRetryableError) {
    return withStack({ code: "task.failed", name: err.name, message: err.message, retryable: false }, err);
  }
  if (err instanceof TaskTimeoutError) return withStack({ code: "task.timeout", name: err.name, message: err.message, retryable: true }, err);
  if (err instanceof TaskCancelledError) return { code: "run.cancelled", name: err.name, message: err.message, retryable: false };
  if (err instanceof NonDeterminismError || err instanceof PayloadTooLargeError) {
    return withStack({ code: err.code, name: err.name, message: err.message, retryable: false }, err);
  }
  if (err instanceof SpindleError) {
    // A refused size or bad request would be refused again: not worth a retry.
    const retryable = !err.code.endsWith(".invalid") && err.code !== "payload.too_large";
    return withStack({ code: err.code, name: err.name, message: err.message, retryable }, err);
  }
  if (err instanceof Error) return withStack({ code: "task.failed", name: typeName(err), message: err.message, retryable: true }, err);
  return { code: "task.failed", name: "Error", message: typeof err === "string" ? err : JSON.stringify(err) ?? String(err), retryable: true };
}

function typeName(err: Error): string {
  if (err.name && err.name !== "Error") return err.name;
  const ctor = (err as { constructor?: { name?: string } }).constructor?.name;
  return ctor && ctor !== "Object" ? ctor : "Error";
}

function withStack(data: ErrorData, err: Error): ErrorData {
  if (err.stack) data.stack = err.stack.split("\n").slice(0, 20).join("\n");
  return data;
}

/**
 * A `concurrency`, `rateLimits` or `slotCost` declaration that can never work: a CEL expression that
 * does not parse, `maxRuns` below 1, constant `units` above a constant `limit`, an unknown strategy
 * or duration. Thrown when the task or workflow is declared; `fields` names the option.
 */
export class FlowDeclarationError extends SpindleError {
  constructor(path: string, message: string) {
    super("flow.invalid", `${path}: ${message}`, { fields: [{ path, message }] });
    this.name = "FlowDeclarationError";
  }
}
