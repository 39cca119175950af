// Actions are what the user does: each calls the API and folds the answer
// into the store. Errors that the user must see are returned as text.

import { Code } from "@connectrpc/connect";
import { callTimeoutMs, errorCode, errorText, type Api } from "./api";
import type { Message } from "./gen/pods/v1/types_pb";
import type { Outgoing, PodState, Store } from "./store";

/** A page of history. */
const pageSize = 50;

/** The errors that a resend of the same message would get again. */
const refusals = new Set([Code.InvalidArgument, Code.AlreadyExists, Code.PermissionDenied, Code.FailedPrecondition, Code.Unauthenticated]);

export class Actions {
  /** Pods with a MarkRead in flight, and the seq each was last marked at. */
  private readonly marking = new Set<string>();
  private readonly marked = new Map<string, bigint>();

  constructor(
    private readonly api: Api,
    private readonly store: Store,
  ) {}

  // --- pods ---

  /** createPod creates a pod and returns it, or an error text. */
  async createPod(name: string, habit: string, capacity: number): Promise<PodState | string> {
    try {
      const res = await this.api.pods.createPod(
        { name, habit, capacity, idempotencyKey: crypto.randomUUID() },
        { timeoutMs: callTimeoutMs },
      );
      const p = this.store.addPod(res.pod!);
      this.store.changed();
      return p;
    } catch (err) {
      return errorText(err);
    }
  }

  async joinPod(inviteCode: string): Promise<PodState | string> {
    try {
      const res = await this.api.pods.joinPod({ inviteCode }, { timeoutMs: callTimeoutMs });
      const p = this.store.addPod(res.pod!);
      this.store.changed();
      return p;
    } catch (err) {
      return errorCode(err) === Code.NotFound ? "No pod has this invite code." : errorText(err);
    }
  }

