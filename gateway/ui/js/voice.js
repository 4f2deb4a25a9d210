// A voice call from the browser: microphone → 16 kHz PCM16 over WS /v1/voice, the assistant's audio back
// through an AudioWorklet ring buffer. The protocol is in docs/voice.md (gateway/api/voice.py).
//
//   const call = new VoiceCall({sessionId, onEvent, onState});
//   await call.start({mode: "handsfree"});      // or "push": call.press() / call.release() around speech
//   call.setMode("push");  …  await call.stop();
//
// onEvent(event) gets every JSON event of the server (ready, speech_start, transcript, assistant_text,
// audio_start, audio_stop, barge_in, turn_end, reprompt, hangup, error, tts_fallback).
// onState(state): "connecting" | "listening" | "muted" | "speaking" | "closed" | "error:<message>".
// Nothing here throws: failures end up in onState("error:…").
//
// window.__enclaveVoice holds live counters for tests: framesSent (20 ms frames sent, silence included),
// micFramesSent (those carrying microphone audio), framesDropped, framesReceived, bytesReceived,
// playedSamples (assistant samples actually played, at playbackRate), playbackRate, state.

import { describe, token } from "./api.js";

const WORKLETS = "/ui/js/worklets.js";
const IN_RATE = 16000;                  // what we send; the server's VAD and STT run at 16 kHz anyway
const FRAME_SAMPLES = 320;              // 20 ms at 16 kHz
const RATES = [8000, 16000, 24000, 48000];   // what the server accepts (gateway/api/voice.py RATES)
const READY_TIMEOUT_MS = 15000;
const MAX_BUFFERED = 64000;             // bytes waiting in the socket (2 s of audio): beyond that, frames are dropped
const SILENCE = new ArrayBuffer(FRAME_SAMPLES * 2);

function counters() {
  const c = { framesSent: 0, micFramesSent: 0, framesDropped: 0, framesReceived: 0, bytesReceived: 0,
    playedSamples: 0, playbackRate: 0, state: "idle" };
  if (typeof window !== "undefined") window.__enclaveVoice = c;
  return c;
}

/** A sentence a person can act on, for an exception of getUserMedia / AudioContext / addModule. */
function audioError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "PermissionDeniedError") {
    return "Microphone access was refused. Allow the microphone for this site and try again.";
  }
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one and try again.";
  }
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
    return "The microphone could not be started (another application may be using it).";
  }
  if (name === "SecurityError") return "The browser does not allow the microphone here (it needs HTTPS or localhost).";
  return `Audio could not be started: ${describe(err)}`;
}

function closeReason(code) {
  if (code === 1006) return "The connection to the gateway was lost.";
  if (code === 1008) return "The gateway refused the call.";
  if (code === 1011) return "The gateway had an internal error and ended the call.";
  if (code === 1013) return "The gateway is overloaded. Try again in a moment.";
  return `The call was cut off (code ${code}).`;
}

export class VoiceCall {
  constructor({ sessionId = null, onEvent = null, onState = null } = {}) {
    this.sessionId = sessionId || null;
    this.onEvent = onEvent;
    this.onState = onState;
    this.mode = "handsfree";
    this.pressed = false;
    this.state = "idle";
    this.ready = null;               // the server's ready event
    this.assistantSpeaking = false;
    this.stats = { framesSent: 0, micFramesSent: 0, framesDropped: 0, framesReceived: 0, bytesReceived: 0,
      playedSamples: 0, playbackRate: 0, state: "idle" };
    this._started = false;
    this._ended = false;             // stop() was called, or the call failed: no more state changes but that
    this._discard = false;           // after a barge-in, audio still in flight is dropped until audio_start
    this._ctx = null;
    this._stream = null;
    this._source = null;
    this._capture = null;
    this._sink = null;
    this._playback = null;
    this._ws = null;
  }

  // -- public -------------------------------------------------------------------------------------------

