#!/usr/bin/env node
// A static file server for the built page (build/web), on 127.0.0.1 only: the right MIME types
// (application/wasm for the module), no caching, no directory listings. Prints the URL.
// Every file is sent with `Access-Control-Allow-Origin: *` (and `Cross-Origin-Resource-Policy:
// cross-origin`): embed.js is a module script, and a browser runs a module script from another origin
// (a course's website embedding <latent-lab>) only when its server allows that origin. Without the
// header the element is never defined and the course page shows empty space. Any static host needs
// the same header for embedding across sites (docs/embedding.md).
//   node scripts/serve.mjs [--dir build/web] [--port 8080]      (the next free port if taken)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const dir = path.resolve(root, arg('--dir', 'build/web'));
let port = Number(arg('--port', process.env.PORT || 8080));
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.gz': 'application/gzip', '.safetensors': 'application/octet-stream',
};

// What lets other sites embed the page (see the top): public, read-only static files.
export const CROSS_ORIGIN = { 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' };

// Any request path the server cannot read as a file name (not percent-decodable, a NUL or other control
// character, not absolute) gets 400 and the server stays up: one bad request from any open page must not
// end it.
function badRequest(res, why) {
  res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad request: ${why}`);
}

export function createServer(base = dir) {
  return http.createServer((req, res) => {
    try {
      if (!req.url.startsWith('/')) { badRequest(res, 'the path must be absolute'); return; }
      let url;
      try { url = new URL(req.url, 'http://127.0.0.1'); } catch { badRequest(res, 'unparsable URL'); return; }
      let rel;
      try { rel = decodeURIComponent(url.pathname); } catch { badRequest(res, 'the path is not valid percent-encoded UTF-8'); return; }
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(rel)) { badRequest(res, 'control character in the path'); return; }
      if (rel.endsWith('/')) rel += 'index.html';
      const file = path.join(base, path.normalize(rel));
      if (!file.startsWith(base + path.sep)) { res.writeHead(403).end('forbidden'); return; }
      fs.stat(file, (err, st) => {
        if (err || !st.isFile()) { res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${rel}`); return; }
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': st.size, 'cache-control': 'no-cache', ...CROSS_ORIGIN });
        if (req.method === 'HEAD') { res.end(); return; }
        // A file that vanishes or cannot be read after the stat ends this response only.
        fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
      });
    } catch (e) {
      // Nothing above should throw; if something does, this request fails, not the server.
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad request: ${e.message}`);
      else res.destroy();
    }
  });
}

// Run as a program (not imported by the tests and benchmarks, which serve their own build directory).
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    console.error(`serve: ${dir}/index.html not found: build the page first (node scripts/build_web.mjs)`);
    process.exit(1);
  }
  const server = createServer();
  server.on('error', (e) => {
    if (e.code === 'EADDRINUSE' && port < 65535) { port++; server.listen(port, '127.0.0.1'); } else { console.error(`serve: ${e.message}`); process.exit(1); }
  });
  server.on('listening', () => console.log(`LatentLab is served at http://127.0.0.1:${port}/  (Ctrl-C stops it)`));
  server.listen(port, '127.0.0.1');
}
