// Store holds everything the page shows: the user's pods, their messages,
// presence, typing, unread counts and the messages still being sent. It
// applies the Subscribe stream (as the connection's StreamSink) with the
// cursor rule: per pod, an event applies only if its seq is cursor+1.

import { create } from "@bufbuild/protobuf";
import type { Event, Ready } from "./gen/pods/v1/realtime_pb";
import type { Streak } from "./gen/pods/v1/progress_pb";
import { CoachTrigger, MemberRole, PodSchema, ReactionSummarySchema, type Message, type Pod, type PodSummary } from "./gen/pods/v1/types_pb";
import type { Session } from "./session";
import type { Applied, StreamSink } from "./connection";

/** How long a typing signal lasts unless repeated. */
const typingTtlMs = 6_000;

/** A message of ours that the server has not acknowledged yet. */
export interface Outgoing {
  /** The idempotency key, reused by every retry. */
  key: string;
  podId: string;
  body: string;
  humor: boolean;
  status: "pending" | "failed";
  error?: string;
  /** Whether a failed send may go through later (the network, the server): resent at each reconnect. */
  retryable?: boolean;
  createdAt: number;
}

/** What localStorage keeps of an unsent message. */
type KeptOutgoing = Pick<Outgoing, "key" | "podId" | "body" | "humor" | "createdAt">;

/** Everything the client knows about one pod. */
export interface PodState {
  pod: Pod;
  unread: number;
  /** Live messages counted in unread since the server last gave the count. */
  countedUnread: Set<string>;
  /** The seq of the last event applied; null until the first one is known. */
  cursor: bigint | null;
  /** Events up to this seq are already counted in unread (by ready). */
  countedUpTo: bigint;
  /** The seq we last told the server we have read. */
  readSeq: bigint;
  online: Set<string>;
  /** User id → the timer that expires their typing signal. */
  typing: Map<string, number>;
  /** Acknowledged messages by id. */
  messages: Map<string, Message>;
  /** Ids deleted while we watched, so that a late history page can't revive them. */
  deleted: Set<string>;
  coachTriggers: Map<string, CoachTrigger>;
  history: "none" | "loading" | "loaded" | "error";
  hasMore: boolean;
  /** Streaks by user id, when the progress service answers. */
  streaks: Map<string, Streak>;
  /** The date (YYYY-MM-DD, in their zone) of each member's latest done check-in, by user id. */
  doneOn: Map<string, string>;
  /** When the coach reminds us to check in here, HH:MM in our zone, once known. */
  reminderTime: string | null;
  progress: "unknown" | "loading" | "loaded" | "unavailable";
}

/** Store is the page's state; every change ends in one onChange call. */
export class Store implements StreamSink {
  readonly pods = new Map<string, PodState>();
  /** Our unacknowledged messages by idempotency key, persisted across reloads. */
  readonly outbox = new Map<string, Outgoing>();
  /** The pod shown in the chat view. */
  openPodId: string | null = null;
  /** Whether the open pod shows its newest messages, not older ones further up (asked of the chat view): only then is a new one read at once. */
  openAtNewest: () => boolean = () => true;
  /** What was written in each pod's composer and not sent, kept while another pod is open. */
  readonly drafts = new Map<string, string>();

  private readonly outboxKey: string;

  constructor(
    readonly me: Session,
    private readonly onChange: () => void,
    private readonly onSignedOut: () => void,
  ) {
    this.outboxKey = `pods.outbox.${me.userId}`;
    this.loadOutbox();
  }

  changed(): void {
    this.onChange();
  }

  // --- StreamSink ---

  cursors(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    for (const [id, p] of this.pods) if (p.cursor !== null) out[id] = p.cursor;
    return out;
  }

  ready(ready: Ready): void {
    const seen = new Set<string>();
    for (const s of ready.pods) {
      const p = this.podFromSummary(s);
      // A pod not in our cursors starts after last_seq.
      if (p.cursor === null) p.cursor = s.lastSeq;
      p.countedUpTo = s.lastSeq;
      p.online = new Set(s.onlineUserIds);
      seen.add(p.pod.id);
    }
    for (const id of [...this.pods.keys()]) if (!seen.has(id)) this.removePod(id);
    this.changed();
  }

