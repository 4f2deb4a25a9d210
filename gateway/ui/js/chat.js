// The chat screen: conversations on the left, the thread, a composer; answers stream in with Markdown,
// citations open the source passage, each answer takes a thumbs up/down and a comment; voice (push-to-talk
// or hands-free) runs on the same session over /v1/voice.

import { ApiError, NetworkError, api, describe, el, sse } from "./api.js";
import { renderMarkdown } from "./markdown.js";

export function mount(root, ctx) {
  // ``view`` counts what the thread has shown: a reply for a conversation no longer open is thrown away (a
  // click on A then B showed A's turns under B, and feedback went to B's session with A's turn ids).
  const state = { sessionId: null, sending: false, voice: null, sessions: [], rendered: 0, nextCursor: null,
    view: 0, loadingMore: false, stopping: null, unmounted: false };
  const list = el("ul", { "aria-label": "Conversations" });
  const more = el("button", { type: "button", class: "more", hidden: true, "data-testid": "more-conversations",
    onclick: () => { if (!state.loadingMore) loadSessions(state.nextCursor); } }, "Older conversations");
  const messages = el("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Conversation",
    "data-testid": "messages" });
  const input = el("textarea", { id: "composer-input", "aria-label": "Message", placeholder: "Type a message…",
    rows: 2, "data-testid": "composer" });
  const send = el("button", { type: "submit", "data-testid": "send" }, "Send");
  // Stops the answer being written: the gateway cancels the generation and keeps what was shown (interrupted).
  const stop = el("button", { type: "button", class: "secondary", hidden: true, "data-testid": "stop",
    onclick: () => state.stopping?.abort() }, "Stop");
  const status = el("p", { class: "status", role: "status", "data-testid": "chat-status" });
  const composer = el("form", { class: "composer", "aria-label": "Compose" }, input, send, stop);
  const voiceStatus = el("span", { class: "status", role: "status", "data-testid": "voice-status" }, "Voice off");
  const talk = el("button", { type: "button", class: "secondary", "aria-pressed": "false", disabled: true,
    "data-testid": "push-to-talk", title: "Hold to talk (or hold the Space bar while this button has focus)" },
  "Hold to talk");
  const voiceMode = el("select", { "aria-label": "Voice mode", "data-testid": "voice-mode" },
    el("option", { value: "push" }, "Push-to-talk"), el("option", { value: "handsfree" }, "Hands-free"));
  const voiceToggle = el("button", { type: "button", class: "secondary", "aria-pressed": "false",
    "data-testid": "voice-toggle" }, "Start voice");
  const voicebar = el("div", { class: "voicebar", role: "group", "aria-label": "Voice" },
    voiceToggle, voiceMode, talk, voiceStatus);
  const newChat = el("button", { type: "button", "data-testid": "new-chat" }, "New conversation");
  const sourceDialog = el("dialog", { "aria-labelledby": "source-title", "data-testid": "source-dialog" });

  root.append(el("div", { class: "chat" },
    el("aside", { class: "conversations", "aria-label": "Conversation list" }, newChat, list, more),
    el("section", { class: "thread", "aria-label": "Chat" }, messages, status, voicebar, composer),
    sourceDialog));

  // -- conversations ----------------------------------------------------------------------------------

  /** The first page of chat and voice conversations, or with ``after`` the next one (keyset paging: a
   * conversation that moves to the top meanwhile is neither repeated nor skipped). */
  async function loadSessions(after) {
    if (after) {   // one page at a time: two clicks on a slow gateway listed every older conversation twice
      state.loadingMore = true;
      more.disabled = true;
    }
    try {
      const query = new URLSearchParams({ limit: "50" });
      query.append("channel", "chat");
      query.append("channel", "voice");
      if (after) query.set("after", after);
      const body = await api(`/v1/sessions?${query}`);
      state.sessions = after ? state.sessions.concat(body.data) : body.data;
      state.nextCursor = body.next_cursor;
      more.hidden = !body.next_cursor;
      renderList();
    } catch (err) {
      ctx.banner(describe(err));
    } finally {
      if (after) {
        state.loadingMore = false;
        more.disabled = false;
      }
    }
  }

  function renderList() {
    list.replaceChildren(...state.sessions.map((s) => el("li", {},
      el("button", { type: "button", "aria-current": s.id === state.sessionId ? "true" : "false",
        "data-testid": "conversation", onclick: () => open(s.id) },
      s.title || new Date(s.created_at).toLocaleString()))));
  }

  async function open(id) {
    state.sessionId = id;
    const view = ++state.view;
    renderList();
    messages.replaceChildren();
    state.rendered = 0;
    try {
      const turns = (await api(`/v1/sessions/${id}`)).turns;
      if (view === state.view) appendTurns(turns);   // another conversation opened meanwhile: not this one's
    } catch (err) {
      if (view === state.view) ctx.banner(describe(err));
    }
    input.focus();
  }

  /** Stored rows past what is shown: replies that arrive later (an approved action's outcome, a colleague). */
  function appendTurns(turns) {
    for (const t of turns.slice(state.rendered)) {
      if (t.role === "user") messages.append(bubble("user", t.content));
      if (t.role === "assistant") {
        const b = bubble("assistant", t.content);
        addFeedback(b, t.turn_id);
        messages.append(b);
      }
    }
    state.rendered = Math.max(state.rendered, turns.length);
    messages.scrollTop = messages.scrollHeight;
  }

  async function poll() {
    if (!state.sessionId || state.sending || state.voice || document.hidden) return;   // voice shows its turns live
    const view = state.view;
    try {
      const body = await api(`/v1/sessions/${state.sessionId}`);
      if (view === state.view && !state.sending && body.turns.length > state.rendered) appendTurns(body.turns);
    } catch {
      /* the next poll tries again; errors show when the person acts */
    }
  }
  const poller = setInterval(poll, 3000);

  newChat.addEventListener("click", () => {
    state.view += 1;
    state.sessionId = null;
    state.rendered = 0;
    messages.replaceChildren();
    renderList();
    input.focus();
  });

  // -- messages -----------------------------------------------------------------------------------------

  function bubble(role, text, { citations = [] } = {}) {
    const body = el("div", { class: "body" });
    const node = el("article", { class: `msg ${role}`, "data-testid": `msg-${role}`,
      "aria-label": role === "user" ? "You" : "Assistant" }, body);
    node._render = (t, cites) => {
      body.replaceChildren(role === "assistant" ? renderMarkdown(t, (n) => citeButton(n, cites)) : t);
    };
    node._render(text, citations);
    return node;
  }

  function citeButton(n, citations) {
    const c = citations.find((x) => x.index === n);
    if (!c) return null;
    return el("button", { type: "button", class: "cite", "data-testid": "citation",
      "aria-label": `Source ${n}: ${c.title}${c.section ? `, ${c.section}` : ""}`, onclick: () => openSource(c) }, `[${n}]`);
  }

  function sourcesList(citations) {
    return el("div", { class: "sources", role: "list", "aria-label": "Sources" }, citations.map((c) =>
      el("span", { role: "listitem" }, el("button", { type: "button", class: "cite", "data-testid": "source",
        onclick: () => openSource(c) }, `[${c.index}] ${c.title}${c.page ? ` p. ${c.page}` : ""}`))));
  }

  async function openSource(c) {
    sourceDialog.replaceChildren(el("h2", { id: "source-title" }, c.title), el("p", {}, "Loading the passage…"));
    sourceDialog.showModal();
    try {
      const doc = await api(`/v1/knowledge/documents/${c.document_id}`);
      const chunk = (doc.chunks || []).find((k) => String(k.id) === String(c.chunk_id)) ||
        (doc.chunks || []).find((k) => k.ord === c.chunk) || {};
      sourceDialog.replaceChildren(
        el("h2", { id: "source-title" }, doc.title || c.title),
        el("p", { class: "status" }, [doc.collection, c.section, c.page ? `page ${c.page}` : null].filter(Boolean).join(" · ")),
        el("blockquote", { class: "passage", "data-testid": "passage" }, chunk.text || "(this passage is no longer stored)"),
        el("form", { method: "dialog" }, el("button", { autofocus: true }, "Close")));
    } catch (err) {
      sourceDialog.replaceChildren(el("h2", { id: "source-title" }, c.title), el("p", { class: "error-state" }, describe(err)),
        el("form", { method: "dialog" }, el("button", { autofocus: true }, "Close")));
    }
  }

  function addFeedback(node, turnId) {
    if (!turnId || node.querySelector(".feedback")) return;
    const up = el("button", { type: "button", "aria-pressed": "false", "data-testid": "thumb-up" }, "Good answer");
    const down = el("button", { type: "button", "aria-pressed": "false", "data-testid": "thumb-down" }, "Poor answer");
    const comment = el("input", { type: "text", "aria-label": "Comment on this answer", placeholder: "Comment (optional)",
      maxlength: 2000, "data-testid": "feedback-comment" });
    const submit = el("button", { type: "button", class: "secondary", "data-testid": "feedback-send" }, "Send feedback");
    const note = el("span", { class: "status", role: "status", "data-testid": "feedback-status" });
    let rating = null;
    const choose = (r) => {
      rating = r;
      up.setAttribute("aria-pressed", String(r === "up"));
      down.setAttribute("aria-pressed", String(r === "down"));
      sendFeedback();
    };
    async function sendFeedback() {
      if (!rating || !state.sessionId) return;
      try {
        await api(`/v1/sessions/${state.sessionId}/turns/${turnId}/feedback`, { method: "POST",
          json: { rating, comment: comment.value.trim() } });
        note.textContent = "Thank you for the feedback.";
      } catch (err) {
        note.textContent = describe(err);
      }
    }
    up.addEventListener("click", () => choose("up"));
    down.addEventListener("click", () => choose("down"));
    submit.addEventListener("click", () => (rating ? sendFeedback() : (note.textContent = "Choose Good answer or Poor answer first.")));
    node.append(el("div", { class: "feedback", role: "group", "aria-label": "Feedback" }, up, down, comment, submit, note));
  }

  // -- sending --------------------------------------------------------------------------------------------

  async function ask(text) {
    state.sending = true;
    send.disabled = true;
    status.textContent = "";
    const userNode = bubble("user", text);
    messages.append(userNode);
    const answer = bubble("assistant", "…");
    answer.setAttribute("aria-busy", "true");
    messages.append(answer);
    messages.scrollTop = messages.scrollHeight;
    let content = "";
    let citations = [];
    let isNew = false;
    const stopping = state.stopping = new AbortController();
    stop.hidden = false;
    try {
      if (!state.sessionId) {   // a conversation of the chat channel, titled by its first words
        const created = await api("/v1/sessions", { method: "POST",
          json: { channel: "chat", title: text.length > 60 ? `${text.slice(0, 57)}…` : text } });
        state.sessionId = created.id;
        isNew = true;
      }
      const response = await api("/v1/chat/completions", { method: "POST", raw: true, signal: stopping.signal,
        headers: state.sessionId ? { "X-Session-Id": state.sessionId } : {},
        json: { model: "enclave", stream: true, messages: [{ role: "user", content: text }] } });
      const turnId = response.headers.get("X-Turn-Id");
      let sources = null;
      let broke = null;   // an error event at the end: the answer was shown, but not kept
      for await (const chunk of sse(response)) {
        if (chunk.citations && !sources) {   // the sources come before the first word: show them at once
          citations = chunk.citations;
          sources = sourcesList(citations);
          answer.append(sources);
        }
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          content += delta;
          answer._render(content, citations);
          messages.scrollTop = messages.scrollHeight;
        }
        if (chunk.error) {
          broke = new ApiError(500, chunk.error.code || "stream_error", chunk.error.message || "the answer broke off");
          if (!content) throw broke;
        }
      }
      answer._render(content || "(no answer)", citations);
      if (broke) {   // the whole answer is on the screen: keep it, and say it was not saved (no feedback on it)
        status.textContent = `This answer was shown but not saved: ${describe(broke)}`;
        status.className = "status error-state";
      } else {
        addFeedback(answer, turnId);
      }
      input.value = "";
      if (isNew) loadSessions();
      await syncRendered();   // what is shown now matches what is stored: the next poll only adds what comes later
    } catch (err) {
      if (state.unmounted) return;      // signed out, or another screen: nothing here to show it on
      if (stopping.signal.aborted && err.name === "AbortError") {   // Stop: what was shown stays, and is stored
        answer._render(content ? `${content} …` : "(stopped)", citations);
        status.textContent = "Stopped.";
        input.value = "";
        reloadSoon();
        return;
      }
      if (content) {
        // It broke off after part of the answer was shown (the connection went): the gateway kept the message
        // and what was sent as an interrupted turn. Keep them on the screen too; sending it again would ask twice.
        answer._render(`${content} …`, citations);
        status.textContent = `The answer broke off: ${describe(err)}`;
        status.className = "status error-state";
        reloadSoon();
        return;
      }
      // Keep what was typed: put it back in the composer, and say what to do.
      answer.remove();
      userNode.remove();
      input.value = text;
      status.textContent = err instanceof NetworkError
        ? `${err.message} Your message was kept.`
        : `The message was not answered: ${describe(err)}`;
      status.className = "status error-state";
      if (err instanceof NetworkError) {
        const retry = el("button", { type: "button", class: "secondary", "data-testid": "retry",
          onclick: () => { retry.remove(); submitMessage(); } }, "Retry");
        status.append(" ", retry);
        retry.focus();
      }
    } finally {
      answer.removeAttribute("aria-busy");
      stop.hidden = true;
      state.stopping = null;
      state.sending = false;
      send.disabled = false;
    }
  }

  /** After an answer was stopped or broke off: the gateway stores what was sent as an interrupted turn, a
   * moment later. The thread is shown again as stored then (counting the stored turns at once could miss it,
   * and the next poll would show the message and the answer a second time). */
  function reloadSoon() {
    const id = state.sessionId;
    const view = state.view;
    setTimeout(() => {
      if (!state.unmounted && !state.sending && state.sessionId === id && state.view === view) open(id);
    }, 1500);
  }

  function submitMessage() {
    const text = input.value.trim();
    if (!text || state.sending) return;
    status.className = "status";
    ask(text);
  }

  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    submitMessage();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      submitMessage();
    }
  });

  // -- voice ---------------------------------------------------------------------------------------------

  let liveUser = null;
  let liveAnswer = null;
  let liveText = "";

  function onVoiceEvent(ev) {
    if (ev.type === "ready" && ev.session_id && ev.session_id !== state.sessionId) {
      state.sessionId = ev.session_id;
    } else if (ev.type === "transcript") {
      liveUser = bubble("user", ev.text);
      liveUser.dataset.source = "voice";
      messages.append(liveUser);
      liveText = "";
      liveAnswer = null;
    } else if (ev.type === "assistant_text" && !ev.system) {
      if (!liveAnswer) {
        liveAnswer = bubble("assistant", "");
        messages.append(liveAnswer);
      }
      liveText += ev.delta;
      liveAnswer._render(liveText, []);
    } else if (ev.type === "turn_end") {
      if (liveAnswer) addFeedback(liveAnswer, ev.turn_id);
      liveAnswer = null;
      loadSessions();
      syncRendered();
    } else if (ev.type === "error") {
      voiceStatus.textContent = `Voice: ${ev.message}`;
    }
    messages.scrollTop = messages.scrollHeight;
  }

  function onVoiceState(s) {
    voiceStatus.textContent = s.startsWith("error:") ? `Voice error: ${s.slice(6)}` : `Voice: ${s}`;
    if (s === "closed" || s.startsWith("error:")) stopVoice(false);
  }

  async function syncRendered() {
    if (!state.sessionId) return;
    try {
      state.rendered = (await api(`/v1/sessions/${state.sessionId}`)).turns.length;
    } catch {
      /* the session exists once its first turn is stored */
    }
  }

  async function startVoice() {
    const { VoiceCall } = await import("./voice.js");
    state.voice = new VoiceCall({ sessionId: state.sessionId, onEvent: onVoiceEvent, onState: onVoiceState });
    voiceToggle.textContent = "Stop voice";
    voiceToggle.setAttribute("aria-pressed", "true");
    talk.disabled = voiceMode.value !== "push";
    await state.voice.start({ mode: voiceMode.value });
  }

  async function stopVoice(hangUp = true) {
    const call = state.voice;
    state.voice = null;
    voiceToggle.textContent = "Start voice";
    voiceToggle.setAttribute("aria-pressed", "false");
    talk.disabled = true;
    if (call && hangUp) await call.stop();
  }

  voiceToggle.addEventListener("click", () => (state.voice ? stopVoice() : startVoice()));
  voiceMode.addEventListener("change", () => {
    if (state.voice) state.voice.setMode(voiceMode.value);
    talk.disabled = !state.voice || voiceMode.value !== "push";
  });
  const press = () => {
    if (!state.voice) return;
    talk.setAttribute("aria-pressed", "true");
    state.voice.press();
  };
  const release = () => {
    if (!state.voice) return;
    talk.setAttribute("aria-pressed", "false");
    state.voice.release();
  };
  talk.addEventListener("pointerdown", press);
  talk.addEventListener("pointerup", release);
  talk.addEventListener("pointerleave", release);
  talk.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      press();
    }
  });
  talk.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      release();
    }
  });

  loadSessions();
  input.focus();
  return () => {
    clearInterval(poller);
    state.unmounted = true;
    state.stopping?.abort();   // leaving the screen (or signing out) ends an answer still being written
    if (state.voice) state.voice.stop();
  };
}
