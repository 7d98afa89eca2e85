import type { Env as EngineEnv } from "../../src/env";
import type { Engine } from "../../src/rpc/engine";

declare global {
  namespace Cloudflare {
    interface Env extends EngineEnv {
      /** The test worker's binding to the engine (what the SDK uses). */
      SPINDLE: Service<Engine>;
      /** The engine's HTTP API, as served workers call it. */
      ENGINE_HTTP: Fetcher;
    }
    interface GlobalProps {
      mainModule: typeof import("../worker/index");
    }
  }
}