  event(ev: Event): Applied {
    let p = this.pods.get(ev.podId);
    if (ev.seq === 0n) {
      if (p) this.applyEphemeral(p, ev);
      return "ok";
    }
    if (!p) {
      // We joined on another device (or the JoinPod answer is still on its
      // way): the resubscribe below brings the pod's summary.
      if (ev.kind.case !== "memberJoined" || ev.kind.value.userId !== this.me.userId) return "ok";
      p = this.addPod(create(PodSchema, { id: ev.podId, name: "…" }));
    }
    if (p.cursor === null) p.cursor = ev.seq - 1n;
    if (ev.seq <= p.cursor) return "ok"; // already applied
    if (ev.seq > p.cursor + 1n) return "gap";
    p.cursor = ev.seq;
    this.applyLogged(p, ev);
    this.changed();
    // Our own live join (perhaps on another device): a fresh ready brings
    // the pod's summary. Others' joins need none: the stream announces the
    // newcomer's presence, and ours to a pod we join.
    if (ev.kind.case === "memberJoined" && ev.kind.value.userId === this.me.userId && ev.seq > p.countedUpTo) {
      return "resubscribe";
    }
    return "ok";
  }

  unauthenticated(): void {
    this.onSignedOut();
  }

  // --- pods ---

  /** addPod adds a pod we just created or joined, if the stream has not yet. */
  addPod(pod: Pod): PodState {
    const existing = this.pods.get(pod.id);
    if (existing) {
      existing.pod = pod;
      return existing;
    }
    const p: PodState = {
      pod,
      unread: 0,
      countedUnread: new Set(),
      cursor: null,
      countedUpTo: 0n,
      readSeq: 0n,
      online: new Set([this.me.userId]),
      typing: new Map(),
      messages: new Map(),
      deleted: new Set(),
      coachTriggers: new Map(),
      history: "none",
      hasMore: false,
      streaks: new Map(),
      doneOn: new Map(),
      reminderTime: null,
      progress: "unknown",
    };
    this.pods.set(pod.id, p);
    return p;
  }

  /** What happened to the open pod, when it went away on its own. */
  notice = "";

  removePod(id: string, why = ""): void {
    const p = this.pods.get(id);
    if (!p) return;
    if (this.openPodId === id && why) this.notice = why.replace("%s", p.pod.name);
    for (const t of p.typing.values()) clearTimeout(t);
    this.pods.delete(id);
    const gone = [...this.outbox.values()].filter((o) => o.podId === id).map((o) => o.key);
    for (const key of gone) this.outbox.delete(key);
    this.forgetOutgoing(gone);
    if (this.openPodId === id) this.openPodId = null;
    this.changed();
  }

  /** setUnread takes the server's unread count of a pod. */
  setUnread(p: PodState, count: bigint): void {
    p.unread = Number(count);
    p.countedUnread.clear();
  }

  private podFromSummary(s: PodSummary): PodState {
    const p = this.addPod(s.pod!);
    this.setUnread(p, s.unreadCount);
    if (s.readSeq > p.readSeq) p.readSeq = s.readSeq;
    return p;
  }

  /** Pods in a stable order: by name. */
  sortedPods(): PodState[] {
    return [...this.pods.values()].sort((a, b) => a.pod.name.localeCompare(b.pod.name) || a.pod.id.localeCompare(b.pod.id));
  }

  /** isCoach says whether the user is the coach of the pod. */
  isCoach(p: PodState, userId: string): boolean {
    return p.pod.members.some((m) => m.user?.id === userId && m.user.coach);
  }

  /** displayName of a member, or a stand-in for someone who left. */
  displayName(p: PodState, userId: string): string {
    if (userId === this.me.userId) return this.me.displayName;
    return p.pod.members.find((m) => m.user?.id === userId)?.user?.displayName ?? "Former member";
  }

  // --- messages ---

