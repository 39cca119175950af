// The sidebar: the pod list with unread badges and online dots, and the
// forms to create and join pods.

import type { Actions } from "../actions";
import { h, patchList } from "../dom";
import type { PodState, Store } from "../store";

export class Sidebar {
  readonly el: HTMLElement;
  private readonly list = h("ul", { class: "pod-list", "aria-label": "Your pods" });
  private readonly empty = h("p", { class: "empty", text: "No pods yet: create one or join with an invite code." });

  constructor(
    private readonly store: Store,
    actions: Actions,
    private readonly open: (podId: string) => void,
  ) {
    this.el = h("aside", { class: "sidebar" }, h("h2", { class: "section-title", text: "Pods" }), this.list, this.empty, createForm(actions, open), joinForm(actions, open));
  }

  update(): void {
    const pods = this.store.sortedPods();
    this.empty.hidden = pods.length > 0;
    patchList(
      this.list,
      pods,
      (p) => p.pod.id,
      (p) => [p.pod.name, p.unread, this.othersOnline(p), p.pod.id === this.store.openPodId].join("|"),
      (p) => this.item(p),
    );
  }

  private othersOnline(p: PodState): number {
    let n = 0;
    for (const id of p.online) if (id !== this.store.me.userId) n++;
    return n;
  }

  private item(p: PodState): HTMLElement {
    const online = this.othersOnline(p);
    const current = p.pod.id === this.store.openPodId;
    return h(
      "li",
      {},
      h(
        "button",
        { type: "button", class: "pod-item", "data-pod-id": p.pod.id, "aria-current": current ? "true" : undefined, onclick: () => this.open(p.pod.id) },
        h("span", { class: online ? "dot online" : "dot", title: online ? `${online} online` : "nobody else online", "aria-label": online ? `${online} online` : "nobody else online" }),
        h("span", { class: "pod-name", text: p.pod.name }),
        p.unread > 0 && h("span", { class: "unread", "aria-label": `${p.unread} unread`, text: String(p.unread) }),
      ),
    );
  }
}

function createForm(actions: Actions, open: (podId: string) => void): HTMLElement {
  const name = h("input", { name: "name", required: true, maxlength: 80, placeholder: "Early birds" });
  const habit = h("input", { name: "habit", required: true, maxlength: 200, placeholder: "Up at 6" });
  const capacity = h("select", { name: "capacity" }, ...[6, 5, 4].map((n) => h("option", { value: n, text: `${n} people` })));
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", text: "Create pod" });
  const form = h(
    "form",
    { class: "pod-form" },
    h("label", { class: "field" }, "Name", name),
    h("label", { class: "field" }, "Habit", habit),
    h("label", { class: "field" }, "Size", capacity),
    error,
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    const res = await actions.createPod(name.value.trim(), habit.value.trim(), Number(capacity.value));
    submit.disabled = false;
    if (typeof res === "string") {
      error.textContent = res;
      return;
    }
    error.textContent = "";
    form.reset();
    details.open = false;
    open(res.pod.id);
  });
  const details = h("details", { class: "new-pod" }, h("summary", { text: "+ New pod" }), form);
  return details;
}

function joinForm(actions: Actions, open: (podId: string) => void): HTMLElement {
  // No maxlength: a pasted code with spaces around or inside would be cut.
  const code = h("input", { name: "inviteCode", required: true, autocapitalize: "characters", spellcheck: "false", placeholder: "ABCD2345", "aria-label": "Invite code" });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", text: "Join" });
  const form = h("form", { class: "join-form" }, h("div", { class: "field" }, "Join with an invite code", h("span", { class: "row" }, code, submit)), error);
  code.addEventListener("input", () => (error.textContent = "")); // about the code before
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    const res = await actions.joinPod(code.value.replace(/\s+/g, "").toUpperCase());
    submit.disabled = false;
    if (typeof res === "string") {
      error.textContent = res;
      return;
    }
    error.textContent = "";
    form.reset();
    open(res.pod.id);
  });
  return form;
}
