// Drives `pyro mcp serve` with the official TypeScript MCP client and prints
// one JSON object with what it saw. Usage:
//   node client.mjs stdio PYRO_BIN PROFILE SCENARIO
//   node client.mjs http  URL TOKEN SCENARIO
// SCENARIO: "vm_run", "long_run" (a 12 s command with a 5 s client timeout), "workspace_loop" (needs a seed dir in PYRO_E2E_SEED) or
// "shell_service" (workspace-full) or "commands" (a background command followed by cursor, waited for, killed).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, extra, scenario] = process.argv.slice(2);
const transport = mode === "stdio"
  ? new StdioClientTransport({
      command: target,
      // PYRO_E2E_HOST_PATH: a directory the model may seed from and export into.
      args: ["mcp", "serve", "--profile", extra, ...(process.env.PYRO_E2E_HOST_PATH ? ["--host-path", process.env.PYRO_E2E_HOST_PATH + ":rw"] : [])],
      env: process.env, stderr: "inherit",
    })
  : new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers: { Authorization: `Bearer ${extra}` } } });

const client = new Client({ name: "pyro-e2e-ts", version: "1.0.0" });
await client.connect(transport);
const out = { tools: (await client.listTools()).tools.map((t) => t.name).sort() };

const call = async (name, args) => {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name}: ${res.content.map((c) => c.text).join("")}`);
  return res.structuredContent;
};

if (scenario === "vm_run") {
  out.vm_run = await call("vm_run", { command: "echo from-typescript; exit 3" });
} else if (scenario === "long_run") {
  // A command longer than the client's timeout: it must survive because the
  // server reports progress while it runs and the client resets on progress.
  out.progress = 0;
  const res = await client.callTool({ name: "vm_run", arguments: { command: "sleep 12; echo survived" } }, undefined, {
    timeout: 5000, resetTimeoutOnProgress: true, onprogress: () => { out.progress++; },
  });
  if (res.isError) throw new Error(`vm_run: ${res.content.map((c) => c.text).join("")}`);
  out.long_run = res.structuredContent;
} else if (scenario === "workspace_loop") {
  const ws = await call("workspace_create", { seed_path: process.env.PYRO_E2E_SEED });
  const id = ws.workspace_id;
  out.first = await call("workspace_exec", { workspace_id: id, command: "./test.sh" });
  out.patch = await call("workspace_patch_apply", { workspace_id: id, patch: "--- a/src/value\n+++ b/src/value\n@@ -1 +1 @@\n-wrong\n+right\n" });
  out.second = await call("workspace_exec", { workspace_id: id, command: "./test.sh" });
  out.read = await call("workspace_file_read", { workspace_id: id, path: "src/value" });
  out.diff = await call("workspace_diff", { workspace_id: id });
  out.export = await call("workspace_export", { workspace_id: id, path: "src/value", output_path: process.env.PYRO_E2E_EXPORT });
  out.deleted = await call("workspace_delete", { workspace_id: id });
} else if (scenario === "shell_service") {
  const id = (await call("workspace_create", { environment: "debian:12-build" })).workspace_id;
  const sh = (await call("shell_open", { workspace_id: id })).shell_id;
  await call("shell_write", { workspace_id: id, shell_id: sh, input: "python3 -q" });
  await call("shell_write", { workspace_id: id, shell_id: sh, input: "print(7 * 191)" });
  let text = "", cursor = 0;
  for (let i = 0; i < 30 && !text.includes("1337"); i++) {
    const r = await call("shell_read", { workspace_id: id, shell_id: sh, cursor, plain: true, wait_for_idle_ms: 500 });
    text += r.output + "\n";
    cursor = r.next_cursor;
  }
  out.shell_text = text;
  out.service = await call("service_start", { workspace_id: id, name: "web", command: "python3 -m http.server 8090", ready_tcp: 8090 });
  out.fetch = await call("workspace_exec", { workspace_id: id, command: "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8090/" });
  out.stopped = await call("service_stop", { workspace_id: id, name: "web" });
  await call("workspace_delete", { workspace_id: id });
} else if (scenario === "commands") {
  const id = (await call("workspace_create", {})).workspace_id;
  const started = await client.callTool({ name: "workspace_exec", arguments: { workspace_id: id, background: true,
    command: "for i in $(seq 1 5); do echo step$i; sleep 0.3; done; echo warn >&2; exit 4" } });
  out.started = started.structuredContent;
  out.started_text = started.content.map((c) => c.text).join("");
  const cmd = out.started.command_id;
  // Follow stdout by cursor until the command ended and nothing is left.
  let stdout = "", stderr = "", cursor = 0, errCursor = 0, reads = 0;
  for (;;) {
    const l = await call("command_logs", { workspace_id: id, command_id: cmd, cursor, stderr_cursor: errCursor });
    if (l.stdout_from !== cursor) throw new Error(`read from ${cursor} started at ${l.stdout_from}`);
    stdout += l.stdout; stderr += l.stderr; cursor = l.next_cursor; errCursor = l.next_stderr_cursor; reads++;
    if (l.state !== "running" && !l.more) { out.ended = l; break; }
    if (reads > 600) throw new Error("the command never ended");
    await new Promise((r) => setTimeout(r, 200));
  }
  out.followed = { stdout, stderr, reads };
  out.waited = await call("command_wait", { workspace_id: id, command_id: cmd, timeout_seconds: 5 });
  const sleeper = (await call("workspace_exec", { workspace_id: id, background: true, command: "sleep 600" })).command_id;
  out.status = await call("command_status", { workspace_id: id, command_id: sleeper });
  out.killed = await call("command_kill", { workspace_id: id, command_id: sleeper });
  // A capped foreground exec names the way to its whole output.
  const capped = await client.callTool({ name: "workspace_exec", arguments: { workspace_id: id, command: "seq 1 5000", max_output_bytes: 1024 } });
  out.capped = capped.structuredContent;
  out.capped_text = capped.content.map((c) => c.text).join("");
  const all = await call("command_logs", { workspace_id: id, command_id: out.capped.command_id, max_bytes: 1048576 });
  out.capped_full_bytes = all.stdout.length;
  await call("workspace_delete", { workspace_id: id });
}
await client.close();
console.log(JSON.stringify(out));
