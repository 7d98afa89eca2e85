import type { ErrorData } from "@spindle/worker-sdk/protocol";

/**
 * The one error taxonomy of the engine. Every error has a dotted `code`; the HTTP status is derived
 * from the code's family in one place (`httpStatusOf`), so routes throw and never build responses.
 */
export class SpindleError extends Error {
  readonly code: string;
  readonly fields: { path: string; message: string }[] | undefined;
  readonly retryable: boolean;

  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; fields?: { path: string; message: string }[]; retryable?: boolean } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "SpindleError";
    this.code = code;
    this.fields = options.fields;
    this.retryable = options.retryable ?? false;
  }

  toData(): ErrorData {
    return errorData(this.code, this.name, this.message, { retryable: this.retryable, fields: this.fields });
  }

  static fromData(data: ErrorData): SpindleError {
    return new SpindleError(data.code, data.message, { fields: data.fields, retryable: data.retryable });
  }
}

export function errorData(
  code: string,
  name: string,
  message: string,
  extra: { retryable?: boolean; fields?: { path: string; message: string }[] | undefined; stack?: string } = {},
): ErrorData {
  const data: ErrorData = { code, name, message, retryable: extra.retryable ?? false };
  if (extra.fields) data.fields = extra.fields;
  if (extra.stack) data.stack = extra.stack;
  return data;
}

const STATUS_BY_CODE: Record<string, number> = {
  "auth.missing_token": 401,
  "auth.invalid_token": 401,
  "request.invalid": 400,
  "request.invalid_json": 400,
  "request.too_deep": 400,
  "request.too_large": 413,
  "input.invalid": 400,
  "workflow.not_found": 404,
  "workflow.invalid": 400,
  "run.not_found": 404,
  "route.not_found": 404,
  "run.conflict": 409,
  "registry.conflict": 409,
  "idempotency.conflict": 409,
  "registry.forbidden": 403,
  "workflow.unavailable": 409,
  "worker.refused": 409,
  "worker.unreachable": 502,
  "signature.missing": 401,
  "signature.invalid": 401,
  "signature.expired": 401,
  "signature.replayed": 401,
  "route.method_not_allowed": 405,
  "condition.invalid": 400,
  "payload.too_large": 413,
  "cron.conflict": 409,
  "filter.conflict": 409,
  "schedule.conflict": 409,
  "webhook.unauthorized": 401,
  "request.upgrade_required": 426,
  "auth.cross_origin": 403,
  "stream.full": 409,
};

export function httpStatusOf(code: string): number {
  return STATUS_BY_CODE[code] ?? (code.endsWith(".not_found") ? 404 : code.endsWith(".invalid") ? 400 : 500);
}

export function notFound(what: "run" | "workflow", id: string): SpindleError {
  return new SpindleError(`${what}.not_found`, `${what} '${id}' was not found`);
}

/** Turns anything thrown into error data, keeping its message and type name. */
export function toErrorData(err: unknown, fallbackCode = "internal.error"): ErrorData {
  if (err instanceof SpindleError) return err.toData();
  if (err instanceof Error) return errorData(fallbackCode, err.name, err.message, { retryable: true });
  return errorData(fallbackCode, "Error", String(err), { retryable: true });
}
