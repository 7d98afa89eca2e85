import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { MAX_VALUE_DEPTH } from "@spindle/worker-sdk/protocol";
import { SpindleError } from "../core/errors";
import type { Env } from "../env";

/**
 * The edge of every route with a body: a body over the size limit is refused with 413 before it is
 * read (from its Content-Length, or by counting while it streams in), and a JSON body nested
 * deeper than MAX_VALUE_DEPTH with 400, before anything parses it recursively (zod, JSON Schema,
 * RPC serialization and `JSON.stringify` all recurse). Field-level limits (an input, a payload)
 * are smaller and checked later; this one bounds what the engine reads at all.
 */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** `SPINDLE_MAX_BODY_BYTES` (a var), or the default. */
export function maxBodyBytes(env: Env): number {
  const configured = Number(env.SPINDLE_MAX_BODY_BYTES);
  return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_MAX_BODY_BYTES;
}

export const bodyLimits: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  if (!c.req.raw.body) return next();
  const max = maxBodyBytes(c.env);
  const limited = bodyLimit({
    maxSize: max,
    onError: () => {
      throw new SpindleError("request.too_large", `the request body is larger than the limit of ${max} bytes (SPINDLE_MAX_BODY_BYTES)`);
    },
  });
  return limited(c, async () => {
    // Read once here; the route's JSON parsing reuses the text Hono cached.
    checkJsonDepth(await c.req.text(), MAX_VALUE_DEPTH);
    await next();
  });
};

/** Throws `request.too_deep` when JSON text nests deeper than `max`, in one pass without parsing. */
export function checkJsonDepth(text: string, max: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > max) throw new SpindleError("request.too_deep", `the JSON body nests deeper than ${max} levels`);
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
}
