// End-to-end: two people in two browsers chat through podsd, across a
// server restart and a reload. Drives Debian's Chromium with playwright-core.
//
//   node --test e2e/chat.test.mjs      (from web/, after `make web`)
//
// CHROMIUM_PATH overrides the browser (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { Podsd } from "./server.mjs";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const chromiumFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const screenshots = new URL("../screenshots/", import.meta.url);

/** How soon a message must show up on the other side. */
const deliveryMs = 1_000;

let server;
let browser;

before(async () => {
  server = await Podsd.build();
  await server.start();
  browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumFlags });
});

after(async () => {
  await browser?.close();
  if (server && process.exitCode) console.log(server.log);
  await server?.remove();
});

/**
 * Console errors and uncaught exceptions of every page. While the server is
 * down, or the test makes calls fail, the browser itself logs the failed
 * requests; those, and only those, are expected then.
 */
const problems = [];
let serverDown = false;
let callsFailing = false;
function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if ((serverDown || callsFailing) && /Failed to load resource|net::ERR_/.test(m.text())) return;
    problems.push(`${who}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${who}: ${e.message}`));
}

/** exactly matches text whole; a line break matches any run of white space. */
const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+")}$`);

/** message finds a message row by its exact text. */
const message = (page, text) => page.locator(".message-list .msg").filter({ has: page.locator(".body", { hasText: exactly(text) }) });

const badge = (page, status) => page.locator(`.conn[data-status="${status}"]`);

async function signUp(page, handle, name) {
  await page.goto(server.url);
  await page.getByRole("button", { name: "New here? Sign up" }).click();
  await page.getByLabel("Handle").fill(handle);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByLabel("Display name").fill(name);
  await page.getByRole("button", { name: "Sign up" }).press("Enter");
  await badge(page, "connected").waitFor({ timeout: 10_000 });
}

async function createPod(page, name, habit) {
  await page.getByText("+ New pod").click();
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Habit").fill(habit);
  await page.getByRole("button", { name: "Create pod" }).click();
  const code = page.locator(".invite-code");
  await code.filter({ hasText: /^[A-Z2-9]{8}$/ }).waitFor({ timeout: 5_000 });
  return code.textContent();
}

async function joinPod(page, code) {
  await page.getByLabel("Invite code").fill(code);
  await page.getByRole("button", { name: "Join" }).click();
  await page.locator(".pod-title", { hasText: "Early birds" }).waitFor({ timeout: 5_000 });
}

/** onPhone says whether the page has a touch screen for a pointer, where Enter writes a line break. */
function onPhone(page) {
  return page.evaluate(() => matchMedia("(pointer: coarse)").matches);
}

/** send sends what the composer holds: with Enter at a desk, with the Send button on a phone. */
async function send(page) {
  if (await onPhone(page)) await page.getByRole("button", { name: "Send", exact: true }).tap();
  else await page.getByLabel("Message", { exact: true }).press("Enter");
}

/** say sends text from one page and waits until the other shows it; it returns how long that took. */
async function say(from, to, text) {
  const input = from.getByLabel("Message", { exact: true });
  await input.fill(text);
  const start = Date.now();
  await send(from);
  // At once, before any answer: the optimistic copy.
  await message(from, text).waitFor({ timeout: 200 });
  await message(to, text).waitFor({ timeout: deliveryMs });
  const took = Date.now() - start;
  await from.locator('.msg[data-status="sent"]').filter({ has: from.locator(".body", { hasText: exactly(text) }) }).waitFor({ timeout: deliveryMs });
  return took;
}

/** assertOnce checks that every text shows exactly once on the page. */
async function assertOnce(page, texts, who) {
  const bodies = await page.locator(".message-list .body").allTextContents();
  for (const t of texts) {
    assert.equal(bodies.filter((b) => b === t).length, 1, `${who} shows "${t}" ${bodies.filter((b) => b === t).length} times: ${JSON.stringify(bodies)}`);
  }
}

