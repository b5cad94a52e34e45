// A stand-in for an alerting client the README's snippets inject.

export declare class AlertsService {
  notify(message: string): Promise<void>;
}