  /** Open the microphone and the call. Resolves true once the server is ready, false when it failed. */
  async start({ mode = "handsfree" } = {}) {
    try {
      return await this._start(mode);
    } catch (err) {
      this._fail(describe(err));
      return false;
    }
  }

  /** Push-to-talk: send the microphone from now on. */
  press() {
    if (this.pressed) return;
    this.pressed = true;
    this._update();
  }

  /** Push-to-talk: silence from now on (still sent, so the server's endpointing hears the end of speech). */
  release() {
    if (!this.pressed) return;
    this.pressed = false;
    this._update();
  }

  setMode(mode) {
    this.mode = mode === "push" ? "push" : "handsfree";
    this._update();
  }

  /** Hang up: tell the server, close the socket, release the microphone and the audio context. */
  async stop() {
    if (this._ended) {
      await this._teardown();
      return;
    }
    this._ended = true;
    await this._finalReport();
    this._closeSocket("stop");
    await this._teardown();
    this._setState("closed", true);
  }

  // -- setup --------------------------------------------------------------------------------------------

  async _start(mode) {
    if (this._started) throw new Error("this call was already started; make a new VoiceCall for another");
    this._started = true;
    this.mode = mode === "push" ? "push" : "handsfree";
    this.stats = counters();
    this._setState("connecting");

    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return this._fail("This browser cannot play or record audio (no Web Audio).");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return this._fail(window.isSecureContext === false
        ? "The microphone needs a secure page: open the console over HTTPS (or on localhost)."
        : "This browser cannot record from a microphone.");
    }
    // Created first, while the click that started the call still counts as a user gesture (autoplay policy).
    try {
      this._ctx = new Ctx({ latencyHint: "interactive" });
    } catch (err) {
      return this._fail(audioError(err));
    }
    const ctx = this._ctx;
    ctx.resume().catch(() => {});
    if (!ctx.audioWorklet) {
      return this._fail(window.isSecureContext === false
        ? "Voice needs a secure page: open the console over HTTPS (or on localhost)."
        : "This browser does not support AudioWorklet.");
    }

