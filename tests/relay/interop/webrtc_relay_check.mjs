// Drives Debian's Chromium (headless, via playwright-core; no browser download) through one WebRTC
// session that may only use TURN relays (webrtc_session.mjs: two RTCPeerConnections in one page with
// iceTransportPolicy 'relay', a data channel, messages both ways, and the selected candidate pairs).
//
// usage: node webrtc_relay_check.mjs '<json>'  with {"iceServers": [...], "timeoutMs": 20000,
//        "executablePath": "/usr/bin/chromium", "messages": 5} and optionally "rightIceServers"
// prints one JSON line: {"ok": true, "received": {...}, "pairs": {...}, "media": ...} or {"ok": false, "error": "..."}
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { session } from './webrtc_session.mjs';

const options = JSON.parse(process.argv[2]);
const userDataDir = mkdtempSync(join(tmpdir(), 'relay-chromium-'));
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', ...(options.extraArgs || []),
];

let browser;
try {
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: options.executablePath || '/usr/bin/chromium', headless: true, args,
  });
  const page = browser.pages()[0] || await browser.newPage();
  const result = await page.evaluate(session, options);
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error && error.stack || error) }));
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
