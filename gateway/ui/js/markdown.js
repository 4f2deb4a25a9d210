// A small, safe Markdown renderer for answers: builds DOM nodes, never HTML strings, so nothing a model
// writes can become markup or script. Supports paragraphs, headings, lists, fenced code, inline code,
// **bold**, *italic*, [links](https://…) (http/https only) and citation markers [1] (turned into buttons by
// the `cite` callback).

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\((https?:\/\/[^)\s]+)\))|(\[(\d{1,2})\])/g;

function inline(text, cite) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    if (m[1]) {
      const code = document.createElement("code");
      code.textContent = m[1].slice(1, -1);
      out.push(code);
    } else if (m[2]) {
      const b = document.createElement("strong");
      b.append(...inline(m[2].slice(2, -2), cite));
      out.push(b);
    } else if (m[3]) {
      const i = document.createElement("em");
      i.append(...inline(m[3].slice(1, -1), cite));
      out.push(i);
    } else if (m[4]) {
      const a = document.createElement("a");
      a.href = m[5];
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.textContent = m[4].slice(1, m[4].indexOf("]("));
      out.push(a);
    } else if (m[6]) {
      const node = cite ? cite(Number(m[7])) : null;
      out.push(node || document.createTextNode(m[6]));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

/** Markdown text → a DocumentFragment. `cite(n)` returns a node for the marker [n], or null to keep the text. */
export function renderMarkdown(text, cite = null) {
  const frag = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n/g, "\n").split("\n");
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) {
      const p = document.createElement("p");
      p.append(...inline(para.join(" "), cite));
      frag.append(p);
      para = [];
    }
  };
  const flushList = () => {
    if (list) frag.append(list);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      flushPara();
      flushList();
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      const pre = document.createElement("pre");
      const c = document.createElement("code");
      c.textContent = code.join("\n");
      pre.append(c);
      frag.append(pre);
      continue;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    const bullet = /^\s*[-*]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (heading) {
      flushPara();
      flushList();
      const h = document.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      h.append(...inline(heading[2], cite));
      frag.append(h);
    } else if (bullet || numbered) {
      flushPara();
      const tag = bullet ? "UL" : "OL";
      if (!list || list.tagName !== tag) {
        flushList();
        list = document.createElement(tag);
      }
      const li = document.createElement("li");
      li.append(...inline((bullet || numbered)[1], cite));
      list.append(li);
    } else if (!line.trim()) {
      flushPara();
      flushList();
    } else {
      flushList();
      para.push(line.trim());
    }
  }
  flushPara();
  flushList();
  return frag;
}