  async leavePod(podId: string): Promise<string | null> {
    try {
      await this.api.pods.leavePod({ podId }, { timeoutMs: callTimeoutMs });
      this.store.removePod(podId);
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  /** deletePod deletes a pod we own, for everyone in it. */
  async deletePod(podId: string): Promise<string | null> {
    try {
      await this.api.pods.deletePod({ podId }, { timeoutMs: callTimeoutMs });
      this.store.removePod(podId);
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  /** setCoach switches a pod's coach on or off (the owner may). */
  async setCoach(p: PodState, enabled: boolean): Promise<string | null> {
    try {
      const res = await this.api.pods.setCoach({ podId: p.pod.id, enabled }, { timeoutMs: callTimeoutMs });
      p.pod.coachEnabled = res.pod?.coachEnabled ?? enabled;
      this.store.changed();
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  // --- history and reading ---

  /** loadHistory loads the newest page, or the page before the oldest loaded message. */
  async loadHistory(p: PodState, older: boolean): Promise<void> {
    if (p.history === "loading") return;
    let beforeSeq = 0n;
    if (older) {
      for (const m of p.messages.values()) if (beforeSeq === 0n || m.seq < beforeSeq) beforeSeq = m.seq;
    }
    p.history = "loading";
    this.store.changed();
    try {
      const res = await this.api.chat.listMessages({ podId: p.pod.id, beforeSeq, limit: pageSize }, { timeoutMs: callTimeoutMs });
      p.hasMore = res.hasMore;
      p.history = "loaded";
      this.store.mergeHistory(p, res.messages);
    } catch {
      p.history = "error";
      this.store.changed();
    }
  }

  /**
   * markRead tells the server we have seen the open pod up to its cursor,
   * if the page is visible and there is something new.
   */
  async markRead(p: PodState): Promise<void> {
    const seq = p.cursor;
    const id = p.pod.id;
    if (seq === null || document.visibilityState !== "visible" || this.marking.has(id)) return;
    // Once per seq: a count the server keeps above 0 must not loop.
    if (seq <= p.readSeq && (p.unread === 0 || this.marked.get(id) === seq)) return;
    this.marking.add(id);
    this.marked.set(id, seq);
    try {
      const res = await this.api.chat.markRead({ podId: id, seq }, { timeoutMs: callTimeoutMs });
      if (seq > p.readSeq) p.readSeq = seq;
      this.store.setUnread(p, res.unreadCount);
      this.store.changed();
    } catch {
      // Tried again on the next change.
    } finally {
      this.marking.delete(id);
    }
  }

  // --- messages ---

  /** send shows the message at once as pending and sends it with a new idempotency key. */
  send(podId: string, body: string, humor: boolean): void {
    const key = crypto.randomUUID();
    const o: Outgoing = { key, podId, body, humor, status: "pending", createdAt: Date.now() };
    this.store.outbox.set(key, o);
    this.store.keepOutgoing(o);
    void this.deliver(key);
  }

  private resending = false;

  /**
   * resendFailed resends, with their keys, our messages that failed for
   * want of a connection (called at each connect), one at a time and
   * oldest first, so that they arrive in the order they were written.
   */
  async resendFailed(): Promise<void> {
    if (this.resending) return;
    this.resending = true;
    try {
      const due = [...this.store.outbox.values()].filter((o) => o.status === "failed" && o.retryable).sort((a, b) => a.createdAt - b.createdAt);
      for (const o of due) {
        if (this.store.outbox.get(o.key)?.status !== "failed") continue; // sent meanwhile
        await this.deliver(o.key);
        if (this.store.outbox.get(o.key)?.status === "failed") break; // the connection went again
      }
    } finally {
      this.resending = false;
    }
  }

  /** discard gives up on a message that was not sent. */
  discard(key: string): void {
    this.store.outbox.delete(key);
    this.store.forgetOutgoing([key]);
    this.store.changed();
  }

  /** retry resends a failed message with the same key: it can't be stored twice. */
  retry(key: string): void {
    void this.deliver(key);
  }

  /** The last send of each pod: the next one waits for it. */
  private readonly sending = new Map<string, Promise<void>>();

  /**
   * deliver sends a message of the outbox after the pod's sends before it
   * have their answers, so that the pod gets our messages in the order we
   * wrote them (sent at once, a slow first request let later ones pass).
   */
  private deliver(key: string): Promise<void> {
    const o = this.store.outbox.get(key);
    if (!o) return Promise.resolve();
    o.status = "pending";
    o.error = undefined;
    this.store.changed();
    const next = (this.sending.get(o.podId) ?? Promise.resolve()).then(() => this.post(key));
    this.sending.set(o.podId, next);
    void next.then(() => {
      if (this.sending.get(o.podId) === next) this.sending.delete(o.podId);
    });
    return next;
  }

  /** post sends a message of the outbox with its key and files the answer. */
  private async post(key: string): Promise<void> {
    const o = this.store.outbox.get(key);
    if (!o) return; // discarded, or the stream brought it, meanwhile
    try {
      const res = await this.api.chat.sendMessage(
        { podId: o.podId, idempotencyKey: key, body: o.body, humor: o.humor },
        { timeoutMs: callTimeoutMs },
      );
      this.store.upsertMessage(res.message!);
    } catch (err) {
      const still = this.store.outbox.get(key);
      if (!still) return; // the stream delivered it meanwhile
      if (errorCode(err) === Code.NotFound) {
        // The pod is gone (or we are out of it), or the message was stored
        // and deleted since: a retry can never succeed.
        this.store.outbox.delete(key);
        this.store.forgetOutgoing([key]);
        this.store.changed();
        return;
      }
      still.status = "failed";
      still.error = errorText(err);
      still.retryable = !refusals.has(errorCode(err));
      this.store.changed();
    }
  }

  async edit(m: Message, body: string): Promise<string | null> {
    try {
      const res = await this.api.chat.editMessage({ messageId: m.id, body }, { timeoutMs: callTimeoutMs });
      this.store.upsertMessage(res.message!);
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  async remove(m: Message): Promise<string | null> {
    try {
      await this.api.chat.deleteMessage({ messageId: m.id }, { timeoutMs: callTimeoutMs });
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  /** toggleReaction adds our emoji or takes it back; the stream shows the result. */
  async toggleReaction(m: Message, emoji: string): Promise<string | null> {
    const mine = m.reactions.some((r) => r.emoji === emoji && r.userIds.includes(this.store.me.userId));
    try {
      const req = { messageId: m.id, emoji };
      if (mine) await this.api.chat.removeReaction(req, { timeoutMs: callTimeoutMs });
      else await this.api.chat.addReaction(req, { timeoutMs: callTimeoutMs });
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  /** setTyping tells the pod; it is best effort. */
  setTyping(podId: string, typing: boolean): void {
    this.api.chat.setTyping({ podId, typing }, { timeoutMs: callTimeoutMs }).catch(() => {});
  }

  // --- progress ---

  /** loadProgress loads streaks; a server without ProgressService leaves them hidden. */
  async loadProgress(p: PodState): Promise<void> {
    if (p.progress !== "unknown") return;
    p.progress = "loading";
    try {
      const res = await this.api.progress.getProgress({ podId: p.pod.id }, { timeoutMs: callTimeoutMs });
      for (const m of res.members) {
        if (m.streak) p.streaks.set(m.userId, m.streak);
        const lastDone = m.recent.filter((c) => c.done).at(-1); // oldest first
        if (lastDone) p.doneOn.set(m.userId, lastDone.date);
        if (m.userId === this.store.me.userId) p.reminderTime = m.reminderTime || null;
      }
      p.progress = "loaded";
    } catch (err) {
      // Unimplemented (not there yet): show nothing. Anything else: try
      // again when the pod is opened next.
      p.progress = errorCode(err) === Code.Unimplemented ? "unavailable" : "unknown";
    }
    this.store.changed();
  }

  /** setReminder sets when the coach reminds us to check in, HH:MM in our zone. */
  async setReminder(p: PodState, time: string): Promise<string | null> {
    try {
      const res = await this.api.progress.setReminder({ podId: p.pod.id, time }, { timeoutMs: callTimeoutMs });
      p.reminderTime = res.time;
      this.store.changed();
      return null;
    } catch (err) {
      return errorText(err);
    }
  }

  /** checkIn records today as done, or, with done false, takes that back. */
  async checkIn(p: PodState, done = true): Promise<string | null> {
    try {
      const res = await this.api.progress.checkIn({ podId: p.pod.id, done }, { timeoutMs: callTimeoutMs });
      const me = this.store.me.userId;
      if (res.streak) p.streaks.set(me, res.streak);
      const date = res.checkIn?.date ?? localDate(this.store.me.timezone);
      if (done) p.doneOn.set(me, date);
      else if (p.doneOn.get(me) === date) p.doneOn.delete(me);
      this.store.changed();
      return null;
    } catch (err) {
      if (errorCode(err) === Code.Unimplemented) {
        p.progress = "unavailable";
        this.store.changed();
        return null;
      }
      return errorText(err);
    }
  }
}

/**
 * localDate is today's date, YYYY-MM-DD, in timeZone (the user's, as the
 * server counts check-ins), or in the browser's if it is not known.
 */
export function localDate(timeZone?: string): string {
  let format = dateFormats.get(timeZone ?? "");
  if (!format) {
    const options = { year: "numeric", month: "2-digit", day: "2-digit" } as const;
    try {
      format = new Intl.DateTimeFormat("en-CA", { ...options, timeZone });
    } catch {
      format = new Intl.DateTimeFormat("en-CA", options); // a zone this browser does not know
    }
    dateFormats.set(timeZone ?? "", format);
  }
  return format.format(new Date());
}

/** localDate's formatters by zone, made once: a render asks for each member's date. */
const dateFormats = new Map<string, Intl.DateTimeFormat>();
