// The demo page's Gemini mode (a tenant whose upstream is Gemini; `token-broker dev
// --upstream gemini` runs one on a fake Gemini): Google's own SDK, @google/genai, mints a
// Gemini Live ephemeral token through the broker with the page's JWT where the API key goes,
// then opens a Live session with the token's name, sends the microphone (16 kHz PCM) and
// plays the model's audio (24 kHz PCM), and shows every server message. The token's setup
// is the one the broker locked: whatever the session asks for, Gemini holds that one.
import { GoogleGenAI, Modality } from "./genai.mjs";

const INPUT_RATE = 16000;
const OUTPUT_RATE = 24000;
const FALLBACK_MODEL = "gemini-live-2.5-flash-preview";

// `page`: the demo page's helpers (demo.html, `geminiPage`).
export function start(page) {
  const $ = page.$;
  // The page's one Live session: its SDK session, microphone and audio graph.
  let session = null;
  let microphone = null;
  let capture = null;
  let speaker = null;
  let playAt = 0;
  let sessionNumber = 0;
  // What the session sent and received, for the curious (and the page's test).
  const stats = { sent: 0, peak: 0, audioChunks: 0, audioBytes: 0, turns: 0, played: 0 };

  function model() {
    const rules = page.rules();
    return rules?.models?.[0] ?? FALLBACK_MODEL;
  }

  function brokerClient() {
    // The broker speaks Google's shapes: the app JWT where Google's API key goes.
    return new GoogleGenAI({
      apiKey: page.jwt(),
      httpOptions: { baseUrl: location.origin, apiVersion: "v1alpha" },
    });
  }

  // Mints a token through the broker; shows what the broker decided. The SDK returns the
  // body alone: the page watches its fetch for the broker's headers.
  async function mint() {
    page.hideBanner();
    if (page.jwt() === null && !(await page.signIn())) return null;
    const config = {
      uses: 1,
      liveConnectConstraints: {
        model: model(),
        config: {
          responseModalities: [Modality.AUDIO],
          inputAudioTranscription: {},
          outputAudioTranscription: {},
          // Quick turns: a fifth of a second of quiet ends what you said.
          realtimeInputConfig: { automaticActivityDetection: { silenceDurationMs: 200 } },
        },
      },
    };
    const { result: token, response, error } = await page.watching(
      () => brokerClient().authTokens.create({ config }),
    );
    if (response !== null) {
      page.showStatus(response);
      page.showRateLimit(response.headers);
    }
    if (error !== null) {
      if (response?.status === 429) {
        const retry = response.headers.get("Retry-After") ?? "?";
        page.showBanner("limit", `429 Too Many Requests — rate limit reached. Retry after ${retry} s. (${error.message})`);
      } else {
        page.showBanner("error", `Mint refused: ${error.message}`);
      }
      return null;
    }
    page.showAdjusted(response?.headers.get("X-Policy-Adjusted") ?? null);
    page.showToken(token.name, token.expireTime ? Date.parse(token.expireTime) / 1000 : null);
    $("session").textContent = JSON.stringify(token.bidiGenerateContentSetup ?? token, null, 2);
    return token;
  }

  function isCurrent(number) { return number === sessionNumber; }

  function endSession() {
    sessionNumber += 1;
    const had = session !== null;
    if (session !== null) session.close();
    if (capture !== null) capture.disconnect();
    if (microphone !== null) for (const track of microphone.getTracks()) track.stop();
    if (speaker !== null) speaker.close();
    session = microphone = capture = speaker = null;
    $("gemini-text").disabled = true;
    $("hangup").disabled = true;
    return had;
  }

  async function liveSession() {
    endSession();
    const number = sessionNumber;
    page.newEvents("Gemini Live session (a fresh token, then the Live API with it)");
    $("hangup").disabled = false;
    try {
      const token = await mint();
      if (token === null || !isCurrent(number)) return;
      page.showEvent(`token ${page.mask(token.name)} minted by the broker (uses 1)`);
      speaker = new AudioContext({ sampleRate: OUTPUT_RATE });
      await speaker.resume();  // within the click's user gesture, so it may play
      playAt = 0;
      // The token's name is the Live API key; its locked setup holds over this one.
      const live = new GoogleGenAI({
        apiKey: token.name,
        httpOptions: { baseUrl: page.liveUrl(), apiVersion: "v1alpha" },
      });
      const opened = await live.live.connect({
        model: model(),
        // Text asked, audio answered: the token's locked setup wins over the session's.
        config: { responseModalities: [Modality.TEXT] },
        callbacks: {
          onmessage: (message) => { if (isCurrent(number)) showMessage(message); },
          onclose: (event) => {
            if (!isCurrent(number)) return;
            page.showEvent(`(closed: ${event.code}${event.reason ? " " + event.reason : ""})`);
            endSession();
            $("status").textContent = "session ended";
          },
          onerror: () => { if (isCurrent(number)) page.showEvent("(error on the Live WebSocket)"); },
        },
      });
      if (!isCurrent(number)) { opened.close(); return; }
      session = opened;
      $("gemini-text").disabled = false;
      await listen(number);
      $("status").textContent = "Gemini Live session open: talk now (or send a text turn)";
    } catch (error) {
      if (!isCurrent(number)) return;
      page.showBanner("error", `Gemini Live session failed: ${error.message}`);
      endSession();
    }
  }

  // The microphone as 16-bit PCM at 16 kHz, sent as it comes (the peer detects the turns).
  async function listen(number) {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    if (!isCurrent(number)) { for (const track of mic.getTracks()) track.stop(); return; }
    microphone = mic;
    const context = new AudioContext({ sampleRate: INPUT_RATE });
    const source = context.createMediaStreamSource(mic);
    // A ScriptProcessor needs no module of its own (an AudioWorklet would).
    const node = context.createScriptProcessor(1024, 1, 1);
    node.onaudioprocess = (event) => {
      if (session === null || !isCurrent(number)) return;
      const pcm = toPcm16(event.inputBuffer.getChannelData(0));
      for (const sample of pcm) stats.peak = Math.max(stats.peak, Math.abs(sample));
      const data = toBase64(pcm);
      session.sendRealtimeInput({ audio: { data, mimeType: `audio/pcm;rate=${INPUT_RATE}` } });
      stats.sent += 1;
    };
    source.connect(node);
    node.connect(context.destination);  // silent: the node writes nothing out
    // Started by the click's user gesture; resumed in case the browser held it.
    await context.resume();
    capture = { disconnect: () => { node.disconnect(); source.disconnect(); context.close(); } };
  }

  function play(base64) {
    if (speaker === null) return;
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
    const buffer = speaker.createBuffer(1, samples.length, OUTPUT_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const source = speaker.createBufferSource();
    source.buffer = buffer;
    source.connect(speaker.destination);
    playAt = Math.max(playAt, speaker.currentTime);
    source.start(playAt);
    playAt += buffer.duration;
    stats.played += 1;
  }

  function showMessage(message) {
    if (message.setupComplete) page.showEvent("setupComplete");
    const content = message.serverContent;
    for (const part of content?.modelTurn?.parts ?? []) {
      if (part.inlineData) {
        stats.audioChunks += 1;
        stats.audioBytes += Math.floor(part.inlineData.data.length * 3 / 4);
        play(part.inlineData.data);
        page.showEvent(`serverContent.modelTurn: audio (${part.inlineData.mimeType})`);
      } else if (typeof part.text === "string") {
        page.showEvent(`serverContent.modelTurn: ${JSON.stringify(part.text)}`);
      }
    }
    if (content?.inputTranscription) {
      page.showEvent(`serverContent.inputTranscription: ${JSON.stringify(content.inputTranscription.text)}`);
    }
    if (content?.outputTranscription) {
      page.showEvent(`serverContent.outputTranscription: ${JSON.stringify(content.outputTranscription.text)}`);
    }
    if (content?.generationComplete) page.showEvent("serverContent.generationComplete");
    if (content?.turnComplete) {
      stats.turns += 1;
      const usage = message.usageMetadata;
      const tokens = usage ? `: usageMetadata ${usage.totalTokenCount} tokens (prompt ${usage.promptTokenCount}, response ${usage.responseTokenCount})` : "";
      page.showEvent(`serverContent.turnComplete${tokens}`);
    }
  }

  function sendText() {
    if (session === null) return;
    const text = "Hello from the demo page.";
    page.showEvent(`(sent a text turn: ${JSON.stringify(text)})`);
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text }] }], turnComplete: true });
  }

  $("gemini-mint").addEventListener("click", async () => {
    try { await mint(); } catch (error) { page.showBanner("error", `Mint failed: ${error.message}`); }
  });
  $("gemini-live").addEventListener("click", liveSession);
  $("gemini-text").addEventListener("click", sendText);
  $("hangup").addEventListener("click", () => {
    if (!endSession()) return;
    page.showEvent("(hung up: the Live session is closed)");
    $("status").textContent = "hung up";
  });
  window.geminiStats = stats;
}

function toPcm16(floats) {
  const pcm = new Int16Array(floats.length);
  for (let i = 0; i < floats.length; i++) {
    const s = Math.max(-1, Math.min(1, floats[i]));
    pcm[i] = s < 0 ? s * 32768 : s * 32767;
  }
  return pcm;
}

function toBase64(pcm) {
  const bytes = new Uint8Array(pcm.buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
