// want: TS2353 Object literal may only specify known properties, and 'body' does not exist in type 'ChatMessage'.
// @ts-check
// A page in plain JavaScript, checked through JSDoc: no build step.
import { connect } from './client.js';

/** @type {import('./client.js').Client<import('./topics.js').Topics>} */
const bus = connect('/bus/');
bus.subscribe('chat.lobby', (m) => console.log(m.text));
await bus.publish('chat.lobby', { body: 'hi' });
