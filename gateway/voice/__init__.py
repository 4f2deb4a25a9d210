"""Audio plumbing for the voice and SIP channels: G.711 codecs, streaming resampling and fixed-size framing."""
