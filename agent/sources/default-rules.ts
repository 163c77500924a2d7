// The rules nodemedic ships. Each has a test with a real line from a current kernel, kubelet or
// containerd (test/unit/rules.test.ts). Patterns are written for how those programs print today: for
// example, kernels since 5.1 print OOM kills as "Memory cgroup out of memory: Killed process N (comm)"
// or "Out of memory: Killed process N (comm)", which the older "Kill process ... or sacrifice child"
// rules still shipped in some NPD configurations never match.
import type { RuleSetSpec } from './rules.js';

// An oops or BUG report runs to "---[ end trace ... ]---"; a hung-task report has no end marker.
const OOPS_TRACE = { maxLines: 80, until: '---\\[ end trace [0-9a-f]+ \\]---' };
const HUNG_TASK_TRACE = { maxLines: 40 };

export const KERNEL_RULES: RuleSetSpec = {
  plugin: 'kmsg',
  logPath: '/dev/kmsg',
  source: 'kernel',
  bufferSize: 10,
  rules: [
    // A rule matches at the end of a line (as in NPD), so a pattern ends with .* where the line goes on.
    { reason: 'TaskHung', type: 'temporary', pattern: 'task [\\S ]+:\\d+ blocked for more than \\d+ seconds\\.', collect: HUNG_TASK_TRACE },
    { reason: 'OOMKilling', type: 'temporary', pattern: '(Memory cgroup out of memory|Out of memory): Killed process \\d+ \\(.+\\).*' },
    {
      reason: 'KernelOops', type: 'temporary', collect: OOPS_TRACE,
      pattern: 'BUG: (kernel NULL pointer dereference, address|unable to handle (page fault for address|kernel NULL pointer dereference at|kernel paging request at)).*',
    },
    { reason: 'KernelOops', type: 'temporary', pattern: 'Oops: [0-9a-f]+ \\[#\\d+\\].*', collect: OOPS_TRACE },
    { reason: 'KernelBug', type: 'temporary', pattern: 'kernel BUG at \\S+.*', collect: OOPS_TRACE },
    { reason: 'GeneralProtectionFault', type: 'temporary', pattern: 'general protection fault.*', collect: OOPS_TRACE },
    { reason: 'SoftLockup', type: 'temporary', pattern: 'BUG: soft lockup - CPU#\\d+ stuck for \\d+s!.*', collect: OOPS_TRACE },
    { reason: 'HardLockup', type: 'permanent', condition: 'KernelDeadlock', pattern: 'Watchdog detected hard LOCKUP on cpu \\d+.*' },
    { reason: 'RcuStall', type: 'temporary', pattern: 'rcu: INFO: rcu_(sched|preempt) detected stalls on CPUs/tasks:.*' },
    // As NPD writes it, leading .* and all: the loader drops the .* that would make V8 backtrack.
    { reason: 'HardwareErrorFatal', type: 'permanent', condition: 'HardwareError', pattern: '.*\\[Hardware Error\\]: event severity: fatal$' },
    { reason: 'Ext4Error', type: 'temporary', pattern: 'EXT4-fs error \\(device [^)]+\\): .+' },
    { reason: 'FilesystemIsReadOnly', type: 'permanent', condition: 'ReadonlyFilesystem', pattern: 'EXT4-fs \\([^)]+\\): Remounting filesystem read-only' },
    { reason: 'XfsError', type: 'temporary', pattern: 'XFS \\([^)]+\\): (Corruption detected|Metadata corruption detected|metadata I/O error|Internal error).*' },
    { reason: 'XfsShutdown', type: 'permanent', condition: 'ReadonlyFilesystem', pattern: 'XFS \\([^)]+\\): .*(Shutting down filesystem|Filesystem has been shut down).*' },
    { reason: 'IOError', type: 'temporary', pattern: 'I/O error, dev \\S+, sector \\d+.*' },
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
