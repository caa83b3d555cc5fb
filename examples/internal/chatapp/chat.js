// @ts-check
// The chat page's script. It runs as it is, with no build step; the JSDoc
// types let tsc check it against the bridge's declarations (bus/client.d.ts
// and bus/topics.d.ts, the payload types the bridge generates from the
// chat's Go types): see types.go.
import { connect } from './bus/client.js';

/** @typedef {import('./bus/topics.js').Topics} Topics */
/** @typedef {import('./bus/topics.js').Message} ChatMessage */
/** @typedef {import('./bus/client.js').Client<Topics>} Client */
/** @typedef {import('./bus/client.js').Message<ChatMessage>} Delivery */
/** @typedef {import('./bus/client.js').Member} Member */
/** @typedef {{ code?: string, detail?: string, message?: string }} Problem */

/**
 * The element with this id; the page has every one the script asks for.
 * @param {string} id
 * @returns {HTMLElement}
 */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/**
 * The input element with this id.
 * @param {string} id
 * @returns {HTMLInputElement}
 */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));
const roomRE = /^[A-Za-z0-9_-]{1,64}$/;

// app is the page's state; tests read it (window.chat).
const app = {
  /** @type {Client | null} */
  client: null,
  name: '',
  room: '',
  /** @type {import('./bus/client.js').Unsubscribe | null} */
  unsub: null,
  /** @type {import('./bus/client.js').StopWatching | null} */
  unwatch: null,
  /** @type {Set<number>} seqs shown in the current room */
  seen: new Set(),
  duplicates: 0,     // messages that arrived twice (the client drops them; this checks it)
  /** @type {Map<string, HTMLElement>} client message id -> element */
  pending: new Map(),
  /** @type {ReturnType<typeof setInterval> | 0} */
  roomsTimer: 0,
};
/** @type {any} */ (window).chat = app;

/**
 * @param {string} tag
 * @param {string} [cls]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// What the user reads for an error the server or the client reports: one
// sentence per code. The server's own text, meant for developers, goes in
// the box's tooltip.
/** @type {Record<string, string>} */
const explained = {
  forbidden: 'The server does not allow that.',
  unauthorized: 'You are signed out: reload the page and sign in again.',
  rate_limited: 'You are sending too fast: wait a moment and try again.',
  too_large: 'That is too long to send.',
  limit: 'The server is at its limit for that: leave a room or try again later.',
  timeout: 'The server did not answer in time: try again.',
  buffer_full: 'Too many messages are waiting for the connection: wait until it is back.',
  closed: 'The connection is closed: reload the page.',
};

/**
 * Shows an error in the row under the header. sentence replaces the
 * explanation of the error's code.
 * @param {Problem | unknown} problem
 * @param {{ notice?: boolean, sentence?: string }} [how]
 */
function showError(problem, how = {}) {
  const err = /** @type {Problem} */ (problem);
  const box = el('div', how.notice ? 'error notice' : 'error');
  const code = (err && err.code) || '';
  box.dataset.code = code;
  const technical = code ? `${code}: ${err.detail || err.message}` : String(err && err.message || err);
  const text = how.sentence || explained[code] || (code ? `Something went wrong (${code}).` : technical);
  box.title = technical;
  box.append(el('span', '', text));
  const x = /** @type {HTMLButtonElement} */ (el('button', '', '×'));
  x.type = 'button';
  x.title = 'dismiss';
  x.onclick = () => box.remove();
  box.append(x);
  const list = $('errors');
  list.append(box);
  while (list.firstChild && list.children.length > 4) list.firstChild.remove();
  setTimeout(() => box.remove(), 15000);
}

/** @param {import('./bus/client.js').ConnectionState} state */
function renderState(state) {
  // Offline, the page cannot know who is here: the list is shown as stale.
  $('members').classList.toggle('stale', state !== 'online');
  const s = $('state');
  s.dataset.state = state;
  s.textContent = {
    connecting: 'connecting…', online: 'online', reconnecting: 'reconnecting…', offline: 'offline', closed: 'closed',
  }[state] || state;
  if (state === 'offline' && app.client && app.client.retryAt) {
    const secs = Math.max(0, Math.round((app.client.retryAt - Date.now()) / 1000));
    s.title = `retrying in ${secs}s`;
  } else {
    s.title = '';
  }
}

