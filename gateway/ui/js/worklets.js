// AudioWorklet processors for the voice call (gateway/ui/js/voice.js). Loaded with
// audioWorklet.addModule("/ui/js/worklets.js"): a same-origin file, as the page's CSP requires.
//
// enclave-capture:  microphone (the context's rate) → low-pass + resample → 16 kHz PCM16 frames, posted to the
//                   main thread as {type: "frame", samples: ArrayBuffer} (Int16, little-endian on every platform
//                   browsers run on), `frameSamples` each (320 = 20 ms).
// enclave-playback: PCM16 of the assistant (the server's output rate) → resampled to the context's rate → a ring
//                   buffer played out in real time; silence when empty. Messages in: {type: "pcm", samples:
//                   ArrayBuffer (Int16)}, {type: "flush"} (barge-in: drop everything queued now), {type: "config",
//                   sourceRate}, {type: "report"}. Out: {type: "played", played, buffered, rate, drained?}.
//
// `sampleRate`, `registerProcessor` and `AudioWorkletProcessor` are globals of the AudioWorkletGlobalScope.
/* global sampleRate, registerProcessor, AudioWorkletProcessor */

const QUANTUM = 128;

/** Windowed-sinc low-pass (Hamming), unity gain at DC; `cutoff` in cycles per sample (< 0.5). */
function lowPass(cutoff, taps) {
  const h = new Float32Array(taps);
  const mid = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const n = i - mid;
    const sinc = n === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * n) / (Math.PI * n);
    const w = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum;
  return h;
}

/**
 * Streaming resampler: an optional FIR low-pass at the input rate (when going down, against aliasing),
 * then linear interpolation at the output positions. State carries across blocks of any length.
 */
class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;            // input samples per output sample
    this.pos = 0;                            // next output position, in input samples from the block's start
    this.prev = 0;                           // the last (filtered) input sample of the previous block
    this.filter = null;
    if (outRate < inRate) {
      // Pass band to ~0.42·outRate, stopped by the output's Nyquist: speech keeps its consonants, no aliasing.
      const taps = Math.max(15, Math.min(127, Math.round((inRate / outRate) * 21) | 1));
      this.filter = lowPass((0.45 * outRate) / inRate, taps);
      this.history = new Float32Array(taps);   // circular, the last `taps` input samples
      this.at = 0;
    }
    this.scratch = new Float32Array(QUANTUM);
  }

  reset() {
    this.pos = 0;
    this.prev = 0;
    if (this.history) this.history.fill(0);
  }

  /** Resample `input` (Float32, length ≥ 1); calls emit(sample) for each output sample. */
  process(input, emit) {
    const n = input.length;
    let y = input;
    if (this.filter) {
      if (this.scratch.length < n) this.scratch = new Float32Array(n);
      y = this.scratch;
      const h = this.filter;
      const hist = this.history;
      const taps = h.length;
      let at = this.at;
      for (let i = 0; i < n; i++) {
        hist[at] = input[i];
        let acc = 0;
        let j = at;
        for (let k = 0; k < taps; k++) {
          acc += h[k] * hist[j];
          j = j === 0 ? taps - 1 : j - 1;
        }
        y[i] = acc;
        at = at + 1 === taps ? 0 : at + 1;
      }
      this.at = at;
    }
    // Output positions are relative to y[0]; index -1 is the previous block's last sample.
    let pos = this.pos;
    for (;;) {
      const i0 = Math.floor(pos);
      if (i0 + 1 > n - 1) break;
      const a = i0 < 0 ? this.prev : y[i0];
      const b = y[i0 + 1];
      emit(a + (b - a) * (pos - i0));
      pos += this.step;
    }
    this.pos = pos - n;
    this.prev = y[n - 1];
  }
}

