// Connection keeps the one Subscribe stream of the app open: it resumes
// from the cursors the store has applied, reconnects with jittered
// exponential backoff, and treats a silent stream (no heartbeat) as dead.

import { Code, ConnectError } from "@connectrpc/connect";
import type { Api } from "./api";
import type { Event, Ready } from "./gen/pods/v1/realtime_pb";

export type Status = "connecting" | "connected" | "disconnected";

/**
 * What applying an event asks of the stream: nothing; a fresh stream from
 * the cursors because a seq was skipped ("gap"); or a fresh ready because
 * the event changed what ready reports ("resubscribe").
 */
export type Applied = "ok" | "gap" | "resubscribe";

/** What the connection feeds: the store's side of the stream. */
export interface StreamSink {
  /** The cursors to resume from: pod id → last applied seq. */
  cursors(): Record<string, bigint>;
  ready(ready: Ready): void;
  /** Applies one event, and says whether the stream must start over. */
  event(ev: Event): Applied;
  /** The token was refused: the session is over. */
  unauthenticated(): void;
}

/** Backoff between attempts: 0.5 s doubling up to 10 s, with jitter. */
const backoffBaseMs = 500;
const backoffMaxMs = 10_000;
/** How long to wait for ready before giving up on an attempt. */
const readyTimeoutMs = 15_000;
/** After this long disconnected, offer "Retry now". */
export const offerRetryAfterMs = 10_000;

/** A stream that lasted this long after ready counts as healthy. */
const minHealthyMs = 5_000;

/** How one attempt ended. */
type Attempt = "restart" | "lived" | "failed";

class RestartError extends Error {}
class SilentError extends Error {}

/**
 * Connection runs the stream loop. It is single-threaded like everything
 * in the page: start once, stop on sign-out.
 */
export class Connection {
  status: Status = "connecting";
  /** When the connection was lost (ms since epoch), or null while connected. */
  disconnectedSince: number | null = null;
  /** When the next attempt starts, while waiting in backoff. */
  nextAttemptAt: number | null = null;

  private stopped = false;
  private abort: AbortController | null = null;
  private wakeUp: (() => void) | null = null;
  private watchdog: number | undefined;
  /** The server's heartbeat interval, from ready. */
  private heartbeatMs = 15_000;

  constructor(
    private readonly api: Api,
    private readonly sink: StreamSink,
    private readonly onChange: () => void,
  ) {}

  /** start runs the loop in the background until stop. */
  start(): void {
    void this.loop();
    window.addEventListener("online", this.retryNow);
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("online", this.retryNow);
    this.abort?.abort();
    this.wakeUp?.();
    clearTimeout(this.watchdog);
  }

  /** retryNow skips the backoff wait and connects at once. */
  readonly retryNow = (): void => {
    this.wakeUp?.();
  };

  private async loop(): Promise<void> {
    let failures = 0;
    let restartedAt = 0;
    let quickRestarts = 0;
    while (!this.stopped) {
      let result: Attempt;
      try {
        result = await this.attempt();
      } catch {
        this.sink.unauthenticated();
        return;
      }
      if (this.stopped) return;
      if (result === "restart") {
        // Our own doing (a gap, a new pod): resubscribe at once, unless it
        // keeps happening; a stream that skips a seq every time must not
        // turn into a loop of subscribes.
        quickRestarts = Date.now() - restartedAt < minHealthyMs ? quickRestarts + 1 : 0;
        if (quickRestarts > 0) await this.backoff(quickRestarts);
        restartedAt = Date.now(); // a quick restart is one soon after the previous stream began
        continue;
      }
      if (result === "lived") {
        // A stream that was healthy for a while ended (the node restarts,
        // say): come right back once before showing red.
        failures = 0;
        this.setStatus("connecting");
        continue;
      }
      failures++;
      this.setStatus("disconnected");
      await this.backoff(failures);
    }
  }

  /**
   * attempt subscribes and applies events until the stream ends, and says
   * how it went. It throws only if the token was refused.
   */
  private async attempt(): Promise<Attempt> {
    const abort = new AbortController();
    this.abort = abort;
    let readyAt = 0;
    this.arm(readyTimeoutMs);
    try {
      const stream = this.api.realtime.subscribe({ cursors: this.sink.cursors() }, { signal: abort.signal });
      for await (const res of stream) {
        const ev = res.event;
        if (!ev) continue;
        if (ev.kind.case === "ready") {
          this.sink.ready(ev.kind.value);
          readyAt = Date.now();
          this.heartbeatMs = Math.max(1, ev.kind.value.heartbeatSeconds || 15) * 1000;
          this.setStatus("connected");
        } else if (this.sink.event(ev) !== "ok") {
          abort.abort(new RestartError());
          return "restart";
        }
        this.arm(2 * this.heartbeatMs);
      }
    } catch (err) {
      if (abort.signal.reason instanceof RestartError) return "restart";
      if (abort.signal.reason instanceof SilentError) return "failed"; // a missed heartbeat is a disconnect
      if (!(err instanceof ConnectError)) console.error("applying the stream:", err); // a bug of ours
      else if (err.code === Code.Unauthenticated) throw err;
    } finally {
      clearTimeout(this.watchdog);
    }
    return readyAt && Date.now() - readyAt > minHealthyMs ? "lived" : "failed";
  }

  /** arm (re)starts the watchdog that aborts a stream silent for ms. */
  private arm(ms: number): void {
    clearTimeout(this.watchdog);
    const abort = this.abort;
    this.watchdog = window.setTimeout(() => abort?.abort(new SilentError("no heartbeat")), ms);
  }

  private setStatus(status: Status): void {
    if (status === "disconnected" && this.disconnectedSince === null) this.disconnectedSince = Date.now();
    if (status === "connected") this.disconnectedSince = null;
    if (status !== this.status) {
      this.status = status;
      this.onChange();
    }
  }

  /** backoff waits before the nth attempt in a row: exponential, with jitter. */
  private backoff(n: number): Promise<void> {
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** (n - 1));
    return this.sleep(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /** sleep waits ms, or less if retryNow or stop is called. */
  private sleep(ms: number): Promise<void> {
    this.nextAttemptAt = Date.now() + ms;
    this.onChange();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        this.nextAttemptAt = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}
