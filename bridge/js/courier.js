// Courier browser client: one dependency-free ES module that speaks the
// Courier wire protocol v1 (docs/protocol.md) to a bridge. The bridge serves
// this file at "<mount>client.js".
//
//   import { connect } from '/bus/client.js';
//   const client = connect('/bus/', { auth: { name: 'alice' } });
//   const stop = client.subscribe('chat.lobby', (data, msg) => show(data));
//   await client.publish('chat.lobby', { text: 'hi' });
//
// The client reconnects by itself with exponential backoff and jitter and
// resumes its session with the server's resume token: subscriptions, rooms
// and unacknowledged messages come back. Given several URLs (the bridges of
// the nodes of a cluster), it fails over: after an attempt that fails, or
// when the server closes its bridge, the next attempt goes to the next URL,
// round robin; on another node the session is new, and the client joins its
// rooms again and subscribes from the last positions it handled. While it is offline, publishes are
// buffered (up to `buffer`, volatile ones are dropped) and sent in order
// once it is back. A message is acknowledged when its handler returns (or
// the promise it returns resolves); a handler that throws gets it again.

const VERSION = 1;

/** An error reported by the server (an error frame) or by the client. */
export class CourierError extends Error {
  constructor(code, message, extra) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'CourierError';
    this.code = code;
    this.detail = message || '';
    if (extra) Object.assign(this, extra);
  }
}

// Close codes the client stops on (docs/protocol.md, section 4). On every
// other code, 4008 (slow) and 4009 (disconnected by the host) among them, it
// reconnects and resumes its session.
const TERMINAL = new Map([
  [4000, 'too many bad frames'],
  [4001, 'unauthorized'],
  [4003, 'replaced'],
  [4005, 'version'],
]);

const DEFAULTS = {
  minBackoff: 1000,
  maxBackoff: 5000,
  buffer: 1000,
  timeout: 10000,
  helloTimeout: 10000,
};

function wsURL(url) {
  const loc = globalThis.location;
  let u;
  if (url === undefined || url === null || url === '') {
    u = new URL('./', import.meta.url);
  } else {
    u = new URL(String(url), loc ? loc.href : import.meta.url);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.href;
}

function isPattern(name) {
  return name.split('.').some((t) => t === '*' || t === '>');
}

function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) { n += 2; i++; } // surrogate pair: 4 bytes for 2 units
    else n += 2;
  }
  return n;
}

function decodeBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function randomID() {
  const a = new Uint8Array(6);
  (globalThis.crypto || { getRandomValues: (x) => x.map(() => Math.floor(Math.random() * 256)) }).getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

const noop = () => {};

// members reads the member list of a presence answer.
function members(f) {
  return (f.members || []).map((m) => ({ member: m.member, user: m.user || '', away: m.away === true }));
}

/**
 * Connects to the bridge at url (ws:, wss:, http:, https: or a path
 * relative to the page; by default the bridge that served this module) and
 * returns the client at once; it connects in the background. url may be an
 * array of such URLs, the bridges of a cluster's nodes: the client starts
 * with the first and moves to the next one, round robin, after an attempt
 * that fails and when the server closes its bridge (close code 1000 or
 * 1001). Other drops (a network failure, a dead connection) are retried on
 * the same URL first, to resume the session there.
 */
export function connect(url, options) {
  return new Client(url, options || {});
}

/** A connection to a Courier bridge. Make one with connect(). */
export class Client {
  constructor(url, options) {
    const list = Array.isArray(url) ? url : [url];
    if (!list.length) throw new TypeError('courier: connect needs at least one URL');
    this.urls = Object.freeze(list.map(wsURL)); // where to connect, in turn
    this._urlIndex = 0;
    this.url = this.urls[0]; // where the current (or next) attempt goes
    this._opts = { ...DEFAULTS, ...options };
    this._WS = this._opts.WebSocket || globalThis.WebSocket;
    this._listeners = new Map();
    this._instance = randomID();
    this._nextID = 0; // ids of calls, subscriptions and publisher ids
    this._order = 0; // order of outbound items
    this._gen = 0; // connection generation
    this._ws = null;
    this._state = 'connecting';
    this._welcomed = false; // the current connection got its welcome
    this._everConnected = false;
    this._attempt = 0;
    this._retryTimer = null;
    this._helloTimer = null;
    this._beatTimer = null;
    this._pumpTimer = null;
    this._ackScheduled = false;
    this._paused = false; // disconnect(): stay offline until reconnect()
    this._closed = false;
    this._stopError = null;

    this.session = '';
    this._token = '';
    this.heartbeat = 25000;
    this.limits = null;
    this._lastRecv = 0;
    this._lastSent = 0;

    this._subs = new Map(); // id → sub
    this._rooms = new Set();
    this._watches = new Map(); // room → watch
    this._handlers = new Map(); // topic → fn
    this._pending = new Map(); // call id → item
    this._queue = []; // items waiting for a connection, in order
    this._out = []; // encoded frames waiting for the rate limiter: {s, bytes, item}
    this._tokens = 0;
    this._tokenTime = 0;

    this._onOnline = () => {
      if (this._state === 'offline' && !this._paused && !this._closed && !this._stopError) {
        this._attempt = 0;
        this._clearRetry();
        this._open();
      }
    };
    if (globalThis.addEventListener) globalThis.addEventListener('online', this._onOnline);
    this._open();
  }

  // ---- public API

  /** The connection state: 'connecting', 'online', 'reconnecting', 'offline' or 'closed'. */
  get state() { return this._state; }

  /** True while a session is established. */
  get connected() { return this._state === 'online'; }

  /**
   * Adds a listener for 'connect', 'disconnect', 'resume', 'error', 'state'
   * or 'resync' and returns a function that removes it.
   */
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** Removes a listener added with on(). */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  /**
   * Subscribes to topic (or a pattern with '*' and '>') and calls
   * handler(data, msg) for each message. The message is acknowledged when
   * the handler returns, or when the promise it returns resolves; a throw
   * or a rejection asks for it again after a backoff. Returns a function
   * that unsubscribes, with .id, .ready (a promise of the server's answer:
   * {epoch, seq, recovered}) and .position() (the resume position).
   *
   * opts: start ('new', 'first', 'seq', 'after'), seq, epoch, volatile,
   * maxInflight, ackWait (ms), maxDeliver, onError(err), onResync(ev).
   */
  subscribe(topic, handler, opts) {
    opts = opts || {};
    if (this._closed) {
      const p = Promise.reject(new CourierError('closed', 'client closed'));
      p.catch(noop);
      const f = () => Promise.resolve();
      f.id = '';
      f.ready = p;
      f.position = () => null;
      return f;
    }
    const sub = {
      id: 's' + ++this._nextID,
      topic: String(topic),
      handler,
      opts,
      exact: !isPattern(String(topic)),
      volatile: !!opts.volatile,
      confirmed: false, // the server has it in this session
      ended: false,
      q: [],
      running: false,
      hwm: new Map(), // topic → {epoch, seq} handled
      failed: new Map(), // topic → Set of seqs whose handler failed
      acks: [],
      nacked: new Map(), // topic+' '+seq → n
      base: null, // {epoch, seq}: the topic's position when the subscription began
      readyResolve: null,
      readyReject: null,
      settled: false,
    };
    sub.ready = new Promise((resolve, reject) => {
      sub.readyResolve = resolve;
      sub.readyReject = reject;
    });
    sub.ready.catch(noop);
    this._subs.set(sub.id, sub);
    if (this._state === 'online') this._sendSubscribe(sub, false);
    const unsubscribe = () => this._unsubscribe(sub);
    unsubscribe.id = sub.id;
    unsubscribe.ready = sub.ready;
    unsubscribe.position = () => this._position(sub, sub.topic);
    return unsubscribe;
  }

  /**
   * Publishes data (any JSON value) to topic. Returns a promise: with
   * ack (the default) it resolves with {epoch, seq} once the server has the
   * message in its history, and rejects with a CourierError (code
   * 'forbidden', 'invalid_name', ...); with ack false it resolves once the
   * frame is handed to the socket. While offline the publish is buffered
   * (up to the buffer option; beyond it the promise rejects with
   * 'buffer_full'), except a volatile one, which is dropped: its promise
   * resolves with {seq: 0, dropped: true}.
   *
   * opts: ack, rooms (only members of these rooms get it), except (rooms),
   * excludeSelf, volatile, headers (names starting with 'courier-' are the
   * server's: it drops them, and sets 'courier-user' and 'courier-session'
   * to who published).
   */
  publish(topic, data, opts) {
    opts = opts || {};
    if (this._closed) return Promise.reject(new CourierError('closed', 'client closed'));
    if (data === undefined) return Promise.reject(new CourierError('bad_frame', 'publish needs data'));
    const ack = opts.ack !== false;
    const frame = { op: 'publish', topic: String(topic), data };
    if (opts.rooms && opts.rooms.length) frame.to = [...opts.rooms];
    if (opts.except && opts.except.length) frame.except = [...opts.except];
    if (opts.excludeSelf) frame.except_self = true;
    if (opts.volatile) frame.volatile = true;
    if (opts.headers) frame.headers = { ...opts.headers };
    if (ack && !opts.volatile) frame.pid = `${this._instance}-${++this._nextID}`;
    if (opts.volatile && this._state !== 'online') {
      return Promise.resolve({ seq: 0, dropped: true });
    }
    if (this._stopError && !this._ws) return Promise.reject(this._stopError);
    return new Promise((resolve, reject) => {
      const item = {
        frame,
        call: ack,
        resend: ack && !opts.volatile,
        publish: true,
        volatile: !!opts.volatile,
        resolve: ack
          ? (f) => resolve(f.epoch !== undefined ? { epoch: f.epoch, seq: f.seq || 0 } : { seq: f.seq || 0 })
          : resolve,
        reject,
        timeout: 0, // acked publishes wait for the connection as long as it takes
      };
      this._submit(item);
    });
  }

  /**
   * Sends a request to the server endpoint topic and resolves with the
   * reply's data. opts.timeout (ms, default 10000) bounds the wait,
   * offline time included. Rejects with a CourierError: 'no_handler',
   * 'failed', 'timeout', 'forbidden', or 'disconnected' when the connection
   * dropped before the reply (the request may or may not have run).
   */
  request(topic, data, opts) {
    opts = opts || {};
    const timeout = opts.timeout || this._opts.timeout;
    const frame = { op: 'request', topic: String(topic), data: data === undefined ? null : data, timeout };
    // An absent data is null, as every absent member is its zero value.
    return this._callFrame(frame, { timeout: timeout + 1000, resend: false })
      .then((f) => (f.data === undefined ? null : f.data));
  }

  /**
   * Serves server requests for topic: fn(data, req) returns the reply (or a
   * promise of it); a throw answers with the code 'failed'. Returns a
   * function that removes the handler.
   */
  handle(topic, fn) {
    topic = String(topic);
    this._handlers.set(topic, fn);
    return () => {
      if (this._handlers.get(topic) === fn) this._handlers.delete(topic);
    };
  }

  /** Joins rooms (a name or an array); the client joins them again in a new session. */
  join(rooms) {
    const list = [].concat(rooms).map(String);
    return this._callFrame({ op: 'join', rooms: list }, { resend: true }).then(() => {
      for (const r of list) this._rooms.add(r);
    });
  }

  /** Leaves rooms (a name or an array). */
  leave(rooms) {
    const list = [].concat(rooms).map(String);
    for (const r of list) this._rooms.delete(r);
    return this._callFrame({ op: 'leave', rooms: list }, { resend: true }).then(() => undefined);
  }

  /**
   * Lists the members of room: a promise of [{member, user, away}]; away
   * is true while a member's connection is down and its session waits for
   * it to resume.
   */
  presence(room) {
    return this._callFrame({ op: 'presence', room: String(room) }, { resend: true }).then((f) => members(f));
  }

  /**
   * Watches the members of room: fn(members, event) is called with the
   * full list (sorted by member id) after the first answer and after every
   * reconnect (event null), and after every change (event {room, member,
   * user, joined, away}): a join, a leave (joined false), a member whose
   * connection dropped (away true: it stays in the list until its session
   * ends) or that came back (away false). Returns a function that stops
   * watching, with .ready, a promise of the first list.
   */
  watchPresence(room, fn) {
    room = String(room);
    const w = { room, fn, members: [], stopped: false };
    const old = this._watches.get(room);
    if (old) old.stopped = true;
    this._watches.set(room, w);
    const ready = this._sendWatch(w);
    ready.catch(noop);
    const stop = () => {
      if (this._watches.get(room) !== w) return Promise.resolve();
      w.stopped = true;
      this._watches.delete(room);
      if (this._closed) return Promise.resolve();
      return this._callFrame({ op: 'presence', room, watch: false }, { resend: false })
        .then(() => undefined, () => undefined);
    };
    stop.ready = ready;
    return stop;
  }

  /** Sends a ping and resolves with the round trip time in ms. */
  ping() {
    const t = Date.now();
    return this._callFrame({ op: 'ping' }, { resend: false }).then(() => Date.now() - t);
  }

  /**
   * Closes the connection without ending the session and stays offline
   * until reconnect(); the server keeps the session for its resume window.
   */
  disconnect() {
    if (this._closed) return;
    this._paused = true;
    this._clearRetry();
    const ws = this._ws;
    if (ws) {
      this._lost(1000, 'disconnect');
      try { ws.close(1000, 'disconnect'); } catch (e) { /* already closed */ }
    } else {
      this._setState('offline');
    }
  }

  /** Connects again now: after disconnect(), a terminal close, or while waiting for a retry. */
  reconnect() {
    if (this._closed) return;
    this._paused = false;
    this._stopError = null;
    if (this._ws) return;
    this._attempt = 0;
    this._clearRetry();
    this._open();
  }

  /**
   * Ends the session (the server drops its subscriptions and rooms at
   * once) and closes the connection for good. Pending calls reject with
   * 'closed'.
   */
  close() {
    if (this._closed) return Promise.resolve();
    this._closed = true;
    if (globalThis.removeEventListener) globalThis.removeEventListener('online', this._onOnline);
    this._clearRetry();
    const ws = this._ws;
    let done = Promise.resolve();
    if (ws) {
      done = new Promise((resolve) => {
        const t = setTimeout(resolve, 1000);
        ws.addEventListener('close', () => { clearTimeout(t); resolve(); });
      });
      const welcomed = this._welcomed;
      if (welcomed) {
        try {
          this._pump(true);
          ws.send(JSON.stringify({ op: 'bye' }));
        } catch (e) { /* closing anyway */ }
      }
      this._detach();
      if (welcomed) this._emit('disconnect', { code: 1000, reason: 'bye', willReconnect: false });
      try { ws.close(1000, 'bye'); } catch (e) { /* already closed */ }
    }
    const err = new CourierError('closed', 'client closed');
    for (const item of this._pending.values()) this._fail(item, err);
    for (const item of this._queue) this._fail(item, err);
    this._pending.clear();
    this._queue = [];
    for (const sub of this._subs.values()) {
      sub.ended = true;
      sub.q = [];
      if (!sub.settled) { sub.settled = true; sub.readyReject(err); }
    }
    this._subs.clear();
    this._watches.clear();
    this._setState('closed');
    return done;
  }

  // ---- events

  _emit(event, arg) {
    const set = this._listeners.get(event);
    if (!set || set.size === 0) {
      if (event === 'error' && globalThis.console) console.warn('courier:', arg);
      return;
    }
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        if (globalThis.console) console.error('courier: listener for', event, 'threw', e);
      }
    }
  }

  _setState(s) {
    if (this._state === s) return;
    this._state = s;
    this._emit('state', s);
  }

  // ---- connection

  _open() {
    if (this._closed || this._ws) return;
    this._setState(this._everConnected ? 'reconnecting' : 'connecting');
    const gen = ++this._gen;
    let ws;
    try {
      ws = new this._WS(this.url);
    } catch (e) {
      this._emit('error', new CourierError('connect', String(e && e.message || e)));
      this._scheduleRetry(true);
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.onopen = async () => {
      if (this._gen !== gen) return;
      let auth;
      try {
        auth = typeof this._opts.auth === 'function' ? await this._opts.auth() : this._opts.auth;
      } catch (e) {
        this._emit('error', new CourierError('auth', String(e && e.message || e)));
        ws.close(1000, 'auth');
        return;
      }
      if (this._gen !== gen) return;
      const hello = { op: 'hello', v: VERSION, id: 'hello' };
      if (auth !== undefined) hello.auth = auth;
      if (this._token) hello.resume = this._token;
      try {
        ws.send(JSON.stringify(hello));
        this._lastSent = Date.now();
      } catch (e) { /* onclose follows */ }
    };
    ws.onmessage = (ev) => {
      if (this._gen !== gen) return;
      this._lastRecv = Date.now();
      if (typeof ev.data !== 'string') return;
      let v;
      try {
        v = JSON.parse(ev.data);
      } catch (e) {
        this._emit('error', new CourierError('bad_json', 'undecodable message from the server'));
        return;
      }
      const frames = Array.isArray(v) ? v : [v];
      for (const f of frames) {
        if (this._gen !== gen) return; // a frame ended this connection
        if (f && typeof f === 'object' && typeof f.op === 'string') this._dispatch(f);
      }
    };
    ws.onclose = (ev) => {
      if (this._gen !== gen) return;
      this._lost(ev.code, ev.reason);
    };
    ws.onerror = noop; // a close event follows
    this._helloTimer = setTimeout(() => {
      if (this._gen === gen && !this._welcomed) {
        this._lost(4002, 'no welcome');
        try { ws.close(); } catch (e) { /* gone */ }
      }
    }, this._opts.helloTimeout);
  }

  // _detach forgets the current socket and its timers.
  _detach() {
    if (this._ws) {
      const ws = this._ws;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = noop;
    }
    this._ws = null;
    this._gen++;
    this._welcomed = false;
    clearTimeout(this._helloTimer);
    clearInterval(this._beatTimer);
    clearTimeout(this._pumpTimer);
    this._helloTimer = this._beatTimer = this._pumpTimer = null;
  }

  // _lost runs when the current connection ended, for whatever reason.
  _lost(code, reason) {
    if (!this._ws) return;
    const ws = this._ws;
    const wasWelcomed = this._welcomed;
    this._detach();
    if (ws.readyState === 0 || ws.readyState === 1) {
      try { ws.close(); } catch (e) { /* gone */ }
    }
    // What was written and not answered: calls that may be sent again go
    // back to the queue; the others fail.
    const back = [];
    for (const o of this._out) {
      if (o.item && !back.includes(o.item)) back.push(o.item);
    }
    this._out = [];
    const lostErr = new CourierError('disconnected', 'connection lost before the answer');
    for (const [id, item] of this._pending) {
      if (!item.written) continue;
      this._pending.delete(id);
      if (item.resend) back.push(item);
      else this._fail(item, lostErr);
    }
    for (const item of back) {
      if (item.now) {
        if (item.id) this._pending.delete(item.id);
        this._fail(item, lostErr);
        continue;
      }
      if (item.volatile) {
        item.resolve({ seq: 0, dropped: true });
        continue;
      }
      if (item.id) this._pending.delete(item.id);
      item.written = false;
      item.id = '';
      this._queue.push(item);
    }
    this._queue.sort((a, b) => a.order - b.order);
    for (const sub of this._subs.values()) {
      sub.confirmed = false;
      sub.acks = [];
      sub.nacked.clear();
    }
    const terminal = TERMINAL.has(code);
    if (terminal) {
      const he = this._helloError;
      this._stopError = he
        ? new CourierError(he.code, he.message, { closeCode: code })
        : new CourierError(TERMINAL.get(code), reason || `closed with ${code}`, { closeCode: code });
    }
    this._helloError = null;
    const willReconnect = !this._closed && !this._paused && !terminal;
    if (wasWelcomed || terminal) {
      this._emit('disconnect', { code, reason: reason || '', willReconnect, url: this.url });
    }
    if (terminal) {
      // Nothing goes out until reconnect(): what waits fails now.
      const queued = this._queue;
      this._queue = [];
      for (const item of queued) this._fail(item, this._stopError);
      this._emit('error', this._stopError);
      this._setState('offline');
      return;
    }
    if (this._closed) return;
    if (this._paused) {
      this._setState('offline');
      return;
    }
    // With several URLs, the next attempt goes to the next one when this
    // one failed (it may be a node that is down) or when the server closed
    // its bridge (its sessions end); after any other drop the session may
    // still be there to resume, so the same URL comes first.
    this._scheduleRetry(!wasWelcomed || code === 1000 || code === 1001);
  }

  _scheduleRetry(next) {
    this._clearRetry();
    if (next) {
      this._urlIndex = (this._urlIndex + 1) % this.urls.length;
      this.url = this.urls[this._urlIndex];
    }
    const base = Math.min(this._opts.minBackoff * 2 ** this._attempt, this._opts.maxBackoff);
    const wait = base * (0.5 + Math.random()); // ±50%
    this._attempt++;
    this._setState('offline');
    this.retryAt = Date.now() + wait;
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, wait);
  }

  _clearRetry() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }

  _welcome(f) {
    clearTimeout(this._helloTimer);
    this._helloTimer = null;
    const first = !this._everConnected;
    const resumed = f.resumed === true;
    this._welcomed = true;
    this._everConnected = true;
    this._attempt = 0;
    this.session = f.session || '';
    this._token = f.resume || '';
    this.heartbeat = f.heartbeat > 0 ? f.heartbeat : 25000;
    this.limits = f.limits || null;
    const rate = this.limits && this.limits.rate > 0 ? this.limits.rate : 1000;
    const burst = this.limits && this.limits.burst > 0 ? this.limits.burst : 2000;
    this._rate = rate * 0.9;
    this._burst = Math.max(1, Math.floor(burst * 0.9) - 1);
    this._tokens = this._burst;
    this._tokenTime = Date.now();
    this._lastRecv = this._lastSent = Date.now();
    this._beatTimer = setInterval(() => this._beat(), Math.max(250, Math.floor(this.heartbeat / 2)));
    this._setState('online');

    // Bring the session in line with the client: rooms first (a host may
    // let only members read a room's topics), then subscriptions.
    const rooms = [...this._rooms].filter((r) => !(resumed && (f.rooms || []).includes(r)));
    if (rooms.length) {
      this._callFrame({ op: 'join', rooms }, { resend: true, now: true }).catch((e) => {
        if (e.code !== 'disconnected' && e.code !== 'closed') this._emit('error', e);
      });
    }
    const server = new Map();
    if (resumed) for (const s of f.subs || []) server.set(s.sub, s.recovered !== false);
    const waits = [];
    const report = [];
    for (const sub of this._subs.values()) {
      if (server.has(sub.id)) {
        sub.confirmed = true;
        if (!sub.settled) { sub.settled = true; sub.readyResolve({ recovered: server.get(sub.id) }); }
        report.push({ id: sub.id, topic: sub.topic, recovered: server.get(sub.id) });
        continue;
      }
      const again = sub.settled; // it existed in an earlier session
      const p = this._sendSubscribe(sub, again);
      waits.push(p.then(
        (ans) => {
          // A wildcard subscription made again in a new session starts
          // from now: what was published meanwhile is lost to it.
          const recovered = again && !sub.exact && !sub.volatile ? false : ans.recovered;
          report.push({ id: sub.id, topic: sub.topic, recovered });
        },
        noop,
      ));
    }
    for (const id of server.keys()) {
      if (!this._subs.has(id)) this._callFrame({ op: 'unsubscribe', sub: id }, { now: true }).catch(noop);
    }
    for (const w of this._watches.values()) {
      this._sendWatch(w, true).catch(noop);
    }
    // Then what waited for the connection, in order.
    const queued = this._queue;
    this._queue = [];
    for (const item of queued) this._write(item);
    this._pump();

    this._emit('connect', { session: this.session, resumed, reconnect: !first, url: this.url });
    if (!first) {
      const gen = this._gen;
      Promise.all(waits).then(() => {
        if (this._gen !== gen) return;
        const recovered = {};
        for (const r of report) recovered[r.id] = r.recovered;
        this._emit('resume', { session: this.session, resumed, subscriptions: report, recovered });
      });
    }
  }

  _beat() {
    if (!this._welcomed) return;
    const now = Date.now();
    const hb = this.heartbeat;
    if (now - this._lastRecv > 2 * hb) {
      // Nothing heard for two heartbeats: the connection is dead.
      const ws = this._ws;
      this._lost(4100, 'heartbeat');
      try { ws && ws.close(); } catch (e) { /* gone */ }
      return;
    }
    if (now - this._lastSent >= hb || now - this._lastRecv >= hb) {
      this._control({ op: 'ping' });
    }
  }

  // ---- inbound

  _dispatch(f) {
    switch (f.op) {
      case 'welcome':
        if (!this._welcomed) this._welcome(f);
        return;
      case 'message':
        this._message(f);
        return;
      case 'resync': {
        const sub = this._subs.get(f.sub);
        if (sub && !sub.ended) {
          sub.q.push({ resync: f, gen: this._gen });
          this._runSub(sub);
        }
        return;
      }
      case 'request':
        this._serve(f);
        return;
      case 'presence_event': {
        const w = this._watches.get(f.room);
        if (w && !w.stopped) this._presenceEvent(w, f);
        return;
      }
      default:
        break;
    }
    if (f.id === 'hello' && f.op === 'error') {
      // The close that follows (4001, 4005) reports it.
      this._helloError = f;
      return;
    }
    if (f.id !== undefined && f.id !== '') {
      const item = this._pending.get(f.id);
      if (item) {
        this._pending.delete(f.id);
        if (item.timer) clearTimeout(item.timer);
        if (f.op === 'error') {
          item.reject(new CourierError(f.code || 'internal', f.message, f.sub ? { sub: f.sub } : undefined));
        } else {
          item.resolve(f);
        }
        return;
      }
    }
    if (f.op === 'error') {
      this._emit('error', new CourierError(f.code || 'internal', f.message, f.sub ? { sub: f.sub } : undefined));
    }
  }

  _message(f) {
    const sub = this._subs.get(f.sub);
    if (!sub || sub.ended) return; // not ours (any more): the server drops it with the subscription
    if (sub.volatile) {
      if (sub.q.length >= 4096) return; // at most once: drop when the handler is far behind
    }
    const key = f.topic + ' ' + f.seq;
    if (f.n && sub.nacked.has(key)) sub.nacked.delete(key); // the redelivery of a nacked one
    sub.q.push({ msg: f, gen: this._gen });
    this._runSub(sub);
  }

  async _runSub(sub) {
    if (sub.running) return;
    sub.running = true;
    try {
      while (sub.q.length && !sub.ended) {
        const e = sub.q.shift();
        if (e.resync) {
          const r = e.resync;
          sub.hwm.set(r.topic, { epoch: r.epoch, seq: r.seq - 1 });
          sub.failed.delete(r.topic);
          const ev = { sub: sub.id, topic: r.topic, epoch: r.epoch, seq: r.seq };
          if (sub.opts.onResync) {
            try { sub.opts.onResync(ev); } catch (err) { /* the caller's */ }
          }
          this._emit('resync', ev);
          continue;
        }
        const f = e.msg;
        if (this._handled(sub, f)) {
          this._settle(sub, f, e.gen, true);
          continue;
        }
        let ok = true;
        let err;
        try {
          const m = {
            sub: sub.id,
            topic: f.topic,
            epoch: f.epoch,
            seq: f.seq || 0,
            n: f.n || 0,
            attempt: f.attempt || 1,
            rooms: f.rooms || [],
            headers: f.headers || {},
            data: f.data64 !== undefined ? decodeBase64(f.data64) : f.data,
          };
          await sub.handler(m.data, m);
        } catch (x) {
          ok = false;
          err = x;
        }
        if (sub.ended) break;
        this._record(sub, f, ok);
        this._settle(sub, f, e.gen, ok);
        if (!ok) {
          const ce = new CourierError('handler', String(err && err.message || err), { sub: sub.id, cause: err });
          if (sub.opts.onError) {
            try { sub.opts.onError(ce); } catch (x) { /* the caller's */ }
          } else {
            this._emit('error', ce);
          }
        }
      }
    } finally {
      sub.running = false;
    }
  }

  // _handled reports whether the handler already handled f.
  _handled(sub, f) {
    if (!f.seq) return false;
    const p = sub.hwm.get(f.topic);
    if (!p || p.epoch !== f.epoch || f.seq > p.seq) return false;
    const failed = sub.failed.get(f.topic);
    return !(failed && failed.has(f.seq));
  }

  _record(sub, f, ok) {
    if (!f.seq) return;
    let failed = sub.failed.get(f.topic);
    if (!ok) {
      if (!failed) sub.failed.set(f.topic, (failed = new Set()));
      failed.add(f.seq);
    } else if (failed) {
      failed.delete(f.seq);
      if (failed.size === 0) sub.failed.delete(f.topic);
    }
    const p = sub.hwm.get(f.topic);
    if (!p || p.epoch !== f.epoch) {
      if (p && p.epoch !== f.epoch) sub.failed.delete(f.topic);
      sub.hwm.set(f.topic, { epoch: f.epoch, seq: f.seq });
    } else if (f.seq > p.seq) {
      p.seq = f.seq;
    }
  }

  // _position is where a subscription to topic stands: the last seq such
  // that every message up to it was handled. null before the first.
  _position(sub, topic) {
    const p = sub.hwm.get(topic);
    if (!p) return null;
    let seq = p.seq;
    const failed = sub.failed.get(topic);
    if (failed) for (const s of failed) seq = Math.min(seq, s - 1);
    return { epoch: p.epoch, seq };
  }

  // _settle acks or nacks a delivery, on the connection it came on only:
  // delivery numbers of another connection may belong to a new session.
  _settle(sub, f, gen, ok) {
    if (!f.n || gen !== this._gen || !this._welcomed) return;
    if (ok) {
      sub.acks.push(f.n);
      if (!this._ackScheduled) {
        this._ackScheduled = true;
        setTimeout(() => this._flushAcks(), 0);
      }
      return;
    }
    this._flushAcks(); // acks before the nack, so that upto never covers it
    sub.nacked.set(f.topic + ' ' + f.seq, f.n);
    const attempt = f.attempt || 1;
    const delay = Math.min(100 * 2 ** Math.min(attempt - 1, 6), 5000);
    this._control({ op: 'nack', sub: sub.id, n: f.n, delay });
  }

  // _flushAcks sends the acks gathered since the last flush: one
  // cumulative ack per subscription when no nacked delivery is below it.
  _flushAcks() {
    this._ackScheduled = false;
    if (!this._welcomed) return;
    for (const sub of this._subs.values()) {
      if (!sub.acks.length) continue;
      const acks = sub.acks;
      sub.acks = [];
      const top = Math.max(...acks);
      let blocked = false;
      for (const n of sub.nacked.values()) if (n <= top) blocked = true;
      if (!blocked) {
        this._control({ op: 'ack', sub: sub.id, upto: top });
      } else {
        for (const n of acks) this._control({ op: 'ack', sub: sub.id, n });
      }
    }
  }

  _presenceEvent(w, f) {
    const ev = { room: f.room, member: f.member, user: f.user || '', joined: f.joined === true, away: f.away === true };
    const i = w.members.findIndex((m) => m.member === f.member);
    if (ev.joined && i < 0) {
      w.members.push({ member: f.member, user: ev.user, away: ev.away });
      w.members.sort((a, b) => (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
    } else if (ev.joined) {
      w.members[i] = { member: f.member, user: ev.user || w.members[i].user, away: ev.away };
    } else if (i >= 0) {
      w.members.splice(i, 1);
    }
    try { w.fn([...w.members], ev); } catch (e) { if (globalThis.console) console.error(e); }
  }

  _sendWatch(w, now) {
    return this._callFrame({ op: 'presence', room: w.room, watch: true }, { resend: true, now }).then((f) => {
      if (w.stopped) return [];
      w.members = members(f);
      try { w.fn([...w.members], null); } catch (e) { if (globalThis.console) console.error(e); }
      return [...w.members];
    });
  }

  async _serve(f) {
    const gen = this._gen;
    const fn = this._handlers.get(f.topic);
    const r = { op: 'reply', id: f.id };
    if (!fn) {
      r.code = 'no_handler';
      r.message = `no handler for ${JSON.stringify(f.topic)}`;
    } else {
      try {
        const v = await fn(f.data === undefined ? null : f.data, { id: f.id, topic: f.topic });
        r.data = v === undefined ? null : v;
      } catch (e) {
        r.code = 'failed';
        r.message = String(e && e.message || e);
      }
    }
    if (gen === this._gen && this._welcomed) this._control(r);
  }

  // ---- subscriptions

  _sendSubscribe(sub, again) {
    const o = sub.opts;
    const f = { op: 'subscribe', sub: sub.id, pattern: sub.topic };
    if (o.start && o.start !== 'new') f.start = o.start;
    if (o.seq !== undefined) f.seq = o.seq;
    if (o.epoch !== undefined) f.epoch = String(o.epoch);
    if (sub.volatile) f.volatile = true;
    if (o.maxInflight) f.max_inflight = o.maxInflight;
    if (o.ackWait) f.ack_wait = o.ackWait;
    if (o.maxDeliver) f.max_deliver = o.maxDeliver;
    if (again) {
      const p = sub.exact && !sub.volatile ? this._position(sub, sub.topic) || sub.base : null;
      if (p) {
        f.start = 'after';
        f.epoch = String(p.epoch);
        f.seq = p.seq;
      } else if (sub.volatile || !sub.exact) {
        delete f.start;
        delete f.seq;
        delete f.epoch;
      }
    }
    const p = this._callFrame(f, { resend: false, now: true }).then(
      (ans) => {
        sub.confirmed = true;
        if (!sub.base && ans.epoch !== undefined) sub.base = { epoch: ans.epoch, seq: ans.seq || 0 };
        const res = { epoch: ans.epoch, seq: ans.seq || 0, recovered: ans.recovered !== false };
        if (!sub.settled) { sub.settled = true; sub.readyResolve(res); }
        return res;
      },
      (err) => {
        if (err.code === 'disconnected' || err.code === 'closed') throw err; // sent again on reconnect
        if (this._subs.get(sub.id) === sub) this._subs.delete(sub.id);
        sub.ended = true;
        if (!sub.settled) { sub.settled = true; sub.readyReject(err); }
        const e = new CourierError(err.code, err.detail, { sub: sub.id, topic: sub.topic });
        if (sub.opts.onError) {
          try { sub.opts.onError(e); } catch (x) { /* the caller's */ }
        } else {
          this._emit('error', e);
        }
        throw err;
      },
    );
    p.catch(noop);
    return p;
  }

  _unsubscribe(sub) {
    if (sub.ended && !this._subs.has(sub.id)) return Promise.resolve();
    sub.ended = true;
    sub.q = [];
    this._subs.delete(sub.id);
    if (!sub.settled) {
      sub.settled = true;
      sub.readyReject(new CourierError('unsubscribed', 'unsubscribed before the answer'));
    }
    if (this._state !== 'online') {
      return Promise.resolve(); // a resumed session drops it on reconnect
    }
    return this._callFrame({ op: 'unsubscribe', sub: sub.id }, { resend: false, now: true })
      .then(() => undefined, () => undefined);
  }

  // ---- outbound

  _newID() {
    return String(++this._nextID);
  }

  // _callFrame sends a frame that gets an answer and resolves with it.
  // resend: sent again after a reconnect when the answer did not come;
  // now: only on the current connection (not queued while offline).
  _callFrame(frame, o) {
    if (this._closed) return Promise.reject(new CourierError('closed', 'client closed'));
    if (this._stopError && !this._ws) return Promise.reject(this._stopError);
    return new Promise((resolve, reject) => {
      const item = {
        frame, call: true, resend: !!o.resend, now: !!o.now, resolve, reject,
        timeout: o.timeout || this._opts.timeout,
      };
      if (o.now && !this._welcomed) {
        reject(new CourierError('disconnected', 'not connected'));
        return;
      }
      this._submit(item);
    });
  }

  _submit(item) {
    item.order = ++this._order;
    if (item.timeout) {
      item.timer = setTimeout(() => {
        if (item.done) return;
        if (item.id) this._pending.delete(item.id);
        const i = this._queue.indexOf(item);
        if (i >= 0) this._queue.splice(i, 1);
        this._fail(item, new CourierError('timeout', 'no answer in time'));
      }, item.timeout);
    }
    const done = item.resolve;
    const fail = item.reject;
    item.resolve = (v) => { if (!item.done) { item.done = true; clearTimeout(item.timer); done(v); } };
    item.reject = (e) => { if (!item.done) { item.done = true; clearTimeout(item.timer); fail(e); } };
    if (this._welcomed) {
      this._write(item);
      this._pump();
      return;
    }
    if (item.publish) {
      let n = 0;
      for (const q of this._queue) if (q.publish) n++;
      if (n >= this._opts.buffer) {
        item.reject(new CourierError('buffer_full', `more than ${this._opts.buffer} publishes buffered while offline`));
        return;
      }
    }
    this._queue.push(item);
  }

  _fail(item, err) {
    if (item.reject) item.reject(err);
  }

  // _write encodes an item's frame and puts it in the rate-limited output.
  _write(item) {
    if (item.done) return;
    const f = item.frame;
    if (item.call) {
      item.id = this._newID();
      f.id = item.id;
      this._pending.set(item.id, item);
    } else {
      delete f.id;
    }
    let s;
    try {
      s = JSON.stringify(f);
    } catch (e) {
      if (item.id) this._pending.delete(item.id);
      item.reject(new CourierError('bad_frame', 'data is not JSON: ' + (e && e.message || e)));
      return;
    }
    const bytes = utf8Length(s);
    if (this.limits && this.limits.frame && bytes > this.limits.frame) {
      if (item.id) this._pending.delete(item.id);
      item.reject(new CourierError('too_large', `frame of ${bytes} bytes, limit ${this.limits.frame}`));
      return;
    }
    this._out.push({ s, bytes, item });
  }

  // _control queues a frame that is never sent again (acks, pings, replies).
  _control(frame, pump) {
    if (!this._welcomed) return;
    const s = JSON.stringify(frame);
    // Acks and nacks do not count against the server's frame rate.
    const free = frame.op === 'ack' || frame.op === 'nack';
    this._out.push({ s, bytes: utf8Length(s), item: null, free });
    if (pump === false) return;
    this._pump();
  }

  // _pump writes what the rate limiter allows, several frames per message.
  _pump(force) {
    const ws = this._ws;
    if (!this._welcomed || !ws || !this._out.length) return;
    const now = Date.now();
    this._tokens = Math.min(this._burst, this._tokens + ((now - this._tokenTime) / 1000) * this._rate);
    this._tokenTime = now;
    const maxMsg = (this.limits && this.limits.message) || 262144;
    const ready = () => this._out.length && (force || this._out[0].free || this._tokens >= 1);
    while (ready()) {
      const batch = [];
      let size = 2;
      while (batch.length < 256 && ready()) {
        const o = this._out[0];
        if (batch.length && size + o.bytes + 1 > maxMsg) break;
        batch.push(o);
        size += o.bytes + 1;
        if (!o.free) this._tokens -= 1;
        this._out.shift();
      }
      const msg = batch.length === 1 ? batch[0].s : '[' + batch.map((o) => o.s).join(',') + ']';
      try {
        ws.send(msg);
      } catch (e) {
        this._out.unshift(...batch);
        return; // onclose follows
      }
      this._lastSent = now;
      for (const o of batch) {
        const item = o.item;
        if (!item) continue;
        item.written = true;
        if (!item.call) item.resolve({ seq: 0 });
      }
    }
    if (this._out.length && !this._pumpTimer) {
      const wait = Math.max(10, Math.ceil(((1 - this._tokens) / this._rate) * 1000));
      this._pumpTimer = setTimeout(() => {
        this._pumpTimer = null;
        this._pump();
      }, wait);
    }
  }
}

export default { connect, Client, CourierError };
