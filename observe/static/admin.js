// Courier admin page. It connects to the admin's own bridge with the
// browser client (served by that bridge at ./ws/client.js), registers its
// session with the admin (POST ./api/watch), and draws every snapshot the
// admin pushes to it as a bridge request on the topic "snapshot". Actions
// are POST requests to ./api/<action>.
import { connect } from './ws/client.js';

const $ = (sel) => document.querySelector(sel);

const admin = {
  client: null,
  snapshot: null, // the newest snapshot drawn
  snapshots: 0, // how many were drawn
  session: '', // the session registered with the admin
};
globalThis.courierAdmin = admin; // for debugging and tests

// ---- helpers

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'disabled') e.disabled = true;
    else e.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}

const num = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US'));
const rate = (r) => (r > 0 ? (r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en-US')) : '0');

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function setText(sel, v) {
  const e = $(sel);
  if (e && e.textContent !== v) e.textContent = v;
}

function flash(text, bad) {
  const box = $('#flash');
  const d = el('div', { class: bad ? 'bad' : '', text });
  box.append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 4000);
}

function setStatus(state, text) {
  const s = $('#status');
  s.dataset.state = state;
  s.textContent = text || state;
}

async function api(action, body) {
  // Resolved against location rather than the document's base URL, which
  // keeps the user name and password of a http://user:pass@host/ address
  // and would make fetch refuse.
  const r = await fetch(new URL(`./api/${action}`, location.href).href, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Courier-Admin': '1' },
    body: JSON.stringify(body),
  });
  let ans = null;
  try { ans = await r.json(); } catch (e) { /* no JSON */ }
  if (!r.ok) throw new Error((ans && ans.error) || `${r.status} ${r.statusText}`);
  return ans;
}

// act runs an action from a button: the button is disabled meanwhile and
// the outcome is flashed.
async function act(button, action, body, done) {
  button.disabled = true;
  try {
    const ans = await api(action, body);
    flash(done(ans));
  } catch (e) {
    flash(`${action} failed: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// Sections are drawn again only when their part of the snapshot changed, so
// that buttons stay put while nothing happens.
const drawn = new Map();
function section(name, part, draw) {
  const key = JSON.stringify(part);
  if (drawn.get(name) === key) return;
  drawn.set(name, key);
  draw(part);
}

function more(sel, n, what) {
  setText(sel, n > 0 ? `(${num(n)} more ${what} not shown)` : '');
}

function fill(tbody, rows, cols, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', null, el('td', { class: 'empty', colspan: cols, text: emptyText }))]));
}

// ---- drawing

function draw(s) {
  admin.snapshot = s;
  admin.snapshots++;
  setText('#updated', `updated ${new Date(s.time).toLocaleTimeString()}`);

  setText('#bus-topics', num(s.bus.topics));
  setText('#bus-subscriptions', num(s.bus.subscriptions));
  setText('#bus-rooms', num(s.bus.rooms));
  setText('#bus-members', num(s.bus.members));

  const b = s.bridge;
  $('#bridge-card').hidden = !b;
  if (b) {
    setText('#bridge-connections', num(b.connections));
    setText('#bridge-sessions', num(b.sessions));
    setText('#bridge-accepted', num(b.accepted));
    setText('#bridge-refused', num(b.refused));
    setText('#bridge-resumed', num(b.resumed));
    setText('#bridge-resumes-unrecovered', num(b.resumes_unrecovered));
    setText('#bridge-resumes-failed', num(b.resumes_failed));
    setText('#bridge-slow', num(b.slow_disconnects));
    setText('#bridge-bad', num(b.bad_disconnects));
    setText('#bridge-ended', num(b.sessions_ended));
    setText('#bridge-frames', `${num(b.frames_in)} / ${num(b.frames_out)}`);
    const errs = Object.entries(b.error_frames || {}).filter(([, n]) => n > 0).sort();
    setText('#bridge-errors', errs.map(([c, n]) => `${c} ${num(n)}`).join(', ') || '0');
  }

  const st = s.store;
  $('#store-card').hidden = !st;
  if (st) {
    setText('#store-batches', num(st.batches));
    setText('#store-ops', num(st.ops));
    setText('#store-lsm', bytes(st.lsm_bytes));
    setText('#store-vlog', bytes(st.vlog_bytes));
    setText('#store-state', st.failed ? 'sync failed: refusing writes' : 'ok');
  }

  section('dead', s.dead || [], drawDead);
  section('sessions', [s.sessions, s.more.sessions], () => drawSessions(s));
  section('rooms', [s.rooms, s.more.rooms], () => drawRooms(s));
  section('topics', [s.topics, s.more.topics], () => drawTopics(s));
  section('subs', [s.subscriptions, s.more.subscriptions], () => drawSubs(s));
}

function drawDead(dead) {
  const rows = dead.map((d) => {
    const button = el('button', { class: 'redrive', title: `publish the message again to ${d.topic}` }, 're-drive');
    button.addEventListener('click', () => act(button, 'redrive', { dead_topic: d.dead_topic, seq: d.seq },
      (a) => `re-drove ${d.key} to ${a.topic} as #${a.seq}`));
    return el('tr', { 'data-dead': d.key },
      el('td', { text: new Date(d.time).toLocaleString(), title: d.time }),
      el('td', null, el('span', { class: 'mono', text: `${d.topic} #${d.orig_seq}` }),
        el('div', { class: 'muted mono', text: d.pattern + (d.durable ? ` (durable ${d.durable})` : '') })),
      el('td', { class: 'n', text: num(d.attempts) }),
      el('td', { class: 'error', text: d.error }),
      el('td', { class: 'data mono', title: `${num(d.size)} bytes`, text: (d.binary ? 'base64: ' : '') + d.data + (d.size > d.data.length && !d.binary ? '…' : '') }),
      el('td', null, button, d.redriven ? el('div', { class: 'muted redriven', text: `re-driven as #${d.redriven}` }) : null));
  });
  fill($('#dead tbody'), rows, 6, 'no dead letters');
  setText('#dead-note', dead.length ? `(newest ${dead.length})` : '');
}

