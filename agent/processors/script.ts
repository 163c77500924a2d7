// Script processors: executables dropped into a directory per kind, run under the processor contract.
//   - The Abnormal as JSON on stdin; NODEMEDIC_NODE, _NAMESPACE, _NAME, _PHASE, _SOURCE, _KIND in the
//     environment, and each top-level scalar of spec.context as NODEMEDIC_CONTEXT_<KEY>.
//   - Exit 0 is success. Stdout is a JSON object — an Abnormal as the script would have it, or just the
//     status fields ({"identifiable": true, "message": ...}) — taken as the contract allows; or plain
//     text, kept as status.output. On failure, stderr is the reason.
//   - A timeout per script (a default, or `# nodemedic: timeout=60s` in the script's first lines).
//     Stdout and stderr are capped: a script that prints more is stopped and fails.
//   - A script runs as root, so it is refused unless root alone could have written it or put it where it
//     is (agent/lib/trusted-file.ts: no symbolic link, owned by root, no directory above it writable by
//     others), and what runs is the descriptor that was checked (/proc/self/fd/3, so $0 is that; the
//     file's path is NODEMEDIC_SCRIPT).
//   - Run as root, a script is the first process of a PID namespace of its own (util-linux `unshare`):
//     when it ends, or is killed at its timeout, the kernel ends everything it started, children that
//     left its process group or session included, and nothing holds its output open.
// The directory is read each time processors are resolved, so scripts are picked up, changed and
// removed without a restart. Order within a directory is by file name: 10-foo runs before 20-bar.
import { constants } from 'node:fs';
import { access, readdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { runCapped, type RunResult } from '../lib/run-capped.js';
import { openTrusted } from '../lib/trusted-file.js';
import type { ProcessorKind } from '../api/kinds.js';
import { Reason } from '../api/reasons.js';
import type { Abnormal } from '../api/types.generated.js';
import { SCRIPT_NAMESPACE, failure, interpretReply, type Outcome, type Processor } from './contract.js';

export type ScriptOptions = { defaultTimeoutSeconds: number; maxOutputBytes: number };

/** The script processors in `dir`, by file name; a missing directory has none. */
export async function scriptsIn(dir: string, kind: ProcessorKind, options: ScriptOptions): Promise<Processor[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const scripts: Processor[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const info = await stat(path.join(dir, name)).catch(() => undefined);
    if (!info?.isFile() || (info.mode & 0o111) === 0) continue; // only executables
    scripts.push(new ScriptProcessor(kind, path.join(dir, name), options));
  }
  return scripts;
}

export class ScriptProcessor implements Processor {
  readonly ref;

  constructor(
    readonly kind: ProcessorKind,
    readonly file: string,
    private readonly options: ScriptOptions,
  ) {
    this.ref = { namespace: SCRIPT_NAMESPACE, name: path.basename(file) };
  }

  async run(abnormal: Abnormal, signal: AbortSignal): Promise<Outcome> {
    const opened = await openTrusted(this.file);
    if ('refused' in opened) {
      if (opened.missing) return failure(Reason.ScriptGone, `${this.file} is no longer there`);
      return failure(Reason.UnsafeScript, `${this.file} is refused: it would run as root, and ${opened.refused}`);
    }
    let result: RunResult;
    let timeoutSeconds: number;
    try {
      timeoutSeconds = (await declaredTimeout(opened.handle)) ?? this.options.defaultTimeoutSeconds;
      const env = { ...environment(abnormal, this.kind), NODEMEDIC_SCRIPT: path.resolve(this.file) };
      result = await runCapped(opened.handle, { input: JSON.stringify(abnormal), env, timeoutMs: timeoutSeconds * 1000, maxBytes: this.options.maxOutputBytes, signal });
    } finally {
      await opened.handle.close();
    }
    if (result.timedOut) return failure(Reason.Timeout, `${this.ref.name} did not finish within ${timeoutSeconds} s; it was killed with everything it started`);
    if (result.error) return failure(Reason.ScriptFailed, `${this.ref.name} ${result.error}${result.error.startsWith("printed more") ? " (scripts.maxOutputBytes)" : ""}`);
    if (result.code !== 0) {
      return failure(Reason.ScriptFailed, `${this.ref.name} exited with ${result.code ?? result.signal}${result.stderr.trim() ? `: ${result.stderr.trim()}` : ''}`);
    }
    const text = result.stdout.trim();
    if (text.startsWith('{')) {
      let reply: unknown;
      try {
        reply = JSON.parse(text);
      } catch (err) {
        return failure(Reason.InvalidReply, `${this.ref.name} printed something that looks like JSON but is not: ${(err as Error).message}`);
      }
      // Bare status fields are the status of the Abnormal the script would have.
      const shaped = reply && typeof reply === 'object' && !('status' in reply) && !('spec' in reply) ? { status: { ...abnormal.status, ...reply } } : reply;
      return interpretReply(this.kind, abnormal, shaped);
    }
    return { ok: true, ...(text ? { output: text } : {}) };
  }
}

/** `# nodemedic: timeout=60s` (or 60) in the first 1 KiB of the script, read from the checked descriptor. */
async function declaredTimeout(script: FileHandle): Promise<number | undefined> {
  const head = Buffer.alloc(1024);
  const { bytesRead } = await script.read(head, 0, head.length, 0).catch(() => ({ bytesRead: 0 }));
  const m = /nodemedic:\s*timeout=(\d+)s?\b/.exec(head.toString('utf8', 0, bytesRead));
  return m ? Number(m[1]) : undefined;
}

function environment(abnormal: Abnormal, kind: ProcessorKind): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    NODEMEDIC_KIND: kind,
    NODEMEDIC_NODE: abnormal.spec.nodeName,
    NODEMEDIC_NAMESPACE: abnormal.metadata?.namespace ?? '',
    NODEMEDIC_NAME: abnormal.metadata?.name ?? '',
    NODEMEDIC_PHASE: abnormal.status?.phase ?? '',
    NODEMEDIC_SOURCE: abnormal.spec.source,
  };
  for (const [key, value] of Object.entries(abnormal.spec.context ?? {})) {
    if (['string', 'number', 'boolean'].includes(typeof value) && /^[A-Za-z0-9_]+$/.test(key)) env[`NODEMEDIC_CONTEXT_${key.toUpperCase()}`] = String(value);
  }
  return env;
}
