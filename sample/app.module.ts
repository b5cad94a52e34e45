import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { APP_FILTER } from '@nestjs/core';
import { BufIOModule } from '@risemaxi/bufio/nest';
import { BufIOExceptionFilter } from './bufio-exception.filter.js';
import { EventsModule } from './events/events.module.js';
import { OpsModule } from './ops/ops.module.js';
import { SETTINGS } from './settings.js';

/**
 * The sample application: BufIO's defaults from the environment through `ConfigService`, the
 * events feature, and `/metrics` and `/health` for operators. Numbers from the environment arrive as strings ("500"): BufIOModule accepts
 * numeric strings and refuses anything else at boot, naming the option and the value.
 */
@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }),
    BufIOModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        batchSize: config.get<number>(SETTINGS.batchSize.env, SETTINGS.batchSize.default),
        flushInterval: config.get<number>(
          SETTINGS.flushInterval.env,
          SETTINGS.flushInterval.default,
        ),
        shutdownTimeout: config.get<number>(
          SETTINGS.shutdownTimeout.env,
          SETTINGS.shutdownTimeout.default,
        ),
      }),
    }),
    EventsModule,
    OpsModule,
  ],
  providers: [{ provide: APP_FILTER, useClass: BufIOExceptionFilter }],
})
export class AppModule {}
