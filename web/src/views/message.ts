// One row of the chat: an acknowledged message (with reactions, edit and
// delete) or one of ours still being sent.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { h, submitsOnEnter } from "../dom";
import { CoachTrigger, type Message } from "../gen/pods/v1/types_pb";
import type { Outgoing, PodState, Store } from "../store";

/** The emoji offered for quick reactions. */
const quickEmoji = ["👍", "❤️", "😂", "🔥", "🎉"];

/** What the chat view remembers about rows between renders. */
export interface RowUi {
  editingId: string | null;
  /** The text of the edit under way, kept while its row is redrawn. */
  editDraft: string;
  /** Where the edit's cursor (or selection) was, kept across redraws; null: at the end. */
  editCaret: [number, number] | null;
  /** Whether the edit is being saved. */
  editSaving: boolean;
  confirmDeleteId: string | null;
  pickerId: string | null;
}

/** The callbacks a row's buttons use. */
export interface RowHandlers {
  react(m: Message, emoji: string): void;
  togglePicker(m: Message): void;
  startEdit(m: Message): void;
  saveEdit(m: Message, body: string): void;
  cancel(): void;
  armDelete(m: Message): void;
  confirmDelete(m: Message): void;
  retry(o: Outgoing): void;
  discard(o: Outgoing): void;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const yearDayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

/** A row of the chat: a day's heading, where unread messages start, a message, or one of ours being sent. */
export type ChatRow =
  | { kind: "day"; key: string; label: string }
  | { kind: "unread" }
  | { kind: "message"; m: Message }
  | { kind: "outgoing"; o: Outgoing };

/**
 * chatRows puts a day's heading above the first message of each local
 * day, a line above the message firstUnread (an id) if there is one, and
 * ours being sent last, under today's.
 */
export function chatRows(messages: readonly Message[], outgoing: readonly Outgoing[], firstUnread: string | null = null, now = new Date()): ChatRow[] {
  const rows: ChatRow[] = [];
  let last = "";
  const seen = new Map<string, number>(); // a day met again (clocks disagree around midnight) gets a key of its own
  const day = (d: Date) => {
    const key = d.toDateString();
    if (key !== last) {
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      rows.push({ kind: "day", key: n === 1 ? `d:${key}` : `d:${key}#${n}`, label: dayLabel(d, now) });
    }
    last = key;
  };
  for (const m of messages) {
    if (m.createdAt) day(timestampDate(m.createdAt));
    if (m.id === firstUnread) rows.push({ kind: "unread" });
    rows.push({ kind: "message", m });
  }
  if (outgoing.length > 0) day(now);
  for (const o of outgoing) rows.push({ kind: "outgoing", o });
  return rows;
}

/** dayLabel names d's local day: Today, Yesterday, or its date (with the year unless it is now's). */
function dayLabel(d: Date, now: Date): string {
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  if (d >= today) return "Today";
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (d >= yesterday) return "Yesterday";
  return (d.getFullYear() === now.getFullYear() ? dayFormat : yearDayFormat).format(d);
}

/** A web address in a message: http(s), up to white space, without the punctuation that ends a sentence. */
const webAddress = /\bhttps?:\/\/[^\s<>"]*[^\s<>".,;:!?)\]'’”]/g;

/**
 * linked is text with its web addresses as links that open in a new tab,
 * built as DOM nodes (never parsed as HTML).
 */
