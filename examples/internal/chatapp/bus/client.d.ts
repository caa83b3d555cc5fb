// Type declarations for courier.js, the Courier browser client
// (wire protocol v1, docs/protocol.md).

/** Error codes of the protocol (docs/protocol.md, section 3) and of the client. */
export type ErrorCode =
  | 'bad_json' | 'bad_frame' | 'unknown_op' | 'version' | 'hello_required' | 'unauthorized'
  | 'forbidden' | 'invalid_name' | 'type_mismatch' | 'too_large' | 'rate_limited' | 'limit'
  | 'conflict' | 'not_found' | 'no_handler' | 'timeout' | 'failed' | 'unavailable' | 'internal'
  // client-side codes
  | 'closed' | 'disconnected' | 'buffer_full' | 'handler' | 'unsubscribed' | 'connect' | 'auth'
  | 'too many bad frames' | 'replaced'
  | (string & {});

/** An error frame from the server, or a failure of the client. */
export class CourierError extends Error {
  readonly name: 'CourierError';
  /** The protocol error code, or a client code ('closed', 'disconnected', 'buffer_full', ...). */
  readonly code: ErrorCode;
  /** The human-readable detail (not stable). */
  readonly detail: string;
  /** The subscription concerned, when there is one. */
  readonly sub?: string;
  /** The WebSocket close code, for errors that stopped the client. */
  readonly closeCode?: number;
  readonly cause?: unknown;
}

/** A stream position. Epochs are decimal strings: they use all 64 bits. */
export interface Position {
  epoch: string;
  seq: number;
}

export type ConnectionState = 'connecting' | 'online' | 'reconnecting' | 'offline' | 'closed';

export interface ConnectOptions {
  /** The hello "auth" payload, or a function (possibly async) called on every connect. */
  auth?: unknown | (() => unknown | Promise<unknown>);
  /** First reconnect wait in ms (default 1000); doubles up to maxBackoff, each wait ±50%. */
  minBackoff?: number;
  /** Longest reconnect wait in ms (default 5000). */
  maxBackoff?: number;
  /** Most publishes buffered while offline (default 1000). */
  buffer?: number;
  /** Default timeout of join, leave, presence and request in ms (default 10000), offline time included. */
  timeout?: number;
  /** How long to wait for the welcome after the socket opened, in ms (default 10000). */
  helloTimeout?: number;
  /** A WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
}

export interface Message<T = unknown> {
  /** The subscription's id. */
  sub: string;
  topic: string;
  /** Absent for a volatile publish. */
  epoch?: string;
  /** 0 for a volatile publish. */
  seq: number;
  /** Delivery number; 0 for volatile deliveries. */
  n: number;
  /** 1, or more for a redelivery. */
  attempt: number;
  /** The rooms the message was addressed to. */
  rooms: string[];
  /**
   * The publisher's headers. On a message a client published, the server's
   * 'courier-user' (the publisher's authenticated identity, absent when
   * anonymous) and 'courier-session' (its session id) say who sent it; no
   * client can set them.
   */
  headers: Record<string, string>;
  /** The message; a Uint8Array when the topic does not carry JSON. */
  data: T;
}

export interface SubscribeOptions {
  /** Where to start (default 'new'); all but 'new' need an exact topic. */
  start?: 'new' | 'first' | 'seq' | 'after';
  /** With start 'seq' or 'after'. */
  seq?: number;
  /** With start 'after'. */
  epoch?: string;
  /** At-most-once: no acks, nothing kept while disconnected. */
  volatile?: boolean;
  /** Most deliveries unacknowledged at once (server default 256); 1 keeps strict order with retries. */
  maxInflight?: number;
  /** ms before an unacknowledged delivery is sent again (server default 30000). */
  ackWait?: number;
  /** Attempts before a delivery is given up (default 0: never). */
  maxDeliver?: number;
  /** Called when the subscription is refused or its handler throws (instead of the 'error' event). */
  onError?: (err: CourierError) => void;
  /** Called when history lost messages owed to the subscription. */
  onResync?: (ev: ResyncEvent) => void;
}

export interface Subscribed {
  /** The topic's position when the subscription began (exact topics only). */
  epoch?: string;
  seq?: number;
  /** False when the start asked for messages history no longer holds. */
  recovered: boolean;
}

