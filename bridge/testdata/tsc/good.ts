// want: ok
// A front-end that uses the generated declarations as meant: it must compile.
import { connect, type Client } from './client.js';
import type { Topics, ChatMessage } from './topics.js';

const bus: Client<Topics> = connect<Topics>('/bus/');

bus.subscribe('chat.lobby', (m, msg) => {
  const text: string = m.text;
  const at: number = msg.seq;
  const data: ChatMessage = msg.data;
  console.log(text, at, data, m.edited?.toUpperCase());
});
bus.subscribe('chat.*', (m) => m.text.length);
const room: string = 'kitchen';
await bus.publish(`chat.${room}`, { text: 'hi' }, { rooms: [room] });
await bus.publish('chat.lobby', { text: 'hi', edited: '2026-01-01T00:00:00Z' });
bus.subscribe('news.daily', (n) => n.tags?.join(',') ?? n.title);
bus.subscribe('news.weekly.sport', (n: unknown) => n);
const rooms: RoomInfo[] | null = await bus.request('rooms.list', {});
const count: number = await bus.request('news.count', 'sport');
console.log(rooms, count);

// A client given no schema takes any topic and payload, as before.
const loose = connect('/bus/');
await loose.publish('anything.at.all', 42);
loose.subscribe('x', (data) => data);

type RoomInfo = Topics['request']['rooms.list']['reply'] extends (infer R)[] | null ? R : never;
