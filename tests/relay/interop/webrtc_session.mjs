// One WebRTC session that may only use TURN relays, run inside a browser page: two RTCPeerConnections
// with iceTransportPolicy 'relay' (left on `iceServers`, right on `rightIceServers`, default the same),
// a data channel with `messages` messages each way, optionally a fake media track from left to right
// (`media`: getUserMedia needs the browser's fake-device switch), and the selected candidate pairs.
// Chromium runs it through playwright's page.evaluate (webrtc_relay_check.mjs), Firefox loads it in a
// static page (webrtc_relay_page.html): it is self-contained, since page.evaluate sends only the body.
export async function session(config) {
  const left = new RTCPeerConnection({ iceServers: config.iceServers, iceTransportPolicy: 'relay' });
  const right = new RTCPeerConnection({
    iceServers: config.rightIceServers || config.iceServers, iceTransportPolicy: 'relay' });
  const gathered = { left: [], right: [] };
  left.onicecandidate = (e) => { if (e.candidate) { gathered.left.push(e.candidate.candidate); right.addIceCandidate(e.candidate); } };
  right.onicecandidate = (e) => { if (e.candidate) { gathered.right.push(e.candidate.candidate); left.addIceCandidate(e.candidate); } };
  const timeout = (what) => new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what} timed out; candidates ${JSON.stringify(gathered)}`)), config.timeoutMs));
  const opened = (channel) => new Promise((resolve) => {
    if (channel.readyState === 'open') resolve(channel); else channel.onopen = () => resolve(channel);
  });
  let media = null;
  if (config.media) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const track of stream.getTracks()) left.addTrack(track, stream);
  }
  const leftChannel = left.createDataChannel('relay-check', { ordered: true });
  const rightChannel = new Promise((resolve) => { right.ondatachannel = (e) => resolve(e.channel); });
  await left.setLocalDescription(await left.createOffer());
  await right.setRemoteDescription(left.localDescription);
  await right.setLocalDescription(await right.createAnswer());
  await left.setRemoteDescription(right.localDescription);
  const channels = await Promise.race([
    Promise.all([opened(leftChannel), rightChannel.then(opened)]), timeout('data channel open')]);
  const received = { left: [], right: [] };
  const n = config.messages;
  const sendAll = (channel, prefix) => { for (let i = 0; i < n; i++) channel.send(`${prefix} ${i}`); };
  const expect = (channel, list, first) => new Promise((resolve) => {
    channel.onmessage = (e) => {
      list.push(e.data);
      if (list.length === 1 && first) first();
      if (list.length === n) resolve();
    };
  });
  // Right (the answerer, whose channel came from ondatachannel) answers once left's first message is
  // in: Chromium sometimes drops every send() made right after that channel opened (messagesSent
  // stays 0 although the channel is open; about 1 session in 40 on a loaded machine).
  const done = Promise.all([
    expect(channels[1], received.right, () => sendAll(channels[1], 'right->left')),
    expect(channels[0], received.left, null)]);
  sendAll(channels[0], 'left->right');
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
  if (config.media) {
    // RTP that arrived at right, by kind: the fake camera and microphone crossed the relays too
    const inbound = async () => {
      const kinds = {};
      (await right.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') kinds[s.kind] = s.packetsReceived; });
      return kinds;
    };
    const deadline = Date.now() + config.timeoutMs;
    media = await inbound();
    while (!((media.audio || 0) >= config.mediaPackets && (media.video || 0) >= config.mediaPackets)) {
      if (Date.now() > deadline) throw new Error(`media timed out; inbound-rtp packets ${JSON.stringify(media)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      media = await inbound();
    }
  }
  const pairOf = async (pc) => {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; }); // Firefox
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { localType: local.candidateType, remoteType: remote.candidateType, relayProtocol: local.relayProtocol,
      localAddress: `${local.address}:${local.port}`, remoteAddress: `${remote.address}:${remote.port}` };
  };
  const pairs = { left: await pairOf(left), right: await pairOf(right) };
  left.getSenders().forEach((sender) => sender.track && sender.track.stop());
  left.close();
  right.close();
  return { received, pairs, gathered, media };
}
