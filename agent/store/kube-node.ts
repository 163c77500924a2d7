// The kube backend's NodeReporter: conditions on this node's Node object and Events about it, as
// node-problem-detector writes them, so draino, medik8s NodeHealthCheck, the cluster autoscaler and
// `kubectl describe node` see them. Conditions are written with a strategic-merge patch of
// nodes/status, which merges the conditions list by type: the kubelet's own conditions, and any other
// writer's, are left as they are.
import { toRFC3339 } from '../api/phase.js';
import { seg, type KubeClient } from '../kube/client.js';
import type { KubeEventRecorder } from './kube-events.js';
import type { EventType, NodeCondition, NodeReporter } from './store.js';

type NodeStatusCondition = NodeCondition & { lastTransitionTime?: string; lastHeartbeatTime?: string };

export class KubeNodeReporter implements NodeReporter {
  constructor(private readonly opts: { client: KubeClient; nodeName: string; events: KubeEventRecorder }) {}

  async setConditions(conditions: NodeCondition[]): Promise<void> {
    if (conditions.length === 0) return;
    const path = `/api/v1/nodes/${seg(this.opts.nodeName)}`;
    const node = await this.opts.client.request<{ status?: { conditions?: NodeStatusCondition[] } }>('GET', path);
    const now = toRFC3339(new Date());
    const current = new Map((node.status?.conditions ?? []).map((c) => [c.type, c]));
    const patch = conditions.map((c) => {
      const before = current.get(c.type);
      return { ...c, lastHeartbeatTime: now, lastTransitionTime: before?.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now };
    });
    await this.opts.client.request('PATCH', `${path}/status`, {
      contentType: 'application/strategic-merge-patch+json',
      body: { status: { conditions: patch } },
    });
  }

  recordNodeEvent(type: EventType, reason: string, message: string): Promise<void> {
    return this.opts.events.recordNodeEvent(type, reason, message);
  }
}
