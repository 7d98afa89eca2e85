import { Validator, type OutputUnit } from "@cfworker/json-schema";
import type { JsonSchema } from "@spindle/worker-sdk/protocol";
import { SpindleError } from "./errors";

/**
 * Validates a run's input against the JSON Schema its worker registered (converted from zod by the
 * SDK). Validators are built once per schema and cached. Errors name the failing field as a dotted
 * path rooted at `input` (`input.user.email`), with the validator's message.
 */
const validators = new Map<string, Validator>();
const MAX_CACHED_VALIDATORS = 500;

export function checkInput(schema: JsonSchema | undefined, input: unknown): void {
  if (!schema) return;
  const key = JSON.stringify(schema);
  let validator = validators.get(key);
  if (!validator) {
    if (validators.size >= MAX_CACHED_VALIDATORS) validators.clear();
    validator = new Validator(schema as never, draftOf(schema), false);
    validators.set(key, validator);
  }
  const result = validator.validate(input);
  if (result.valid) return;
  const fields = describe(result.errors);
  throw new SpindleError("input.invalid", `input does not match the workflow's schema: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`, {
    fields,
  });
}

function draftOf(schema: JsonSchema): "4" | "7" | "2019-09" | "2020-12" {
  const uri = typeof schema.$schema === "string" ? schema.$schema : "";
  if (uri.includes("draft-04")) return "4";
  if (uri.includes("draft-07")) return "7";
  if (uri.includes("2019-09")) return "2019-09";
  return "2020-12";
}

function describe(errors: OutputUnit[]): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const e of errors) {
    // "properties"/"items"/"$ref" units only say that a child failed; the child's own unit says how.
    if (["properties", "items", "prefixItems", "$ref", "allOf", "false"].includes(e.keyword)) continue;
    const base = toPath(e.instanceLocation);
    const quoted = /"([^"]+)"/.exec(e.error)?.[1];
    if (e.keyword === "required" && quoted) out.push({ path: `${base}.${quoted}`, message: "is required" });
    else if ((e.keyword === "additionalProperties" || e.keyword === "unevaluatedProperties") && quoted) {
      out.push({ path: `${base}.${quoted}`, message: "is not a known field" });
    } else out.push({ path: base, message: e.error });
  }
  if (out.length === 0) return [{ path: "input", message: "does not match the schema" }];
  // One entry per field: a value can break several keywords at once (a pattern and a format).
  const byPath = new Map<string, string[]>();
  for (const f of out) byPath.set(f.path, [...(byPath.get(f.path) ?? []), f.message]);
  return [...byPath].map(([path, messages]) => ({ path, message: messages.join("; ") }));
}

function toPath(location: string): string {
  const parts = location
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p.length > 0)
    .map((p) => decodeURIComponent(p.replace(/~1/g, "/").replace(/~0/g, "~")));
  return ["input", ...parts].join(".");
}
