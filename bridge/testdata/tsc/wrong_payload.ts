// want: TS2322 Type 'number' is not assignable to type 'string'
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
await bus.publish('chat.lobby', { text: 42 });
