// The chat of one pod: members and presence, invite code, check-in and
// reminder time, the owner's coach switch and pod deletion, history with
// scroll-back, the messages, typing and the composer.

import { localDate, type Actions } from "../actions";
import { h, onTouchScreen, patchList, replace, submitsOnEnter } from "../dom";
import type { Message, User } from "../gen/pods/v1/types_pb";
import type { Outgoing, PodState, Store } from "../store";
import { chatRows, dayRow, messageRow, messageSig, outgoingRow, outgoingSig, unreadRow, type ChatRow, type RowHandlers, type RowUi } from "./message";

/** Repeat SetTyping(true) this often while the user keeps typing. */
const typingRepeatMs = 3_000;
/** Send SetTyping(false) after this long without a keystroke. */
const typingIdleMs = 3_000;
/** Never call SetTyping more often than this (the server allows 2/s). */
const typingMinGapMs = 600;
/** A reminder time is saved once the field has rested this long. */
const reminderRestMs = 800;
/** A second click confirms only after this long (not a double click), and within confirmForMs. */
const confirmAfterMs = 400;
const confirmForMs = 5_000;

/**
 * rowKey keys a row for patchList. An acknowledged message of ours keeps
 * the key of its optimistic copy, so the row is replaced in place rather
 * than moved.
 */
function rowKey(r: ChatRow, me: string): string {
  switch (r.kind) {
    case "day":
      return r.key;
    case "unread":
      return "unread";
    case "message":
      return r.m.authorId === me ? `k:${r.m.idempotencyKey}` : `m:${r.m.id}`;
    case "outgoing":
      return `k:${r.o.key}`;
  }
}

/** checkedInToday says whether u's latest done check-in is of their local today. */
function checkedInToday(p: PodState, u: User): boolean {
  return p.doneOn.get(u.id) === localDate(u.timezone);
}

/**
 * TwoStep is a button that acts on its second click: one within
 * confirmForMs of the first, and not the second half of a double click.
 */
class TwoStep {
  private armedAt = 0;
  private timer: number | undefined;
  constructor(private readonly changed: () => void) {}

  get armed(): boolean {
    return this.armedAt > 0;
  }

  /**
   * click tells whether this click confirms (which disarms the button, so
   * that a third click does not confirm again); if not, it arms it.
   */
  click(): boolean {
    const since = Date.now() - this.armedAt;
    if (this.armed && since < confirmAfterMs) return false;
    if (this.armed && since < confirmForMs) {
      this.disarm();
      return true;
    }
    this.armedAt = Date.now();
    this.changed();
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.disarm(), confirmForMs);
    return false;
  }

  /** disarm puts the button back to its first step. */
  disarm(): void {
    clearTimeout(this.timer);
    if (!this.armed) return;
    this.armedAt = 0;
    this.changed();
  }
}

/** ChatView shows one pod; the app makes a new one when another pod opens. */
export class ChatView implements RowHandlers {
  readonly el: HTMLElement;
  private readonly title = h("h2", { class: "pod-title" });
  private readonly habit = h("p", { class: "habit" });
  private readonly members = h("ul", { class: "members", "aria-label": "Members" });
  private readonly invite = h("code", { class: "invite-code" });
  private readonly progress = h("div", { class: "progress" });
  private readonly leave = h("button", { type: "button", class: "leave" });
  // The owner's: the coach on or off, and deleting the pod for everyone.
  private readonly coach = h("button", { type: "button", class: "coach-switch" });
  private readonly remove = h("button", { type: "button", class: "delete-pod" });
  private readonly scroller = h("div", { class: "messages", tabindex: "0", "aria-label": "Messages" });
  private readonly older = h("button", { type: "button", class: "older", text: "Load older messages" });
  private readonly historyNote = h("p", { class: "history-note" });
  // Not a live region: a row redrawn for a reaction would be read out as
  // new; the announcer says each new message of others once instead.
  private readonly list = h("ol", { class: "message-list" });
  private readonly announcer = h("p", { class: "visually-hidden", "aria-live": "polite" });
  /** Shown when messages came in below while the user reads further up. */
  private readonly newBelow = h("button", { type: "button", class: "new-below", hidden: true, text: "↓ New messages" });
  /** The newest message's seq at the last update. */
  private newestSeq = 0n;
  private readonly typingLine = h("p", { class: "typing", "aria-live": "polite" });
  private readonly error = h("p", { class: "chat-error", role: "alert" });
  private readonly input = h("textarea", { class: "composer-input", rows: 1, placeholder: "Write a message…", "aria-label": "Message" });
  private readonly humor = h("button", { type: "button", class: "humor", "aria-pressed": "false", title: "Mark as a joke: the coach won't react", text: "😄 Joke" });
  private readonly reminderTime = h("input", { type: "time", class: "reminder-time", "aria-label": "Reminder time", title: "When the coach reminds you to check in, in your time zone" });
  private readonly reminder = h("label", { class: "reminder", hidden: true }, "⏰ Reminder ", this.reminderTime);
  /** The timer of an edit waiting to be saved; whether a save is under way. */
  private reminderSave: number | undefined;
  private reminderSaving = false;

