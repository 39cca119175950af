// Tiny DOM helpers: no framework, just element construction and a keyed
// list patcher that keeps unchanged rows (and their focus) in place.

type Child = Node | string | null | undefined | false;
type Props = Record<string, unknown>;

/**
 * h creates an element. Props starting with "on" become event listeners,
 * `class`, `text` and `aria-*` / `data-*` / other strings become attributes,
 * booleans toggle boolean attributes (disabled, hidden…).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value as EventListener);
    } else if (name === "text") {
      el.textContent = String(value);
    } else if (name === "value") {
      (el as HTMLInputElement).value = String(value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
}

/** Replaces all children of el. */
export function replace(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

interface Row {
  sig: string;
  el: HTMLElement;
}

const rows = new WeakMap<Element, Map<string, Row>>();

/**
 * patchList makes container's children the rendering of items, in order.
 * A row is rebuilt only when its signature changed, so the DOM of unchanged
 * rows (focus, text selection, scroll anchors) survives updates.
 */
export function patchList<T>(
  container: Element,
  items: readonly T[],
  key: (item: T) => string,
  sig: (item: T) => string,
  render: (item: T) => HTMLElement,
): void {
  const old = rows.get(container) ?? new Map<string, Row>();
  const next = new Map<string, Row>();
  for (const item of items) {
    const k = key(item);
    const s = sig(item);
    let row = old.get(k);
    if (!row || row.sig !== s) {
      const el = render(item);
      if (row) {
        const focused = row.el.contains(document.activeElement) ? document.activeElement : null;
        row.el.replaceWith(el);
        if (focused) refocus(el, focused);
      }
      row = { sig: s, el };
    }
    next.set(k, row);
  }
  rows.set(container, next);
  // Reorder (and insert) with the fewest moves: walk in order and only move
  // an element that is not already in place.
  let cursor = container.firstElementChild;
  for (const { el } of next.values()) {
    if (cursor === el) {
      cursor = cursor.nextElementSibling;
    } else {
      container.insertBefore(el, cursor);
    }
  }
  while (cursor) {
    const stale = cursor;
    cursor = cursor.nextElementSibling;
    stale.remove();
  }
}

/**
 * refocus keeps the keyboard in a row that was rebuilt around its focus:
 * on the new row's control with the same classes and name as the one that
 * had it, else the first one of its first class (Delete becoming "Delete
 * for good" of class "delete danger"), else the row's first control, so
 * that the focus does not fall back to the page.
 */
function refocus(row: HTMLElement, was: Element): void {
  const name = (e: Element) => e.getAttribute("aria-label") ?? e.textContent;
  const controls = [...row.querySelectorAll<HTMLElement>("button, input, textarea, [tabindex]")];
  if (controls.some((c) => c === document.activeElement)) return; // the row focused one itself
  const kind = was.classList[0];
  const same =
    controls.find((c) => c.className === was.className && name(c) === name(was)) ??
    (kind ? controls.find((c) => c.classList.contains(kind)) : undefined) ??
    controls[0];
  same?.focus();
}

/**
 * submitsOnEnter says whether a key press in a message box sends or saves:
 * Enter does with a keyboard (Shift+Enter writes a line break); on a touch
 * screen Enter writes a line break and the button sends, as in other chat
 * apps, since a phone's keyboard has no Shift+Enter.
 */
export function submitsOnEnter(e: KeyboardEvent): boolean {
  return e.key === "Enter" && !e.shiftKey && !e.isComposing && !onTouchScreen();
}

/** onTouchScreen says whether the main pointer is a finger (a phone, a tablet). */
export function onTouchScreen(): boolean {
  return matchMedia("(pointer: coarse)").matches;
}