  /** Acknowledged messages of a pod, oldest first. */
  sortedMessages(p: PodState): Message[] {
    return [...p.messages.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  }

  /** Our unacknowledged messages in a pod, oldest first. */
  outgoing(podId: string): Outgoing[] {
    return [...this.outbox.values()].filter((o) => o.podId === podId).sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * upsertMessage stores a message from the stream or a SendMessage answer;
   * our own replaces its optimistic copy (same key), so it shows once.
   */
  upsertMessage(m: Message): void {
    const p = this.pods.get(m.podId);
    if (!p || p.deleted.has(m.id)) return;
    p.messages.set(m.id, m);
    this.settle(m);
    this.changed();
  }

  /** mergeHistory adds a page of history without overwriting newer copies. */
  mergeHistory(p: PodState, messages: Message[]): void {
    for (const m of messages) {
      if (p.deleted.has(m.id) || p.messages.has(m.id)) continue;
      p.messages.set(m.id, m);
      if (m.coachTrigger !== CoachTrigger.UNSPECIFIED) p.coachTriggers.set(m.id, m.coachTrigger);
      this.settle(m);
    }
    this.changed();
  }

  private settle(m: Message): void {
    // Another tab of ours may have kept it: forget it for all of them.
    if (m.authorId === this.me.userId) {
      this.outbox.delete(m.idempotencyKey);
      this.forgetOutgoing([m.idempotencyKey]);
    }
  }

  private applyLogged(p: PodState, ev: Event): void {
    const k = ev.kind;
    switch (k.case) {
      case "messageCreated": {
        const m = k.value.message!;
        if (p.deleted.has(m.id)) return;
        p.messages.set(m.id, m);
        this.settle(m);
        this.stopTyping(p, m.authorId);
        const readingNow = this.openPodId === p.pod.id && this.openAtNewest() && document.visibilityState === "visible";
        if (m.authorId !== this.me.userId && ev.seq > p.countedUpTo && !readingNow) {
          p.unread++;
          p.countedUnread.add(m.id);
        }
        return;
      }
      case "messageEdited": {
        const m = k.value.message!;
        if (!p.deleted.has(m.id)) p.messages.set(m.id, m);
        return;
      }
      case "messageDeleted":
        p.messages.delete(k.value.messageId);
        p.deleted.add(k.value.messageId);
        // The server's count leaves deleted messages out.
        if (p.countedUnread.delete(k.value.messageId)) p.unread = Math.max(0, p.unread - 1);
        return;
      case "reactionAdded":
      case "reactionRemoved": {
        const m = p.messages.get(k.value.messageId);
        if (m) applyReaction(m, k.value.userId, k.value.emoji, k.case === "reactionAdded");
        return;
      }
      case "memberJoined": {
        const member = k.value.member;
        if (member && !p.pod.members.some((x) => x.user?.id === k.value.userId)) p.pod.members.push(member);
        return;
      }
      case "memberLeft":
        if (k.value.userId === this.me.userId) {
          this.removePod(p.pod.id);
          return;
        }
        p.pod.members = p.pod.members.filter((x) => x.user?.id !== k.value.userId);
        p.online.delete(k.value.userId);
        this.stopTyping(p, k.value.userId);
        return;
      case "podDeleted":
        this.removePod(p.pod.id, "“%s” was deleted by its owner.");
        return;
      case "checkInRecorded": {
        const c = k.value.checkIn;
        if (!c) return;
        if (k.value.streak) p.streaks.set(c.userId, k.value.streak);
        if (c.done && c.date > (p.doneOn.get(c.userId) ?? "")) p.doneOn.set(c.userId, c.date);
        if (!c.done && c.date === p.doneOn.get(c.userId)) p.doneOn.delete(c.userId);
        return;
      }
      case "coachIntervened":
        p.coachTriggers.set(k.value.messageId, k.value.trigger);
        return;
      case "coachSwitched":
        p.pod.coachEnabled = k.value.enabled;
        return;
      case "ownerChanged":
        p.pod.ownerId = k.value.userId;
        for (const m of p.pod.members) {
          if (m.user?.id === k.value.userId) m.role = MemberRole.OWNER;
          else if (m.role === MemberRole.OWNER) m.role = MemberRole.MEMBER;
        }
        return;
      default:
        // An event we don't show (or one emptied because its message is
        // gone): it only moves the cursor.
        return;
    }
  }

  private applyEphemeral(p: PodState, ev: Event): void {
    const k = ev.kind;
    switch (k.case) {
      case "presence":
        if (k.value.online) p.online.add(k.value.userId);
        else p.online.delete(k.value.userId);
        break;
      case "typing":
        if (k.value.userId === this.me.userId) return;
        if (k.value.typing) this.startTyping(p, k.value.userId);
        else this.stopTyping(p, k.value.userId);
        break;
      case "readUpdated":
        this.setUnread(p, k.value.unreadCount);
        if (k.value.seq > p.readSeq) p.readSeq = k.value.seq;
        break;
      case "podDeleted":
        this.removePod(p.pod.id, "“%s” was deleted by its owner.");
        return;
      default:
        return;
    }
    this.changed();
  }

  private startTyping(p: PodState, userId: string): void {
    clearTimeout(p.typing.get(userId));
    p.typing.set(
      userId,
      window.setTimeout(() => {
        p.typing.delete(userId);
        this.changed();
      }, typingTtlMs),
    );
  }

  private stopTyping(p: PodState, userId: string): void {
    clearTimeout(p.typing.get(userId));
    p.typing.delete(userId);
  }

  // --- outbox persistence ---
  // Every tab of a user shares one list: each adds and removes its own
  // messages and leaves the others' alone.

  /** keepOutgoing keeps o across reloads until it is stored. */
  keepOutgoing(o: Outgoing): void {
    const { key, podId, body, humor, createdAt } = o;
    this.changeKept((items) => [...items.filter((x) => x.key !== key), { key, podId, body, humor, createdAt }]);
  }

  /** forgetOutgoing stops keeping the messages of these keys. */
  forgetOutgoing(keys: string[]): void {
    // Called for each of our messages that arrives: most were never kept.
    let raw: string | null = null;
    try {
      raw = localStorage.getItem(this.outboxKey);
    } catch {
      return; // storage off: nothing was kept
    }
    if (raw && keys.some((k) => raw.includes(k))) this.changeKept((items) => items.filter((x) => !keys.includes(x.key)));
  }

  private changeKept(change: (items: KeptOutgoing[]) => KeptOutgoing[]): void {
    const items = change(this.readKept());
    try {
      if (items.length) localStorage.setItem(this.outboxKey, JSON.stringify(items));
      else localStorage.removeItem(this.outboxKey);
    } catch {
      // Storage full or off: the message is sent all the same, but not kept across a reload.
    }
  }

  /** readKept returns the kept messages, skipping anything that is not one. */
  private readKept(): KeptOutgoing[] {
    try {
      const items: unknown = JSON.parse(localStorage.getItem(this.outboxKey) ?? "[]");
      if (!Array.isArray(items)) return [];
      return items.filter(
        (x): x is KeptOutgoing =>
          typeof x === "object" && x !== null && typeof x.key === "string" && typeof x.podId === "string" && typeof x.body === "string" && typeof x.createdAt === "number",
      );
    } catch {
      return [];
    }
  }

  /** loadOutbox brings back messages a reload interrupted, as failed: they are resent with their key at the next connect. */
  private loadOutbox(): void {
    for (const o of this.readKept()) this.outbox.set(o.key, { ...o, status: "failed", error: "Not sent", retryable: true });
  }
}

/** applyReaction adds or removes one user's emoji on a message, idempotently. */
function applyReaction(m: Message, userId: string, emoji: string, add: boolean): void {
  let r = m.reactions.find((x) => x.emoji === emoji);
  if (add) {
    if (!r) {
      r = create(ReactionSummarySchema, { emoji });
      m.reactions.push(r);
    }
    if (!r.userIds.includes(userId)) r.userIds.push(userId);
  } else if (r) {
    r.userIds = r.userIds.filter((u) => u !== userId);
    if (r.userIds.length === 0) m.reactions = m.reactions.filter((x) => x !== r);
  }
}
