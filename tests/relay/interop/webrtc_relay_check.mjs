// Drives Debian's Chromium (headless, via playwright-core; no browser download) through one WebRTC
// session that may only use our TURN relay: two RTCPeerConnections in one page with
// iceTransportPolicy 'relay', a data channel, messages both ways, and the selected candidate pair.
//
// usage: node webrtc_relay_check.mjs '<json>'  with {"iceServers": [...], "timeoutMs": 20000,
//        "executablePath": "/usr/bin/chromium", "messages": 5}
// prints one JSON line: {"ok": true, "received": {...}, "pair": {...}} or {"ok": false, "error": "..."}
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const options = JSON.parse(process.argv[2]);
const userDataDir = mkdtempSync(join(tmpdir(), 'relay-chromium-'));
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', ...(options.extraArgs || []),
];

async function session(config) {
  const policy = { iceServers: config.iceServers, iceTransportPolicy: 'relay' };
  const left = new RTCPeerConnection(policy);
  const right = new RTCPeerConnection(policy);
  const gathered = { left: [], right: [] };
  left.onicecandidate = (e) => { if (e.candidate) { gathered.left.push(e.candidate.candidate); right.addIceCandidate(e.candidate); } };
  right.onicecandidate = (e) => { if (e.candidate) { gathered.right.push(e.candidate.candidate); left.addIceCandidate(e.candidate); } };
  const timeout = (what) => new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what} timed out; candidates ${JSON.stringify(gathered)}`)), config.timeoutMs));
  const opened = (channel) => new Promise((resolve) => {
    if (channel.readyState === 'open') resolve(channel); else channel.onopen = () => resolve(channel);
  });
  const leftChannel = left.createDataChannel('relay-check', { ordered: true });
  const rightChannel = new Promise((resolve) => { right.ondatachannel = (e) => resolve(e.channel); });
  await left.setLocalDescription(await left.createOffer());
  await right.setRemoteDescription(left.localDescription);
  await right.setLocalDescription(await right.createAnswer());
  await left.setRemoteDescription(right.localDescription);
  const channels = await Promise.race([
    Promise.all([opened(leftChannel), rightChannel.then(opened)]), timeout('data channel open')]);
  const received = { left: [], right: [] };
  const expect = (channel, list, count) => new Promise((resolve) => {
    channel.onmessage = (e) => { list.push(e.data); if (list.length === count) resolve(); };
  });
  const n = config.messages;
  const done = Promise.all([expect(channels[1], received.right, n), expect(channels[0], received.left, n)]);
  for (let i = 0; i < n; i++) {
    channels[0].send(`left->right ${i}`);
    channels[1].send(`right->left ${i}`);
  }
  try {
    await Promise.race([done, timeout('messages')]);
  } catch (error) {
    // Evidence for the report: what each side's data channel handed to SCTP and what each ICE transport
    // sent and received (equal counts across the two sides mean the relay delivered everything it was given).
    const evidence = async (pc) => {
      const found = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'data-channel') found.push({ dc: s.state, messagesSent: s.messagesSent, messagesReceived: s.messagesReceived });
        if (s.type === 'transport') found.push({ bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, packetsSent: s.packetsSent, packetsReceived: s.packetsReceived });
      });
      return found;
    };
    const state = { received: { left: received.left.length, right: received.right.length },
      bufferedAmount: [channels[0].bufferedAmount, channels[1].bufferedAmount],
      left: await evidence(left), right: await evidence(right) };
    throw new Error(`${error.message}; ${JSON.stringify(state)}`);
  }
  const pairOf = async (pc) => {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { localType: local.candidateType, remoteType: remote.candidateType, relayProtocol: local.relayProtocol,
      localAddress: `${local.address}:${local.port}`, remoteAddress: `${remote.address}:${remote.port}` };
  };
  const pairs = { left: await pairOf(left), right: await pairOf(right) };
  left.close();
  right.close();
  return { received, pairs, gathered };
}

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
