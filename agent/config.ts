// One typed, validated configuration, from a YAML file, environment variables and flags (flags win
// over the environment, which wins over the file). Checked at start; every error names the key.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { z } from 'zod';
import { SHIM_EXECUTABLES } from './processors/shims.js';

const listenAddress = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:9095');

export const ConfigSchema = z.strictObject({
  /** This node's name; the agent handles only Abnormals whose spec.nodeName is this. */
  nodeName: z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a node name (lower-case DNS name)'),
  /** kube: custom resources in the cluster; file: files in stateDir (no cluster needed). */
  store: z.enum(['kube', 'file']),
  /** The file store's directory. */
  stateDir: z.string().min(1),
  /** Where the symptom sources create Abnormals (kube store). */
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').max(63),
  /**
   * Namespaces whose InformationCollector / Diagnoser / Recoverer objects the agent trusts (kube store;
   * "*" for all). Anyone who can create such an object there can make every agent call it with the
   * node's Abnormals, and a Recoverer can act on the node, so by default only the agent's own.
   */
  processorNamespaces: z.array(z.string().min(1)).min(1),
  /** The kube store's kubeconfig; absent: in-cluster, else $KUBECONFIG, else ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  /** How many Abnormals are worked on at once. */
  concurrency: z.number().int().min(1).max(256),
  /** The agent's HTTP server: /healthz, /readyz, /processors/... */
  listen: listenAddress,
  /** Serve built-in recoverers over HTTP too. Off: anyone who can reach the port could make the node act. */
  serveRecoverers: z.boolean(),
  /** Used for HTTP processors whose object sets no timeoutSeconds. */
  processorTimeoutSeconds: z.number().int().min(1).max(600),
  /** Largest reply accepted from an HTTP processor. */
  maxReplyBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
  /** Every Abnormal not yet finished is looked at again this often, whatever the watch says. */
  resyncSeconds: z.number().int().min(5).max(86_400),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
  /** Which logs are watched, and with which rules. */
  sources: z.strictObject({
    /** The built-in kernel rules on /dev/kmsg (agent/sources/default-rules.ts). */
    defaultRules: z.boolean(),
    /** Rule files, NPD JSON or nodemedic YAML; each file's plugin and logPath say what it reads. */
    ruleFiles: z.array(z.string().min(1)),
    /** Read with the kernel rules when /dev/kmsg cannot be opened; "" for none. */
    kernelLogFallback: z.string(),
    /** The journal journald sources read: "" for the system journal, else a journal directory. */
    journalDirectory: z.string(),
  }),
  /** Script processors: a directory per kind ("" for none), the default timeout, the output cap. */
  scripts: z.strictObject({
    collectors: z.string(),
    diagnosers: z.string(),
    recoverers: z.string(),
    defaultTimeoutSeconds: z.number().int().min(1).max(3600),
    maxOutputBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
  }),
  /** Warning events about nodes and their pods (kube store); one agent at a time watches them. */
  events: z.strictObject({
    enabled: z.boolean(),
    includeReasons: z.array(z.string()),
    excludeReasons: z.array(z.string()),
    lockName: z.string().min(1),
    lockTTLSeconds: z.number().int().min(3).max(3600),
  }),
  /** Probes (spec.nodeProbe, spec.podProbe). Exec runs commands as root on the node or in its containers: off unless set. */
  probes: z.strictObject({
    allowExec: z.boolean(),
    /** The container runtime's CRI endpoint, as the kubelet's --container-runtime-endpoint (exec in a container). */
    criEndpoint: z.string().regex(/^unix:\/\/\//, 'a unix socket: unix:///path'),
  }),
  /** Pods of this node still there marginSeconds after their deletion deadline (kube store only). */
  stuckPods: z.strictObject({
    enabled: z.boolean(),
    marginSeconds: z.number().int().min(0).max(86_400),
    checkSeconds: z.number().min(0.1).max(3600),
  }),
  /** The Alertmanager webhook receiver at /v1/alerts; off until a token is configured. */
  alerts: z.strictObject({
    /** A file holding the bearer token Alertmanager must send (file store, or any store). */
    tokenFile: z.string(),
    /** A Secret holding it (kube store), in `namespace` (default: the agent's). */
    tokenSecret: z.strictObject({ namespace: z.string().min(1).optional(), name: z.string().min(1), key: z.string().min(1) }).optional(),
    /** Labels that name an alert's node, tried in order; an instance's ":port" is dropped. */
    nodeLabels: z.array(z.string().min(1)).min(1),
  }),
  /** The container-shim processors (collectors/goroutine-dump.ts, diagnosers/unresponsive-shim.ts). */
  shims: z.strictObject({
    /** Where containerd logs, and so where a shim's goroutine dump lands: "journald:UNIT" or a file path. */
    containerdLog: z.string().min(1),
    /** How long a shim is given to answer SIGUSR1 with its dump. */
    dumpTimeoutSeconds: z.number().min(0.5).max(300),
    /** How long a shim must stay stopped (T) or in uninterruptible sleep (D), with no dump, to be diagnosed unresponsive. */
    unresponsiveSeconds: z.number().min(0).max(3600),
  }),
  /** Recovery, the one stage that changes the node, and its rails (agent/pipeline/rails.ts). */
  recovery: z.strictObject({
    /** Act on nothing: built-in recoverers say what they would do, others are not called. */
    dryRun: z.boolean(),
    /** What the signal-process recoverer sends. */
    signal: z.enum(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP']),
    /** Executables (file names) the signal-process recoverer may signal. */
    allowedExecutables: z.array(z.string().min(1)).min(1),
    /** How long a recoverer waits to see the symptom gone after acting. */
    confirmSeconds: z.number().int().min(1).max(3600),
    /** Recoveries on this node in any hour, at most. */
    maxPerHour: z.number().int().min(1).max(1000),
    /** A fault with the same fingerprint recovered less than this ago is left to a person. */
    cooldownSeconds: z.number().int().min(0).max(7 * 86_400),
    /** Nodes recovering at the same moment across the cluster (kube store), at most. */
    maxNodesAtOnce: z.number().int().min(1).max(100_000),
    /** The ConfigMap holding that budget (in budgetNamespace, default the agent's), and how long a slot is held at most. */
    budgetLockName: z.string().min(1),
    budgetNamespace: z.string().min(1).optional(),
    budgetTTLSeconds: z.number().int().min(10).max(86_400),
  }),
  /** Dedup and flood control between the sources and the store (agent/sources/sink.ts). */
  symptoms: z.strictObject({
    flushSeconds: z.number().min(0.1).max(300),
    cooldownSeconds: z.number().int().min(0).max(86_400),
    createBurst: z.number().int().min(1).max(1000),
    createPerMinute: z.number().min(0.1).max(6000),
    maxTracked: z.number().int().min(10).max(1_000_000),
  }),
});

export type Config = z.infer<typeof ConfigSchema>;

export const DEFAULTS: Omit<Config, 'nodeName' | 'kubeconfig'> = {
  store: 'file',
  stateDir: '/var/lib/nodemedic',
  namespace: 'nodemedic-system',
  processorNamespaces: ['nodemedic-system'],
  concurrency: 4,
  listen: '127.0.0.1:9095',
  serveRecoverers: false,
  processorTimeoutSeconds: 30,
  maxReplyBytes: 1024 * 1024,
  resyncSeconds: 300,
  logLevel: 'info',
  sources: { defaultRules: true, ruleFiles: [], kernelLogFallback: '/var/log/kern.log', journalDirectory: '' },
  scripts: {
    collectors: '/etc/nodemedic/collectors', diagnosers: '/etc/nodemedic/diagnosers', recoverers: '/etc/nodemedic/recoverers',
    defaultTimeoutSeconds: 30, maxOutputBytes: 1024 * 1024,
  },
  events: { enabled: true, includeReasons: [], excludeReasons: [], lockName: 'nodemedic-event-watcher', lockTTLSeconds: 30 },
  probes: { allowExec: false, criEndpoint: 'unix:///run/containerd/containerd.sock' },
  stuckPods: { enabled: true, marginSeconds: 60, checkSeconds: 10 },
  alerts: { tokenFile: '', nodeLabels: ['node', 'kubernetes_node', 'nodename', 'instance'] },
  shims: { containerdLog: 'journald:containerd.service', dumpTimeoutSeconds: 5, unresponsiveSeconds: 10 },
  recovery: {
    dryRun: false, signal: 'SIGKILL', allowedExecutables: [...SHIM_EXECUTABLES], confirmSeconds: 60,
    maxPerHour: 6, cooldownSeconds: 3600, maxNodesAtOnce: 3, budgetLockName: 'nodemedic-recovery-budget', budgetTTLSeconds: 600,
  },
  symptoms: { flushSeconds: 5, cooldownSeconds: 600, createBurst: 10, createPerMinute: 30, maxTracked: 10_000 },
};

/** Flag, environment variable and type of every key that can be set outside the file. */
const OVERRIDES = {
  nodeName: { flag: 'node-name', env: 'NODE_NAME', type: 'string' },
  store: { flag: 'store', env: 'NODEMEDIC_STORE', type: 'string' },
  stateDir: { flag: 'state-dir', env: 'NODEMEDIC_STATE_DIR', type: 'string' },
  kubeconfig: { flag: 'kubeconfig', env: 'NODEMEDIC_KUBECONFIG', type: 'string' },
  namespace: { flag: 'namespace', env: 'POD_NAMESPACE', type: 'string' },
  concurrency: { flag: 'concurrency', env: 'NODEMEDIC_CONCURRENCY', type: 'number' },
  listen: { flag: 'listen', env: 'NODEMEDIC_LISTEN', type: 'string' },
  logLevel: { flag: 'log-level', env: 'NODEMEDIC_LOG_LEVEL', type: 'string' },
} as const satisfies Partial<Record<keyof Config, { flag: string; env: string; type: 'string' | 'number' }>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export const CONFIG_FLAGS_HELP = `  --config FILE        YAML configuration file (keys: ${Object.keys(ConfigSchema.shape).join(', ')})
  --no-default-rules   do not watch /dev/kmsg with the built-in kernel rules (sources.defaultRules: false)
${Object.entries(OVERRIDES).map(([key, o]) => `  --${o.flag.padEnd(19)}${key}; environment ${o.env}`).join('\n')}`;

/** The configuration from `args` (the agent's flags), `env` and the file --config names. */
export async function loadConfig(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const options = Object.fromEntries([
    ['config', { type: 'string' }],
    ['no-default-rules', { type: 'boolean' }],
    ...Object.values(OVERRIDES).map((o) => [o.flag, { type: 'string' }]),
  ]);
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args, options: options as never, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }

  let file: Record<string, unknown> = {};
  if (flags.config) {
    try {
      file = (parse(await readFile(flags.config, 'utf8')) ?? {}) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError([`--config ${flags.config}: ${(err as Error).message}`]);
    }
    if (typeof file !== 'object' || Array.isArray(file)) throw new ConfigError([`--config ${flags.config}: must be a YAML mapping of keys to values`]);
  }

  const merged: Record<string, unknown> = { ...DEFAULTS, nodeName: hostname().toLowerCase(), ...file };
  // Sections are merged key by key, so a file may set one key of a section and keep the defaults of the rest.
  for (const section of ['sources', 'symptoms', 'alerts', 'stuckPods', 'probes', 'events', 'scripts', 'shims', 'recovery'] as const) {
    if (isPlainObject(file[section])) merged[section] = { ...DEFAULTS[section], ...file[section] };
  }
  if (flags['no-default-rules']) merged.sources = { ...(merged.sources as object), defaultRules: false };
  const problems: string[] = [];
  for (const [key, o] of Object.entries(OVERRIDES)) {
    const [raw, from] = flags[o.flag] !== undefined ? [flags[o.flag], `--${o.flag}`] : env[o.env] ? [env[o.env], o.env] : [undefined, ''];
    if (raw === undefined) continue;
    if (o.type === 'number') {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) problems.push(`${key}: ${from} must be a number (got ${JSON.stringify(raw)})`);
      else merged[key] = n;
    } else {
      merged[key] = raw;
    }
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const keys = issue.code === 'unrecognized_keys' ? issue.keys : [issue.path.join('.')];
      for (const key of keys) {
        problems.push(issue.code === 'unrecognized_keys' ? `${key}: unknown key` : `${key}: ${issue.message} (got ${JSON.stringify(merged[key])})`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data!;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
