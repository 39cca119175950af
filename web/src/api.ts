// The Connect clients of every service, on one transport that adds the
// bearer token of the current session.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/pods/v1/auth_pb";
import { ChatService } from "./gen/pods/v1/chat_pb";
import { PodService } from "./gen/pods/v1/pod_pb";
import { ProgressService } from "./gen/pods/v1/progress_pb";
import { RealtimeService } from "./gen/pods/v1/realtime_pb";

/** Clients of the Pods API. */
export interface Api {
  auth: Client<typeof AuthService>;
  pods: Client<typeof PodService>;
  chat: Client<typeof ChatService>;
  realtime: Client<typeof RealtimeService>;
  progress: Client<typeof ProgressService>;
}

/** How long a unary call may take before it counts as failed. */
export const callTimeoutMs = 10_000;

/**
 * createApi returns clients on the page's own origin. token is read on
 * every call, so signing in or out needs no new clients.
 */
export function createApi(token: () => string | null): Api {
  const auth: Interceptor = (next) => (req) => {
    const t = token();
    if (t) req.header.set("Authorization", `Bearer ${t}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: location.origin,
    useBinaryFormat: true,
    interceptors: [auth],
  });
  return {
    auth: createClient(AuthService, transport),
    pods: createClient(PodService, transport),
    chat: createClient(ChatService, transport),
    realtime: createClient(RealtimeService, transport),
    progress: createClient(ProgressService, transport),
  };
}

/** errorText turns a failed call into a short sentence for the user. */
export function errorText(err: unknown): string {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.DeadlineExceeded:
      return "Can't reach the server.";
    case Code.ResourceExhausted:
      return "Slow down a little.";
    case Code.InvalidArgument:
      return fieldLabelled(e.rawMessage) || Code[e.code];
    default:
      return e.rawMessage || Code[e.code];
  }
}

/** What the forms call the fields that the server names in its errors. */
const fieldLabels: Record<string, string> = {
  body: "Message",
  capacity: "Size",
  date: "Date",
  display_name: "Display name",
  emoji: "Reaction",
  habit: "Habit",
  handle: "Handle",
  invite_code: "Invite code",
  name: "Name",
  note: "Note",
  password: "Password",
  time: "Reminder time",
  timezone: "Time zone",
};

/** fieldLabelled turns "display_name: must not be empty" into "Display name: must not be empty". */
export function fieldLabelled(message: string): string {
  const m = /^([a-z_]+): (.*)$/s.exec(message);
  return m && fieldLabels[m[1]] ? `${fieldLabels[m[1]]}: ${m[2]}` : message;
}

/** errorCode returns the Connect code of a failed call. */
export function errorCode(err: unknown): Code {
  return ConnectError.from(err).code;
}
