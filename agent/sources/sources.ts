// Which symptom sources run, from the configuration: the built-in kernel rules on /dev/kmsg (or a
// kernel log file where /dev/kmsg cannot be read), the built-in kubelet and containerd rules on the
// journal where there is one, every configured rule file, each read by the reader its plugin names
// (readers.ts); and with the kube store, stuck pods and Kubernetes events. The Alertmanager receiver
// is a source too, made where the HTTP server is wired (agent.ts). A source that cannot start is
// reported and the agent runs without it.
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import type { KubeClient } from '../kube/client.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { CONTAINERD_RULES, KERNEL_RULES, KUBELET_RULES } from './default-rules.js';
import { LogSource } from './log-source.js';
import { READERS } from './readers.js';
import { compileRuleSet, parseRuleSet, type RuleSet } from './rules.js';
import type { SymptomSource } from './source.js';
import type { PositionSync } from '../node/line-reader.js';

/**
 * Every source the configuration asks for; `client` (the kube store's) adds stuck pods and events.
 * `sync` keeps each log reader's position in step with the sink's symptom journal.
 */
export async function symptomSources(config: Config, log: Logger, client?: KubeClient, sync?: PositionSync): Promise<SymptomSource[]> {
  const sources = await logSources(config, log, sync);
  // Loaded only with the kube store, like the client they use.
  if (client && config.stuckPods.enabled) {
    const { StuckPodSource } = await import('./stuck-pods.js');
    sources.push(new StuckPodSource({ client, nodeName: config.nodeName, ...config.stuckPods, log }));
  }
  if (client && config.events.enabled) {
    const { EventSource } = await import('./events.js');
    sources.push(new EventSource({ client, nodeName: config.nodeName, lockNamespace: config.namespace, ...config.events, log }));
  }
  return sources;
}

async function logSources(config: Config, log: Logger, sync?: PositionSync): Promise<SymptomSource[]> {
  const sets: RuleSet[] = [];
  if (config.sources.defaultRules) {
    sets.push(compileRuleSet(KERNEL_RULES, 'default kernel rules'));
    if (await journalExists(config)) {
      sets.push(compileRuleSet(KUBELET_RULES, 'default kubelet rules'), compileRuleSet(CONTAINERD_RULES, 'default containerd rules'));
    } else {
      log.info('no journal on this node: the default kubelet and containerd rules do not run');
    }
  }
  for (const file of config.sources.ruleFiles) {
    try {
      sets.push(parseRuleSet(await readFile(file, 'utf8'), file));
    } catch (err) {
      log.error({ file, err: (err as Error).message }, 'rule file refused; its source does not run');
    }
  }
  const sources: SymptomSource[] = [];
  for (const set of sets) {
    const reader = await READERS[set.plugin](set, { config, log, sync });
    if (reader) sources.push(new LogSource(reader, set, log));
  }
  return sources;
}

async function journalExists(config: Config): Promise<boolean> {
  const candidates = config.sources.journalDirectory ? [config.sources.journalDirectory] : ['/var/log/journal', '/run/log/journal'];
  for (const dir of candidates) if (await access(dir, constants.R_OK).then(() => true, () => false)) return true;
  return false;
}
