// Script processors: executables dropped into a directory per kind, run under the processor contract.
//   - The Abnormal as JSON on stdin; NODEMEDIC_NODE, _NAMESPACE, _NAME, _PHASE, _SOURCE, _KIND in the
//     environment, and each top-level scalar of spec.context as NODEMEDIC_CONTEXT_<KEY>.
//   - Exit 0 is success. Stdout is a JSON object — an Abnormal as the script would have it, or just the
//     status fields ({"identifiable": true, "message": ...}) — taken as the contract allows; or plain
//     text, kept as status.output. On failure, stderr is the reason.
//   - A timeout per script (a default, or `# nodemedic: timeout=60s` in the script's first lines); on
//     timeout the whole process group is killed. Stdout and stderr are capped: a script that prints
//     more is stopped and fails.
//   - A script not owned by root, or writable by its group or others, is refused: it would run as root.
// The directory is read each time processors are resolved, so scripts are picked up, changed and
// removed without a restart. Order within a directory is by file name: 10-foo runs before 20-bar.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
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
    const info = await stat(this.file).catch(() => undefined);
    if (!info) return failure(Reason.ScriptGone, `${this.file} is no longer there`);
    if (info.uid !== 0 || (info.mode & 0o022) !== 0) {
      return failure(Reason.UnsafeScript, `${this.file} is refused: it would run as root, so it must be owned by root and writable by no one else (owner uid ${info.uid}, mode ${(info.mode & 0o777).toString(8)})`);
    }
    const timeoutSeconds = (await declaredTimeout(this.file)) ?? this.options.defaultTimeoutSeconds;
    const result = await runCapped(this.file, JSON.stringify(abnormal), environment(abnormal, this.kind), timeoutSeconds * 1000, this.options.maxOutputBytes, signal);
    if (result.timedOut) return failure(Reason.Timeout, `${this.ref.name} did not finish within ${timeoutSeconds} s; its process group was killed`);
    if (result.error) return failure(Reason.ScriptFailed, `${this.ref.name} ${result.error}`);
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

/** `# nodemedic: timeout=60s` (or 60) in the first 1 KiB of the script. */
async function declaredTimeout(file: string): Promise<number | undefined> {
  const head = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(0, 1024).toString('utf8');
  const m = /nodemedic:\s*timeout=(\d+)s?\b/.exec(head);
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

type RunResult = { code?: number; signal?: string; stdout: string; stderr: string; timedOut: boolean; error?: string };

/** How long, after the group is killed, the pipes are waited on before they are closed from this side. */
const PIPE_GRACE_MS = 2000;

/**
 * Run in a process group of its own (detached), killed whole at the timeout or when the pipeline is
 * cancelled, and once more after the script exits (what it left running in its group goes with it).
 * Output past `max` bytes stops the script.
 */
async function runCapped(file: string, input: string, env: NodeJS.ProcessEnv, timeoutMs: number, max: number, signal: AbortSignal): Promise<RunResult> {
  const child = execa(file, [], { input, env, extendEnv: false, detached: true, reject: false, maxBuffer: max, stripFinalNewline: false });
  let timedOut = false;
  let grace: NodeJS.Timeout | undefined;
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    // A process that left the group may still hold the pipes: stop waiting on them after a grace.
    grace ??= setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, PIPE_GRACE_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  signal.addEventListener('abort', killGroup, { once: true });
  try {
    const r = await child;
    const base = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), timedOut };
    if (r.isMaxBuffer) return { ...base, error: `printed more than ${max} bytes (scripts.maxOutputBytes) and was stopped` };
    if (r.failed && r.exitCode === undefined && r.signal === undefined) return { ...base, error: `could not run: ${r.shortMessage}` };
    return { ...base, code: r.exitCode, signal: r.signal };
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    signal.removeEventListener('abort', killGroup);
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL'); // anything the script left running in its group
    } catch {
      // none left
    }
  }
}