/** Unsubscribes; resolves once the server confirmed (or at once while offline). */
export interface Unsubscribe {
  (): Promise<void>;
  /** The subscription id. */
  readonly id: string;
  /** The server's answer; rejects when the subscription is refused. */
  readonly ready: Promise<Subscribed>;
  /** The resume position: every message up to it was handled. null before the first. */
  position(): Position | null;
}

export interface PublishOptions {
  /** Wait for the server's puback (default true). */
  ack?: boolean;
  /** Reach only the members of these rooms. */
  rooms?: string[];
  /** Do not reach the members of these rooms. */
  except?: string[];
  /** Do not reach this client's own subscriptions. */
  excludeSelf?: boolean;
  /** At-most-once: not kept in history; dropped while offline. */
  volatile?: boolean;
  /** Names starting with 'courier-' are the server's: it drops them and sets its own. */
  headers?: Record<string, string>;
}

export interface Published {
  epoch?: string;
  /** 0 for a volatile publish or one without ack. */
  seq: number;
  /** True when a volatile publish was dropped because the client was offline. */
  dropped?: boolean;
}

export interface Member {
  /** The member id: a client's session id. */
  member: string;
  /** The identity the server authenticated, '' for anonymous members. */
  user: string;
  /** True while the member's connection is down and its session waits for it to resume. */
  away: boolean;
}

/**
 * A change in a watched room: a join, a leave (joined false), a member whose
 * connection dropped (joined and away: it leaves if it does not resume) or
 * that came back (joined, not away).
 */
export interface PresenceEvent {
  room: string;
  member: string;
  user: string;
  joined: boolean;
  away: boolean;
}

export interface StopWatching {
  (): Promise<void>;
  /** The first member list. */
  readonly ready: Promise<Member[]>;
}

export interface ConnectEvent {
  session: string;
  /** True when the resume token restored the earlier session. */
  resumed: boolean;
  /** False on the first connect. */
  reconnect: boolean;
  /** The WebSocket URL this connection went to (one of Client.urls). */
  url: string;
}

export interface DisconnectEvent {
  /** The WebSocket close code (1006 for a network failure). */
  code: number;
  reason: string;
  willReconnect: boolean;
  /** The WebSocket URL of the connection that ended. */
  url: string;
}

export interface ResumeEvent {
  session: string;
  /** True when the server kept the session; false when a new one began. */
  resumed: boolean;
  subscriptions: { id: string; topic: string; recovered: boolean }[];
  /** Subscription id → whether nothing it was owed was lost. */
  recovered: Record<string, boolean>;
}

export interface ResyncEvent {
  sub: string;
  topic: string;
  epoch: string;
  /** Delivery continues here; what came before it is lost to the subscription. */
  seq: number;
}

export interface Events {
  connect: ConnectEvent;
  disconnect: DisconnectEvent;
  resume: ResumeEvent;
  error: CourierError;
  state: ConnectionState;
  resync: ResyncEvent;
}

export interface ServerRequest {
  id: string;
  topic: string;
}

/**
 * What a bridge exposes, by action: the payload of each topic name or
 * pattern (a template literal type such as `chat.${string}`). The bridge
 * serves its own at '<mount>topics.d.ts' (interface Topics), generated from
 * the Go types of its topics; courier-ts writes it into a front-end tree.
 * Request payloads are { request: T; reply: R }.
 */
export interface Schema {
  subscribe: object;
  publish: object;
  request: object;
}

/** The schema of a client given none: any topic, payloads unknown. */
export interface AnySchema {
  subscribe: { [topic: string]: unknown };
  publish: { [topic: string]: unknown };
  request: { [topic: string]: { request: unknown; reply: unknown } };
}

/** The topic names and patterns S declares for an action. */
export type TopicsOf<S extends Schema, A extends keyof Schema> = keyof S[A] & string;
/** The payload S declares for topic K and an action. */
export type PayloadOf<S extends Schema, A extends keyof Schema, K extends string> =
  K extends keyof S[A] ? S[A][K] : never;
/** The payload of a request to K. */
export type RequestOf<S extends Schema, K extends string> =
  PayloadOf<S, 'request', K> extends { request: infer T } ? T : unknown;
/** The reply of a request to K. */
export type ReplyOf<S extends Schema, K extends string> =
  PayloadOf<S, 'request', K> extends { reply: infer R } ? R : unknown;

