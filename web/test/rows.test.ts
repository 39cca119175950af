// Unit tests of the chat's rows: a heading above each local day's first
// message, and ours being sent under today's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MessageSchema } from "../src/gen/pods/v1/types_pb";
import type { Outgoing } from "../src/store";
import { chatRows, type ChatRow } from "../src/views/message";

const now = new Date(2026, 10, 30, 9, 30); // local time
const at = (daysBack: number, hour: number, year = 2026) => new Date(year, 10, 30 - daysBack, hour);
const message = (id: string, d: Date) => create(MessageSchema, { id, body: id, createdAt: timestampFromDate(d) });
const outgoing: Outgoing = { key: "k1", podId: "p", body: "on its way", humor: false, status: "pending", createdAt: now.getTime() };

/** shape is the rows as "day label" or the message's id. */
const shape = (rows: ChatRow[]) => rows.map((r) => (r.kind === "day" ? `[${r.label}]` : r.kind === "unread" ? "--new--" : r.kind === "message" ? r.m.id : `out:${r.o.key}`));

test("a heading above the first message of each day", () => {
  const rows = chatRows([message("a", at(400, 8)), message("b", at(3, 8)), message("c", at(3, 23)), message("d", at(1, 0)), message("e", at(0, 0)), message("f", at(0, 9))], [], null, now);
  const labels = rows.filter((r) => r.kind === "day").map((r) => r.label);
  assert.equal(labels.length, 4);
  assert.match(labels[0], /2025/, "a day of another year shows its year");
  assert.doesNotMatch(labels[1], /2026|Today|Yesterday/, "a day of this year shows its date without the year");
  assert.deepEqual(shape(rows).slice(2), [`[${labels[1]}]`, "b", "c", "[Yesterday]", "d", "[Today]", "e", "f"]);
});

test("ours being sent come last, under today's heading", () => {
  assert.deepEqual(shape(chatRows([message("a", at(1, 20))], [outgoing], null, now)), ["[Yesterday]", "a", "[Today]", "out:k1"]);
  assert.deepEqual(shape(chatRows([message("a", at(0, 8))], [outgoing], null, now)), ["[Today]", "a", "out:k1"]);
  assert.deepEqual(shape(chatRows([], [], null, now)), []);
});

test("a day's heading keeps its key when its label changes at midnight", () => {
  const rows = chatRows([message("a", at(0, 8))], [], null, now);
  const tomorrow = chatRows([message("a", at(0, 8))], [], null, new Date(2026, 11, 1, 0, 5));
  assert.equal(rows[0].kind === "day" && rows[0].label, "Today");
  assert.equal(tomorrow[0].kind === "day" && tomorrow[0].label, "Yesterday");
  assert.equal(rows[0].kind === "day" && rows[0].key, tomorrow[0].kind === "day" && tomorrow[0].key);
});

test("a day met again gets a heading with a key of its own", () => {
  // Messages are in seq order; their times may disagree around midnight.
  const rows = chatRows([message("a", at(1, 23)), message("b", at(0, 0)), message("c", at(1, 23)), message("d", at(0, 0))], [], null, now);
  const keys = rows.filter((r) => r.kind === "day").map((r) => r.kind === "day" && r.key);
  assert.equal(keys.length, 4);
  assert.equal(new Set(keys).size, 4);
});

test("a line above the first unread message", () => {
  const rows = chatRows([message("a", at(1, 8)), message("b", at(0, 8)), message("c", at(0, 9))], [], "b", now);
  assert.deepEqual(shape(rows), ["[Yesterday]", "a", "[Today]", "--new--", "b", "c"]);
  assert.deepEqual(shape(chatRows([message("a", at(0, 8))], [], "gone", now)), ["[Today]", "a"]);
});
