// want: TS2322 Type 'RoomInfo[] | null' is not assignable to type 'string'
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
const rooms: string = await bus.request('rooms.list', {});
console.log(rooms);
