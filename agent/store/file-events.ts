// The file backend's Events: DIR/events.jsonl, one JSON object per line.
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { toRFC3339 } from '../api/phase.js';
import type { Abnormal } from '../api/types.generated.js';
import type { EventRecorder, EventType } from './store.js';

export class FileEventLog implements EventRecorder {
  constructor(private readonly opts: { dir: string; log: Logger }) {}

  async recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void> {
    const line = { time: toRFC3339(new Date()), namespace: abnormal.metadata?.namespace, name: abnormal.metadata?.name, type, reason, message };
    await appendFile(path.join(this.opts.dir, 'events.jsonl'), `${JSON.stringify(line)}\n`).catch((err) =>
      this.opts.log.warn({ err }, 'could not record an event'),
    );
  }
}
