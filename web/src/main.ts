// The entry point: signs in, then wires the store, the one Subscribe
// connection and the views, and renders on every change.

import { Actions } from "./actions";
import { createApi } from "./api";
import { Connection, type Status } from "./connection";
import { h, replace } from "./dom";
import { clearSession, loadSession, type Session } from "./session";
import { Store } from "./store";
import { authView } from "./views/auth";
import { ChatView } from "./views/chat";
import { Sidebar } from "./views/sidebar";
import { TopBar } from "./views/topbar";

const root = document.getElementById("app")!;
let session: Session | null = loadSession();
const api = createApi(() => session?.token ?? null);

/** App is the signed-in page. */
class App {
  private readonly store: Store;
  private readonly actions: Actions;
  private readonly conn: Connection;
  private readonly topbar: TopBar;
  private readonly sidebar: Sidebar;
  private readonly main = h("main", { class: "main" });
  private readonly layout: HTMLElement;
  private chat: ChatView | null = null;
  private frame = 0;
  private ticker: number | undefined;
  /** The open pod was opened from the pod list (a history entry of its own). */
  private fromList = false;
  private lastStatus: Status = "connecting";

  constructor(me: Session) {
    this.store = new Store(me, () => this.schedule(), () => signOut(false));
    this.actions = new Actions(api, this.store);
    this.conn = new Connection(api, this.store, () => {
      // Here rather than in render, which a hidden tab does not run.
      if (this.conn.status === "connected") void this.actions.resendFailed();
      this.schedule();
    });
    this.topbar = new TopBar(this.conn, me, () => signOut(true));
    // Back to the list goes back in history when the list opened the pod,
    // so that the phone's own Back does not open the chat again.
    this.topbar.back.addEventListener("click", () => {
      if (this.fromList) history.back();
      else this.open(null);
      this.fromList = false;
    });
    this.sidebar = new Sidebar(this.store, this.actions, (id) => {
      this.fromList = this.store.openPodId === null;
      this.open(id);
    });
    this.layout = h("div", { class: "layout" }, this.sidebar.el, this.main);
    replace(root, this.topbar.el, this.layout);
  }

  start(): void {
    this.store.openPodId = podFromHash();
    this.conn.start();
    addEventListener("hashchange", this.onHash);
    addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    // Each second the badge counts the seconds while disconnected; every
    // 15 s connected, messages that failed but may go through (a send that
    // failed while the stream lived on, "slow down") go again; each minute
    // the view follows the clock ("Today", who has checked in today, in
    // each member's zone).
    let seconds = 0;
    this.ticker = window.setInterval(() => {
      this.topbar.update();
      seconds++;
      if (seconds % 15 === 0 && this.conn.status === "connected") void this.actions.resendFailed();
      if (seconds % 60 === 0) this.schedule();
    }, 1000);
    this.render();
  }

  stop(): void {
    this.conn.stop();
    this.chat?.dispose();
    removeEventListener("hashchange", this.onHash);
    removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearInterval(this.ticker);
    cancelAnimationFrame(this.frame);
  }

  /** open shows a pod (or, with null, the pod list on a phone). */
  private open(podId: string | null): void {
    this.store.notice = "";
    location.hash = podId ? `pod/${podId}` : "";
    this.store.openPodId = podId;
    this.render();
    this.chat?.focus();
  }

  private readonly onHash = () => {
    this.store.openPodId = podFromHash();
    this.schedule();
  };

  private readonly onVisible = () => this.schedule();

  /** Back online, with the stream still up: what failed meanwhile goes again. */
  private readonly onOnline = () => {
    if (this.conn.status === "connected") void this.actions.resendFailed();
  };

  /** schedule renders once before the next frame, however many changes come. */
  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  private render(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const reconnected = this.conn.status === "connected" && this.lastStatus !== "connected";
    this.lastStatus = this.conn.status;

    this.topbar.update();
    this.sidebar.update();
    // Unread messages show in the tab's title, and on a phone's way back
    // to the list those of the other pods.
    const open = this.store.openPodId;
    let unread = 0;
    let elsewhere = 0;
    for (const q of this.store.pods.values()) {
      unread += q.unread;
      if (q.pod.id !== open) elsewhere += q.unread;
    }
    document.title = unread ? `(${unread}) Pods` : "Pods";
    this.topbar.back.textContent = elsewhere ? `← Pods (${elsewhere})` : "← Pods";

    const id = this.store.openPodId;
    const p = id ? this.store.pods.get(id) : undefined;
    if (id && !p && this.conn.status === "connected") {
      // A pod we are not (or no longer) in.
      this.open(null);
      return;
    }
    // Before the chat renders: on a phone it is hidden in list view, and a
    // hidden chat can't scroll to its newest message.
    this.layout.dataset.view = p ? "chat" : "list";
    this.topbar.back.hidden = !p;
    if (!id && podFromHash()) history.replaceState(null, "", location.pathname); // the open pod went away
    if (!p) {
      this.chat?.dispose();
      this.chat = null;
      replace(this.main, h("p", { class: "placeholder", text: id ? "Loading…" : `${this.store.notice} Pick a pod, or create one to get going.`.trim() }));
    } else {
      if (this.chat?.podId !== p.pod.id) {
        this.chat?.dispose();
        this.chat = new ChatView(this.store, this.actions, p.pod.id);
        replace(this.main, this.chat.el);
        void this.actions.loadProgress(p);
      } else if (reconnected) {
        void this.actions.loadProgress(p);
        this.chat.connectionBack();
      }
      if (p.history === "none" || (reconnected && p.history === "error")) void this.actions.loadHistory(p, false);
      this.chat.update();
      if (p.history === "loaded" && this.chat.readingNewest()) void this.actions.markRead(p);
    }
  }
}

function podFromHash(): string | null {
  const m = /^#pod\/([0-9a-f-]{36})$/.exec(location.hash);
  return m ? m[1] : null;
}

let app: App | null = null;

function showApp(s: Session): void {
  session = s;
  app = new App(s);
  app.start();
}

/** signOut ends the session (telling the server if asked) and shows the log-in form. */
function signOut(tellServer: boolean): void {
  if (tellServer && session) {
    // The interceptor would read the token after we forget it: pass it along.
    api.auth.logOut({}, { headers: { Authorization: `Bearer ${session.token}` } }).catch(() => {});
  }
  app?.stop();
  app = null;
  clearSession();
  session = null;
  replace(root, authView(api, showApp));
}

if (session) showApp(session);
else replace(root, authView(api, showApp));