test("two people chat live, through a server restart and a reload", { timeout: 180_000 }, async () => {
  const run = Date.now().toString(36);
  const desk = await browser.newContext({ timezoneId: "Europe/Berlin", viewport: { width: 1100, height: 720 } });
  const phone = await browser.newContext({ timezoneId: "America/New_York", viewport: { width: 390, height: 760 }, hasTouch: true });
  const alice = await desk.newPage();
  const bob = await phone.newPage();
  watch(alice, "alice");
  watch(bob, "bob");

  await signUp(alice, `alice_${run}`, "Alice");
  await signUp(bob, `bob_${run}`, "Bob");
  const code = await createPod(alice, "Early birds", "Up at 6");
  await joinPod(bob, code);

  // Presence: each sees the other online.
  await alice.locator('.member[data-online="true"]', { hasText: "Bob" }).waitFor({ timeout: 3_000 });
  await bob.locator('.member[data-online="true"]', { hasText: "Alice" }).waitFor({ timeout: 3_000 });
  // A screen reader hears it too.
  await alice.locator(".member", { hasText: "Bob" }).getByRole("img", { name: "online" }).waitFor({ timeout: 1_000 });

  // Typing shows on the other side, and goes when the message arrives.
  await alice.getByLabel("Message", { exact: true }).fill("Good mor");
  await bob.locator(".typing", { hasText: "Alice is typing…" }).waitFor({ timeout: deliveryMs });

  const said = ["Good morning! Up at 6 today ☀️", "Same here, coffee first", "Day one done 💪"];
  const took = [await say(alice, bob, said[0])];
  await bob.locator(".typing", { hasText: /^$/ }).waitFor({ timeout: deliveryMs });
  took.push(await say(bob, alice, said[1]));
  // A screen reader hears a new message once, by whom, from a live region
  // of its own (the list is none: a redrawn row would be read out again).
  assert.equal(await alice.locator(".chat [aria-live].visually-hidden").textContent(), `Bob: ${said[1]}`);
  assert.equal(await alice.locator(".message-list[aria-live], .message-list[role=log]").count(), 0);
  took.push(await say(alice, bob, said[2]));

  // On the phone Enter writes a line break (a phone's keyboard has no
  // Shift+Enter) and the button sends.
  assert.equal(await onPhone(bob), true, "the phone's pointer is coarse");
  const composer = bob.getByLabel("Message", { exact: true });
  await composer.fill("Two");
  await composer.press("Enter");
  await composer.pressSequentially("lines");
  assert.equal(await composer.inputValue(), "Two\nlines");
  await send(bob);
  await message(alice, "Two\nlines").waitFor({ timeout: deliveryMs });
  said.push("Two\nlines");

  // Web addresses are links (the sentence's full stop left out); markup
  // stays text.
  const route = "Route: https://example.org/run?x=1&y=2. <b>not bold</b>";
  took.push(await say(alice, bob, route));
  said.push(route);
  const link = message(bob, route).getByRole("link");
  assert.equal(await link.getAttribute("href"), "https://example.org/run?x=1&y=2");
  assert.equal(await link.getAttribute("rel"), "noopener noreferrer nofollow");
  assert.equal(await message(bob, route).locator(".body b").count(), 0);

  // A joke is marked as one on both sides.
  await alice.getByRole("button", { name: "😄 Joke" }).click();
  took.push(await say(alice, bob, "Snoozed once, the cat counts as an alarm"));
  said.push("Snoozed once, the cat counts as an alarm");
  await message(bob, said.at(-1)).locator(".humor-tag").waitFor({ timeout: deliveryMs });
  console.log(`delivery times (ms): ${took.join(", ")}`);

  // Edit and delete one's own messages. An edit keeps its line breaks, its
  // draft while someone reacts to the message, and its text when saving
  // fails.
  await message(alice, said[2]).getByRole("button", { name: "Edit" }).click();
  const draft = "Day one done 💪💪\nNap earned";
  await alice.getByLabel("Edit message").fill(draft);
  await alice.getByLabel("Edit message").evaluate((el) => el.setSelectionRange(4, 7)); // "one"
  await message(bob, said[2]).getByRole("button", { name: "Add reaction" }).click();
  await message(bob, said[2]).getByRole("button", { name: "React 🔥" }).click();
  await alice.locator(".msg", { has: alice.getByLabel("Edit message") }).locator(".chip", { hasText: "🔥 1" }).waitFor({ timeout: deliveryMs });
  assert.equal(await alice.getByLabel("Edit message").inputValue(), draft);
  assert.deepEqual(await alice.getByLabel("Edit message").evaluate((el) => [el.selectionStart, el.selectionEnd, el === document.activeElement]), [4, 7, true]);
  callsFailing = true;
  await alice.route("**/EditMessage", (r) => r.abort());
  await alice.getByLabel("Edit message").press("Enter");
  await alice.locator(".chat-error", { hasText: /\S/ }).waitFor({ timeout: 5_000 });
  assert.equal(await alice.getByLabel("Edit message").inputValue(), draft);
  await alice.unroute("**/EditMessage");
  callsFailing = false;
  await alice.getByLabel("Edit message").press("Enter");
  said[2] = draft;
  await message(bob, said[2]).locator(".tag", { hasText: "edited" }).waitFor({ timeout: deliveryMs });
  await alice.getByLabel("Edit message").waitFor({ state: "detached", timeout: 1_000 });

  // Too long a message is not cut: it stays, and the user is told.
  const long = "x".repeat(4_001);
  await alice.getByLabel("Message", { exact: true }).fill(long);
  await alice.getByLabel("Message", { exact: true }).press("Enter");
  await alice.locator(".chat-error", { hasText: /at most 4.000 characters/ }).waitFor({ timeout: 1_000 });
  assert.equal(await alice.getByLabel("Message", { exact: true }).inputValue(), long);
  await alice.getByLabel("Message", { exact: true }).fill("");
  await say(bob, alice, "Oops, wrong pod");
  await message(bob, "Oops, wrong pod").getByRole("button", { name: "Delete" }).click();
  await message(bob, "Oops, wrong pod").getByRole("button", { name: "Delete for good" }).click();
  await message(alice, "Oops, wrong pod").waitFor({ state: "detached", timeout: deliveryMs });

  // A reaction goes both ways.
  await message(bob, said[0]).getByRole("button", { name: "Add reaction" }).click();
  await message(bob, said[0]).getByRole("button", { name: "React 👍" }).click();
  await message(alice, said[0]).locator(".chip", { hasText: "👍 1" }).waitFor({ timeout: deliveryMs });
  // Who reacted: in the chip's name, and in words with the picker open (a
  // touch screen shows no tooltip).
  await message(alice, said[0]).getByRole("button", { name: "👍 1: Bob" }).waitFor({ timeout: 1_000 });
  await message(alice, said[0]).getByRole("button", { name: "Add reaction" }).click();
  await message(alice, said[0]).locator(".reacted-by", { hasText: "👍 Bob" }).waitFor({ timeout: 1_000 });
  await message(alice, said[0]).getByRole("button", { name: "Add reaction" }).click();
  await message(alice, said[0]).locator(".reacted-by").waitFor({ state: "detached", timeout: 1_000 });

  // The server goes away: both badges turn red.
  serverDown = true;
  const stoppedAt = Date.now(); // no stream can end before this
  await server.stop();
  await badge(alice, "disconnected").waitFor({ timeout: 5_000 });
  await badge(bob, "disconnected").waitFor({ timeout: 5_000 });

  // A message written meanwhile fails, says so, and goes once the server
  // is back.
  const offline = ["Written while the server was down", "and a second thing", "and a third"];
  for (const text of offline) {
    await alice.getByLabel("Message", { exact: true }).fill(text);
    await alice.getByLabel("Message", { exact: true }).press("Enter");
    await alice.locator('.msg[data-status="failed"]', { hasText: text }).waitFor({ timeout: 12_000 });
  }

  // "Retry now" after 10 s disconnected, not before.
  await alice.getByRole("button", { name: "Retry now" }).waitFor({ timeout: 15_000 });
  assert.ok(Date.now() - stoppedAt >= 10_000, `Retry now offered after ${Date.now() - stoppedAt} ms`);
  await bob.getByRole("button", { name: "Retry now" }).waitFor({ timeout: 5_000 });

  // Back on the same port and data: Alice retries by hand, Bob by himself.
  await server.start();
  // (Unless her backoff got there first while the server started.)
  await alice.getByRole("button", { name: "Retry now" }).click({ timeout: 1_000 }).catch(() => {});
  await badge(alice, "connected").waitFor({ timeout: 5_000 });
  await badge(bob, "connected").waitFor({ timeout: 15_000 });
  await alice.getByRole("button", { name: "Retry now" }).waitFor({ state: "hidden", timeout: 1_000 });
  serverDown = false;

  // The failed messages went out with their keys at the reconnect, once,
  // in the order they were written.
  await message(bob, offline.at(-1)).waitFor({ timeout: 5_000 });
  const bodies = await bob.locator(".message-list .body").allTextContents();
  assert.deepEqual(bodies.filter((b) => offline.includes(b)), offline);
  said.push(...offline);
  said.push("Welcome back");
  await say(bob, alice, "Welcome back");

  // History intact on both sides, nothing twice, reactions kept.
  await assertOnce(alice, said, "alice");
  await assertOnce(bob, said, "bob");
  // The keyboard stays on a message's controls when its row is redrawn.
  const mine = message(alice, said[0]);
  const focused = () => alice.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.textContent);
  await mine.getByRole("button", { name: "Add reaction" }).focus();
  await alice.keyboard.press("Enter");
  await mine.getByRole("group", { name: "React with" }).waitFor({ timeout: 2_000 });
  assert.equal(await focused(), "Add reaction");
  await alice.keyboard.press("Enter"); // the picker closes
  await mine.getByRole("group", { name: "React with" }).waitFor({ state: "detached", timeout: 2_000 });
  await mine.getByRole("button", { name: "Delete", exact: true }).focus();
  await alice.keyboard.press("Enter");
  await mine.getByRole("button", { name: "Delete for good" }).waitFor({ timeout: 2_000 });
  assert.equal(await focused(), "Delete for good");
  await alice.keyboard.press("Tab");
  await alice.keyboard.press("Enter"); // Keep
  await mine.getByRole("button", { name: "Delete", exact: true }).waitFor({ timeout: 2_000 });
  assert.equal(await focused(), "Delete");

  // Today's messages sit under one heading.
  assert.deepEqual(await bob.locator(".message-list .day").allTextContents(), ["Today"]);
  await message(alice, said[0]).locator(".chip", { hasText: "👍 1" }).waitFor({ timeout: 1_000 });

  // A reload keeps the session, the open pod and the history.
  await bob.reload();
  await badge(bob, "connected").waitFor({ timeout: 10_000 });
  await bob.locator(".pod-title", { hasText: "Early birds" }).waitFor({ timeout: 5_000 });
  await message(bob, said.at(-1)).waitFor({ timeout: 5_000 });
  await assertOnce(bob, said, "bob after reload");

  // Unread badge: Bob goes back to the list (what he was writing stays),
  // Alice writes, Bob opens the pod.
  await bob.getByLabel("Message", { exact: true }).fill("Half a thought");
  await bob.getByRole("button", { name: "Back to pods" }).click();
  await alice.getByLabel("Message", { exact: true }).fill("See you tomorrow");
  await alice.getByLabel("Message", { exact: true }).press("Enter");
  said.push("See you tomorrow");
  await bob.locator(".pod-item .unread", { hasText: "1" }).waitFor({ timeout: deliveryMs });
  await bob.locator(".pod-item", { hasText: "Early birds" }).click();
  await message(bob, said.at(-1)).waitFor({ timeout: deliveryMs });
  await bob.locator(".pod-item .unread").waitFor({ state: "detached", timeout: 2_000 });
  assert.equal(await bob.getByLabel("Message", { exact: true }).inputValue(), "Half a thought");
  // Opened, the chat shows its newest message.
  await bob.waitForFunction(() => {
    const el = document.querySelector(".messages");
    return el && el.scrollHeight > el.clientHeight && el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }, null, { timeout: 2_000 });
  await assertOnce(alice, said, "alice");
  await assertOnce(bob, said, "bob");

  // Alice reads further up while Bob writes on: a cue shows new messages
  // below, and they count as unread until she goes down to them.
  await bob.getByLabel("Message", { exact: true }).fill("");
  for (let i = 1; i <= 25; i++) {
    await bob.getByLabel("Message", { exact: true }).fill(`Line ${i}`);
    await send(bob);
  }
  await message(alice, "Line 25").waitFor({ timeout: 5_000 });
  await alice.locator(".messages").evaluate((el) => (el.scrollTop = 0));
  await say(bob, alice, "Are you there?");
  await alice.getByRole("button", { name: "↓ New messages" }).waitFor({ timeout: deliveryMs });
  await alice.locator(".pod-item .unread", { hasText: "1" }).waitFor({ timeout: 2_000 });
  await alice.getByRole("button", { name: "↓ New messages" }).click();
  await alice.getByRole("button", { name: "↓ New messages" }).waitFor({ state: "hidden", timeout: 2_000 });
  await alice.locator(".pod-item .unread").waitFor({ state: "detached", timeout: 2_000 });

  // Check-in and streak, where the server has ProgressService (the button
  // shows only then): Bob sees Alice's streak in the member list.
  const checkIn = alice.getByRole("button", { name: "Check in" });
  if (await checkIn.isVisible()) {
    await checkIn.click();
    await alice.getByRole("button", { name: "✓ Checked in today" }).waitFor({ timeout: 2_000 });
    await alice.locator(".my-streak", { hasText: "1-day streak" }).waitFor({ timeout: 2_000 });
    await bob.locator(".member", { hasText: "Alice" }).locator(".streak", { hasText: "🔥1" }).waitFor({ timeout: deliveryMs });
    // Who has checked in today shows by each name, after a reload too.
    await bob.locator(".member", { hasText: "Alice" }).getByLabel("checked in today").waitFor({ timeout: deliveryMs });
    assert.equal(await bob.locator(".member", { hasText: "Bob" }).getByLabel("checked in today").count(), 0);
    // A check-in made by mistake is taken back, for everyone, and made again.
    await alice.getByRole("button", { name: "Undo" }).click();
    await checkIn.waitFor({ timeout: 2_000 });
    await alice.locator(".my-streak").waitFor({ state: "detached", timeout: 2_000 });
    await bob.locator(".member", { hasText: "Alice" }).getByLabel("checked in today").waitFor({ state: "detached", timeout: deliveryMs });
    await checkIn.click();
    await alice.getByRole("button", { name: "✓ Checked in today" }).waitFor({ timeout: 2_000 });
    await bob.locator(".member", { hasText: "Alice" }).getByLabel("checked in today").waitFor({ timeout: deliveryMs });

    // Bob's reminder: 20:00 by default, 07:15 from now on, after a reload too.
    // On the phone the pod's tools wait behind "More".
    assert.equal(await bob.getByLabel("Reminder time").isVisible(), false);
    await bob.getByRole("button", { name: "⋯ More" }).click();
    const reminder = bob.getByLabel("Reminder time");
    assert.equal(await reminder.inputValue(), "20:00");
    const saved = bob.waitForResponse((r) => r.url().endsWith("/SetReminder") && r.ok(), { timeout: 2_000 });
    await reminder.fill("07:15");
    await saved;
    await bob.reload();
    await badge(bob, "connected").waitFor({ timeout: 10_000 });
    await bob.waitForFunction(() => document.querySelector(".reminder-time")?.value === "07:15", null, { timeout: 5_000 });
    await bob.locator(".member", { hasText: "Alice" }).getByLabel("checked in today").waitFor({ timeout: 5_000 });
  }

  // Only the owner switches the coach; everyone sees it off.
  assert.equal(await bob.getByRole("button", { name: /Coach (on|off)/ }).count(), 0, "Bob is offered the owner's coach switch");
  await alice.getByRole("button", { name: "🤖 Coach on" }).click();
  await alice.getByRole("button", { name: "🤖 Coach off" }).waitFor({ timeout: 2_000 });
  await bob.locator(".member", { hasText: "(off)" }).waitFor({ timeout: deliveryMs });
  await alice.getByRole("button", { name: "🤖 Coach off" }).click();
  await bob.locator(".member", { hasText: "(off)" }).waitFor({ state: "detached", timeout: deliveryMs });

  // Offline on his phone while the stream lives on, Bob's check-in fails
  // and can be tried again, and his message goes by itself once he is back.
  callsFailing = true;
  await phone.setOffline(true);
  await bob.getByRole("button", { name: "Check in" }).click();
  await bob.locator(".chat-error", { hasText: /\S/ }).waitFor({ timeout: 5_000 });
  await bob.getByLabel("Message", { exact: true }).fill("Sent from the tunnel");
  await send(bob);
  await bob.locator('.msg[data-status="failed"]', { hasText: "Sent from the tunnel" }).waitFor({ timeout: 5_000 });
  await phone.setOffline(false);
  callsFailing = false;
  await message(alice, "Sent from the tunnel").waitFor({ timeout: 5_000 });
  await bob.getByRole("button", { name: "Check in" }).click();
  await bob.getByRole("button", { name: "✓ Checked in today" }).waitFor({ timeout: 5_000 });

  // Bob goes back to the list while Alice writes on: his tab's title counts
  // the new messages, and the pod opens at a line above the first of them.
  await bob.getByRole("button", { name: "Back to pods" }).click();
  for (const text of ["While you were away 1", "While you were away 2"]) {
    await alice.getByLabel("Message", { exact: true }).fill(text);
    await alice.getByLabel("Message", { exact: true }).press("Enter");
  }
  await bob.waitForFunction(() => document.title === "(2) Pods", null, { timeout: deliveryMs });
  await bob.locator(".pod-item", { hasText: "Early birds" }).click();
  await bob.locator(".unread-line").waitFor({ timeout: 5_000 });
  assert.equal(await bob.locator(".unread-line + .msg .body").textContent(), "While you were away 1");

  await mkdir(screenshots, { recursive: true });
  await alice.screenshot({ path: new URL(`chat-${run}-desktop.png`, screenshots).pathname });
  await bob.screenshot({ path: new URL(`chat-${run}-phone.png`, screenshots).pathname });

  // Bob leaves the page: Alice sees him go offline after the grace period.
  await phone.close();
  await alice.locator('.member[data-online="false"]', { hasText: "Bob" }).waitFor({ timeout: 5_000 });

  // The owner deletes the pod, for everyone, after a second click.
  assert.equal(await alice.getByRole("button", { name: "Delete pod" }).count(), 1);
  // A double click only arms it; a second click a moment later deletes.
  await alice.getByRole("button", { name: "Delete pod" }).dblclick();
  await alice.getByRole("button", { name: "Delete for everyone" }).waitFor({ timeout: 1_000 });
  assert.equal(await alice.locator(".pod-title", { hasText: "Early birds" }).count(), 1, "a double click deleted the pod");
  await alice.waitForTimeout(500);
  await alice.getByRole("button", { name: "Delete for everyone" }).click();
  await alice.locator(".pod-title", { hasText: "Early birds" }).waitFor({ state: "detached", timeout: 2_000 });
  await alice.locator(".pod-item", { hasText: "Early birds" }).waitFor({ state: "detached", timeout: 2_000 });

  // Logged out and in again, the browser shows the device token it got at
  // sign-up, which gives its log-ins a limit of their own.
  const handle = `alice_${run}`;
  const device = await alice.evaluate((h) => localStorage.getItem(`pods.device.${h}`), handle);
  assert.ok(device, "no device token kept after sign-up");
  await alice.getByRole("button", { name: "Log out" }).click();
  await alice.getByLabel("Handle").fill(handle);
  await alice.getByLabel("Password").fill("correct horse battery");
  const logIn = alice.waitForRequest((r) => r.url().endsWith("/LogIn"), { timeout: 5_000 });
  await alice.getByRole("button", { name: "Log in" }).click();
  assert.ok((await logIn).postDataBuffer().includes(device), "the log-in did not send the device token");
  await badge(alice, "connected").waitFor({ timeout: 10_000 });
  assert.equal(await alice.evaluate((h) => localStorage.getItem(`pods.device.${h}`), handle), device);

  await desk.close();
  assert.deepEqual(problems, [], "console errors");
});

test("a server that goes silent counts as disconnected", { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page, "carol");
  await signUp(page, `carol_${Date.now().toString(36)}`, "Carol");
  // Frozen, the server keeps its connections open but sends nothing, not
  // even heartbeats: after two heartbeat intervals the client gives up.
  serverDown = true;
  server.freeze();
  try {
    await badge(page, "disconnected").waitFor({ timeout: 40_000 });
  } finally {
    server.thaw();
  }
  // Thawed, it answers the next attempt of the backoff.
  await badge(page, "connected").waitFor({ timeout: 20_000 });
  serverDown = false;
  await context.close();
  assert.deepEqual(problems, [], "console errors");
});