function toInt16(v) {
  const s = v > 1 ? 1 : v < -1 ? -1 : v;
  return Math.round(s < 0 ? s * 32768 : s * 32767);
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    this.frameSamples = opts.frameSamples || 320;
    this.resampler = sampleRate === this.targetRate ? null : new Resampler(sampleRate, this.targetRate);
    this.mono = new Float32Array(QUANTUM);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.running = true;
    this.emit = (v) => this.push(v);
    this.port.onmessage = (e) => {
      if (e.data && e.data.type === "stop") this.running = false;
    };
  }

  push(v) {
    this.frame[this.filled++] = toInt16(v);
    if (this.filled === this.frameSamples) {
      const buffer = this.frame.buffer;
      this.port.postMessage({ type: "frame", samples: buffer }, [buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0] || [];
    const length = input.length ? input[0].length : QUANTUM;
    if (this.mono.length !== length) this.mono = new Float32Array(length);
    const mono = this.mono;
    // No channel (the source stopped delivering): time still passes, as silence, so endpointing sees it.
    if (input.length === 0) mono.fill(0);
    else if (input.length === 1) mono.set(input[0]);
    else {
      mono.fill(0);
      for (const ch of input) for (let i = 0; i < length; i++) mono[i] += ch[i];
      for (let i = 0; i < length; i++) mono[i] /= input.length;
    }
    if (this.resampler) this.resampler.process(mono, this.emit);
    else for (let i = 0; i < length; i++) this.push(mono[i]);
    return true;
  }
}

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    const seconds = opts.bufferSeconds || 15;
    this.ring = new Float32Array(Math.ceil(sampleRate * seconds));
    this.read = 0;
    this.count = 0;                                  // samples queued
    this.played = 0;                                 // samples played from the queue (at the context's rate)
    this.reported = 0;
    this.sinceReport = 0;
    this.reportEvery = Math.round(sampleRate / 2);   // ~0.5 s
    // After the queue ran dry, wait for this much (or this long) before playing again: a little jitter margin.
    this.prebuffer = Math.round((sampleRate * (opts.prebufferMs || 40)) / 1000);
    this.waiting = true;
    this.waited = 0;
    this.hadAudio = false;
    this.configure(opts.sourceRate || sampleRate);
    this.emit = (v) => this.write(v);
    this.port.onmessage = (e) => this.message(e.data || {});
  }

  configure(sourceRate) {
    this.sourceRate = sourceRate;
    this.resampler = sourceRate === sampleRate ? null : new Resampler(sourceRate, sampleRate);
  }

  message(msg) {
    if (msg.type === "pcm" && msg.samples) {
      const pcm = new Int16Array(msg.samples, 0, Math.floor(msg.samples.byteLength / 2));
      if (pcm.length === 0) return;
      const f = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
      if (this.resampler) this.resampler.process(f, this.emit);
      else for (let i = 0; i < f.length; i++) this.write(f[i]);
    } else if (msg.type === "flush") {
      this.read = 0;
      this.count = 0;
      this.waiting = true;
      this.waited = 0;
      if (this.resampler) this.resampler.reset();
      this.report(true);
    } else if (msg.type === "config" && msg.sourceRate > 0) {
      if (msg.sourceRate !== this.sourceRate) this.configure(msg.sourceRate);
    } else if (msg.type === "report") {
      this.report(this.count === 0);
    }
  }

  write(v) {
    const size = this.ring.length;
    if (this.count === size) {   // full (the server paces in real time, so only after a long stall): drop the oldest
      this.read = this.read + 1 === size ? 0 : this.read + 1;
      this.count--;
    }
    let at = this.read + this.count;
    if (at >= size) at -= size;
    this.ring[at] = v;
    this.count++;
  }

  report(drained) {
    this.reported = this.played;
    this.sinceReport = 0;
    this.port.postMessage({ type: "played", played: this.played, buffered: this.count, rate: sampleRate,
      drained: Boolean(drained) });
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    if (!output || output.length === 0) return true;
    const out = output[0];
    const n = out.length;
    let k = 0;
    if (this.waiting && this.count > 0) {
      this.waited += n;
      if (this.count >= this.prebuffer || this.waited >= this.prebuffer) this.waiting = false;
    }
    if (!this.waiting) {
      const size = this.ring.length;
      const take = Math.min(n, this.count);
      for (; k < take; k++) {
        out[k] = this.ring[this.read];
        this.read = this.read + 1 === size ? 0 : this.read + 1;
      }
      this.count -= take;
      this.played += take;
      if (take > 0) this.hadAudio = true;
    }
    for (; k < n; k++) out[k] = 0;
    for (let c = 1; c < output.length; c++) output[c].set(out);
    if (!this.waiting && this.count === 0) {
      this.waiting = true;
      this.waited = 0;
      if (this.hadAudio) {
        this.hadAudio = false;
        this.report(true);   // ran dry: the exact count, now
      }
    }
    this.sinceReport += n;
    if (this.sinceReport >= this.reportEvery) {
      if (this.played !== this.reported) this.report(false);
      else this.sinceReport = 0;
    }
    return true;
  }
}

registerProcessor("enclave-capture", CaptureProcessor);
registerProcessor("enclave-playback", PlaybackProcessor);
