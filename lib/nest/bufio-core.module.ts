import { Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { BufIOMetadataAccessor } from './bufio-metadata.accessor.js';
import { BufIOExplorer } from './bufio.explorer.js';
import { BufIOOrchestrator } from './bufio.orchestrator.js';
import { BufIORegistry } from './bufio.registry.js';
import { BufIOScheduler } from './bufio.scheduler.js';
import { BufIOService } from './bufio.service.js';

/**
 * The one instance of BufIO's machinery in an application: the registry of buffers, the explorer,
 * the lifecycle owner. A static, global module, so that Nest creates it once however many times
 * `forRoot`, `forRootAsync`, `forFeature` and `forFeatureAsync` import it (Nest keys dynamic
 * modules by reference: machinery declared in each dynamic module would run once per import).
 */
@Global()
@Module({
  imports: [DiscoveryModule],
  providers: [
    BufIORegistry,
    BufIOScheduler,
    BufIOMetadataAccessor,
    BufIOExplorer,
    BufIOOrchestrator,
    BufIOService,
  ],
  exports: [BufIORegistry, BufIOScheduler, BufIOService],
})
export class BufIOCoreModule {}
