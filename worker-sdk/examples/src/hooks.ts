import { spindle } from "./spindle";

export const onFailure = spindle.workflow({ name: "on-failure" });

onFailure.task({
  name: "fail",
  fn: () => {
    throw new Error("intentional failure");
  },
});

onFailure.onFailure({
  name: "on-failure",
  fn: (_input, ctx) => ({ handled: true, errors: ctx.errors() }),
});

export const onSuccess = spindle.workflow({ name: "on-success" });

const first = onSuccess.task({ name: "first", fn: () => ({ step: 1 }) });
const second = onSuccess.task({ name: "second", parents: [first], fn: () => ({ step: 2 }) });

onSuccess.onSuccess({
  name: "on-success",
  fn: (_input, ctx) => ({ after: [ctx.parentOutput(first).step, ctx.parentOutput(second).step] }),
});
