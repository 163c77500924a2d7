// Rule files, as `sources.ruleFiles` lists them. Two formats:
//   - node-problem-detector's monitor configurations, as they are (../shared/npd holds NPD's own):
//       log monitors (plugin kmsg, filelog, journald) become rule sets (rules.ts), with NPD's filelog
//         translator (translate.ts), lookback, skipList and conditions;
//       custom-plugin monitors (plugin custom) become plugin monitors (custom-plugins.ts runs them);
//       system-stats monitors are refused, saying what they are and what to use instead, and so are
//         monitors written for Windows nodes;
//   - nodemedic's own YAML (kind: LogRules), which adds what a created Abnormal should carry and how
//     many lines after a match belong to it.
// Where NPD's own expressions hide a rule (its filelog message expression never yields text the rule
// could match), nodemedic matches the rule anyway and says so at load time: see hiddenRules().
import { parse } from 'yaml';
import { checkConditions, compileRuleSet, longestLiteral, RuleError, undeclaredConditions, type ConditionSpec, type RuleSet, type RuleSetSpec, type RuleSpec } from './rules.js';
import { LineTranslator } from './translate.js';

/** One custom plugin of a plugin monitor: run every interval; exit 0 OK, 1 a problem, anything else unknown. */
export type PluginRuleSpec = { type: 'temporary' | 'permanent'; condition?: string; reason: string; path: string; args: string[]; timeoutMs: number };

export type PluginMonitorSpec = {
  /** NPD's "source": a name for the monitor, reported with each problem. */
  source: string;
  intervalMs: number;
  maxOutputLength: number;
  /** Plugins of this monitor running at once, at most. */
  concurrency: number;
  conditions: ConditionSpec[];
  rules: PluginRuleSpec[];
};

export type MonitorFile =
  | { kind: 'log'; ruleSet: RuleSet; translator?: LineTranslator; warnings: string[] }
  | { kind: 'plugins'; monitor: PluginMonitorSpec; warnings: string[] };

