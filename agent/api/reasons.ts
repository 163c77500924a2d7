// Every reason the agent itself writes — a processor's failure, a step's outcome on an Abnormal's
// status, conditions and Events, an HTTP error reply — in one list, so each is spelt one way and can be
// looked up (alert rules and `kubectl get ab` match on them). Reasons that come from elsewhere are not
// here: a log rule's reason, an alert's name, or a reason an HTTP or script processor sends.
export const Reason = {
  // --- a processor call failed (Outcome.ok false), whatever the processor ---
  /** No complete answer within the processor's timeout. */
  Timeout: 'Timeout',
  /** The processor could not be reached at all. */
  Unreachable: 'Unreachable',
  /** The reply is not JSON, not an object, or fails the Abnormal schema. */
  InvalidReply: 'InvalidReply',
  ReplyTooLarge: 'ReplyTooLarge',
  /** The reply changes what only people and sources (spec), or only the agent (phase, conditions, …), write. */
  ReplyRewritesSpec: 'ReplyRewritesSpec',
  ReplyRewritesMetadata: 'ReplyRewritesMetadata',
  ReplyRewritesPhase: 'ReplyRewritesPhase',
  ReplyRewritesStatus: 'ReplyRewritesStatus',
  /** The bearer token a processor or receiver needs cannot be read. */
  TokenUnavailable: 'TokenUnavailable',
  /** The processor threw: a bug in it, turned into a failure so no Abnormal is left stuck. */
  ProcessorError: 'ProcessorError',
  ScriptGone: 'ScriptGone',
  UnsafeScript: 'UnsafeScript',
  ScriptFailed: 'ScriptFailed',

  // --- built-in processors ---
  ExecProbesDisabled: 'ExecProbesDisabled',
  PodIPUnknown: 'PodIPUnknown',
  /** A probe aimed where it may not go: not this node's address, not the probed pod's, or link-local / cloud metadata. */
  ProbeTargetRefused: 'ProbeTargetRefused',
  /** A podProbe of a pod that runs on another node: that node's agent probes it. */
  PodNotOnThisNode: 'PodNotOnThisNode',
  NamedPortUnsupported: 'NamedPortUnsupported',
  NoContainerRuntime: 'NoContainerRuntime',
  PodUnreadable: 'PodUnreadable',
  ContainerNotFound: 'ContainerNotFound',
  ContainerAmbiguous: 'ContainerAmbiguous',
  ContainerRuntimeError: 'ContainerRuntimeError',
  KernelLogUnreadable: 'KernelLogUnreadable',
  StatfsFailed: 'StatfsFailed',
  DiskFull: 'DiskFull',
  DiskNotFull: 'DiskNotFull',
  ShimReaperDeadlock: 'ShimReaperDeadlock',
  ShimUnresponsive: 'ShimUnresponsive',
  /** A recoverer was given no process to act on. */
  NoTargets: 'NoTargets',
  /** A recoverer's own rails refused to act (allow-list, pid reuse, the diagnosis no longer holds). */
  Refused: 'Refused',
  SignalFailed: 'SignalFailed',
  Signalled: 'Signalled',
  ProcessStillRunning: 'ProcessStillRunning',
  PodStillTerminating: 'PodStillTerminating',
  PodTerminated: 'PodTerminated',
  /** Dry run: the recoverer said what it would do and did nothing. */
  DryRun: 'DryRun',

  // --- symptoms the agent's own sources name (log rules name theirs in their rule files) ---
  /** A pod of this node still there well after its deletion deadline (the stuck-pod source). */
  PodStuckTerminating: 'PodStuckTerminating',

  // --- the pipeline's steps (status.reason, conditions, Events) ---
  Accepted: 'Accepted',
  NoCollectors: 'NoCollectors',
  Collected: 'Collected',
  PartiallyCollected: 'PartiallyCollected',
  CollectionFailed: 'CollectionFailed',
  Identified: 'Identified',
  NotIdentified: 'NotIdentified',
  /** Right before a recoverer would act, the diagnosis was not confirmed on fresh evidence: nothing acts. */
  DiagnosisNotConfirmed: 'DiagnosisNotConfirmed',
  RecovererRunning: 'RecovererRunning',
  RecovererFailed: 'RecovererFailed',
  Recovered: 'Recovered',
  NotRecovered: 'NotRecovered',
  /** The agent stopped while a recoverer was acting: it cannot tell what happened, a person decides. */
  RecoveryInterrupted: 'RecoveryInterrupted',
  RecoveryCooldown: 'RecoveryCooldown',
  RecoveryRateLimited: 'RecoveryRateLimited',
  RecoveryBudgetUnavailable: 'RecoveryBudgetUnavailable',
  RecoveryBudgetExhausted: 'RecoveryBudgetExhausted',
  /** An Abnormal (a file of the file store, a request body) that fails the schema. */
  InvalidAbnormal: 'InvalidAbnormal',

  // --- HTTP error replies of the agent's server ---
  NotFound: 'NotFound',
  MethodNotAllowed: 'MethodNotAllowed',
  TooLarge: 'TooLarge',
  Unauthorized: 'Unauthorized',
  /** The part that would answer is stopping or not started. */
  Unavailable: 'Unavailable',
  InternalError: 'InternalError',
  InvalidJSON: 'InvalidJSON',
  InvalidPayload: 'InvalidPayload',
} as const;

export type Reason = (typeof Reason)[keyof typeof Reason];
