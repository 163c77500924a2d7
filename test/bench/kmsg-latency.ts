// Time from a line written to /dev/kmsg to its Abnormal existing in the apiserver (seen by a watch),
// over 200 lines, each a symptom of its own: a real etcd + kube-apiserver, the real agent process.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { REPO_ROOT, startCluster } from '../cluster/cluster.js';
import { asShipped, spawnAgent, startedPort } from '../helpers/agent.js';

export type LatencyResult = { lines: number; p50Ms: number; p99Ms: number; maxMs: number };

/**
 * The latency twice: on an otherwise idle machine, then with every core kept busy by a busy-looping
 * process the bench starts for the purpose (and stops). The agent is the real `nodemedic agent`
 * process on the kube store with the default built-in processors: every Abnormal goes through them.
 */
export async function benchKmsgLatency(lines = 200): Promise<{ idle: LatencyResult; busy: LatencyResult; busyCores: number }> {
  const cluster = await startCluster();
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-bench-'));
  const burners: ChildProcess[] = [];
  try {
    const kubectl = (...args: string[]) => promisify(execFile)(path.join(cluster.binDir, 'kubectl'), [`--kubeconfig=${cluster.kubeconfigs.admin}`, ...args], { cwd: REPO_ROOT });
    await kubectl('apply', '-f', 'manifests/crds/', '-f', 'manifests/rbac/agent.yaml');
    await kubectl('wait', '--for=condition=Established', 'crd/abnormals.nodemedic.io');
    // One rule per line, so each line is a new symptom (a repeat would only be counted).
    const rules = path.join(dir, 'bench-rules.yaml');
    await writeFile(rules, `kind: LogRules\nplugin: kmsg\nlogPath: /dev/kmsg\nsource: bench\nrules:\n${Array.from({ length: 2 * lines }, (_, i) =>
      `  - {reason: Bench${i}, pattern: 'nodemedic-bench-${i} fired'}`).join('\n')}\n`);
    await writeFile(path.join(dir, 'config.yaml'), `nodeName: bench-node\nstore: kube\nkubeconfig: ${cluster.kubeconfigs.agent}\nstateDir: ${path.join(dir, 'state')}\n` +
      `logLevel: info\nsources: {ruleFiles: [${rules}], kernelLogFallback: ""}\nsymptoms: {createBurst: ${2 * lines}, createPerMinute: 6000}\n`);
    const agent = spawnAgent(['--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'), asShipped());
    try {
      const agentLog = () => readFile(path.join(dir, 'agent.log'), 'utf8').catch(() => '');
      await startedPort(path.join(dir, 'agent.log')).catch(async (err: Error) => {
        throw new Error(`${err.message}; its log ends:\n${(await agentLog()).split('\n').slice(-5).join('\n')}`);
      });
      const kc = new KubeConfig();
      kc.loadFromFile(cluster.kubeconfigs.admin);
      const seen = new Map<string, number>();
      const waiters = new Map<string, () => void>();
      const watch = await new Watch(kc).watch('/apis/nodemedic.io/v1alpha1/namespaces/nodemedic-system/abnormals', {}, (type, object: Abnormal) => {
        const reason = (object.spec.context?.rule as { reason?: string } | undefined)?.reason;
        if (type === 'ADDED' && reason && !seen.has(reason)) {
          seen.set(reason, performance.now());
          waiters.get(reason)?.();
        }
      }, () => {});
      const measure = async (first: number): Promise<LatencyResult> => {
        const latencies: number[] = [];
        for (let i = first; i < first + lines; i++) {
          const arrived = new Promise<void>((resolve) => waiters.set(`Bench${i}`, resolve));
          const written = performance.now();
          const fd = openSync('/dev/kmsg', 'w');
          writeSync(fd, `<6>nodemedic-bench-${i} fired\n`);
          closeSync(fd);
          await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error(`line ${i} not seen within 10 s`)), 10_000))]);
          latencies.push(seen.get(`Bench${i}`)! - written);
        }
        latencies.sort((a, b) => a - b);
        const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
        return { lines, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
      };
      try {
        const idle = await measure(0);
        for (let i = 0; i < availableParallelism(); i++) burners.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
        const busy = await measure(lines);
        return { idle, busy, busyCores: burners.length };
      } finally {
        watch.abort();
      }
    } finally {
      agent.kill('SIGTERM');
      await agent.exited;
    }
  } finally {
    for (const burner of burners) burner.kill('SIGKILL');
    await cluster.stop();
  }
}
