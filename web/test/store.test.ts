// Unit tests of the store's stream rules: cursors, gaps, replays, and the
// optimistic copy of a message meeting its acknowledgement.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CheckInRecordedSchema, EventSchema, ReadySchema, type Event } from "../src/gen/pods/v1/realtime_pb";
import { CheckInSchema, StreakSchema } from "../src/gen/pods/v1/progress_pb";
import { CoachTrigger, MemberRole, MemberSchema, MessageSchema, PodSchema, PodSummarySchema, UserSchema } from "../src/gen/pods/v1/types_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { Actions, localDate } from "../src/actions";
import type { Api } from "../src/api";
import { Store } from "../src/store";

// The little of the browser the store touches.
const storage = new Map<string, string>();
Object.assign(globalThis, {
  window: globalThis,
  document: { visibilityState: "visible" },
  localStorage: {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => storage.set(k, v),
    removeItem: (k: string) => storage.delete(k),
  },
});

const me = { token: "t", userId: "u-me", handle: "me", displayName: "Me" };
const podId = "p-1";

function newStore(): Store {
  const store = new Store(me, () => {}, () => {});
  const members = ["u-me", "u-ana"].map((id) => create(MemberSchema, { user: create(UserSchema, { id, displayName: id }) }));
  store.ready(
    create(ReadySchema, {
      heartbeatSeconds: 15,
      pods: [create(PodSummarySchema, { pod: create(PodSchema, { id: podId, name: "Pod", members }), lastSeq: 10n, unreadCount: 2n, onlineUserIds: ["u-ana"] })],
    }),
  );
  return store;
}

function msg(seq: bigint, id: string, authorId = "u-ana", key = `k-${id}`) {
  return create(MessageSchema, { id, podId, seq, authorId, body: `body ${id}`, idempotencyKey: key });
}

function created(seq: bigint, id: string, authorId = "u-ana", key = `k-${id}`): Event {
  const message = msg(seq, id, authorId, key);
  return create(EventSchema, { podId, seq, kind: { case: "messageCreated", value: { $typeName: "pods.v1.MessageCreated", message } } });
}

let store: Store;
beforeEach(() => {
  storage.clear();
  store = newStore();
});

test("a pod not in the cursors starts after ready's last seq", () => {
  assert.deepEqual(store.cursors(), { [podId]: 10n });
  assert.equal(store.pods.get(podId)!.unread, 2);
});

test("events apply in order, replays are ignored, a gap asks for a new stream", () => {
  assert.equal(store.event(created(11n, "m11")), "ok");
  assert.equal(store.event(created(11n, "m11")), "ok"); // replay
  assert.equal(store.event(created(9n, "m9")), "ok"); // older than the cursor
  assert.equal(store.pods.get(podId)!.messages.size, 1);
  assert.equal(store.event(created(13n, "m13")), "gap");
  assert.deepEqual(store.cursors(), { [podId]: 11n });
  assert.equal(store.pods.get(podId)!.messages.has("m13"), false);
});

test("an event without a kind still moves the cursor", () => {
  assert.equal(store.event(create(EventSchema, { podId, seq: 11n })), "ok");
  assert.deepEqual(store.cursors(), { [podId]: 11n });
});

test("only live messages of others count as unread", () => {
  store.event(created(11n, "m11"));
  store.event(created(12n, "m12", "u-me"));
  assert.equal(store.pods.get(podId)!.unread, 3);
});

test("the acknowledged message replaces its optimistic copy, once", () => {
  store.outbox.set("key-1", { key: "key-1", podId, body: "hi", humor: false, status: "pending", createdAt: 1 });
  store.event(created(11n, "m11", "u-me", "key-1"));
  assert.equal(store.outbox.size, 0);
  // The SendMessage answer arrives after the event: still one message.
  store.upsertMessage(store.pods.get(podId)!.messages.get("m11")!);
  assert.equal(store.pods.get(podId)!.messages.size, 1);
  assert.equal(store.outgoing(podId).length, 0);
});

