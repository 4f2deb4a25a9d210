"""SIP user agent for PBX/SBC trunks (RFC 3261): message parsing, SDP offer/answer and transaction timers."""