export function linked(text: string): (string | HTMLElement)[] {
  const parts: (string | HTMLElement)[] = [];
  let at = 0;
  for (const match of text.matchAll(webAddress)) {
    const i = match.index ?? 0;
    if (i > at) parts.push(text.slice(at, i));
    parts.push(h("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow", text: match[0] }));
    at = i + match[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/** unreadRow marks where the messages unread when the pod was opened start. */
export function unreadRow(): HTMLElement {
  return h("li", { class: "unread-line" }, h("span", { text: "New messages" }));
}

/** dayRow is the heading above a day's first message. */
export function dayRow(label: string): HTMLElement {
  return h("li", { class: "day" }, h("h3", { text: label }));
}

const triggerLabels: Partial<Record<CoachTrigger, string>> = {
  [CoachTrigger.QUIET]: "nudge",
  [CoachTrigger.CONFLICT]: "cooling down",
  [CoachTrigger.REMINDER]: "reminder",
};

/** messageSig changes whenever the row of m would render differently. */
export function messageSig(store: Store, p: PodState, m: Message, ui: RowUi): string {
  return JSON.stringify([
    m.body,
    m.humor,
    m.editedAt?.seconds.toString(),
    m.reactions.map((r) => [r.emoji, r.userIds]),
    store.displayName(p, m.authorId),
    p.coachTriggers.get(m.id),
    ui.editingId === m.id && ui.editSaving,
    ui.editingId === m.id,
    ui.confirmDeleteId === m.id,
    ui.pickerId === m.id,
  ]);
}

export function messageRow(store: Store, p: PodState, m: Message, ui: RowUi, on: RowHandlers): HTMLElement {
  const me = store.me.userId;
  const mine = m.authorId === me;
  const coach = store.isCoach(p, m.authorId);
  const trigger = p.coachTriggers.get(m.id);
  const created = m.createdAt ? timestampDate(m.createdAt) : null;

  const meta = h(
    "div",
    { class: "meta" },
    h("span", { class: "author", text: coach ? `🤖 ${store.displayName(p, m.authorId)}` : store.displayName(p, m.authorId) }),
    created && h("time", { datetime: created.toISOString(), title: created.toLocaleString(), text: timeFormat.format(created) }),
    coach && h("span", { class: "tag coach-tag", text: trigger && triggerLabels[trigger] ? `coach · ${triggerLabels[trigger]}` : "coach" }),
    m.humor && h("span", { class: "tag humor-tag", title: "Marked as a joke", text: "😄 joke" }),
    m.editedAt && h("span", { class: "tag", text: "edited" }),
    mine && h("span", { class: "state", text: "✓ Sent" }),
  );

  let body: HTMLElement;
  if (ui.editingId === m.id) {
    // Redrawn when the message changes (a reaction, say): the draft stays.
    const input = h("textarea", { class: "edit-input", rows: 3, "aria-label": "Edit message" });
    input.value = ui.editDraft;
    const keepCaret = () => {
      ui.editCaret = [input.selectionStart, input.selectionEnd];
    };
    input.addEventListener("input", () => {
      ui.editDraft = input.value;
      keepCaret();
    });
    for (const e of ["select", "keyup", "mouseup"]) input.addEventListener(e, keepCaret);
    // Focused when the edit starts, and again after a redraw only if it was.
    const focused = ui.editCaret === null || document.activeElement?.classList.contains("edit-input");
    const save = () => {
      const text = input.value.trim();
      if (text && !ui.editSaving) on.saveEdit(m, text);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") on.cancel();
      if (submitsOnEnter(e)) {
        e.preventDefault();
        save();
      }
    });
    body = h(
      "form",
      { class: "edit-form" },
      input,
      h("button", { type: "submit", class: "primary", text: ui.editSaving ? "Saving…" : "Save", disabled: ui.editSaving }),
      h("button", { type: "button", text: "Cancel", disabled: ui.editSaving, onclick: () => on.cancel() }),
    );
    body.addEventListener("submit", (e) => {
      e.preventDefault();
      save();
    });
    queueMicrotask(() => {
      if (!focused) return;
      input.focus();
      const [start, end] = ui.editCaret ?? [input.value.length, input.value.length];
      input.setSelectionRange(start, end);
      ui.editCaret = [start, end];
    });
  } else {
    body = h("p", { class: "body" }, linked(m.body));
  }

  const reactedBy = m.reactions.map((r) => ({ emoji: r.emoji, names: r.userIds.map((u) => store.displayName(p, u)).join(", ") }));
  const chips = m.reactions.map((r, i) => {
    const reacted = r.userIds.includes(me);
    const label = `${r.emoji} ${r.userIds.length}: ${reactedBy[i].names}`;
    return h("button", { type: "button", class: "chip", "aria-pressed": String(reacted), "aria-label": label, title: reactedBy[i].names, onclick: () => on.react(m, r.emoji) }, `${r.emoji} ${r.userIds.length}`);
  });
  // With the picker open, who reacted shows in words too: a touch screen
  // has no tooltip.
  const picking = ui.pickerId === m.id;
  const picker =
    picking &&
    h(
      "span",
      { class: "picker", role: "group", "aria-label": "React with" },
      quickEmoji.map((e) => h("button", { type: "button", class: "emoji", "aria-label": `React ${e}`, text: e, onclick: () => on.react(m, e) })),
    );
  const whoReacted = picking && reactedBy.length > 0 && h("p", { class: "reacted-by", text: reactedBy.map((r) => `${r.emoji} ${r.names}`).join(" · ") });

  const tools = h(
    "div",
    { class: "tools" },
    h("button", { type: "button", class: "react", "aria-label": "Add reaction", "aria-expanded": String(ui.pickerId === m.id), text: "☺+", onclick: () => on.togglePicker(m) }),
    mine && ui.editingId !== m.id && h("button", { type: "button", class: "edit", text: "Edit", onclick: () => on.startEdit(m) }),
    mine &&
      (ui.confirmDeleteId === m.id
        ? [
            h("button", { type: "button", class: "delete danger", text: "Delete for good", onclick: () => on.confirmDelete(m) }),
            h("button", { type: "button", class: "delete keep", text: "Keep", onclick: () => on.cancel() }),
          ]
        : h("button", { type: "button", class: "delete", text: "Delete", onclick: () => on.armDelete(m) })),
  );

  return h(
    "li",
    {
      class: ["msg", mine && "mine", coach && "coach"].filter(Boolean).join(" "),
      "data-status": "sent",
      "data-message-id": m.id,
      "data-seq": m.seq.toString(),
    },
    meta,
    body,
    h("div", { class: "reactions" }, chips, picker),
    whoReacted,
    tools,
  );
}

/** outgoingSig changes whenever the row of o would render differently. */
export function outgoingSig(o: Outgoing): string {
  return [o.status, o.error ?? ""].join("|");
}

export function outgoingRow(store: Store, o: Outgoing, on: RowHandlers): HTMLElement {
  const failed = o.status === "failed";
  return h(
    "li",
    { class: "msg mine", "data-status": o.status, "data-key": o.key },
    h(
      "div",
      { class: "meta" },
      h("span", { class: "author", text: store.me.displayName }),
      o.humor && h("span", { class: "tag humor-tag", text: "😄 joke" }),
      h("span", { class: "state", text: failed ? `⚠ Not sent${o.error ? `: ${o.error}` : ""}` : "⏳ Sending…" }),
    ),
    h("p", { class: "body", text: o.body }),
    failed &&
      h(
        "div",
        { class: "tools" },
        h("button", { type: "button", class: "retry primary", text: "Retry", onclick: () => on.retry(o) }),
        h("button", { type: "button", class: "discard", text: "Discard", onclick: () => on.discard(o) }),
      ),
  );
}
