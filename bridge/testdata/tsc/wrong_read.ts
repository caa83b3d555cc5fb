// want: TS2551 Property 'txt' does not exist on type 'ChatMessage'. Did you mean 'text'?
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
bus.subscribe('chat.lobby', (m) => console.log(m.txt));
