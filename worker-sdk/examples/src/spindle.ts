import { Spindle } from "@spindle/worker-sdk";

/** Finds the engine through the SPINDLE service binding, with the SPINDLE_API_TOKEN secret. */
export const spindle = Spindle.init();
