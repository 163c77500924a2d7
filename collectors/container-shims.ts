// Container shims: the container ↔ shim ↔ pod mapping for the pod, containers or processes an Abnormal
// names (spec.context.pod as the stuck-pod source writes it, spec.context.containerIDs, spec.context.pids).
// containerd's shim v2 serves a whole pod sandbox; the v1 and Docker shims one container each.
// Writes status.context.containerShims: one entry per shim, which the goroutine-dump collector, the
// shim diagnosers and the signal recoverer read.
import { shimsOfSubject } from '../agent/node/shims.js';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence, subjectOf } from '../agent/processors/evidence.js';

export const containerShims: Processor = {
  kind: 'InformationCollector',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'container-shims' },
  async run(abnormal) {
    const subject = subjectOf(abnormal);
    if (!subject.pod && subject.pids.length === 0) return { ok: true }; // about no container: nothing to map
    const shims = await shimsOfSubject(subject);
    const what = subject.pod ? `pod ${subject.pod.namespace ?? ''}/${subject.pod.name ?? subject.pod.uid ?? ''}` : `pids ${subject.pids.join(', ')}`;
    return {
      ok: true,
      context: evidence({ containerShims: shims }),
      output: shims.length === 0 ? `no container shim serves ${what}` : shims.map((s) => `${what}: ${s.executable} pid ${s.pid} (state ${s.state}) serves ${s.containers.length} container(s)`).join('\n'),
    };
  },
};