function drawSessions(s) {
  const rows = (s.sessions || []).map((x) => {
    const button = el('button', {
      class: 'disconnect',
      disabled: !x.connected,
      title: x.connected ? 'close the connection; the client resumes its session' : 'not connected',
    }, 'disconnect');
    button.addEventListener('click', () => act(button, 'disconnect', { session: x.id },
      () => `disconnected ${x.user || x.id}`));
    const since = `since ${new Date(x.since).toLocaleString()}`;
    return el('tr', { 'data-session': x.id, 'data-user': x.user },
      el('td', { class: 'mono', text: x.id }),
      el('td', { text: x.user || '(anonymous)' }),
      el('td', { class: 'state', text: x.connected ? 'connected' : 'waiting to resume', title: x.remote ? `${x.remote}, ${since}` : since }),
      el('td', { text: (x.rooms || []).join(', ') }),
      el('td', { class: 'n', text: num(x.subscriptions) }),
      el('td', { class: 'n resumes', text: num(x.resumes) }),
      el('td', null, button));
  });
  fill($('#sessions tbody'), rows, 7, s.bridge ? 'no sessions' : 'no bridge');
  more('#sessions-note', s.more.sessions, 'sessions');
}

function drawRooms(s) {
  const boxes = (s.rooms || []).map((r) => el('div', { class: 'room', 'data-room': r.name },
    el('h3', null, el('span', { class: 'mono', text: r.name }), el('span', { class: 'muted', text: ` ${num(r.count)} member${r.count === 1 ? '' : 's'}` })),
    el('ul', null, (r.members || []).map((m) => {
      const button = el('button', { class: 'leave', title: `remove from ${r.name}` }, 'remove');
      button.addEventListener('click', () => act(button, 'leave', { room: r.name, member: m.id },
        () => `removed ${m.user || m.id} from ${r.name}`));
      return el('li', { 'data-member': m.id },
        el('span', null, m.user ? el('span', { text: m.user + ' ' }) : null, el('span', { class: 'muted mono', text: m.id })),
        button);
    }), r.count > (r.members || []).length ? el('li', { class: 'muted', text: `${num(r.count - r.members.length)} more` }) : null)));
  $('#rooms').replaceChildren(...(boxes.length ? boxes : [el('p', { class: 'muted', text: 'no rooms' })]));
  more('#rooms-note', s.more.rooms, 'rooms');
}

function drawTopics(s) {
  const rows = (s.topics || []).map((t) => el('tr', { 'data-topic': t.name },
    el('td', { class: 'mono', text: t.name + (t.persisted ? ' ⛁' : ''), title: t.persisted ? 'persisted' : 'in memory' }),
    el('td', { class: 'n published', text: num(t.published) }),
    el('td', { class: 'n', text: rate(t.pub_rate) }),
    el('td', { class: 'n', text: num(t.delivered) }),
    el('td', { class: 'n', text: rate(t.del_rate) }),
    el('td', { class: 'n', text: num(t.redelivered) }),
    el('td', { class: 'n', text: num(t.dead_lettered) }),
    el('td', { class: 'n', text: num(t.last) }),
    el('td', { class: 'n', text: num(t.history) })));
  fill($('#topics tbody'), rows, 9, 'no topics');
  more('#topics-note', s.more.topics, 'topics');
}

function drawSubs(s) {
  const rows = (s.subscriptions || []).map((x) => {
    const kind = [x.volatile ? 'volatile' : 'at-least-once', x.queue && `queue ${x.queue}`,
      x.durable && `durable ${x.durable}`, x.owner && `owner ${x.owner}`].filter(Boolean).join(', ');
    return el('tr', { 'data-pattern': x.pattern },
      el('td', { class: 'mono', text: x.pattern }),
      el('td', { text: kind }),
      el('td', { class: 'n', text: num(x.queued) }),
      el('td', { class: 'n', text: num(x.unacked) }),
      el('td', { class: 'n', text: num(x.backlog) }),
      el('td', { class: 'n', text: num(x.delivered) }),
      el('td', { class: 'n', text: num(x.redelivered) }),
      el('td', { class: 'n', text: num(x.dead_lettered) }),
      el('td', { class: 'n', text: num(x.dropped) }));
  });
  fill($('#subs tbody'), rows, 9, 'no subscriptions');
  more('#subs-note', s.more.subscriptions, 'subscriptions');
}

// ---- connection

const client = connect(new URL('./ws/', location.href).href);
admin.client = client;

client.handle('snapshot', (data) => {
  draw(data);
  return true; // the admin sends the next one after this answer
});

client.on('connect', async (ev) => {
  setStatus('connecting', 'registering');
  try {
    const snap = await api('watch', { session: ev.session });
    admin.session = ev.session;
    draw(snap);
    setStatus('live');
  } catch (e) {
    setStatus('error', `error: ${e.message}`);
  }
});

client.on('disconnect', () => setStatus('offline', 'offline: reconnecting'));

client.on('state', (state) => {
  if (state === 'closed') setStatus('offline', 'closed');
});

client.on('error', (e) => {
  if (e && (e.code === 'unauthorized' || e.code === 'auth')) setStatus('error', `error: ${e.message}`);
});
