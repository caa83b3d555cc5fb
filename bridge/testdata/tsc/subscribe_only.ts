// want: TS2345 Argument of type '"news.daily"' is not assignable to parameter
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
await bus.publish('news.daily', { title: 'extra' });