/** Parse a rule file; throws RuleError saying why it cannot be used. */
export function parseMonitorFile(text: string, file: string): MonitorFile {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>; // YAML is a superset of JSON
  } catch (err) {
    throw new RuleError(file, `not YAML or JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new RuleError(file, 'must hold an object');
  if (raw.kind === 'LogRules') {
    const ruleSet = compileRuleSet(fromNodemedic(raw, file), file);
    return { kind: 'log', ruleSet, warnings: undeclaredConditions(ruleSet.conditions, ruleSet.rules) };
  }
  if (raw.plugin === undefined && ['cpu', 'disk', 'memory', 'host', 'net', 'osFeature', 'invokeInterval'].some((key) => key in raw)) {
    throw new RuleError(file, 'a system-stats monitor: node-problem-detector exports CPU, disk, memory and network figures from it as metrics, and detects no problem with it. ' +
      'nodemedic exports no node metrics: run node-exporter for them, and send the alerts you set on them to nodemedic\'s /v1/alerts to make them Abnormals');
  }
  if (windowsPaths(raw)) throw new RuleError(file, 'written for Windows nodes (its paths are Windows paths): nodemedic runs on Linux nodes');
  if (raw.plugin === 'custom') {
    const monitor = pluginMonitor(raw, file);
    return { kind: 'plugins', monitor, warnings: undeclaredConditions(monitor.conditions, monitor.rules) };
  }
  const spec = fromNPD(raw, file);
  const ruleSet = compileRuleSet(spec, file);
  const translator = spec.translate && new LineTranslator(spec.translate, file);
  return { kind: 'log', ruleSet, ...(translator ? { translator } : {}), warnings: [...undeclaredConditions(ruleSet.conditions, ruleSet.rules), ...hiddenRules(spec, file)] };
}

/** A log rule file's rule set (tests and tools); throws RuleError for any other kind of file. */
export function parseRuleSet(text: string, file: string): RuleSet {
  const loaded = parseMonitorFile(text, file);
  if (loaded.kind !== 'log') throw new RuleError(file, 'a custom-plugin monitor, not log rules');
  return loaded.ruleSet;
}

const NPD_PLUGINS = new Set(['kmsg', 'filelog', 'journald', 'custom']);

function fromNPD(raw: Record<string, unknown>, file: string): RuleSetSpec {
  const plugin = String(raw.plugin);
  if (!NPD_PLUGINS.has(plugin)) throw new RuleError(file, `plugin must be one of kmsg, filelog, journald, custom (got ${JSON.stringify(raw.plugin)})`);
  const logPath = typeof raw.logPath === 'string' ? raw.logPath : plugin === 'kmsg' ? '/dev/kmsg' : '';
  const config = (raw.pluginConfig ?? {}) as Record<string, unknown>;
  // NPD's journald plugin: logPath is the journal directory, pluginConfig.source the syslog identifier.
  const identifier = config.source;
  if (plugin === 'filelog' && !logPath) throw new RuleError(file, 'logPath is required');
  if (raw.skipList !== undefined && !(Array.isArray(raw.skipList) && raw.skipList.every((s) => typeof s === 'string' && s !== ''))) {
    throw new RuleError(file, 'skipList must be a list of non-empty strings');
  }
  return {
    plugin: plugin === 'filelog' ? 'file' : (plugin as 'kmsg' | 'journald'),
    logPath,
    source: typeof raw.source === 'string' ? raw.source : file,
    bufferSize: bufferSize(raw.bufferSize, file),
    rules: (raw.rules as RuleSpec[]) ?? [],
    conditions: raw.conditions as ConditionSpec[] | undefined,
    ...(raw.lookback !== undefined ? { lookbackMs: goDuration(raw.lookback, `${file} lookback`) } : {}),
    ...(raw.skipList ? { skipList: raw.skipList as string[] } : {}),
    // Without pluginConfig's expressions (NPD needs them), rules see the whole line.
    ...(plugin === 'filelog' && (config.timestamp !== undefined || config.message !== undefined)
      ? { translate: { timestamp: config.timestamp as string, message: config.message as string, timestampFormat: config.timestampFormat as string } }
      : {}),
    ...(plugin === 'journald' ? { journalDirectory: logPath || undefined, units: [], identifiers: typeof identifier === 'string' ? [identifier] : [] } : {}),
  };
}

function fromNodemedic(raw: Record<string, unknown>, file: string): RuleSetSpec {
  const known = new Set(['apiVersion', 'kind', 'plugin', 'logPath', 'source', 'bufferSize', 'conditions', 'rules']);
  for (const key of Object.keys(raw)) if (!known.has(key)) throw new RuleError(file, `unknown key ${key}`);
  const plugin = String(raw.plugin);
  if (!['kmsg', 'file', 'journald'].includes(plugin)) throw new RuleError(file, `plugin must be one of kmsg, file, journald (got ${JSON.stringify(raw.plugin)})`);
  if (typeof raw.logPath !== 'string' || !raw.logPath) throw new RuleError(file, 'logPath is required');
  return {
    plugin: plugin as RuleSetSpec['plugin'],
    logPath: raw.logPath,
    source: typeof raw.source === 'string' ? raw.source : file,
    bufferSize: bufferSize(raw.bufferSize, file),
    rules: (raw.rules as RuleSpec[]) ?? [],
    conditions: raw.conditions as ConditionSpec[] | undefined,
    // journald: logPath names the units, comma-separated
    ...(plugin === 'journald' ? { units: raw.logPath.split(',').map((u) => u.trim()).filter(Boolean) } : {}),
  };
}

function pluginMonitor(raw: Record<string, unknown>, file: string): PluginMonitorSpec {
  const config = (raw.pluginConfig ?? {}) as Record<string, unknown>;
  const timeoutMs = bounded(goDuration(config.timeout ?? '5s', `${file} pluginConfig.timeout`), 100, 3_600_000, `${file} pluginConfig.timeout`);
  if (!Array.isArray(raw.rules) || raw.rules.length === 0) throw new RuleError(file, 'rules must be a non-empty list');
  const conditions = checkConditions(raw.conditions, raw.rules as RuleSpec[], file);
  const rules = (raw.rules as Array<Record<string, unknown>>).map((rule, i): PluginRuleSpec => {
    const at = `${file} rules[${i}] (${String(rule?.reason ?? '?')})`;
    if (typeof rule.reason !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(rule.reason)) throw new RuleError(at, 'reason must be a CamelCase word');
    if (typeof rule.path !== 'string' || rule.path === '') throw new RuleError(at, 'path must name the plugin to run');
    if (rule.args !== undefined && !(Array.isArray(rule.args) && rule.args.every((a) => typeof a === 'string'))) throw new RuleError(at, 'args must be a list of strings');
    return {
      type: rule.type === 'permanent' ? 'permanent' : 'temporary',
      ...(typeof rule.condition === 'string' ? { condition: rule.condition } : {}),
      reason: rule.reason, path: rule.path, args: (rule.args as string[] | undefined) ?? [],
      timeoutMs: rule.timeout === undefined ? timeoutMs : bounded(goDuration(rule.timeout, `${at} timeout`), 100, 3_600_000, `${at} timeout`),
    };
  });
  return {
    source: typeof raw.source === 'string' ? raw.source : file,
    intervalMs: bounded(goDuration(config.invoke_interval ?? '30s', `${file} pluginConfig.invoke_interval`), 1000, 7 * 86_400_000, `${file} pluginConfig.invoke_interval`),
    maxOutputLength: integer(config.max_output_length ?? 80, 1, 65_536, `${file} pluginConfig.max_output_length`),
    concurrency: integer(config.concurrency ?? 3, 1, 64, `${file} pluginConfig.concurrency`),
    conditions,
    rules,
  };
}

/** Does the file name Windows paths (C:\...)? NPD ships monitors for Windows nodes beside its Linux ones. */
function windowsPaths(raw: Record<string, unknown>): boolean {
  const paths = [raw.logPath, ...(Array.isArray(raw.rules) ? raw.rules.map((r) => (r as { path?: unknown })?.path) : [])];
  return paths.some((p) => typeof p === 'string' && /^[A-Za-z]:\\/.test(p));
}

/**
 * Rules NPD itself could never fire, because the file's message expression never yields text they
 * could match. nodemedic matches such a rule on the whole line as well (log-source.ts), so it fires
 * where NPD stays silent; each warning says so. Two shapes are recognised:
 *   - a greedy `.*` before the message group, followed by text the rule contains: NPD's message is
 *     only what follows the last occurrence of that text (`kernel: \[.*\] (.*)` and "divide error:
 *     0000 [#2] SMP", of which NPD sees "SMP");
 *   - a message expression whose match starts with text the rule requires something before
 *     (`Currently unreadable…` as the message, `([1-9]\d{2,}) (Currently unreadable…)` as the rule).
 */
export function hiddenRules(spec: RuleSetSpec, file: string): string[] {
  const message = spec.translate?.message;
  if (typeof message !== 'string') return [];
  const warnings: string[] = [];
  const plain = (pattern: string) => pattern.replace(/^(\(\?i\))?(\.\*)*/, '').replace(/\\([^A-Za-z0-9])/g, '$1');
  const group = message.search(/\((?!\?)/);
  const greedy = group > 0 ? /\.[*+]((?:\\.|[^\\(.*+?[])+)$/.exec(message.slice(0, group)) : null;
  const delimiter = greedy ? greedy[1]!.replace(/\\([^A-Za-z0-9])/g, '$1') : undefined;
  const starts = group < 0 ? message.split('|').map((a) => longestLiteral(a.replace(/^\(\?i\)/, ''))).filter((l): l is string => l !== undefined) : [];
  for (const rule of spec.rules) {
    const text = plain(String(rule.pattern));
    if (delimiter && text.includes(delimiter)) {
      warnings.push(`rule ${rule.reason}: the message expression ${message} is greedy, so node-problem-detector sees only what follows the last "${delimiter}" of a line and never matches this rule, which contains "${delimiter}"; nodemedic matches it on the whole line as well`);
      continue;
    }
    const start = starts.find((literal) => text.toLowerCase().indexOf(literal.toLowerCase()) > 0);
    if (start) warnings.push(`rule ${rule.reason}: the message expression ${message} makes a message that begins with "${start}", and this rule needs text before it, so node-problem-detector never matches it; nodemedic matches it on the whole line as well`);
  }
  return warnings;
}

/** Go's time.ParseDuration, for the durations NPD's files hold ("30s", "5m", "1h30m", "86400s"), in ms. */
export function goDuration(value: unknown, where: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$/.test(value)) {
    throw new RuleError(where, `must be a Go duration such as "30s", "5m" or "1h30m" (got ${JSON.stringify(value)})`);
  }
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * units[unit!]!;
  return ms;
}

function bounded(ms: number, min: number, max: number, where: string): number {
  if (ms < min || ms > max) throw new RuleError(where, `must be from ${min / 1000} s to ${max / 1000} s`);
  return ms;
}

function integer(value: unknown, min: number, max: number, where: string): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new RuleError(where, `must be an integer from ${min} to ${max}`);
  return value as number;
}

function bufferSize(value: unknown, file: string): number {
  if (value === undefined) return 10;
  return integer(value, 1, 1000, `${file} bufferSize`);
}
