/**
 * The script the workerd tests run: the whole engine, plus `TestWorker`, an SDK worker holding the
 * test workflows. Tests drive it through the HTTP API (`exports.default.fetch`), the SDK, and the
 * runtime's own hooks (alarms, eviction).
 */
import { testWorker } from "./workflows";

export { default, Engine, Registry, RunIndex, WorkflowRun, TaskQueue } from "../../src/index";

export class TestWorker extends testWorker {}
