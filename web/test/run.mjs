// Runs the unit tests: bundles each test/*.test.ts with esbuild (node 20
// can't run TypeScript) into a temporary folder and runs node's test runner
// on the bundles.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const tests = (await readdir(here)).filter((f) => f.endsWith(".test.ts"));
const out = await mkdtemp(join(tmpdir(), "pods-web-test-"));
try {
  await build({
    entryPoints: tests.map((f) => join(here, f)),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir: out,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const files = tests.map((f) => join(out, f.replace(/\.ts$/, ".mjs")));
  const res = spawnSync(process.execPath, ["--test", ...files], { stdio: "inherit" });
  process.exitCode = res.status ?? 1;
} finally {
  await rm(out, { recursive: true, force: true });
}
