// The file backend's Events, DIR/events.jsonl, one JSON object per line; and its NodeReporter: the
// node's conditions in DIR/node.json (what `kubectl describe node` would show), its Events beside the
// Abnormals' in events.jsonl.
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { toRFC3339 } from '../api/phase.js';
import type { Abnormal } from '../api/types.generated.js';
import { readState, writeState } from '../lib/files.js';
import type { EventRecorder, EventType, NodeCondition, NodeReporter } from './store.js';

export class FileEventLog implements EventRecorder, NodeReporter {
  constructor(private readonly opts: { dir: string; log: Logger; nodeName?: string }) {}

  async recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void> {
    await this.append({ namespace: abnormal.metadata?.namespace, name: abnormal.metadata?.name, type, reason, message });
  }

  async recordNodeEvent(type: EventType, reason: string, message: string): Promise<void> {
    await this.append({ kind: 'Node', name: this.opts.nodeName, type, reason, message });
  }

  /** DIR/node.json: {conditions: [...]}, each with the time its status last changed. */
  async setConditions(conditions: NodeCondition[]): Promise<void> {
    const file = path.join(this.opts.dir, 'node.json');
    const before = (await readState<{ conditions: Array<NodeCondition & { lastTransitionTime: string }> }>(file))?.conditions ?? [];
    const now = toRFC3339(new Date());
    const merged = new Map(before.map((c) => [c.type, c]));
    for (const c of conditions) {
      const old = merged.get(c.type);
      merged.set(c.type, { ...c, lastTransitionTime: old?.status === c.status ? old.lastTransitionTime : now });
    }
    await writeState(file, { conditions: [...merged.values()] });
  }

  private async append(event: Record<string, unknown>): Promise<void> {
    const line = { time: toRFC3339(new Date()), ...event };
    await appendFile(path.join(this.opts.dir, 'events.jsonl'), `${JSON.stringify(line)}\n`).catch((err) =>
      this.opts.log.warn({ err }, 'could not record an event'),
    );
  }
}
