// Running the agent in tests: in-process (startAgent, the same code the binary runs) or as the real
// `nodemedic agent` process, for the tests that kill it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { DEFAULTS, type Config } from '../../agent/config.js';
import { kindOfPlural, type ProcessorPlural } from '../../agent/api/kinds.js';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { AGENT_NAMESPACE, REPO_ROOT } from '../cluster/cluster.js';
import { GROUP, VERSION, customObjects, getAbnormal, kubeconfigFile } from './kube.js';
import { waitFor } from './wait.js';

export { waitFor };

export const BIN = path.join(REPO_ROOT, 'dist/agent/main.js');

/** The environment the DaemonSet gives the agent (its plain values: NODE_OPTIONS and the malloc settings), as the benchmarks run it. */
export function daemonSetEnv(): Record<string, string> {
  for (const doc of parseAllDocuments(readFileSync(path.join(REPO_ROOT, 'manifests/deploy/daemonset.yaml'), 'utf8'))) {
    const ds = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } } };
    if (ds?.kind !== 'DaemonSet') continue;
    const env = ds.spec?.template?.spec?.containers?.[0]?.env ?? [];
    return Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  }
  throw new Error('manifests/deploy/daemonset.yaml holds no DaemonSet');
}

/** Where the image holds the checkout's package.json, dist/ and node_modules/ (the Dockerfile's WORKDIR). */
const IMAGE_DIR = '/opt/nodemedic';

/** The image's ENTRYPOINT (Dockerfile): node, the flags it is started with, the agent's script. */
export function imageEntrypoint(): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const entrypoint = line ? (JSON.parse(line[1]!) as string[]) : [];
  if (entrypoint[0] !== 'node' || !entrypoint.at(-1)?.startsWith(`${IMAGE_DIR}/dist/`)) throw new Error(`the Dockerfile's ENTRYPOINT is not ["node", flags..., "${IMAGE_DIR}/dist/..."]`);
  return entrypoint;
}

/** The flags the image starts node with (V8's, refused in NODE_OPTIONS). */
export const imageNodeFlags = () => imageEntrypoint().slice(1, -1);

/** The script the image runs (the agent bundled by `npm run bundle`), relative to the checkout. */
const imageScript = () => path.relative(IMAGE_DIR, imageEntrypoint().at(-1)!);

/** The agent as it is shipped (the bundle, the image's node flags, the DaemonSet's environment): spawnAgent's options. */
export const asShipped = () => ({ env: daemonSetEnv(), nodeFlags: imageNodeFlags(), bin: path.join(REPO_ROOT, imageScript()) });

/** How the shipped agent is started, as one line for a benchmark's report. */
export const shippedLine = () => [`node ${imageNodeFlags().join(' ')} ${imageScript()}`, ...Object.entries(daemonSetEnv()).map(([k, v]) => `${k}=${v}`)].join(', ');

/** The agent on `nodeName`, in this process, with the agent's own identity and RBAC. */
export async function startKubeAgent(nodeName: string, overrides: Partial<Config> = {}): Promise<RunningAgent> {
  const config: Config = {
    ...DEFAULTS, nodeName, store: 'kube', listen: '127.0.0.1:0', logLevel: 'warn', resyncSeconds: 30,
    // Other test files write to the kernel log; only the tests about log sources watch it.
    sources: { ...DEFAULTS.sources, defaultRules: false },
    // Each test creates its Abnormals and registers its processors in a namespace of its own.
    abnormalNamespaces: ['*'],
    processorNamespaces: ['*'],
    // One agent of the whole cluster watches Warning events; only the test about events takes part.
    events: { ...DEFAULTS.events, enabled: false },
    // Each agent its own state (the recovery history is kept there); the rails are tested on their own.
    stateDir: mkdtempSync(path.join(tmpdir(), 'nodemedic-agent-')),
    recovery: { ...DEFAULTS.recovery, maxPerHour: 1000, cooldownSeconds: 0, maxNodesAtOnce: 1000, budgetNamespace: AGENT_NAMESPACE },
    kubeconfig: kubeconfigFile('agent'),
    ...overrides,
  };
  return startAgent(config, pino({ level: config.logLevel }));
}

/** The port of the agent logging to `logFile`, from its latest "agent started" line, once there is one. */
export async function startedPort(logFile: string, timeoutMs = 60_000): Promise<number> {
  const port = await waitFor('the agent to start', async () => {
    const lines = (await readFile(logFile, 'utf8').catch(() => '')).split('\n');
    return lines.filter((l) => l.includes('"msg":"agent started"')).map((l) => /"listen":"[^"]*:(\d+)"/.exec(l)?.[1]).pop();
  }, timeoutMs);
  return Number(port);
}

/**
 * `nodemedic agent ARGS` as a child process, its output appended to `logFile`. Without the built-in
 * log rules unless asked: other test files write to the kernel log.
 */
export function spawnAgent(args: string[], logFile: string, options: { defaultRules?: boolean; env?: NodeJS.ProcessEnv; nodeFlags?: string[]; node?: string; cwd?: string; bin?: string } = {}): ChildProcess & { exited: Promise<number | null> } {
  const env = options.env ?? {};
  const child = spawn(options.node ?? process.execPath, [...(options.nodeFlags ?? []), options.bin ?? BIN, 'agent', '--listen', '127.0.0.1:0', ...(options.defaultRules ? [] : ['--no-default-rules']), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return Object.assign(child, { exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))) });
}


/** Resolves to the Abnormal once its phase is terminal. */
export const finished = (namespace: string, name: string, timeoutMs = 30_000) =>
  waitFor(`${namespace}/${name} to finish`, async () => {
    const a = await getAbnormal(namespace, name);
    return isTerminal(a.status?.phase) ? a : undefined;
  }, timeoutMs);

export function registerProcessor(plural: ProcessorPlural, namespace: string, name: string, spec: Record<string, unknown>) {
  const kind = kindOfPlural(plural);
  return customObjects().createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace, plural,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name, namespace }, spec },
  });
}

export const ref = (namespace: string, name: string) => ({ namespace, name });
export type { Abnormal };
