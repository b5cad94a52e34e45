import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createSampleApp } from './bootstrap.js';
import { SETTINGS } from './settings.js';

/**
 * The sample as a standalone server: `node dist/sample/server.js` (PORT, BUFIO_* and
 * SAMPLE_WRITE_DELAY_MS from the environment). Stop it with SIGTERM or Ctrl-C: the buffer drains
 * into the database before the process exits.
 */
async function main(): Promise<void> {
  const app = await createSampleApp();
  const config = app.get(ConfigService);
  const port = Number(config.get(SETTINGS.port.env, SETTINGS.port.default));
  await app.listen(port, '127.0.0.1');
  new Logger('Sample').log(`listening on ${await app.getUrl()}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
