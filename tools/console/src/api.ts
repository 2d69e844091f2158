// brookd's HTTP API as the console uses it (the contract: issue 24's http-api notes), with
// one fetch wrapper per endpoint. URLs are relative to the page, so a console served at
// http://host/prefix/ asks http://host/prefix/api/... and works behind a reverse proxy.

export interface BrokerInfo {
  version: string;
  uptime_s: number;
  shard_count: number;
  ready: boolean;
  listeners: Record<string, string>;
  totals: Record<string, number>;
  rates: Record<string, number>;
  shards: ShardNow[];
}

export interface ShardNow {
  shard: number;
  busy_ratio: number;
  turns: number;
  connections: number;
  sessions: number;
  topics: number;
  mailbox_depth: number;
  memory_bytes: number;
  publishes: number;
  deliveries: number;
}

export interface Topic {
  path: string;
  shard: number;
  type: string;
  sequence: number;
  rate_per_s: number;
  subscribers: number;
  retained: boolean;
  conflate: boolean;
  history: number;
  value_bytes: number;
  value?: string;
  value_truncated?: boolean;
}

export interface TopicPage {
  total: number;
  offset: number;
  limit: number;
  sort: string;
  topics: Topic[];
}

export interface Session {
  id: string;
  principal: string;
  shard: number;
  address: string;
  transport: string;
  state: string;
  subscriptions: number;
  pending_frames: number;
  pending_bytes: number;
  recovery_frames: number;
  recovery_bytes: number;
  age_s: number;
  idle_s: number;
  holding_publishers: boolean;
  held_back: boolean;
}

export interface ClosedSession {
  id: string;
  principal: string;
  shard: number;
  address: string;
  transport: string;
  closed_at: string;
  age_s: number;
  reason: string;
}

export interface SessionPage {
  total: number;
  offset: number;
  limit: number;
  sort: string;
  sessions: Session[];
  closed: ClosedSession[];
}

export interface HistorySample {
  t: number; // milliseconds since the Unix epoch
  busy_ratio: number;
  publishes_per_s: number;
  deliveries_per_s: number;
  connections: number;
  mailbox_depth: number;
  memory_bytes: number;
}

export interface History {
  interval_s: number;
  shards: { shard: number; samples: HistorySample[] }[];
}

// A failed request, said the way the banner shows it: brookd not answering at all, or
// answering with an error status (its {"error": ...} text when it sent one).
export class ApiError extends Error {
  constructor(message: string, readonly unreachable: boolean) {
    super(message);
  }
}

const TIMEOUT_MS = 3000;

async function get<T>(relativeUrl: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(relativeUrl, { signal: AbortSignal.timeout(TIMEOUT_MS), cache: 'no-store' });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    const why = timedOut ? `no answer in ${TIMEOUT_MS} ms` : `no connection (${error instanceof Error ? error.message : error})`;
    throw new ApiError(`${relativeUrl}: ${why}`, true);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = (await response.json()) as { error?: string };
      if (body.error) detail = body.error;
    } catch {
      // Not JSON (a proxy's error page, say): the status line says enough.
    }
    throw new ApiError(`${relativeUrl}: HTTP ${response.status} ${detail}`, false);
  }
  return (await response.json()) as T;
}

export const fetchBroker = () => get<BrokerInfo>('api/broker');
export const fetchTopics = (limit: number) => get<TopicPage>(`api/topics?values=1&sort=path&limit=${limit}`);
export const fetchSessions = (limit: number) => get<SessionPage>(`api/sessions?sort=queue&limit=${limit}`);
export const fetchHistory = () => get<History>('api/history');
