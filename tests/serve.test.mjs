// The demo server (scripts/serve.mjs) run as a program on a free port: every undecodable or odd request
// path gets 400 (or 403/404), never a crash, and the server keeps serving the page after each.
// Run by CTest (native presets): node tests/serve.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// One raw HTTP/1.1 request (the path is sent exactly as given, as a browser or script could); resolves
// to the status code, or to 0 when the server closed the connection without answering.
function request(port, rawPath, method = 'GET') {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error(`timeout on ${rawPath}`)); });
    socket.on('connect', () => socket.write(`${method} ${rawPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d) => { data += d.toString('latin1'); });
    socket.on('error', () => resolve(0));
    socket.on('close', () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(data); resolve(m ? Number(m[1]) : 0); });
  });
}

test('bad request paths get 400 and the server stays up', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentlab-serve-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>');
  const port = await freePort();
  const server = spawn(process.execPath, [path.join(root, 'scripts/serve.mjs'), '--dir', dir, '--port', String(port)],
                       { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  let exited = null;
  server.on('exit', (code, signal) => { exited = { code, signal }; });
  try {
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (d) => { if (String(d).includes(`127.0.0.1:${port}`)) resolve(); });
      server.on('exit', () => reject(new Error(`server exited at start: ${stderr}`)));
    });
    assert.equal(await request(port, '/index.html'), 200);
    const cases = [
      ['/index.html%00', 400],      // NUL: fs.stat used to throw and end the server
      ['/%ff', 400],                // not UTF-8: decodeURIComponent used to throw
      ['/%', 400],
      ['/%E0%A4%A', 400],
      ['/a%0Ab', 400],              // control character
      ['/%00', 400],
      ['*', 400],                   // not an absolute path
      ['/..%2F..%2Fetc%2Fpasswd', 404],  // normalised inside the served directory
      ['/no-such-file.js', 404],
      ['/index.html?x=%ff', 200],   // the query is not part of the file name
    ];
    for (const [p, want] of cases) {
      const got = await request(port, p);
      assert.equal(got, want, `${p}: status ${got}, expected ${want}`);
      assert.equal(exited, null, `the server exited after ${p}: ${stderr}`);
      assert.equal(await request(port, '/index.html'), 200, `the page is still served after ${p}`);
    }
    assert.equal(await request(port, '/index.html%00', 'HEAD'), 400);
    assert.equal(exited, null, `the server exited: ${stderr}`);
    assert.equal(stderr, '');
  } finally {
    server.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
