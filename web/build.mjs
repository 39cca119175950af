// Builds web/dist: the bundle of src/main.ts plus the static files. The
// output is committed and embedded in podsd, so it must be reproducible:
// same sources and esbuild version, same bytes.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const out = new URL("./dist/", import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out);
await build({
  entryPoints: [new URL("./src/main.ts", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  outfile: new URL("app.js", out).pathname,
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) {
  await copyFile(new URL(`./src/${f}`, import.meta.url), new URL(f, out));
}
