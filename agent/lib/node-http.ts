// Node's http module, loaded with require(). On Node 24 `import … from 'node:http'` also loads Node's
// bundled undici (750 KB of source, about 4 MiB resident): building an ES module namespace reads every
// export, and http's WebSocket, CloseEvent and MessageEvent are getters that load undici. require()
// reads none of them. Import http from here, never from 'node:http'.
import { createRequire } from 'node:module';

const http: typeof import('node:http') = createRequire(import.meta.url)('node:http');
export default http;