    try {
      this._stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } });
    } catch (err) {
      return this._fail(audioError(err));
    }
    if (this._ended) return this._abandon();
    for (const track of this._stream.getAudioTracks()) {
      track.addEventListener("ended", () => this._fail("The microphone was disconnected."));
    }

    try {
      await ctx.audioWorklet.addModule(WORKLETS);
    } catch (err) {
      return this._fail(`The audio processor could not be loaded (${WORKLETS}): ${describe(err)}`);
    }
    if (this._ended) return this._abandon();

    // Ask for the assistant's audio at the context's own rate when the server can do it (its soxr resampler is
    // better than ours); otherwise 48 kHz, resampled in the playback worklet (e.g. to a 44.1 kHz device).
    const rate = ctx.sampleRate;
    const outRate = RATES.includes(rate) ? rate : 48000;
    try {
      this._buildGraph(outRate);
    } catch (err) {
      return this._fail(audioError(err));
    }
    ctx.addEventListener("statechange", () => {
      if (!this._ended && ctx.state === "suspended") ctx.resume().catch(() => {});
    });
    this.stats.playbackRate = rate;

    const ready = await this._connect(outRate);
    if (!ready) return false;
    if (this._ended) return this._abandon();
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    this._update();
    return true;
  }

  _buildGraph(outRate) {
    const ctx = this._ctx;
    this._source = ctx.createMediaStreamSource(this._stream);
    this._capture = new AudioWorkletNode(ctx, "enclave-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
      processorOptions: { targetRate: IN_RATE, frameSamples: FRAME_SAMPLES } });
    this._capture.port.onmessage = (e) => this._onCaptured(e.data);
    // Pulled through a muted gain to the destination so every browser keeps running it; nothing is heard.
    this._sink = ctx.createGain();
    this._sink.gain.value = 0;
    this._source.connect(this._capture);
    this._capture.connect(this._sink);
    this._sink.connect(ctx.destination);

    this._playback = new AudioWorkletNode(ctx, "enclave-playback", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { sourceRate: outRate, prebufferMs: 40, bufferSeconds: 15 } });
    this._playback.port.onmessage = (e) => {
      const m = e.data;
      if (m && m.type === "played") this.stats.playedSamples = m.played;
    };
    this._playback.connect(ctx.destination);
  }

  /** Open the socket, send start, wait for ready. True when ready. */
  _connect(outRate) {
    return new Promise((resolve) => {
      let settled = false;
      let refusal = null;          // the server's error event before ready
      const settle = (ok) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(ok);
        }
      };
      const timer = setTimeout(() => {
        this._fail("The gateway did not answer the call in time.");
        settle(false);
      }, READY_TIMEOUT_MS);

      let ws;
      try {
        const scheme = location.protocol === "https:" ? "wss:" : "ws:";
        ws = new WebSocket(`${scheme}//${location.host}/v1/voice`);
      } catch (err) {
        this._fail(`The voice channel could not be opened: ${describe(err)}`);
        settle(false);
        return;
      }
      ws.binaryType = "arraybuffer";
      this._ws = ws;

      ws.addEventListener("open", () => {
        try {
          ws.send(JSON.stringify({ type: "start", token: token(), session_id: this.sessionId,
            sample_rate: IN_RATE, output_sample_rate: outRate, encoding: "pcm16" }));
        } catch (err) {
          this._fail(`The call could not be started: ${describe(err)}`);
          settle(false);
        }
      });

      ws.addEventListener("message", (e) => {
        if (typeof e.data !== "string") {
          this._onAudio(e.data);
          return;
        }
        let event;
        try {
          event = JSON.parse(e.data);
        } catch {
          return;
        }
        if (!event || typeof event !== "object") return;
        if (event.type === "ready") {
          this.ready = event;
          if (event.session_id) this.sessionId = event.session_id;
          const served = Number(event.output_sample_rate);
          if (served > 0 && served !== outRate && this._playback) {
            this._playback.port.postMessage({ type: "config", sourceRate: served });
          }
          settle(true);
        } else if (event.type === "error" && !this.ready) {
          refusal = event;
        }
        this._onEvent(event);
      });

      // The error event carries no detail; close (which always follows) says what happened.
      ws.addEventListener("close", (e) => {
        if (this._ws !== ws) return;
        if (!this.ready) {
          if (refusal) {
            this._fail(`${refusal.message || "The gateway refused the call."}` +
              (refusal.code ? ` (${refusal.code})` : ""));
          } else if (!this._ended) {
            this._fail(e.code === 1006 ? "The voice service cannot be reached." : closeReason(e.code));
          }
          settle(false);
          return;
        }
        this._onClosed(e);
      });
    });
  }

  // -- while the call runs ------------------------------------------------------------------------------

  _onCaptured(msg) {
    if (!msg || msg.type !== "frame") return;
    const ws = this._ws;
    if (this._ended || !this.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED) {   // the network stalls: stay real time rather than fall behind
      this.stats.framesDropped++;
      return;
    }
    const live = this.mode === "handsfree" || this.pressed;
    try {
      ws.send(live ? msg.samples : SILENCE);
    } catch {
      return;
    }
    this.stats.framesSent++;
    if (live) this.stats.micFramesSent++;
  }

  _onAudio(data) {
    if (!(data instanceof ArrayBuffer)) return;
    this.stats.framesReceived++;
    this.stats.bytesReceived += data.byteLength;
    if (this._discard || this._ended || !this._playback) return;
    const even = data.byteLength - (data.byteLength % 2);
    if (even === 0) return;
    const samples = even === data.byteLength ? data : data.slice(0, even);
    this._playback.port.postMessage({ type: "pcm", samples }, [samples]);
  }

  _flush() {
    if (this._playback) this._playback.port.postMessage({ type: "flush" });
  }

  _onEvent(event) {
    switch (event.type) {
      case "audio_start":
        this._discard = false;
        this.assistantSpeaking = true;
        break;
      case "barge_in":
        this._discard = true;
        this._flush();
        this.assistantSpeaking = false;
        break;
      case "audio_stop":
        if (event.reason === "barge_in") {
          this._discard = true;
          this._flush();
        }
        this.assistantSpeaking = false;
        break;
      default:
        break;
    }
    if (this.onEvent) {
      try {
        this.onEvent(event);
      } catch (err) {
        console.error("voice: onEvent failed", err);
      }
    }
    this._update();
  }

  _onClosed(e) {
    if (this._ended) return;
    this._ended = true;
    // The server ended the call (a hang-up after silence, a restart): let the last words play, then release.
    const normal = e.code === 1000 || e.code === 1001 || e.code === 1005;
    if (normal) this._setState("closed", true);
    else this._setState(`error:${closeReason(e.code)}`, true);
    setTimeout(() => { this._teardown(); }, 300);
  }

  // -- state and cleanup --------------------------------------------------------------------------------

  _update() {
    if (this._ended || !this.ready) return;
    const talking = this.mode === "handsfree" || this.pressed;
    let state;
    if (this.assistantSpeaking && !(this.mode === "push" && this.pressed)) state = "speaking";
    else state = talking ? "listening" : "muted";
    this._setState(state);
  }

  _setState(state, force = false) {
    if (this.state === state) return;
    if (this._ended && !force) return;
    this.state = state;
    this.stats.state = state;
    if (this.onState) {
      try {
        this.onState(state);
      } catch (err) {
        console.error("voice: onState failed", err);
      }
    }
  }

  /** The playback worklet's exact count of samples played, before it goes (waits at most 100 ms). */
  _finalReport() {
    const node = this._playback;
    if (!node) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 100);
      node.port.onmessage = (e) => {
        const m = e.data;
        if (m && m.type === "played") {
          this.stats.playedSamples = m.played;
          clearTimeout(timer);
          resolve();
        }
      };
      try {
        node.port.postMessage({ type: "report" });
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** Tell the server we are done (an open socket gets "stop" first) and close; a closing socket is left be. */
  _closeSocket(reason) {
    const ws = this._ws;
    try {
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "stop" }));
        ws.close(1000, reason);
      } else if (ws && ws.readyState === WebSocket.CONNECTING) {
        ws.close();
      }
    } catch {
      /* already closing */
    }
  }

  /** A failure: said once, everything released. Returns false (for start's callers). */
  _fail(message) {
    if (this._ended) return false;
    this._ended = true;
    this._setState(`error:${message}`, true);
    this._closeSocket("client error");
    this._teardown();
    return false;
  }

  /** stop() was called while start() was waiting: release what start() got since. */
  async _abandon() {
    await this._teardown();
    return false;
  }

  async _teardown() {
    if (this._capture) {
      try {
        this._capture.port.postMessage({ type: "stop" });
        this._capture.port.onmessage = null;
        this._capture.disconnect();
      } catch {
        /* gone */
      }
    }
    for (const node of [this._source, this._sink, this._playback]) {
      try {
        if (node) node.disconnect();
      } catch {
        /* gone */
      }
    }
    if (this._playback) this._playback.port.onmessage = null;
    this._capture = this._source = this._sink = this._playback = null;
    if (this._stream) {
      for (const track of this._stream.getTracks()) {
        try {
          track.stop();
        } catch {
          /* stopped */
        }
      }
      this._stream = null;
    }
    const ctx = this._ctx;
    this._ctx = null;
    if (ctx && ctx.state !== "closed") {
      try {
        await ctx.close();
      } catch {
        /* closed */
      }
    }
  }
}
