// Time from a line written to /dev/kmsg to its Abnormal existing in the apiserver (seen by a watch),
// over 200 lines, each a symptom of its own: a real etcd + kube-apiserver, the agent in this process.
import { execFile } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startAgent } from '../../agent/agent.js';
import { DEFAULTS } from '../../agent/config.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { REPO_ROOT, startCluster } from '../cluster/cluster.js';

export type LatencyResult = { lines: number; p50Ms: number; p99Ms: number; maxMs: number };

export async function benchKmsgLatency(lines = 200): Promise<LatencyResult> {
  const cluster = await startCluster();
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-bench-'));
  try {
    const kubectl = (...args: string[]) => promisify(execFile)(path.join(cluster.binDir, 'kubectl'), [`--kubeconfig=${cluster.kubeconfigs.admin}`, ...args], { cwd: REPO_ROOT });
    await kubectl('apply', '-f', 'manifests/crds/', '-f', 'manifests/rbac/agent.yaml');
    await kubectl('wait', '--for=condition=Established', 'crd/abnormals.nodemedic.io');
    // One rule per line, so each line is a new symptom (a repeat would only be counted).
    const rules = path.join(dir, 'bench-rules.yaml');
    await writeFile(rules, `kind: LogRules\nplugin: kmsg\nlogPath: /dev/kmsg\nsource: bench\nrules:\n${Array.from({ length: lines }, (_, i) =>
      `  - {reason: Bench${i}, pattern: 'nodemedic-bench-${i} fired', abnormal: {skipDiagnosis: true, skipRecovery: true}}`).join('\n')}\n`);
    const kc = (identity: 'admin' | 'agent') => {
      const c = new KubeConfig();
      c.loadFromFile(cluster.kubeconfigs[identity]);
      return c;
    };
    const agent = await startAgent({
      ...DEFAULTS, nodeName: 'bench-node', store: 'kube', stateDir: dir, listen: '127.0.0.1:0', logLevel: 'warn',
      sources: { ...DEFAULTS.sources, defaultRules: false, ruleFiles: [rules], kernelLogFallback: '' },
      symptoms: { ...DEFAULTS.symptoms, createBurst: lines, createPerMinute: 60_000 },
    }, pino({ level: 'warn' }), { kubeConfig: kc('agent') });

    const seen = new Map<string, number>();
    const waiters = new Map<string, () => void>();
    const watch = await new Watch(kc('admin')).watch('/apis/nodemedic.io/v1alpha1/namespaces/nodemedic-system/abnormals', {}, (type, object: Abnormal) => {
      const reason = (object.spec.context?.rule as { reason?: string } | undefined)?.reason;
      if (type === 'ADDED' && reason && !seen.has(reason)) {
        seen.set(reason, performance.now());
        waiters.get(reason)?.();
      }
    }, () => {});
    const latencies: number[] = [];
    try {
      for (let i = 0; i < lines; i++) {
        const arrived = new Promise<void>((resolve) => waiters.set(`Bench${i}`, resolve));
        const written = performance.now();
        const fd = openSync('/dev/kmsg', 'w');
        writeSync(fd, `<6>nodemedic-bench-${i} fired\n`);
        closeSync(fd);
        await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error(`line ${i} not seen within 10 s`)), 10_000))]);
        latencies.push(seen.get(`Bench${i}`)! - written);
      }
    } finally {
      watch.abort();
      await agent.stop();
    }
    latencies.sort((a, b) => a - b);
    const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
    return { lines, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
  } finally {
    await cluster.stop();
  }
}
