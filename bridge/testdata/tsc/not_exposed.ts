// want: TS2345 Argument of type '"secret.plans"' is not assignable to parameter
import { connect } from './client.js';
import type { Topics } from './topics.js';

const bus = connect<Topics>('/bus/');
bus.subscribe('secret.plans', (m) => m);
