// The signed-in user and their token, kept in localStorage so that a reload
// (or a new tab) stays signed in.

import type { User } from "./gen/pods/v1/types_pb";

const key = "pods.session";

/** What we keep of a session: the bearer token and who it belongs to. */
export interface Session {
  token: string;
  userId: string;
  handle: string;
  displayName: string;
  /** The user's time zone (IANA); missing in sessions saved before it was kept. */
  timezone?: string;
}

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(token: string, user: User): Session {
  const s: Session = { token, userId: user.id, handle: user.handle, displayName: user.displayName, timezone: user.timezone };
  localStorage.setItem(key, JSON.stringify(s));
  return s;
}

export function clearSession(): void {
  localStorage.removeItem(key);
}

/**
 * The device token of each handle that logged in here: kept after logging
 * out and sent with the next log-in, it gives this browser a limit of
 * failed password checks of its own, so that someone guessing the
 * password cannot lock its owner out here.
 */
const deviceKey = (handle: string) => `pods.device.${handle}`;

export function loadDeviceToken(handle: string): string {
  try {
    return localStorage.getItem(deviceKey(handle)) ?? "";
  } catch {
    return "";
  }
}

export function saveDeviceToken(handle: string, token: string): void {
  if (!token) return;
  try {
    localStorage.setItem(deviceKey(handle), token);
  } catch {
    // A full or disabled storage: the next log-in goes without.
  }
}
