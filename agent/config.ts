// One typed, validated configuration, from a YAML file, environment variables and flags (flags win
// over the environment, which wins over the file). Checked at start; every error names the key.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { ValidationError, validator } from './api/validate.js';
import type { Config, ConfigChecked } from './config-schema.js';
import { CONFIG_KEYS, checkConfig } from './config.generated.js';
import { cidrList } from './node/addresses.js';

export type { Config };

/** The generated check (agent/config-schema.ts is its source); fills in the defaults as it goes. */
const validateConfig = validator<ConfigChecked>(checkConfig, 'configuration', '');

const isCidrList = (cidrs: string[]) => {
  try {
    cidrList(cidrs);
    return true;
  } catch {
    return false;
  }
};

/** 127.0.0.0/8, ::1 or localhost: reachable from this host only. */
export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The configuration checked: every default filled in (the generated check does that as it runs, so it
 * is handed a copy), then what JSON Schema cannot say. Problems are named by key.
 */
function checked(given: Record<string, unknown>): { config?: Config; problems: string[] } {
  const config = structuredClone(given);
  let problems: string[];
  try {
    validateConfig(config);
    problems = [];
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problems = err.problems;
  }
  if (problems.length > 0) return { problems };
  const valid = config as ConfigChecked;
  valid.probes.allowedTargets.forEach((cidr, i) => {
    if (!isCidrList([cidr])) problems.push(`probes.allowedTargets[${i}]: must be an address or a CIDR such as 10.0.0.0/8 (got ${JSON.stringify(cidr)})`);
  });
  const { serve, tokenFile, tokenSecret } = valid.builtinProcessors;
  if (serve && !tokenFile && !tokenSecret && !isLoopback(valid.listen)) {
    problems.push(`builtinProcessors.serve: serving the built-in processors on ${valid.listen}, which other hosts can reach, needs builtinProcessors.tokenFile or tokenSecret`);
  }
  if (problems.length > 0) return { problems };
  // Trusted namespaces left out: the agent's own alone.
  return { config: { ...valid, abnormalNamespaces: valid.abnormalNamespaces ?? [valid.namespace], processorNamespaces: valid.processorNamespaces ?? [valid.namespace] }, problems };
}

/** Every default, read off the schema (nodeName is the host's name, found at load time). */
export const DEFAULTS: Omit<Config, 'nodeName' | 'kubeconfig'> = (() => {
  const { nodeName: _, ...defaults } = checked({ nodeName: 'defaults' }).config!;
  return defaults;
})();

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
  eventLoopSampleMs: { flag: 'event-loop-sample-ms', env: 'NODEMEDIC_EVENT_LOOP_SAMPLE_MS', type: 'number' },
} as const satisfies Partial<Record<keyof Config, { flag: string; env: string; type: 'string' | 'number' }>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export const CONFIG_FLAGS_HELP = `  --config FILE        YAML configuration file (keys: ${CONFIG_KEYS.join(', ')})
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

  // The schema fills in every default, section by section and key by key.
  const merged: Record<string, unknown> = { nodeName: hostname().toLowerCase(), ...file };
  if (flags['no-default-rules']) merged.sources = { ...(isPlainObject(merged.sources) ? merged.sources : {}), defaultRules: false };
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
  if (problems.length > 0) throw new ConfigError(problems);
  const result = checked(merged);
  if (!result.config) throw new ConfigError(result.problems);
  return result.config;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
