// The top bar: the connection badge, "Retry now", who is signed in.

import { offerRetryAfterMs, type Connection } from "../connection";
import { h } from "../dom";
import type { Session } from "../session";

const labels = {
  connecting: "🟡 Connecting",
  connected: "🟢 Connected",
  disconnected: "🔴 Disconnected",
} as const;

export class TopBar {
  readonly el: HTMLElement;
  readonly back = h("button", { type: "button", class: "back", "aria-label": "Back to pods", text: "← Pods" });
  private readonly badge = h("span", { class: "conn", role: "status", "aria-live": "polite" });
  private readonly detail = h("span", { class: "conn-detail" });
  private readonly retry = h("button", { type: "button", class: "retry-now", text: "Retry now", hidden: true });

  constructor(
    private readonly conn: Connection,
    me: Session,
    onLogOut: () => void,
  ) {
    this.retry.addEventListener("click", () => conn.retryNow());
    this.el = h(
      "header",
      { class: "topbar" },
      this.back,
      h("h1", { class: "brand", text: "Pods" }),
      h("div", { class: "conn-box" }, this.badge, this.detail, this.retry),
      h("span", { class: "me", title: `@${me.handle}`, text: me.displayName }),
      h("button", { type: "button", class: "logout", text: "Log out", onclick: onLogOut }),
    );
  }

  /** update redraws the badge; call it on every change and once a second while disconnected. */
  update(): void {
    const { status, disconnectedSince, nextAttemptAt } = this.conn;
    // Only on change: the badge is a live region, read out when it changes.
    if (this.badge.dataset.status !== status) {
      this.badge.dataset.status = status;
      this.badge.textContent = labels[status];
    }
    const now = Date.now();
    let detail = "";
    if (status === "disconnected" && nextAttemptAt !== null) {
      detail = `retrying in ${Math.max(1, Math.ceil((nextAttemptAt - now) / 1000))} s`;
    } else if (status === "disconnected") {
      detail = "retrying…";
    }
    if (this.detail.textContent !== detail) this.detail.textContent = detail;
    this.retry.hidden = !(status === "disconnected" && disconnectedSince !== null && now - disconnectedSince >= offerRetryAfterMs);
  }
}
