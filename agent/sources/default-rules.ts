// The rules nodemedic ships: what node-problem-detector's default kernel rules cover, and more. Each
// has a test with a real line from a kernel, kubelet or containerd (test/unit/rules.test.ts). Patterns
// are written for how those programs print: for example, kernels since 5.1 print OOM kills as "Memory
// cgroup out of memory: Killed process N (comm)" or "Out of memory: Killed process N (comm)", older
// ones "...: Kill process N (comm) score S or sacrifice child" and then "Killed process N (comm)
// total-vm:..." on a line of its own; both are matched, each kill once.
import type { RuleSetSpec } from './rules.js';

// An oops or BUG report runs to "---[ end trace ... ]---"; a hung-task report has no end marker.
const OOPS_TRACE = { maxLines: 80, until: '---\\[ end trace [0-9a-f]+ \\]---' };
const HUNG_TASK_TRACE = { maxLines: 40 };

export const KERNEL_RULES: RuleSetSpec = {
  plugin: 'kmsg',
  logPath: '/dev/kmsg',
  source: 'kernel',
  bufferSize: 10,
  // The Node conditions the permanent rules below set, as NPD's kernel-monitor and readonly-monitor name them.
  conditions: [
    { type: 'KernelDeadlock', reason: 'KernelHasNoDeadlock', message: 'kernel has no deadlock' },
    { type: 'ReadonlyFilesystem', reason: 'FilesystemIsNotReadOnly', message: 'Filesystem is not read-only' },
    { type: 'HardwareError', reason: 'NoFatalHardwareError', message: 'no fatal hardware error logged' },
  ],
  rules: [
    // A rule matches at the end of a line (as in NPD), so a pattern ends with .* where the line goes on.
    { reason: 'TaskHung', type: 'temporary', pattern: 'task [\\S ]+:\\d+ blocked for more than \\d+ seconds\\.', collect: HUNG_TASK_TRACE },
    { reason: 'OOMKilling', type: 'temporary', pattern: '(Memory cgroup out of memory|Out of memory): Killed process \\d+ \\(.+\\).*' },
    // Kernels before 5.1: "...: Kill process N (comm) score S or sacrifice child", then this line on its own.
    { reason: 'OOMKilling', type: 'temporary', pattern: '^Killed process \\d+ \\(.+\\) total-vm:\\d+kB.*' },
    {
      reason: 'KernelOops', type: 'temporary', collect: OOPS_TRACE,
      pattern: 'BUG: (kernel NULL pointer dereference, address|unable to handle (page fault for address|kernel NULL pointer dereference at|kernel paging request at)).*',
    },
    { reason: 'KernelOops', type: 'temporary', pattern: 'Oops: [0-9a-f]+ \\[#\\d+\\].*', collect: OOPS_TRACE },
    { reason: 'KernelOops', type: 'temporary', pattern: 'divide error: [0-9a-f]+ \\[#\\d+\\].*', collect: OOPS_TRACE },
    // Seen on the console or netconsole, and in a file log after the reboot that follows.
    { reason: 'KernelPanic', type: 'temporary', pattern: 'Kernel panic - not syncing: .*' },
    // A network namespace that cannot go away (a leaked reference): pods on the node stop being torn down.
    { reason: 'UnregisterNetDevice', type: 'temporary', pattern: 'unregister_netdevice: waiting for \\S+ to become free\\. Usage count = -?\\d+.*' },
    { reason: 'KernelBug', type: 'temporary', pattern: 'kernel BUG at \\S+.*', collect: OOPS_TRACE },
    { reason: 'GeneralProtectionFault', type: 'temporary', pattern: 'general protection fault.*', collect: OOPS_TRACE },
    { reason: 'SoftLockup', type: 'temporary', pattern: 'BUG: soft lockup - CPU#\\d+ stuck for \\d+s!.*', collect: OOPS_TRACE },
    { reason: 'HardLockup', type: 'permanent', condition: 'KernelDeadlock', pattern: 'Watchdog detected hard LOCKUP on cpu \\d+.*' },
    { reason: 'RcuStall', type: 'temporary', pattern: 'rcu: INFO: rcu_(sched|preempt) detected stalls on CPUs/tasks:.*' },
    // As NPD writes it, leading .* and all: the loader drops the .* that would make V8 backtrack.
    { reason: 'HardwareErrorFatal', type: 'permanent', condition: 'HardwareError', pattern: '.*\\[Hardware Error\\]: event severity: fatal$' },
    { reason: 'HardwareErrorRecoverable', type: 'temporary', pattern: '\\[Hardware Error\\]: event severity: recoverable$' },
    { reason: 'HardwareErrorCorrected', type: 'temporary', pattern: '\\[Hardware Error\\]: event severity: corrected$' },
    { reason: 'MemoryReadError', type: 'temporary', pattern: 'CE memory read error .*' },
    { reason: 'Ext4Error', type: 'temporary', pattern: 'EXT4-fs error \\(device [^)]+\\): .+' },
    { reason: 'Ext4Warning', type: 'temporary', pattern: 'EXT4-fs warning \\(device [^)]+\\): .+' },
    { reason: 'FilesystemIsReadOnly', type: 'permanent', condition: 'ReadonlyFilesystem', pattern: 'EXT4-fs \\([^)]+\\): Remounting filesystem read-only' },
    { reason: 'XfsError', type: 'temporary', pattern: 'XFS \\([^)]+\\): (Corruption detected|Metadata corruption detected|metadata I/O error|Internal error).*' },
    { reason: 'XfsShutdown', type: 'permanent', condition: 'ReadonlyFilesystem', pattern: 'XFS \\([^)]+\\): .*(Shutting down filesystem|Filesystem has been shut down).*' },
    { reason: 'IOError', type: 'temporary', pattern: 'I/O error, dev \\S+, sector \\d+.*' },
    { reason: 'IOError', type: 'temporary', pattern: 'Buffer I/O error on dev.*' },
  ],
};

export const KUBELET_RULES: RuleSetSpec = {
  plugin: 'journald',
  logPath: 'kubelet.service',
  units: ['kubelet.service'],
  source: 'kubelet',
  bufferSize: 10,
  rules: [
    { reason: 'PLEGNotHealthy', type: 'temporary', pattern: 'PLEG is not healthy: pleg was last seen active [0-9hms.]+ ago; threshold is [0-9hms.]+.*' },
    // "Container runtime network not ready" is the CNI, not the runtime: it does not match.
    { reason: 'ContainerRuntimeDown', type: 'temporary', pattern: '[Cc]ontainer runtime (is down|not ready).*' },
    { reason: 'ContainerRuntimeUnreachable', type: 'temporary', pattern: 'dial unix [^ :]+\\.sock: connect: (connection refused|no such file or directory).*' },
  ],
};

export const CONTAINERD_RULES: RuleSetSpec = {
  plugin: 'journald',
  logPath: 'containerd.service',
  units: ['containerd.service'],
  source: 'containerd',
  bufferSize: 10,
  rules: [
    { reason: 'ShimError', type: 'temporary', pattern: 'level=error msg=.*[Ss]him.*' },
    { reason: 'ContainerdDeadline', type: 'temporary', pattern: 'level=error msg=.*(context deadline exceeded|ttrpc: closed).*' },
  ],
};

export const DEFAULT_RULE_SETS: readonly RuleSetSpec[] = [KERNEL_RULES, KUBELET_RULES, CONTAINERD_RULES];
