import { Environment } from "@marcbachmann/cel-js";
import { RE2JS } from "re2js";
import { SpindleError } from "./errors";

/**
 * CEL through `@marcbachmann/cel-js`, each expression parsed once and cached (workerd forbids
 * `eval`, and parsing is most of the cost). Filters must evaluate to `true` to match. Every
 * evaluation runs under a cost budget, and `matches` runs on RE2 (linear time), so no expression
 * can hold its caller for longer than the budget allows, whatever the data. An evaluation that
 * errors or runs out of budget does not match, and says why (`CelResult.error`): callers show it.
 *
 * cel-js has no cost limit, and its `string.matches` is a backtracking `RegExp` that cannot be
 * replaced (the registry refuses an overload that overlaps a built-in one). Its evaluator sends
 * every node of the tree through one method, `run(ast, ctx)` (comprehension steps included), so we
 * wrap that method on our environment's evaluator: the wrapper counts the cost and evaluates
 * `matches` itself. `test/unit/cel.test.ts` fails if a cel-js upgrade stops going through it.
 */
type Compiled = ReturnType<Environment["parse"]>;

/** Cost units one evaluation may spend: about a node evaluated, or 64 characters / 1 element consumed. */
export const CEL_EVALUATION_BUDGET = 1_000_000;

export type CelResult = { matched: boolean; error?: string; cost: number };

interface AstNode {
  op: string;
  args: unknown;
  evaluate(ev: unknown, ast: AstNode, ctx: unknown): unknown;
}

class BudgetExceeded extends Error {
  constructor(limit: number) {
    super(`the expression exceeded its cost budget of ${limit} units (CEL_EVALUATION_BUDGET): it does too much work for this data`);
  }
}

/** What the current evaluation has spent; evaluations are synchronous, so one at a time. */
class Meter {
  spent = 0;
  exceeded = false;
  constructor(readonly limit: number) {}

  charge(units: number): void {
    this.spent += units;
    if (this.spent > this.limit) {
      this.exceeded = true;
      throw new BudgetExceeded(this.limit);
    }
  }
}

let meter: Meter | null = null;

/** Operators and calls whose work grows with the size of their operands (field access does not). */
const CONSUMING = new Set(["call", "rcall", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in"]);
const sizes = new WeakMap<object, number>();

/** Cost units for consuming a value: its elements and characters, computed once per object. */
function sizeOf(value: unknown): number {
  if (typeof value === "string") return value.length >> 6;
  if (typeof value !== "object" || value === null) return 0;
  if (value instanceof Uint8Array) return value.length >> 6;
  const known = sizes.get(value);
  if (known !== undefined) return known;
  // Iterative: a value may be nested deeper than the stack allows.
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === "string") total += 1 + (v.length >> 6);
    else if (typeof v === "object" && v !== null) {
      const cached = sizes.get(v);
      total += cached ?? 1;
      if (cached !== undefined || v instanceof Uint8Array || v instanceof Date) continue;
      // One at a time: spreading a list of a few hundred thousand elements overflows the stack.
      if (v instanceof Map) for (const [k, item] of v) stack.push(k, item);
      else for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push(item);
    } else total += 1;
  }
  sizes.set(value, total);
  return total;
}

const patterns = new Map<string, RE2JS>();

function re2(pattern: string): RE2JS {
  let compiled = patterns.get(pattern);
  if (!compiled) {
    compiled = RE2JS.compile(pattern);
    if (patterns.size >= MAX_CACHED) patterns.clear();
    patterns.set(pattern, compiled);
  }
  return compiled;
}

