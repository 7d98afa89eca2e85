/** Watchers' notices are coalesced: at most one message per this long, per object. */
export const LIVE_COALESCE_MS = 100;

/**
 * The watchers of a Durable Object (a run's page, the runs list): WebSockets accepted with the
 * hibernation API, so an object whose watchers are idle is evicted from memory and costs nothing,
 * and wakes only to tell them something changed. A watcher's `ping` is answered by the runtime
 * without waking the object. A watcher that connects (or reconnects) gets a `hello` first: what it
 * needs to catch up.
 */
export class LiveSockets {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly ctx: DurableObjectState) {}

  accept(hello: unknown): Response {
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.ctx.acceptWebSocket(server);
    server.send(JSON.stringify(hello));
    return new Response(null, { status: 101, webSocket: client });
  }

  get watched(): boolean {
    return this.ctx.getWebSockets().length > 0;
  }

  /**
   * Tells every watcher what `message()` answers, LIVE_COALESCE_MS from now: changes in between are
   * sent as one. Nothing is scheduled while no one watches.
   */
  changed(message: () => unknown): void {
    if (this.timer !== null || !this.watched) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.send(message());
    }, LIVE_COALESCE_MS);
  }

  send(message: unknown): void {
    const text = JSON.stringify(message);
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // A socket closing as we send: its close event removes it.
      }
    }
  }

  /** The object's `webSocketClose`: complete the close handshake. */
  static closed(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }
}

/** Whether a request asks to open a WebSocket. */
export function isUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}
