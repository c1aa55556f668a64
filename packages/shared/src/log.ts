import { pino, destination, stdTimeFunctions, type Logger as PinoLogger, type DestinationStream } from 'pino';

/**
 * Structured logs, one JSON object a line, every line naming the daemon and its id.
 * pino rather than our own: it is fast, well kept, and its format is what log shippers
 * already parse.
 */
export type Logger = PinoLogger;

export interface LoggerOptions {
  daemon: 'hub' | 'spoke' | 'envoy' | 'cli' | 'test' | 'bench' | 'demo';
  id: string;
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(o: LoggerOptions): Logger {
  const level = o.level ?? process.env.AXLE_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      base: { daemon: o.daemon, id: o.id },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    o.destination ?? destination({ fd: 2, sync: false }),
  );
}

/** A logger that writes nothing, for library use and quiet tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
