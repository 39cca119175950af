// Unit tests of the stream loop: a stream that must start over every time
// (a seq skipped on each attempt) is resubscribed with backoff, not in a
// tight loop.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { Api } from "../src/api";
import { Connection, type StreamSink } from "../src/connection";
import { EventSchema, ReadySchema, SubscribeResponseSchema } from "../src/gen/pods/v1/realtime_pb";

Object.assign(globalThis, { window: globalThis });
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};

test("a stream that keeps skipping a seq is resubscribed with backoff", async () => {
  let subscribes = 0;
  const api = {
    realtime: {
      async *subscribe() {
        subscribes++;
        await new Promise((resolve) => setTimeout(resolve, 0)); // a network round trip
        yield create(SubscribeResponseSchema, { event: create(EventSchema, { kind: { case: "ready", value: create(ReadySchema, { heartbeatSeconds: 15 }) } }) });
        yield create(SubscribeResponseSchema, { event: create(EventSchema, { podId: "p", seq: 5n }) });
      },
    },
  } as unknown as Api;
  const sink: StreamSink = {
    cursors: () => ({ p: 1n }),
    ready: () => {},
    event: () => "gap",
    unauthenticated: () => assert.fail("unauthenticated"),
  };
  const conn = new Connection(api, sink, () => {});
  conn.start();
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  conn.stop();
  // Without backoff this is thousands; with it: at once, then after
  // 0.25–0.5 s, then 0.5–1 s more, then 1–2 s more.
  assert.ok(subscribes >= 2 && subscribes <= 4, `${subscribes} subscribes in 1.2 s`);
});