/** @param {number | undefined} ts */
function time(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// renderMessage shows a message from sender: the name the server
// authenticated (the courier-user header it sets on every publish), never
// a name the message carries, which any client could write.
/**
 * @param {ChatMessage} data
 * @param {number} seq
 * @param {string} sender
 */
function renderMessage(data, seq, sender) {
  const li = el('li', 'msg');
  if (sender === app.name) li.classList.add('mine');
  if (seq) li.dataset.seq = String(seq);
  const meta = el('div', 'meta');
  meta.append(el('span', 'from', sender || '?'), el('span', 'time', time(data.ts)));
  li.append(meta, el('div', 'text', String(data.text || '')));
  return li;
}

/** @param {HTMLElement} li */
function append(li) {
  const list = $('messages');
  const empty = list.querySelector('.empty');
  if (empty) empty.remove();
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // Pending messages stay at the end, below the ones the server has ordered.
  const firstPending = li.classList.contains('pending') ? null : list.querySelector('.msg.pending');
  list.insertBefore(li, firstPending);
  if (stick || li.classList.contains('mine')) list.scrollTop = list.scrollHeight;
}

/**
 * @param {ChatMessage} data
 * @param {Delivery} msg
 */
function onMessage(data, msg) {
  if (msg.topic !== 'chat.' + app.room || !data || typeof data !== 'object') return;
  if (app.seen.has(msg.seq)) {
    app.duplicates++;
    return;
  }
  app.seen.add(msg.seq);
  const sender = msg.headers['courier-user'] || '';
  const cid = data.cid || '';
  const mine = sender === app.name && cid && app.pending.get(cid);
  if (mine) {
    mine.remove();
    app.pending.delete(cid);
  }
  append(renderMessage(data, msg.seq, sender));
}

/** @param {Member[]} members */
function renderMembers(members) {
  const ul = $('members');
  ul.replaceChildren();
  const session = app.client ? app.client.session : '';
  const names = members.map((m) => ({ name: m.user || m.member.slice(0, 6), me: m.member === session, away: m.away }));
  names.sort((a, b) => a.name.localeCompare(b.name));
  for (const m of names) {
    const li = el('li', m.me ? 'me' : '', m.me ? `${m.name} (you)` : m.name);
    // Away: the connection dropped; the server keeps the session for a
    // while, and the member leaves if it does not come back.
    if (m.away) {
      li.classList.add('away');
      li.title = 'away: disconnected, may come back';
    }
    ul.append(li);
  }
  $('count').textContent = `(${members.length})`;
  const cur = document.querySelector('#rooms li.current small');
  if (cur) cur.textContent = String(members.length);
}

async function refreshRooms() {
  if (!app.client) return;
  let list;
  try {
    list = (await app.client.request('rooms.list', {}, { timeout: 5000 })) ?? [];
  } catch (e) {
    return; // offline: the next connect refreshes
  }
  if (app.room && !list.some((r) => r.name === app.room)) list.push({ name: app.room, members: 1 });
  list.sort((a, b) => a.name.localeCompare(b.name));
  const ul = $('rooms');
  ul.replaceChildren();
  for (const r of list) {
    const li = el('li', r.name === app.room ? 'current' : '');
    const a = /** @type {HTMLAnchorElement} */ (el('a'));
    a.href = '#' + r.name;
    a.append(el('span', '', '#' + r.name), el('small', '', String(r.members)));
    a.onclick = (ev) => {
      ev.preventDefault();
      enterRoom(r.name);
    };
    li.append(a);
    ul.append(li);
  }
}

function leaveRoom() {
  const c = app.client;
  if (!c || !app.room) return;
  if (app.unsub) app.unsub();
  if (app.unwatch) app.unwatch();
  c.leave(app.room).catch((e) => showError(e));
  app.room = '';
  app.unsub = app.unwatch = null;
}

/** @param {string} room */
async function enterRoom(room) {
  const c = app.client;
  if (!c) return;
  if (!roomRE.test(room)) {
    showError({ code: 'invalid_name' }, { sentence: badRoom(room) });
    return;
  }
  if (room === app.room) return;
  leaveRoom();
  app.room = room;
  app.seen = new Set();
  app.pending.clear();
  location.hash = room;
  $('room-title').textContent = '#' + room;
  $('messages').replaceChildren(el('li', 'empty', 'Loading…'));
  $('members').replaceChildren();
  try {
    await c.join(room);
    // History: the last N messages of the room, by subscribing from a
    // sequence number a little before the room's end.
    const pos = await c.request('rooms.position', { room });
    if (app.room !== room) return;
    const start = Math.max(1, pos.seq - pos.history + 1);
    app.unsub = c.subscribe(`chat.${room}`, onMessage, { start: 'seq', seq: start, onError: (e) => showError(e) });
    app.unwatch = c.watchPresence(room, renderMembers);
    await app.unsub.ready;
    const list = $('messages');
    if (!list.querySelector('.msg')) list.replaceChildren(el('li', 'empty', 'No messages yet. Say hello!'));
  } catch (e) {
    showError(e);
  }
  refreshRooms();
  $('text').focus();
}

/** @param {string} text */
function send(text) {
  const c = app.client;
  if (!c) return;
  if (text.startsWith('/announce')) {
    // Not exposed to clients: the server answers "forbidden", and the
    // declarations say so already.
    // @ts-expect-error admin.announce is not a topic the bridge exposes for publish.
    c.publish('admin.announce', { text: text.slice(9).trim() }).catch((e) => showError(e, {
      sentence: e && e.code === 'forbidden' ? 'Only the server can make announcements.' : undefined,
    }));
    return;
  }
  if (!app.room) return;
  const cid = Math.random().toString(36).slice(2) + Date.now().toString(36);
  // No "from": the server says who sent it.
  /** @type {ChatMessage} */
  const data = { text, cid, ts: Date.now() };
  const li = renderMessage(data, 0, app.name);
  li.classList.add('mine', 'pending');
  setTime(li, c.connected ? 'sending…' : 'waiting for the connection…');
  app.pending.set(cid, li);
  append(li);
  c.publish(`chat.${app.room}`, data).then(
    () => setTime(li, time(data.ts)),
    (err) => {
      li.classList.add('failed');
      setTime(li, 'not sent');
      showError(err);
    },
  );
}

/**
 * Shows text as the time of a message's element.
 * @param {HTMLElement} li
 * @param {string} text
 */
function setTime(li, text) {
  const t = li.querySelector('.time');
  if (t) t.textContent = text;
}

/** @param {string} room */
function badRoom(room) {
  return `The room name ${JSON.stringify(room)} has 1 to 64 letters, digits, "_" or "-".`;
}

/** @param {string} text */
function loginError(text) {
  const p = $('login-error');
  p.textContent = text;
  p.hidden = !text;
}

// Signing in: the server checks the name and password (the first sign-in
// with a name sets its password) and answers with a session cookie, which
// the browser sends with the WebSocket's upgrade request: that cookie, not
// anything the page says, is who the bridge thinks the user is.
$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = input('name').value.trim();
  const password = input('password').value;
  const room = input('room').value.trim() || 'lobby';
  if (!name || !password) return;
  if (!roomRE.test(room)) {
    loginError(badRoom(room));
    return;
  }
  loginError('');
  const enter = /** @type {HTMLButtonElement} */ ($('enter'));
  enter.disabled = true;
  /** @type {{ name?: string, error?: string }} */
  let body = {};
  let ok = false;
  try {
    const res = await fetch('./signin', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name, password }),
    });
    ok = res.ok;
    body = await res.json().catch(() => ({}));
  } catch (e) {
    body = { error: 'the server cannot be reached: try again' };
  } finally {
    enter.disabled = false;
  }
  if (!ok || !body.name) {
    const why = body.error || 'the server refused the sign-in';
    loginError(why.charAt(0).toUpperCase() + why.slice(1) + '.');
    return;
  }
  input('password').value = '';
  start(body.name, room);
});

