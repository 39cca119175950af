// Unit tests of how failed calls read to the user.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorText } from "../src/api";

test("a refused field is named as the form names it", () => {
  const refused = (message: string) => errorText(new ConnectError(message, Code.InvalidArgument));
  assert.equal(refused("display_name: must not be empty"), "Display name: must not be empty");
  assert.equal(refused("handle: may hold only letters, digits, '_', '.' and '-'"), "Handle: may hold only letters, digits, '_', '.' and '-'");
  assert.equal(refused("cursors: a seq must not be negative"), "cursors: a seq must not be negative"); // not a form's
  assert.equal(errorText(new ConnectError("no", Code.Unavailable)), "Can't reach the server.");
});
