// Which symptom sources run, from the configuration: the built-in kernel rules on /dev/kmsg (or a
// kernel log file where /dev/kmsg cannot be read), the built-in kubelet and containerd rules on the
// journal where there is one, every configured rule file — log rules read by the reader their plugin
// names (readers.ts), one reader per log however many files read it, and custom plugin monitors
// (custom-plugins.ts) —; and with the kube store, stuck pods and Kubernetes events. The Alertmanager receiver
// is a source too, made where the HTTP server is wired (agent.ts). A source that cannot start is
// reported and the agent runs without it.
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import type { KubeClient } from '../kube/client.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { CONTAINERD_RULES, KERNEL_RULES, KUBELET_RULES } from './default-rules.js';
import { LogSource, type LogFeed } from './log-source.js';
import { parseMonitorFile, type PluginMonitorSpec } from './monitor-files.js';
import { READERS } from './readers.js';
import { compileRuleSet, type ConditionSpec } from './rules.js';
import type { SymptomSource } from './source.js';
import type { PositionSync } from '../node/line-reader.js';

/** The Node conditions the loaded rule files declare, and which rules may set each (pipeline/node-conditions.ts). */
export type DeclaredConditions = { declared: ConditionSpec[]; permanentRules: Array<{ condition: string; reason: string }> };

/**
 * Every source the configuration asks for; `client` (the kube store's) adds stuck pods and events.
 * `sync` keeps each log reader's position in step with the sink's symptom journal.
 */
export async function symptomSources(config: Config, log: Logger, client?: KubeClient, sync?: PositionSync): Promise<{ sources: SymptomSource[]; conditions: DeclaredConditions }> {
  const { sources, conditions } = await fileSources(config, log, sync);
  // Loaded only with the kube store, like the client they use.
  if (client && config.stuckPods.enabled) {
    const { StuckPodSource } = await import('./stuck-pods.js');
    sources.push(new StuckPodSource({ client, nodeName: config.nodeName, ...config.stuckPods, log }));
  }
  if (client && config.events.enabled) {
    const { EventSource } = await import('./events.js');
    sources.push(new EventSource({ client, nodeName: config.nodeName, lockNamespace: config.namespace, ...config.events, log }));
  }
  return { sources, conditions };
}

/** The default rules and every rule file: log sources (one per log read) and custom plugin monitors. */
async function fileSources(config: Config, log: Logger, sync?: PositionSync): Promise<{ sources: SymptomSource[]; conditions: DeclaredConditions }> {
  const feeds: LogFeed[] = [];
  const sources: SymptomSource[] = [];
  if (config.sources.defaultRules) {
    feeds.push({ ruleSet: compileRuleSet(KERNEL_RULES, 'default kernel rules') });
    if (await journalExists(config)) {
      feeds.push({ ruleSet: compileRuleSet(KUBELET_RULES, 'default kubelet rules') }, { ruleSet: compileRuleSet(CONTAINERD_RULES, 'default containerd rules') });
    } else {
      log.info('no journal on this node: the default kubelet and containerd rules do not run');
    }
  }
  const plugins: PluginMonitorSpec[] = [];
  for (const file of config.sources.ruleFiles) {
    try {
      const loaded = parseMonitorFile(await readFile(file, 'utf8'), file);
      for (const warning of loaded.warnings) log.warn({ file }, warning);
      if (loaded.kind === 'log') feeds.push({ ruleSet: loaded.ruleSet, ...(loaded.translator ? { translator: loaded.translator } : {}) });
      else plugins.push(loaded.monitor);
    } catch (err) {
      log.error({ file, err: (err as Error).message }, 'rule file refused; its source does not run');
    }
  }
  // One reader per log, whatever number of rule files read it: one position, one pass over each line.
  const byLog = new Map<string, LogFeed[]>();
  for (const feed of feeds) {
    const { plugin, logPath, journalDirectory, units, identifiers } = feed.ruleSet;
    const key = JSON.stringify([plugin, plugin === 'kmsg' ? logPath || '/dev/kmsg' : logPath, journalDirectory, units, identifiers]);
    byLog.set(key, [...(byLog.get(key) ?? []), feed]);
  }
  for (const group of byLog.values()) {
    const lookbacks = group.map((f) => f.ruleSet.lookbackMs).filter((ms): ms is number => ms !== undefined);
    const representative = { ...group[0]!.ruleSet, lookbackMs: lookbacks.length > 0 ? Math.max(...lookbacks) : undefined };
    const reader = await READERS[representative.plugin](representative, { config, log, sync });
    if (reader) sources.push(new LogSource(reader, group, log));
  }
  if (plugins.length > 0) {
    const { PluginMonitorSource } = await import('./custom-plugins.js');
    for (const monitor of plugins) sources.push(new PluginMonitorSource(monitor, { log }));
  }
  return { sources, conditions: declaredConditions([...feeds.map((f) => f.ruleSet), ...plugins], log) };
}

/** Every declared condition once (the first file to declare a type gives its defaults), and the permanent rules' pairs. */
function declaredConditions(sets: Array<{ source: string; conditions?: ConditionSpec[]; rules: Array<{ type?: string; condition?: string; reason: string }> }>, log: Logger): DeclaredConditions {
  const declared = new Map<string, ConditionSpec>();
  const permanentRules: DeclaredConditions['permanentRules'] = [];
  for (const set of sets) {
    for (const c of set.conditions ?? []) {
      const first = declared.get(c.type);
      if (!first) declared.set(c.type, c);
      else if (first.reason !== c.reason || first.message !== c.message) log.warn({ condition: c.type, source: set.source, kept: first }, 'a condition declared again with other defaults; the first declaration is kept');
    }
    for (const rule of set.rules) if (rule.type === 'permanent' && rule.condition) permanentRules.push({ condition: rule.condition, reason: rule.reason });
  }
  return { declared: [...declared.values()], permanentRules };
}

async function journalExists(config: Config): Promise<boolean> {
  const candidates = config.sources.journalDirectory ? [config.sources.journalDirectory] : ['/var/log/journal', '/run/log/journal'];
  for (const dir of candidates) if (await access(dir, constants.R_OK).then(() => true, () => false)) return true;
  return false;
}