  private ui: RowUi = closedRows();
  private readonly leaveStep = new TwoStep(() => this.update());
  private readonly removeStep = new TwoStep(() => this.update());
  private stickToBottom = true;
  /** Messages of others after this seq were unread when the pod opened (null: none were). */
  private readonly unreadAfter: bigint | null;
  /** The unread line has been scrolled to. */
  private unreadShown = false;
  private typing = false;
  private typingSentAt = 0;
  private typingIdle: number | undefined;

  constructor(
    private readonly store: Store,
    private readonly actions: Actions,
    readonly podId: string,
  ) {
    store.openAtNewest = () => this.atBottom();
    const opened = store.pods.get(podId);
    this.unreadAfter = opened && opened.unread > 0 ? opened.readSeq : null;
    const send = h("button", { type: "submit", class: "primary send", text: "Send" });
    const composer = h("form", { class: "composer" }, this.input, this.humor, send);
    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (e) => {
      if (submitsOnEnter(e)) {
        e.preventDefault();
        this.send();
      }
    });
    this.input.value = store.drafts.get(podId) ?? "";
    this.input.addEventListener("input", () => {
      store.drafts.set(podId, this.input.value);
      this.typed();
    });
    this.humor.addEventListener("click", () => {
      this.humor.setAttribute("aria-pressed", String(this.humor.getAttribute("aria-pressed") !== "true"));
    });
    this.older.addEventListener("click", () => this.loadOlder());
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 40) this.loadOlder();
      if (!this.newBelow.hidden && this.atBottom()) {
        this.newBelow.hidden = true;
        this.store.changed(); // now they are read
      }
    });
    this.newBelow.addEventListener("click", () => {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    });
    this.leave.addEventListener("click", async () => {
      if (this.leaveStep.click()) this.showError(await this.actions.leavePod(this.podId));
    });
    this.coach.addEventListener("click", async () => {
      const p = this.pod;
      if (!p) return;
      this.coach.disabled = true;
      this.showError(await this.actions.setCoach(p, !p.pod.coachEnabled));
      this.coach.disabled = false;
    });
    this.remove.addEventListener("click", async () => {
      if (this.removeStep.click()) this.showError(await this.actions.deletePod(this.podId));
    });
    // Saved once the field rests, not at each keystroke of a time.
    this.reminderTime.addEventListener("change", () => {
      clearTimeout(this.reminderSave);
      this.reminderSave = window.setTimeout(() => this.saveReminder(), reminderRestMs);
    });
    this.reminderTime.addEventListener("blur", () => {
      if (this.reminderSave === undefined) return;
      clearTimeout(this.reminderSave);
      this.saveReminder();
    });
    const copy = h("button", { type: "button", class: "copy", text: "Copy" });
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(this.invite.textContent ?? "");
        copy.textContent = "Copied";
        setTimeout(() => (copy.textContent = "Copy"), 2000);
      } catch {
        getSelection()?.selectAllChildren(this.invite);
      }
    });

    // On a phone the pod's tools wait behind "More", so that the messages
    // keep the screen; the check-in stays in sight.
    const more = h("button", { type: "button", class: "more", "aria-expanded": "false", text: "⋯ More" });
    const head = h(
      "header",
      { class: "chat-head" },
      h("div", { class: "pod-info" }, this.title, this.habit),
      this.members,
      h("div", { class: "head-tools" }, this.progress, more, h("span", { class: "invite" }, "Invite code ", this.invite, copy), this.reminder, this.coach, this.leave, this.remove),
    );
    more.addEventListener("click", () => {
      const open = head.classList.toggle("expanded");
      more.setAttribute("aria-expanded", String(open));
      more.textContent = open ? "⋯ Less" : "⋯ More";
    });

    this.el = h(
      "section",
      { class: "chat", "aria-labelledby": `title-${podId}` },
      head,
      h("div", { class: "scroll-wrap" }, this.scroller, this.newBelow),
      this.typingLine,
      this.error,
      this.announcer,
      composer,
    );
    this.title.id = `title-${podId}`;
    this.scroller.append(this.older, this.historyNote, this.list);
  }

  private get pod(): PodState | undefined {
    return this.store.pods.get(this.podId);
  }

  /** focus puts the cursor in the composer. */
  focus(): void {
    if (onTouchScreen()) return; // it would pop a phone's keyboard up
    this.input.focus();
  }

  /** dispose stops telling others we are typing. */
  dispose(): void {
    this.stopTyping();
    this.leaveStep.disarm();
    this.removeStep.disarm();
    if (this.reminderSave !== undefined) {
      // An edit still waiting: saved now, for the pod it was made in.
      clearTimeout(this.reminderSave);
      void this.saveReminder();
    }
  }

  update(): void {
    const p = this.pod;
    if (!p) return;
    this.title.textContent = p.pod.name;
    this.habit.textContent = p.pod.habit;
    this.invite.textContent = p.pod.inviteCode;
    this.leave.textContent = this.leaveStep.armed ? "Leave for good" : "Leave";
    this.leave.classList.toggle("danger", this.leaveStep.armed);
    const owner = p.pod.ownerId === this.store.me.userId;
    this.coach.hidden = this.remove.hidden = !owner;
    this.coach.textContent = p.pod.coachEnabled ? "🤖 Coach on" : "🤖 Coach off";
    this.coach.setAttribute("aria-pressed", String(p.pod.coachEnabled));
    this.coach.title = p.pod.coachEnabled ? "The coach steps in when the pod goes quiet or a conflict starts. Click to switch it off." : "Click to let the coach step in again.";
    this.remove.textContent = this.removeStep.armed ? "Delete for everyone" : "Delete pod";
    this.remove.classList.toggle("danger", this.removeStep.armed);
    this.updateMembers(p);
    this.updateProgress(p);
    this.updateMessages(p);
    this.updateTyping(p);
  }

  private updateMembers(p: PodState): void {
    patchList(
      this.members,
      p.pod.members,
      (m) => m.user!.id,
      (m) => [m.user!.displayName, p.online.has(m.user!.id), p.streaks.get(m.user!.id)?.current ?? "", checkedInToday(p, m.user!), m.user!.coach && p.pod.coachEnabled].join("|"),
      (m) => {
        const u = m.user!;
        const online = p.online.has(u.id);
        const streak = p.streaks.get(u.id)?.current;
        return h(
          "li",
          { class: "member", "data-user-id": u.id, "data-online": u.coach ? undefined : String(online) },
          u.coach ? h("span", { "aria-hidden": "true", text: "🤖" }) : h("span", { class: online ? "dot online" : "dot", role: "img", "aria-label": online ? "online" : "offline" }),
          h("span", { class: "member-name", text: u.id === this.store.me.userId ? `${u.displayName} (you)` : u.coach && !p.pod.coachEnabled ? `${u.displayName} (off)` : u.displayName }),
          streak ? h("span", { class: "streak", role: "img", title: `${streak}-day streak`, "aria-label": `${streak}-day streak`, text: `🔥${streak}` }) : null,
          checkedInToday(p, u) && h("span", { class: "checked", role: "img", title: "Checked in today", "aria-label": "checked in today", text: "✓" }),
        );
      },
    );
  }

  private updateProgress(p: PodState): void {
    if (p.progress !== "loaded") {
      this.progress.replaceChildren();
      this.reminder.hidden = true;
      return;
    }
    const done = p.doneOn.get(this.store.me.userId) === localDate(this.store.me.timezone);
    const streak = p.streaks.get(this.store.me.userId);
    const label = done ? "✓ Checked in today" : "Check in";
    this.reminder.hidden = p.reminderTime === null;
    // Not while the user edits it, or an edit waits to be saved or is being saved.
    if (document.activeElement !== this.reminderTime && this.reminderSave === undefined && !this.reminderSaving) this.reminderTime.value = p.reminderTime ?? "";
    const sig = `${label}|${streak?.current}|${streak?.longest}`;
    if (this.progress.dataset.sig === sig) return;
    this.progress.dataset.sig = sig;
    const button = h("button", { type: "button", class: done ? "checkin done" : "checkin primary", disabled: done, text: label });
    // A check-in made by mistake can be taken back, today.
    const undo = done && h("button", { type: "button", class: "checkin-undo", text: "Undo" });
    const record = (b: HTMLButtonElement, checkedIn: boolean) =>
      b.addEventListener("click", async () => {
        b.disabled = true;
        const problem = await this.actions.checkIn(p, checkedIn);
        this.showError(problem);
        if (problem) b.disabled = false; // to try again
      });
    record(button, true);
    if (undo) record(undo, false);
    replace(
      this.progress,
      button,
      undo,
      streak && streak.current > 0 && h("span", { class: "my-streak", title: `Longest: ${streak.longest} days`, text: `🔥 ${streak.current}-day streak` }),
    );
  }

  /** readingNewest tells whether the user sees the newest messages: only then are they marked read. */
  readingNewest(): boolean {
    return this.newBelow.hidden;
  }

  private atBottom(): boolean {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  private updateMessages(p: PodState): void {
    const s = this.scroller;
    const atBottom = this.atBottom();
    const firstBefore = this.list.querySelector(":scope > .msg");
    const heightBefore = s.scrollHeight;
    const topBefore = s.scrollTop;

    this.older.hidden = !(p.history === "loaded" && p.hasMore);
    this.historyNote.textContent =
      p.history === "loading" ? "Loading…" : p.history === "error" ? "Couldn't load the history; it loads again when the connection is back." : p.history === "loaded" && !p.hasMore ? "This is the start of the pod." : "";

    const messages = this.store.sortedMessages(p);
    const me = this.store.me.userId;
    const after = this.unreadAfter;
    const firstUnread = after === null ? null : (messages.find((m) => m.seq > after && m.authorId !== me)?.id ?? null);
    patchList(
      this.list,
      chatRows(messages, this.store.outgoing(p.pod.id), firstUnread),
      (r) => rowKey(r, me),
      (r) => (r.kind === "day" ? r.label : r.kind === "unread" ? "" : r.kind === "message" ? "m" + messageSig(this.store, p, r.m, this.ui) : "o" + outgoingSig(r.o)),
      (r) => (r.kind === "day" ? dayRow(r.label) : r.kind === "unread" ? unreadRow() : r.kind === "message" ? messageRow(this.store, p, r.m, this.ui, this) : outgoingRow(this.store, r.o, this)),
    );

    const line = this.list.querySelector(":scope > .unread-line");
    if (line && !this.unreadShown) {
      // Opened with unread messages: start where they start.
      this.unreadShown = true;
      this.stickToBottom = false;
      s.scrollTop = (line as HTMLElement).offsetTop - s.offsetTop - 8;
    } else if (firstBefore && this.list.querySelector(":scope > .msg") !== firstBefore && !atBottom) {
      // Older messages came in above: keep what the user was reading in place.
      s.scrollTop = topBefore + (s.scrollHeight - heightBefore);
    } else if (atBottom || this.stickToBottom) {
      s.scrollTop = s.scrollHeight;
      this.stickToBottom = false;
    }
    const newest = messages.at(-1)?.seq ?? 0n;
    if (newest > this.newestSeq && this.newestSeq > 0n) {
      if (!this.atBottom()) this.newBelow.hidden = false;
      const said = messages.filter((m) => m.seq > this.newestSeq && m.authorId !== me);
      if (said.length > 0) this.announcer.textContent = said.map((m) => `${this.store.displayName(p, m.authorId)}: ${m.body}`).join("\n");
    }
    this.newestSeq = newest;
  }

  private updateTyping(p: PodState): void {
    const names = [...p.typing.keys()].map((id) => this.store.displayName(p, id));
    this.typingLine.textContent =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
  }

  private loadOlder(): void {
    const p = this.pod;
    if (p && p.history === "loaded" && p.hasMore) void this.actions.loadHistory(p, true);
  }

  /**
   * saveReminder sends the time the field shows, if it is one and new, one
   * save at a time (so that replies cannot arrive out of order).
   */
  private async saveReminder(): Promise<void> {
    this.reminderSave = undefined;
    const p = this.pod;
    if (!p || this.reminderSaving) return;
    const time = this.reminderTime.value;
    if (!time || time === p.reminderTime) return;
    this.reminderSaving = true;
    const err = await this.actions.setReminder(p, time);
    this.reminderSaving = false;
    this.showError(err);
    if (this.reminderTime.value !== time && this.reminderSave === undefined) {
      void this.saveReminder(); // changed again meanwhile
    } else if (err && document.activeElement !== this.reminderTime) {
      this.reminderTime.value = p.reminderTime ?? "";
    }
  }

  private send(): void {
    const body = this.input.value.trim();
    if (!body) return;
    const problem = lengthProblem(body);
    this.showError(problem);
    if (problem) return;
    this.actions.send(this.podId, body, this.humor.getAttribute("aria-pressed") === "true");
    this.input.value = "";
    this.store.drafts.delete(this.podId);
    this.humor.setAttribute("aria-pressed", "false");
    this.stopTyping(false); // the message itself ends our typing for everyone
    this.stickToBottom = true;
    this.store.changed();
  }

  /** typed tells the pod we are typing, at most every few seconds. */
  private typed(): void {
    if (!this.input.value.trim()) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    const due = !this.typing || now - this.typingSentAt >= typingRepeatMs;
    if (due && now - this.typingSentAt >= typingMinGapMs) {
      this.typing = true;
      this.typingSentAt = now;
      this.actions.setTyping(this.podId, true);
    }
    clearTimeout(this.typingIdle);
    this.typingIdle = window.setTimeout(() => this.stopTyping(), typingIdleMs);
  }

  /** stopTyping ends our typing signal, telling the pod unless told not to. */
  private stopTyping(tell = true): void {
    clearTimeout(this.typingIdle);
    if (!this.typing) return;
    this.typing = false;
    if (!tell) return;
    this.typingSentAt = Date.now();
    this.actions.setTyping(this.podId, false);
  }

  /** connectionBack clears an error of the time the server was out of reach. */
  connectionBack(): void {
    this.showError(null);
  }

  private showError(text: string | null): void {
    this.error.textContent = text ?? "";
  }

  // --- RowHandlers ---

  async react(m: Message, emoji: string): Promise<void> {
    this.ui.pickerId = null;
    this.store.changed();
    this.showError(await this.actions.toggleReaction(m, emoji));
  }

  togglePicker(m: Message): void {
    this.ui.pickerId = this.ui.pickerId === m.id ? null : m.id;
    this.store.changed();
  }

  startEdit(m: Message): void {
    this.ui = { ...closedRows(), editingId: m.id, editDraft: m.body, editCaret: null };
    this.store.changed();
  }

  /** saveEdit keeps the editor, with its text, until the edit is stored. */
  async saveEdit(m: Message, body: string): Promise<void> {
    const problem = lengthProblem(body);
    if (problem || body === m.body) {
      this.showError(problem);
      if (!problem) this.cancel();
      return;
    }
    this.ui.editSaving = true;
    this.store.changed();
    const error = await this.actions.edit(m, body);
    if (this.ui.editingId !== m.id) return; // closed meanwhile
    this.ui.editSaving = false;
    this.showError(error);
    if (!error) {
      this.ui = closedRows();
      this.focus();
    }
    this.store.changed();
  }

  cancel(): void {
    this.ui = closedRows();
    this.showError(null);
    this.store.changed();
  }

  armDelete(m: Message): void {
    this.ui = { ...closedRows(), confirmDeleteId: m.id };
    this.store.changed();
  }

  async confirmDelete(m: Message): Promise<void> {
    this.ui.confirmDeleteId = null;
    this.showError(await this.actions.remove(m));
  }

  retry(o: Outgoing): void {
    this.actions.retry(o.key);
  }

  discard(o: Outgoing): void {
    this.actions.discard(o.key);
  }
}

/** closedRows is the row state with no editor, picker or delete open. */
function closedRows(): RowUi {
  return { editingId: null, editDraft: "", editCaret: null, editSaving: false, confirmDeleteId: null, pickerId: null };
}

/** The server's limit on a message, in characters (code points). */
const maxBodyChars = 4000;

/** lengthProblem says why a message is too long to send, or null. */
function lengthProblem(body: string): string | null {
  const n = [...body].length;
  return n > maxBodyChars ? `A message can have at most ${maxBodyChars.toLocaleString()} characters; this one has ${n.toLocaleString()}.` : null;
}