/** `string.matches(string)`, on RE2: partial match, as CEL specifies, in time linear in the input. */
function evaluateMatches(ev: { run(ast: AstNode, ctx: unknown): unknown }, ast: AstNode, ctx: unknown): boolean {
  const [, receiver, args] = ast.args as [string, AstNode, AstNode[]];
  const s = ev.run(receiver, ctx);
  const pattern = ev.run(args[0]!, ctx);
  if (typeof s !== "string" || typeof pattern !== "string") throw new Error("matches: expects a string receiver and a string pattern");
  let re: RE2JS;
  try {
    re = re2(pattern);
  } catch (err) {
    throw new Error(`matches: invalid RE2 pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
  meter?.charge(1 + (pattern.length >> 6) + (s.length >> 6) * (1 + (pattern.length >> 4)));
  return re.test(s);
}

function createEnvironment(): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
  // JSON numbers arrive as doubles while literals like `1` are ints, and CEL has no mixed
  // arithmetic: `input.a + 1` would never evaluate. Mixed operands give a double here.
  for (const op of ["+", "-", "*", "/"] as const) {
    const apply = (a: number, b: number): number => (op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : a / b);
    env.registerOperator(`double ${op} int: double`, (a: number, b: bigint) => apply(a, Number(b)));
    env.registerOperator(`int ${op} double: double`, (a: bigint, b: number) => apply(Number(a), b));
  }
  let evaluator: { run(ast: AstNode, ctx: unknown): unknown } | undefined;
  // A function's handler is called with the evaluator as `this`: the one way to reach it.
  env.registerFunction("spindle_internal_evaluator(): bool", function (this: typeof evaluator) {
    evaluator = this;
    return true;
  });
  env.evaluate("spindle_internal_evaluator()", {});
  if (!evaluator || typeof evaluator.run !== "function") throw new Error("cel-js: cannot reach the evaluator to meter it");
  const ev = evaluator;
  ev.run = function run(ast: AstNode, ctx: unknown): unknown {
    const isMatches = ast.op === "rcall" && (ast.args as unknown[])[0] === "matches";
    const m = meter;
    if (!m) return isMatches ? evaluateMatches(ev, ast, ctx) : ast.evaluate(ev, ast, ctx);
    m.charge(1);
    // A node whose parent consumes it pays for its value's size as it comes back.
    const pays = operands !== "none";
    const after = operands === "first" ? "none" : operands;
    operands = CONSUMING.has(ast.op) ? "all" : ast.op === "comprehension" ? "first" : "none";
    let value: unknown;
    try {
      value = isMatches ? evaluateMatches(ev, ast, ctx) : ast.evaluate(ev, ast, ctx);
    } finally {
      operands = after;
    }
    if (pays) m.charge(sizeOf(value));
    return value;
  };
  return env;
}

/**
 * Whose values the node being evaluated consumes: all its operands, only the first (a
 * comprehension pays for the range it iterates, not for its steps), or none (field access).
 */
let operands: "all" | "first" | "none" = "none";
const env = createEnvironment();
const cache = new Map<string, Compiled>();
const MAX_CACHED = 2_000;
/** Longer expressions are refused when declared: parsing and type-checking grow with the text. */
export const MAX_EXPRESSION_LENGTH = 8_192;

export function compile(expression: string): Compiled {
  let compiled = cache.get(expression);
  if (!compiled) {
    if (expression.length > MAX_EXPRESSION_LENGTH) {
      throw new SpindleError("condition.invalid", `a CEL expression is at most ${MAX_EXPRESSION_LENGTH} characters, got ${expression.length}`);
    }
    try {
      checkPatterns(expression, env.parse(expression).ast as unknown as AstNode);
    } catch (err) {
      if (err instanceof SpindleError) throw err;
      throw new SpindleError("condition.invalid", `CEL expression ${JSON.stringify(expression)} does not parse: ${(err as Error).message.split("\n")[0]}`);
    }
    // The evaluator runs the root node without going through `run`: put it one level down so the
    // meter (and RE2) see every node. Same value, same errors.
    compiled = env.parse(`[${expression}\n][0]`);
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(expression, compiled);
  }
  return compiled;
}

/** A literal `matches` pattern that RE2 refuses (lookaround, backreferences) is refused when declared. */
function checkPatterns(expression: string, root: AstNode): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop();
    if (Array.isArray(node)) stack.push(...node);
    else if (node && typeof node === "object" && "op" in node) {
      const n = node as AstNode;
      if (n.op === "rcall" && (n.args as unknown[])[0] === "matches") {
        const arg = ((n.args as unknown[])[2] as AstNode[] | undefined)?.[0];
        if (arg?.op === "value" && typeof arg.args === "string") {
          try {
            re2(arg.args);
          } catch (err) {
            throw new SpindleError(
              "condition.invalid",
              `CEL expression ${JSON.stringify(expression)}: matches() pattern ${JSON.stringify(arg.args)} is not valid RE2 syntax: ${(err as Error).message}`,
            );
          }
        }
      }
      if (n.op !== "value") stack.push(n.args);
    } else if (node && typeof node === "object") stack.push(...Object.values(node));
  }
}

/** Throws `condition.invalid` with the parser's message when the expression does not parse. */
export function checkExpression(expression: string): void {
  compile(expression);
}

/**
 * Evaluates a filter within `budget` cost units. Matched only when it evaluates to `true`; an error,
 * a non-boolean result, or running out of budget is a non-match with the reason in `error`.
 */
export function evaluateFilter(expression: string | undefined | null, context: Record<string, unknown>, budget = CEL_EVALUATION_BUDGET): CelResult {
  if (expression === undefined || expression === null || expression.trim() === "") return { matched: true, cost: 0 };
  const m = new Meter(budget);
  meter = m;
  operands = "none";
  try {
    // An expression stored before a check it now fails (RE2 syntax, its length) fails here, shown.
    const value = compile(expression)(context);
    if (m.exceeded) return { matched: false, error: new BudgetExceeded(budget).message, cost: m.spent };
    if (typeof value !== "boolean") return { matched: false, error: `the expression evaluated to ${describe(value)}, not a bool`, cost: m.spent };
    return { matched: value, cost: m.spent };
  } catch (err) {
    const message = m.exceeded ? new BudgetExceeded(budget).message : ((err as Error).message ?? String(err)).split("\n")[0]!;
    return { matched: false, error: message, cost: m.spent };
  } finally {
    meter = null;
    operands = "none";
  }
}

/** Evaluates an expression to its value within `budget` cost units; an error or an exhausted budget says why. */
export function evaluateValue(expression: string, context: Record<string, unknown>, budget = CEL_EVALUATION_BUDGET): { value: unknown } | { error: string } {
  const m = new Meter(budget);
  meter = m;
  operands = "none";
  try {
    const value = compile(expression)(context);
    if (m.exceeded) return { error: new BudgetExceeded(budget).message };
    return { value };
  } catch (err) {
    return { error: m.exceeded ? new BudgetExceeded(budget).message : ((err as Error).message ?? String(err)).split("\n")[0]! };
  } finally {
    meter = null;
    operands = "none";
  }
}

/** Whether the filter holds; an error or an exhausted budget is false. */
export function matches(expression: string | undefined, context: Record<string, unknown>): boolean {
  return evaluateFilter(expression, context).matched;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "bigint") return `the int ${value}`;
  if (typeof value === "object") return Array.isArray(value) ? "a list" : "a map";
  return `the ${typeof value === "number" ? "double" : typeof value} ${JSON.stringify(value)}`;
}

/** What an event filter sees: the payload as `input`, the metadata as `additional_metadata`. */
export function eventContext(payload: unknown, metadata: Record<string, string>): Record<string, unknown> {
  return { input: payload ?? null, additional_metadata: metadata };
}
