// A podsd process for the end-to-end tests: built once from this checkout,
// started and stopped on a fixed port and data folder, so that a restart
// keeps the data (its private Postgres lives in the data folder).
import { spawn, execFileSync } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../..", import.meta.url));

export class Podsd {
  /** build compiles podsd into a fresh temporary folder. */
  static async build() {
    const dir = await mkdtemp(join(tmpdir(), "pods-e2e-"));
    // Postgres runs as another user (podsd runs it as "postgres" when we are
    // root): it must be able to reach its data folder.
    await chmod(dir, 0o755);
    const bin = join(dir, "podsd");
    execFileSync("go", ["build", "-o", bin, "./cmd/podsd"], { cwd: repo, stdio: "inherit" });
    return new Podsd(dir, bin, await freePort());
  }

  constructor(dir, bin, port) {
    this.dir = dir;
    this.bin = bin;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = "";
  }

  /** start runs podsd and resolves once it serves the web client. */
  async start() {
    const args = ["--addr", `127.0.0.1:${this.port}`, "--data-dir", join(this.dir, "data"), "--presence-grace", "1s", "--log-level", "warn"];
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    for (const s of [proc.stdout, proc.stderr]) s.on("data", (d) => (this.log += d));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`podsd exited: ${this.log}`);
      try {
        if ((await fetch(this.url + "/")).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`podsd did not start in 60 s: ${this.log}`);
  }

  /** stop sends SIGTERM and waits for podsd (and its Postgres) to exit. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 30_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** freeze stops podsd in its tracks (SIGSTOP): connections stay open, nothing moves. */
  freeze() {
    this.proc.kill("SIGSTOP");
  }

  /** thaw lets a frozen podsd go on (SIGCONT). */
  thaw() {
    this.proc.kill("SIGCONT");
  }

  /** remove stops podsd and deletes its binary and data. */
  async remove() {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** freePort asks the kernel for a port that is free now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
