import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkInput } from "../../src/core/input-schema";
import { SpindleError } from "../../src/core/errors";

const schema = z.toJSONSchema(
  z.object({ Message: z.string(), user: z.object({ email: z.string().email(), tags: z.array(z.string()) }).optional() }).strict(),
  { io: "input" },
) as Record<string, unknown>;

const fieldsOf = (input: unknown) => {
  try {
    checkInput(schema, input);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("input.invalid");
    return (err as SpindleError).fields!.map((f) => f.path);
  }
};

describe("checkInput", () => {
  it("accepts matching input and anything without a schema", () => {
    expect(fieldsOf({ Message: "hi" })).toBeNull();
    expect(() => checkInput(undefined, 42)).not.toThrow();
  });
  it("names the failing fields as paths under input", () => {
    expect(fieldsOf({ Message: 1 })).toEqual(["input.Message"]);
    expect(fieldsOf({})).toEqual(["input.Message"]);
    expect(fieldsOf({ Message: "x", user: { email: "no", tags: ["a", 2] } })).toEqual(["input.user.email", "input.user.tags.1"]);
    expect(fieldsOf({ Message: "x", extra: true })).toEqual(["input.extra"]);
    expect(fieldsOf("just a string")).toEqual(["input"]);
  });
});
