import type { TestProject } from "vitest/node";
import { startDevServer, type DevServer } from "./dev-server";

let server: DevServer | undefined;

/** One `wrangler dev`, started as `npm start` starts it, shared by every e2e file. */
export async function setup(project: TestProject): Promise<void> {
  server = await startDevServer();
  project.provide("devServer", { url: server.url, port: server.port, token: server.token });
}

export async function teardown(): Promise<void> {
  await server?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    devServer: { url: string; port: number; token: string };
  }
}
