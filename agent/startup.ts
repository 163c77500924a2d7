// What stops the agent from starting, said in one line: `nodemedic agent` prints the message (no
// stack) and exits 1. For faults an operator fixes on the node or in the configuration — a port in
// use, a file that cannot be read — not for what may come right by itself (the apiserver), which the
// agent waits out.
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}