test("a deleted message is not revived by a late history page", () => {
  store.event(created(11n, "m11"));
  store.event(create(EventSchema, { podId, seq: 12n, kind: { case: "messageDeleted", value: { $typeName: "pods.v1.MessageDeleted", messageId: "m11" } } }));
  store.mergeHistory(store.pods.get(podId)!, [msg(11n, "m11")]);
  assert.equal(store.pods.get(podId)!.messages.size, 0);
});

test("presence and typing are ephemeral and apply at once", () => {
  store.event(create(EventSchema, { podId, kind: { case: "presence", value: { $typeName: "pods.v1.Presence", userId: "u-ana", online: false } } }));
  assert.equal(store.pods.get(podId)!.online.has("u-ana"), false);
  store.event(create(EventSchema, { podId, kind: { case: "typing", value: { $typeName: "pods.v1.Typing", userId: "u-ana", typing: true } } }));
  assert.equal(store.pods.get(podId)!.typing.has("u-ana"), true);
  store.event(created(11n, "m11")); // her message ends her typing
  assert.equal(store.pods.get(podId)!.typing.has("u-ana"), false);
  assert.deepEqual(store.cursors(), { [podId]: 11n });
});

test("our own live join asks for a fresh ready, another's does not; a pod missing from ready is dropped", () => {
  const joined = (seq: bigint, userId: string) =>
    create(EventSchema, { podId, seq, kind: { case: "memberJoined", value: { $typeName: "pods.v1.MemberJoined", userId } } });
  assert.equal(store.event(joined(11n, "u-bo")), "ok");
  assert.equal(store.event(joined(12n, "u-me")), "resubscribe");
  assert.deepEqual(store.cursors(), { [podId]: 12n });
  store.ready(create(ReadySchema, { pods: [] }));
  assert.equal(store.pods.size, 0);
});

test("the coach switched off and on shows in the pod", () => {
  const switched = (seq: bigint, enabled: boolean) =>
    create(EventSchema, { podId, seq, kind: { case: "coachSwitched", value: { $typeName: "pods.v1.CoachSwitched", enabled } } });
  assert.equal(store.event(switched(11n, false)), "ok");
  assert.equal(store.pods.get(podId)!.pod.coachEnabled, false);
  assert.equal(store.event(switched(12n, true)), "ok");
  assert.equal(store.pods.get(podId)!.pod.coachEnabled, true);
});

test("each member's latest done check-in follows their check-ins", () => {
  const checkIn = (seq: bigint, userId: string, date: string, done: boolean) =>
    create(EventSchema, {
      podId,
      seq,
      kind: { case: "checkInRecorded", value: create(CheckInRecordedSchema, { checkIn: create(CheckInSchema, { podId, userId, date, done }), streak: create(StreakSchema, { current: done ? 1 : 0 }) }) },
    });
  const p = store.pods.get(podId)!;
  assert.equal(store.event(checkIn(11n, "u-ana", "2026-11-29", true)), "ok");
  assert.equal(store.event(checkIn(12n, "u-ana", "2026-11-28", true)), "ok"); // an older day, checked late
  assert.equal(p.doneOn.get("u-ana"), "2026-11-29");
  assert.equal(p.streaks.get("u-ana")?.current, 1);
  assert.equal(store.event(checkIn(13n, "u-me", "2026-11-30", false)), "ok");
  assert.equal(p.doneOn.has("u-me"), false);
  assert.equal(store.event(checkIn(14n, "u-ana", "2026-11-29", false)), "ok"); // taken back
  assert.equal(p.doneOn.has("u-ana"), false);
  assert.equal(p.streaks.get("u-ana")?.current, 0);
});

