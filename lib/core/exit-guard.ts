/**
 * Timers never keep the process alive, so a script that forgets `stop()` would exit with records
 * still buffered in memory. When Node is about to exit for lack of work, running buffers flush what
 * they hold first; the work they start keeps the process alive until it is done.
 */
export const exitGuard = {
  buffers: new Map<object, () => void>(),
  listening: false,
  add(buffer: object, finish: () => void): void {
    this.buffers.set(buffer, finish);
    if (!this.listening) {
      this.listening = true;
      process.on('beforeExit', () => {
        for (const finishOne of this.buffers.values()) finishOne();
      });
    }
  },
  delete(buffer: object): void {
    this.buffers.delete(buffer);
  },
};