/**
 * Connects as the signed-in user and opens room.
 * @param {string} name
 * @param {string} room
 */
function start(name, room) {
  app.name = name;
  /** @type {string[]} */
  const urls = JSON.parse($('bus-urls').textContent || '[]');
  /** @type {Client} */
  const c = connect(urls);
  app.client = c;
  c.on('state', renderState);
  c.on('error', (e) => showError(e));
  c.on('connect', (ev) => {
    if (urls.length > 1) {
      // In a cluster: which node the page is on.
      $('node').hidden = false;
      $('node').textContent = 'via ' + new URL(ev.url).host;
    }
    refreshRooms();
  });
  c.on('disconnect', (ev) => {
    if (!ev.willReconnect && ev.code !== 1000) renderState('closed');
  });
  c.on('resume', (ev) => {
    if (Object.values(ev.recovered).some((ok) => !ok)) {
      showError({ code: 'resync' }, { notice: true, sentence: 'Some messages were lost while you were away.' });
    }
  });
  renderState(c.state);
  $('me').textContent = name;
  $('login').hidden = true;
  $('chat').hidden = false;
  enterRoom(room);
  app.roomsTimer = setInterval(refreshRooms, 15000);
}

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = input('new-room').value.trim();
  if (!room) return;
  input('new-room').value = '';
  enterRoom(room);
});

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = input('text').value.trim();
  if (!text) return;
  input('text').value = '';
  send(text);
});

if (location.hash.length > 1) input('room').value = decodeURIComponent(location.hash.slice(1));