test("history tells why the coach spoke", () => {
  const nudge = create(MessageSchema, { id: "c1", podId, seq: 5n, authorId: "u-coach", body: "How is it going?", coachTrigger: CoachTrigger.QUIET });
  store.mergeHistory(store.pods.get(podId)!, [nudge, msg(6n, "m6")]);
  assert.equal(store.pods.get(podId)!.coachTriggers.get("c1"), CoachTrigger.QUIET);
  assert.equal(store.pods.get(podId)!.coachTriggers.has("m6"), false);
});

test("a new owner takes the owner's role", () => {
  const p = store.pods.get(podId)!;
  p.pod.ownerId = "u-me";
  p.pod.members[0].role = MemberRole.OWNER;
  const changed = create(EventSchema, { podId, seq: 11n, kind: { case: "ownerChanged", value: { $typeName: "pods.v1.OwnerChanged", userId: "u-ana" } } });
  assert.equal(store.event(changed), "ok");
  assert.equal(p.pod.ownerId, "u-ana");
  assert.deepEqual(p.pod.members.map((m) => [m.user!.id, m.role]), [["u-me", MemberRole.MEMBER], ["u-ana", MemberRole.OWNER]]);
});

test("a deleted message no longer counts as unread", () => {
  store.event(created(11n, "m11"));
  store.event(created(12n, "m12"));
  assert.equal(store.pods.get(podId)!.unread, 4);
  store.event(create(EventSchema, { podId, seq: 13n, kind: { case: "messageDeleted", value: { $typeName: "pods.v1.MessageDeleted", messageId: "m11" } } }));
  assert.equal(store.pods.get(podId)!.unread, 3);
  // Once the server gave the count, it is the truth.
  store.event(create(EventSchema, { podId, kind: { case: "readUpdated", value: { $typeName: "pods.v1.ReadUpdated", seq: 10n, unreadCount: 5n } } }));
  store.event(create(EventSchema, { podId, seq: 14n, kind: { case: "messageDeleted", value: { $typeName: "pods.v1.MessageDeleted", messageId: "m12" } } }));
  assert.equal(store.pods.get(podId)!.unread, 5);
});

test("today is the user's date, not the browser's", () => {
  const zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago"]; // UTC+14 and UTC−11: never the same date
  assert.notEqual(localDate(zones[0]), localDate(zones[1]));
  assert.match(localDate(zones[0]), /^\d{4}-\d{2}-\d{2}$/);
  assert.equal(localDate("Mars/Olympus_Mons"), localDate()); // unknown here: the browser's
});

test("a send the server cannot find a place for leaves the outbox; one that failed otherwise stays for a retry", async () => {
  let code = Code.NotFound;
  const api = {
    chat: {
      sendMessage: async () => {
        throw new ConnectError("no", code);
      },
    },
  } as unknown as Api;
  const actions = new Actions(api, store);
  const settled = () => new Promise((resolve) => setTimeout(resolve, 0));
  actions.send(podId, "to a deleted pod", false);
  await settled();
  assert.equal(store.outbox.size, 0);
  code = Code.Unavailable;
  actions.send(podId, "while the server is away", false);
  await settled();
  assert.deepEqual([...store.outbox.values()].map((o) => o.status), ["failed"]);
});

test("tabs of one user keep each other's unsent messages across a reload", async () => {
  let fail = true;
  const sent: string[] = [];
  const api = {
    chat: {
      sendMessage: async (req: { idempotencyKey: string; body: string }) => {
        if (fail) throw new ConnectError("away", Code.Unavailable);
        sent.push(req.body);
        return { message: create(MessageSchema, { id: `m-${req.body}`, podId, seq: 11n, authorId: "u-me", idempotencyKey: req.idempotencyKey, body: req.body }) };
      },
    },
  } as unknown as Api;
  const settled = () => new Promise((resolve) => setTimeout(resolve, 0));
  const tab1 = newStore();
  const tab2 = newStore(); // open before the first tab's send failed
  new Actions(api, tab1).send(podId, "important", false);
  await settled();
  fail = false;
  new Actions(api, tab2).send(podId, "hello", false);
  await settled();
  assert.deepEqual(sent, ["hello"]);

  // A reload of the first tab finds its message, and sends it at the next connect.
  const reloaded = newStore();
  assert.deepEqual([...reloaded.outbox.values()].map((o) => [o.body, o.status]), [["important", "failed"]]);
  await new Actions(api, reloaded).resendFailed();
  assert.deepEqual(sent, ["hello", "important"]);
  assert.equal(reloaded.outbox.size, 0);
  assert.equal(newStore().outbox.size, 0);
});

