import { parse } from "@marcbachmann/cel-js";
import { SpindleError } from "./errors";

/**
 * CEL through `@marcbachmann/cel-js`, each expression parsed once and cached (workerd forbids
 * `eval`, and parsing is most of the cost). Filters must evaluate to `true` to match; an evaluation
 * error (a missing key, a type mismatch) is a non-match, not a failure.
 */
type Compiled = ReturnType<typeof parse>;

const cache = new Map<string, Compiled>();
const MAX_CACHED = 2_000;

export function compile(expression: string): Compiled {
  let compiled = cache.get(expression);
  if (!compiled) {
    try {
      compiled = parse(expression);
    } catch (err) {
      throw new SpindleError("condition.invalid", `CEL expression ${JSON.stringify(expression)} does not parse: ${(err as Error).message.split("\n")[0]}`);
    }
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(expression, compiled);
  }
  return compiled;
}

/** Throws `condition.invalid` with the parser's message when the expression does not parse. */
export function checkExpression(expression: string): void {
  compile(expression);
}

export function matches(expression: string | undefined, context: Record<string, unknown>): boolean {
  if (expression === undefined || expression.trim() === "") return true;
  try {
    return compile(expression)(context) === true;
  } catch (err) {
    if (err instanceof SpindleError) throw err;
    return false;
  }
}

/** What an event filter sees: the payload as `input`, the metadata as `additional_metadata`. */
export function eventContext(payload: unknown, metadata: Record<string, string>): Record<string, unknown> {
  return { input: payload ?? null, additional_metadata: metadata };
}
