// What an idle agent has loaded is what it pays for on every node (docs/benchmarks.md, memory): the
// packages only some configurations need are loaded when first used, not at start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../scripts/gen-api.js';

/** Start the agent (file store, the default sources) in a fresh process; the packages it loaded, and whether Node's bundled undici was. */
function loadedAtStart(): { packages: string[]; nodeUndici: boolean; ajvCompiler: boolean } {
  const state = mkdtempSync(path.join(tmpdir(), 'nodemedic-lean-'));
  const program = `
    import { register } from 'node:module';
    const seen = new Set();
    const MARKER = 'data:text/javascript,export default "lean-imports: the last import"';
    let markerSeen;
    const lastSeen = new Promise((resolve) => (markerSeen = resolve));
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (url) => { seen.add(url); if (url === MARKER) markerSeen(); }); // port1 keeps this process alive until the marker's message is in
    register('data:text/javascript,' + encodeURIComponent(\`
      let port; export function initialize(data) { port = data.port; }
      export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }\`), { data: { port: port2 }, transferList: [port2] });
    const { loadConfig } = await import('./dist/agent/config.js');
    const { startAgent } = await import('./dist/agent/agent.js');
    const { pino } = await import('pino');
    const agent = await startAgent(await loadConfig(['--store', 'file', '--state-dir', ${JSON.stringify(state)}, '--listen', '127.0.0.1:0', '--node-name', 'lean']), pino({ level: 'silent' }));
    await agent.stop();
    // The hook's messages arrive in order: once this last import's has, every earlier one has too.
    await import(MARKER);
    await lastSeen;
    const packages = [...new Set([...seen].flatMap((u) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(u)?.[1] ?? []))].sort();
    const { createRequire } = await import('node:module');
    const ajvCompiler = Object.keys(createRequire(import.meta.url).cache).some((file) => /node_modules\\/ajv\\/dist\\/(core|compile)/.test(file));
    console.log(JSON.stringify({ packages, nodeUndici: process.moduleLoadList.some((m) => m.includes('internal/deps/undici')), ajvCompiler }));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', program], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { packages: string[]; nodeUndici: boolean; ajvCompiler: boolean };
}

test('an agent at start loads neither execa, undici, zod nor the Kubernetes client, nor Node\'s bundled undici', () => {
  const { packages, nodeUndici } = loadedAtStart();
  // zod is the configuration's source of truth at build time only (agent/config-schema.ts).
  for (const lazy of ['execa', 'undici', 'zod', '@kubernetes/client-node', '@grpc/grpc-js']) assert.ok(!packages.includes(lazy), `${lazy} loaded at start: ${packages.join(', ')}`);
  assert.ok(packages.includes('pino') && packages.includes('yaml'), packages.join(', ')); // the hook saw the packages it did load
  assert.equal(nodeUndici, false, "Node's bundled undici was loaded (an ESM import of node:http does that on Node 24: use agent/lib/node-http.ts)");
});

test('the agent validates with the checks `npm run gen` compiled, never loading ajv\'s compiler', () => {
  assert.equal(loadedAtStart().ajvCompiler, false, 'ajv/dist/core or ajv/dist/compile was loaded: import validators.generated.ts, not ajv');
});