test("at a reconnect, sends that failed for want of a connection go again; refused ones do not", async () => {
  let code = Code.InvalidArgument;
  const tries: string[] = [];
  const api = {
    chat: {
      sendMessage: async (req: { body: string }) => {
        tries.push(req.body);
        throw new ConnectError("no", code);
      },
    },
  } as unknown as Api;
  const settled = () => new Promise((resolve) => setTimeout(resolve, 0));
  const actions = new Actions(api, store);
  actions.send(podId, "refused", false);
  await settled();
  code = Code.Unavailable;
  actions.send(podId, "offline", false);
  await settled();
  await actions.resendFailed();
  assert.deepEqual(tries, ["refused", "offline", "offline"]);
});

test("messages written offline go again in the order they were written, one at a time", async () => {
  let up = false;
  let inFlight = 0;
  const arrived: string[] = [];
  const api = {
    chat: {
      sendMessage: async (req: { idempotencyKey: string; body: string }) => {
        if (!up) throw new ConnectError("away", Code.Unavailable);
        inFlight++;
        assert.equal(inFlight, 1, "two resends at once");
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
        inFlight--;
        arrived.push(req.body);
        return { message: create(MessageSchema, { id: `m-${req.body}`, podId, seq: 11n, authorId: "u-me", idempotencyKey: req.idempotencyKey, body: req.body }) };
      },
    },
  } as unknown as Api;
  const actions = new Actions(api, store);
  const written = ["o1", "o2", "o3", "o4", "o5"];
  for (const body of written) {
    actions.send(podId, body, false);
    await new Promise((resolve) => setTimeout(resolve, 1)); // createdAt apart
  }
  up = true;
  await actions.resendFailed();
  assert.deepEqual(arrived, written);
  assert.equal(store.outbox.size, 0);
});

test("messages sent quickly one after another are stored in the order they were written", async () => {
  const arrived: string[] = [];
  let inFlight = 0;
  const api = {
    chat: {
      sendMessage: async (req: { idempotencyKey: string; body: string }) => {
        inFlight++;
        assert.equal(inFlight, 1, "a send overtook the one before it");
        // The first request is the slow one (a slow phone network).
        await new Promise((resolve) => setTimeout(resolve, req.body === "Wait" ? 30 : 1));
        inFlight--;
        arrived.push(req.body);
        return { message: create(MessageSchema, { id: `m-${req.body}`, podId, seq: 11n, authorId: "u-me", idempotencyKey: req.idempotencyKey, body: req.body }) };
      },
    },
  } as unknown as Api;
  const actions = new Actions(api, store);
  for (const body of ["Wait", "I meant", "7am not 6am"]) actions.send(podId, body, false);
  for (let i = 0; i < 100 && arrived.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(arrived, ["Wait", "I meant", "7am not 6am"]);
});

test("what is kept of unsent messages survives junk in the storage", () => {
  storage.set(`pods.outbox.${me.userId}`, JSON.stringify([null, 7, { key: "k" }, { key: "good", podId, body: "hi", humor: false, createdAt: 1 }]));
  const s = newStore();
  assert.deepEqual([...s.outbox.keys()], ["good"]);
  new Actions({} as Api, s).discard("good");
  assert.equal(storage.get(`pods.outbox.${me.userId}`), undefined);
});
