// Starts the http-cache-tests suite's own server (the origin every test
// talks to) bound to 127.0.0.1 only: the suite's server listens on every
// interface, so `listen(port)` is narrowed to loopback here, and nothing
// else is changed. Understands the npm package's layout (server/server.mjs)
// and the GitHub repository's (test-engine/server/server.mjs).
//
// usage: node origin-server.mjs <suite-dir> <port> <pidfile>
import fs from 'fs'
import http from 'http'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, port, pidfile] = process.argv.slice(2)
if (!suiteDir || !port || !pidfile) {
  console.error('usage: node origin-server.mjs <suite-dir> <port> <pidfile>')
  process.exit(2)
}
// The server reads its settings the way `npm run server --port=...` passes them.
process.env.npm_config_protocol = 'http'
process.env.npm_config_port = port
process.env.npm_config_pidfile = pidfile

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (p, ...rest) {
  if (typeof rest[0] === 'string') return listen.call(this, p, ...rest)
  return listen.call(this, p, '127.0.0.1', ...rest)
}
const engine = path.join(suiteDir, 'test-engine/server/server.mjs')
const server = fs.existsSync(engine) ? engine : path.join(suiteDir, 'server/server.mjs')
await import(pathToFileURL(server).href)