/**
 * A client. S, the schema, types the topics and payloads of subscribe,
 * publish and request: connect<Topics>(url), with Topics from the bridge's
 * topics.d.ts.
 */
export class Client<S extends Schema = AnySchema> {
  /** The WebSocket URL of the current connection, or of the next attempt while offline. */
  readonly url: string;
  /** Every WebSocket URL the client connects to, in turn (one unless connect() was given a list). */
  readonly urls: readonly string[];
  /** The session id: this client's member id in rooms and presence. '' before the first welcome. */
  readonly session: string;
  /** The server's heartbeat interval in ms. */
  readonly heartbeat: number;
  /** The server's limits, from the welcome. */
  readonly limits: {
    frame: number; message: number; subs: number; rate: number; burst: number; inflight: number; outbound: number;
  } | null;
  readonly state: ConnectionState;
  readonly connected: boolean;
  /** While offline: when the next attempt starts (ms since the epoch). */
  readonly retryAt?: number;

  on<K extends keyof Events>(event: K, fn: (ev: Events[K]) => void): () => void;
  off<K extends keyof Events>(event: K, fn: (ev: Events[K]) => void): void;

  /**
   * Subscribes to a topic or pattern that S declares for subscribe. A delivery is
   * acknowledged when the handler returns, or when the promise it returns resolves.
   */
  subscribe<K extends TopicsOf<S, 'subscribe'>>(
    topic: K,
    handler: (data: PayloadOf<S, 'subscribe', K>, msg: Message<PayloadOf<S, 'subscribe', K>>) => unknown,
    opts?: SubscribeOptions,
  ): Unsubscribe;
  /** Publishes data, of the type S declares for the topic, to a topic S declares for publish. */
  publish<K extends TopicsOf<S, 'publish'>>(topic: K, data: PayloadOf<S, 'publish', K>, opts?: PublishOptions): Promise<Published>;
  /** Sends a request to a topic S declares for request; resolves to its reply. */
  request<K extends TopicsOf<S, 'request'>>(
    topic: K,
    data?: RequestOf<S, K>,
    opts?: { timeout?: number },
  ): Promise<ReplyOf<S, K>>;
  handle<T = unknown>(topic: string, fn: (data: T, req: ServerRequest) => unknown | Promise<unknown>): () => void;
  join(rooms: string | string[]): Promise<void>;
  leave(rooms: string | string[]): Promise<void>;
  presence(room: string): Promise<Member[]>;
  watchPresence(room: string, fn: (members: Member[], event: PresenceEvent | null) => void): StopWatching;
  ping(): Promise<number>;
  /** Closes the socket but keeps the session; stays offline until reconnect(). */
  disconnect(): void;
  /** Connects now (after disconnect(), a terminal close, or instead of waiting for the next retry). */
  reconnect(): void;
  /** Ends the session and closes for good. */
  close(): Promise<void>;
}

/**
 * Connects to the bridge at url (by default the one that served this module)
 * and returns the client at once; it connects in the background.
 *
 * Failover: url may be a list, the bridges of the nodes of a cluster (package
 * cluster). The client starts with the first and moves to the next one, round
 * robin, with the same backoff as with one URL, after an attempt that fails
 * and when the server closes its bridge (close code 1000 or 1001); any other
 * drop is retried on the same URL first, where the session may be resumed. A
 * session lives in one node, so on another node the welcome says resumed:
 * false, and the client joins its rooms again and subscribes to exact topics
 * from the last positions it handled (start 'after'), which mean the same on
 * every node: nothing is lost or handled twice. Every URL must be a bridge of
 * the same cluster, and each bridge must allow the page's origin
 * (bridge.AllowOrigins).
 *
 *   connect(['wss://a.example.com/bus/', 'wss://b.example.com/bus/'], { auth })
 *
 * S types the topics (see Schema): connect<Topics>(url), with Topics
 * imported from the bridge's '<mount>topics.d.ts'.
 */
export function connect<S extends Schema = AnySchema>(
  url?: string | URL | readonly (string | URL)[],
  options?: ConnectOptions,
): Client<S>;

declare const _default: { connect: typeof connect; Client: typeof Client; CourierError: typeof CourierError };
export default _default;
