// Running an executable root has checked (agent/lib/trusted-file.ts) as a bounded child: the checked
// descriptor is what runs (/proc/self/fd/3), never the path again; as root it is the first process of
// a PID namespace of its own (util-linux `unshare`), so when it ends, or is killed at its timeout, the
// kernel ends everything it started, children that left its process group or session included, and
// nothing holds its output open; its output past a cap stops it. Script processors and NPD's custom
// plugins run this way.
import { constants } from 'node:fs';
import { access, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export type RunOptions = {
  /** Written to its stdin. */
  input?: string;
  args?: string[];
  /** Its whole environment. */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs: number;
  /** Stdout or stderr past this many bytes stops it. */
  maxBytes: number;
  signal?: AbortSignal;
};

export type RunResult = { code?: number; signal?: string; stdout: string; stderr: string; timedOut: boolean; error?: string };

/** How long, after the script is killed, the pipes are waited on before they are closed from this side. */
const PIPE_GRACE_MS = 2000;

/** The checked descriptor as the script sees it: stdin, stdout, stderr, then this. */
const SCRIPT_FD = 3;

/** A PID namespace per script: root only (it takes CAP_SYS_ADMIN), and util-linux's unshare must be there. */
let unshare: Promise<string | undefined> | undefined;
function pidNamespaceTool(): Promise<string | undefined> {
  unshare ??= (async () => {
    if (process.getuid?.() !== 0) return undefined;
    for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
      const candidate = path.join(dir, 'unshare');
      if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
    }
    return undefined;
  })();
  return unshare;
}

/**
 * Run the checked descriptor: as the first process of a PID namespace of its own where that can be
 * had (see the top of this file), and in a process group of its own (detached) in any case, killed
 * at the timeout or when the pipeline is cancelled, and once more after it exits. Output past `max`
 * bytes stops the script.
 */
export async function runCapped(script: FileHandle, run: RunOptions): Promise<RunResult> {
  const { input = '', env, timeoutMs, maxBytes: max, signal, args: scriptArgs = [], cwd } = run;
  const self = `/proc/self/fd/${SCRIPT_FD}`;
  const tool = await pidNamespaceTool();
  // --kill-child: if unshare is killed, so is the script, and with it the whole namespace.
  const [file, args] = tool ? [tool, ['--pid', '--fork', '--kill-child', self, ...scriptArgs]] : [self, scriptArgs];
  const { execa } = await import('execa'); // loaded by the agents that run scripts, at their first
  const child = execa(file, args, {
    input, env, extendEnv: false, detached: true, ...(cwd ? { cwd } : {}), reject: false, maxBuffer: max, stripFinalNewline: false,
    // execa passes a descriptor number through as fd 3 (its types allow numbers for stdin..stderr only).
    stdio: ['pipe', 'pipe', 'pipe', script.fd as never],
  });
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
  signal?.addEventListener('abort', killGroup, { once: true });
  try {
    const r = await child;
    const base = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), timedOut };
    if (r.isMaxBuffer) return { ...base, error: `printed more than ${max} bytes and was stopped` };
    if (r.failed && r.exitCode === undefined && r.signal === undefined) return { ...base, error: `could not run: ${r.shortMessage}` };
    return { ...base, code: r.exitCode, signal: r.signal };
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    signal?.removeEventListener('abort', killGroup);
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL'); // anything the script left running in its group
    } catch {
      // none left
    }
  }
}
