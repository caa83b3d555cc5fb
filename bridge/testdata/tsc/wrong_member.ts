// want: TS2561 Object literal may only specify known properties, but 'txt' does not exist in type 'ChatMessage'.
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
await bus.publish('chat.lobby', { txt: 'hi' });
