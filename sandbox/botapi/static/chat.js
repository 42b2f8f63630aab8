// The web chat: pick a persona, then talk to the bot through the local Bot API's JSON API.
// Plain browser JavaScript, no build step. The chat state is long-polled (/events) and the
// message list refetched whenever its version moves, so edits and deletions show in place.
"use strict";

const $ = (id) => document.getElementById(id);
let userId = null;
let groupId = null; // a group's chat id when the page shows a group (userId writes there)
let botUsername = "";
let version = -1;
let lastToast = null;
let pollGeneration = 0;
let typingTimer = null;
let toastTimer = null;
let commands = [];
const rendered = new Map(); // message_id -> {el, signature}

function personaFromHash() {
  const match = /user=(\d+)/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function groupFromHash() {
  const match = /group=(-\d+)/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

// The JSON API of what the page shows: the persona's private chat, or a group.
function base() {
  return groupId === null ? `/api/chats/${userId}` : `/api/groups/${groupId}`;
}

// In a group, every action names who does it.
function as(body) {
  return groupId === null ? body : { ...body, from: userId };
}

async function postJson(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function safeUrl(url) {
  return /^(https?:|tg:|mailto:)/i.test(url || "") ? url : "#";
}

const TAGS = {
  bold: ["<b>", "</b>"],
  italic: ["<i>", "</i>"],
  underline: ["<u>", "</u>"],
  strikethrough: ["<s>", "</s>"],
  code: ["<code>", "</code>"],
  pre: ["<pre>", "</pre>"],
  blockquote: ["<blockquote>", "</blockquote>"],
  expandable_blockquote: ["<blockquote>", "</blockquote>"],
  spoiler: ['<span class="spoiler">', "</span>"],
};

// Entities count UTF-16 units, which is exactly how JavaScript indexes strings.
function renderEntities(text, entities) {
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const stack = [];
  let html = "";
  let next = 0;
  const closeUntil = (position) => {
    while (stack.length && stack[stack.length - 1].end <= position) {
      html += stack.pop().close;
    }
  };
  for (let i = 0; i <= text.length; i++) {
    closeUntil(i);
    while (next < sorted.length && sorted[next].offset === i) {
      const entity = sorted[next++];
      let open = "";
      let close = "";
      if (entity.type === "text_link") {
        open = `<a href="${escapeHtml(safeUrl(entity.url))}" target="_blank" rel="noopener">`;
        close = "</a>";
      } else if (TAGS[entity.type]) {
        [open, close] = TAGS[entity.type];
      }
      html += open;
      stack.push({ end: entity.offset + entity.length, close });
    }
    if (i < text.length) html += escapeHtml(text[i]);
  }
  closeUntil(Infinity);
  return html;
}

function time(date) {
  return new Date(date * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function buildMessage(message) {
  const el = document.createElement("div");
  el.className = `msg ${message.from}`;
  el.dataset.messageId = message.message_id;
  el.dataset.testid = "message";
  if (message.photo) {
    const img = document.createElement("img");
    img.className = "photo";
    img.src = message.photo;
    img.alt = message.caption || "photo";
    img.addEventListener("click", () => window.open(message.photo, "_blank"));
    img.addEventListener("load", () => scrollToBottom(false));
    el.appendChild(img);
  }
  if (message.document) {
    const doc = document.createElement("div");
    doc.className = "document";
    doc.innerHTML = `&#128196; <a href="${message.document.url}" download="${escapeHtml(
      message.document.name)}">${escapeHtml(message.document.name)}</a>`;
    el.appendChild(doc);
  }
  if (message.contact) {
    const contact = document.createElement("div");
    contact.className = "contact";
    contact.textContent = `\u{1F4DE} ${message.contact.first_name} · ${message.contact.phone_number}`;
    el.appendChild(contact);
  }
  const body = message.text ?? message.caption;
  if (body) {
    const text = document.createElement("div");
    text.className = "text";
    text.innerHTML = renderEntities(body, message.entities);
    text.querySelectorAll(".spoiler").forEach((s) =>
      s.addEventListener("click", () => s.classList.add("shown")));
    el.appendChild(text);
  }
  if (groupId !== null && message.sender) {
    const who = document.createElement("div");
    who.className = "sender";
    who.textContent = message.sender.name;
    el.prepend(who);
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (message.edited ? "edited " : "") + time(message.date);
  (el.querySelector(".text") || el).appendChild(meta);
  const mine = message.from === "user" && (!message.sender || message.sender.user_id === userId);
  if (mine && message.text !== undefined) {
    // As in Telegram, one's own text can be edited later; the bot gets an edited_message.
    const edit = document.createElement("button");
    edit.type = "button";
    edit.className = "edit-btn";
    edit.title = "Edit this message";
    edit.dataset.testid = "edit";
    edit.textContent = "\u270E";
    edit.addEventListener("click", () => editMessage(message));
    meta.appendChild(edit);
  }
  if (message.buttons && message.buttons.length) {
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    for (const row of message.buttons) {
      const rowEl = document.createElement("div");
      rowEl.className = "button-row";
      for (const button of row) rowEl.appendChild(inlineButton(message, button));
      buttons.appendChild(rowEl);
    }
    el.appendChild(buttons);
  }
  return el;
}

async function editMessage(message) {
  const text = window.prompt("Edit your message", message.text);
  if (text === null || !text.trim() || text.trim() === message.text) return;
  try {
    await postJson(`${base()}/messages/${message.message_id}/edit`, as({ text }));
    await refreshMessages();
  } catch (error) {
    showToast(error.message);
  }
}

// A t.me link to this bot opens the private chat and presses Start, as Telegram does.
function startLink(url) {
  const match = /^https:\/\/t\.me\/([A-Za-z0-9_]+)\?start=([A-Za-z0-9_-]+)$/.exec(url);
  return match && match[1] === botUsername ? match[2] : null;
}

function inlineButton(message, button) {
  if (button.url && startLink(button.url) !== null) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "inline-btn";
    el.textContent = `${button.text} \u2197`;
    el.addEventListener("click", async () => {
      const payload = startLink(button.url);
      location.hash = `user=${userId}`;
      await postJson(`/api/chats/${userId}/messages`, { text: `/start ${payload}` });
    });
    return el;
  }
  if (button.url) {
    const link = document.createElement("a");
    link.className = "inline-btn";
    link.href = safeUrl(button.url);
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = `${button.text} \u2197`;
    return link;
  }
  const el = document.createElement("button");
  el.type = "button";
  el.className = "inline-btn";
  el.textContent = button.text;
  if (button.callback_data === undefined) {
    el.disabled = true;
    return el;
  }
  el.dataset.callbackData = button.callback_data;
  el.addEventListener("click", async () => {
    el.disabled = true;
    try {
      await postJson(
        `${base()}/callbacks`,
        as({ message_id: message.message_id, data: button.callback_data }),
      );
    } catch (error) {
      showToast(error.message);
    } finally {
      setTimeout(() => { el.disabled = false; }, 600);
    }
  });
  return el;
}

function nearBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToBottom(force) {
  const box = $("messages");
  if (force || nearBottom()) box.scrollTop = box.scrollHeight;
}

async function refreshMessages() {
  const messages = await api(`${base()}/messages`);
  const box = $("messages");
  const stick = nearBottom();
  const seen = new Set();
  let previous = null;
  for (const message of messages) {
    const id = message.message_id;
    seen.add(id);
    const existing = rendered.get(id);
    if (message.deleted) {
      if (existing) existing.el.remove();
      rendered.delete(id);
      continue;
    }
    const signature = JSON.stringify(message);
    if (existing && existing.signature === signature) {
      previous = existing.el;
      continue;
    }
    const el = buildMessage(message);
    if (existing) {
      existing.el.replaceWith(el);
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 700);
    } else if (previous && previous.nextSibling) {
      box.insertBefore(el, previous.nextSibling);
    } else if (previous) {
      box.appendChild(el);
    } else {
      box.prepend(el);
    }
    rendered.set(id, { el, signature });
    previous = el;
  }
  for (const [id, entry] of rendered) {
    if (!seen.has(id)) { entry.el.remove(); rendered.delete(id); }
  }
  const empty = box.querySelector(".empty");
  if (rendered.size === 0 && !empty) {
    box.innerHTML = '<p class="empty">Say hello, or send /start.</p>';
  } else if (rendered.size && empty) {
    empty.remove();
  }
  scrollToBottom(stick);
}

function applyChatState(chat) {
  botUsername = chat.bot.username;
  $("bot-name").textContent = chat.group ? chat.group.title : chat.bot.name;
  const block = $("block");
  block.hidden = Boolean(chat.group);
  block.dataset.blocked = chat.blocked ? "1" : "0";
  block.textContent = chat.blocked ? "Unblock bot" : "Block bot";
  const status = $("status");
  clearTimeout(typingTimer);
  if (chat.typing) {
    status.textContent = "typing…";
    status.classList.add("typing");
    typingTimer = setTimeout(() => {
      status.textContent = "bot";
      status.classList.remove("typing");
    }, chat.typing_for * 1000);
  } else {
    status.textContent = chat.group ? "group" : chat.blocked ? "blocked" : "bot";
    status.classList.remove("typing");
  }
  renderReplyKeyboard(chat.reply_keyboard);
  commands = chat.commands || [];
  $("commands").hidden = commands.length === 0;
  const toasts = chat.toasts || [];
  const newest = toasts.length ? toasts[toasts.length - 1].seq : 0;
  if (lastToast === null) {
    lastToast = newest; // toasts from before this page was opened are not replayed
  }
  for (const toast of toasts) {
    if (toast.seq > lastToast) {
      if (toast.show_alert) showAlert(toast.text); else showToast(toast.text);
    }
  }
  lastToast = Math.max(lastToast, newest);
}

function renderReplyKeyboard(keyboard) {
  const box = $("reply-keyboard");
  box.innerHTML = "";
  $("composer-text").placeholder = (keyboard && keyboard.input_field_placeholder) || "Message";
  if (!keyboard) { box.hidden = true; return; }
  for (const row of keyboard.keyboard) {
    const rowEl = document.createElement("div");
    rowEl.className = "reply-row";
    for (const button of row) {
      const el = document.createElement("button");
      el.type = "button";
      el.className = "reply-btn";
      el.textContent = button.request_contact ? `\u{1F4DE} ${button.text}` : button.text;
      if (button.request_contact) el.dataset.requestContact = "true";
      el.addEventListener("click", () =>
        button.request_contact ? sendJson({ contact: {} }) : sendJson({ text: button.text }));
      rowEl.appendChild(el);
    }
    box.appendChild(rowEl);
  }
  box.hidden = false;
}

function showToast(text) {
  const toast = $("toast");
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, 2500);
}

function showAlert(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
  $("alert-ok").focus();
}

async function sendJson(body) {
  try {
    await postJson(`${base()}/messages`, as(body));
    await refreshMessages();
    scrollToBottom(true);
  } catch (error) {
    showToast(error.message);
  }
}

async function sendPhoto(file) {
  const form = new FormData();
  form.append("photo", file);
  const caption = $("composer-text").value.trim();
  if (caption) form.append("caption", caption);
  try {
    await api(`/api/chats/${userId}/messages`, { method: "POST", body: form });
    $("composer-text").value = "";
    await refreshMessages();
    scrollToBottom(true);
  } catch (error) {
    showToast(error.message);
  }
}

async function poll(generation) {
  while (generation === pollGeneration) {
    try {
      const chat = await api(`${base()}/events?since=${version}&timeout=25`);
      if (generation !== pollGeneration) return;
      if (chat.version !== version) {
        version = chat.version;
        applyChatState(chat);
        await refreshMessages();
      }
    } catch (error) {
      // The server restarted or the network blinked: wait a little and carry on.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function toggleCommandMenu() {
  const menu = $("command-menu");
  if (!menu.hidden) { menu.hidden = true; return; }
  menu.innerHTML = "";
  for (const command of commands) {
    const item = document.createElement("button");
    item.type = "button";
    item.innerHTML = `<span class="cmd">/${escapeHtml(command.command)}</span>` +
      `<span class="desc">${escapeHtml(command.description)}</span>`;
    item.addEventListener("click", () => {
      menu.hidden = true;
      sendJson({ text: `/${command.command}` });
    });
    menu.appendChild(item);
  }
  menu.hidden = false;
}

async function showPicker() {
  pollGeneration++;
  userId = null;
  $("chat").hidden = true;
  $("picker").hidden = false;
  document.title = "Concierge · demo chat";
  const list = $("persona-list");
  list.innerHTML = "";
  for (const persona of await api("/api/personas")) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.className = "persona";
    button.dataset.userId = persona.user_id;
    button.innerHTML = `<span class="avatar">${escapeHtml(persona.name.slice(0, 1))}</span>` +
      `<span class="who"><strong>${escapeHtml(persona.name)}</strong>` +
      `<span class="role">${escapeHtml(persona.role)}</span></span>`;
    button.addEventListener("click", () => { location.hash = `user=${persona.user_id}`; });
    item.appendChild(button);
    list.appendChild(item);
  }
  await showGroups();
}

// Groups: everyone in the demo with the bot; open one as any member.
async function showGroups() {
  const list = $("group-list");
  list.innerHTML = "";
  const personas = await api("/api/personas");
  for (const group of await api("/api/groups")) {
    const item = document.createElement("li");
    item.className = "group";
    item.innerHTML = `<strong>${escapeHtml(group.title)}</strong> <span class="role">as</span> `;
    for (const persona of personas) {
      const link = document.createElement("a");
      link.href = `#group=${group.chat_id}&user=${persona.user_id}`;
      link.textContent = persona.name;
      item.appendChild(link);
      item.appendChild(document.createTextNode(" "));
    }
    list.appendChild(item);
  }
  $("new-group").onclick = async () => {
    const title = window.prompt("Name of the new group", "Block B neighbours");
    if (!title) return;
    const members = personas.map((p) => p.user_id);
    try {
      await postJson("/api/groups", { title, members, type: "group" });
    } catch (error) {
      window.alert(error.message);
    }
    await showGroups();
  };
}

async function toggleBlock(blocked) {
  try {
    const chat = await postJson(`/api/chats/${userId}/${blocked ? "unblock" : "block"}`, {});
    applyChatState(chat);
  } catch (error) {
    showToast(error.message);
  }
}

async function openChat(id, group = null) {
  const generation = ++pollGeneration;
  userId = id;
  groupId = group;
  version = -1;
  lastToast = null;
  rendered.clear();
  $("messages").innerHTML = "";
  $("picker").hidden = true;
  $("chat").hidden = false;
  try {
    const chat = await api(base());
    const me = (await api(`/api/chats/${id}`)).persona;
    $("me").innerHTML = `${escapeHtml(me.name)}<br>${escapeHtml(me.role)}`;
    document.title = `${chat.group ? chat.group.title : me.name} · Concierge`;
    version = chat.version;
    applyChatState(chat);
    await refreshMessages();
    scrollToBottom(true);
  } catch (error) {
    await showPicker();
    return;
  }
  $("composer-text").focus();
  poll(generation);
}

function route() {
  const id = personaFromHash();
  if (id === null) showPicker(); else openChat(id, groupFromHash());
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("composer-text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  sendJson({ text });
});
$("attach").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) sendPhoto(file);
  event.target.value = "";
});
$("switch").addEventListener("click", () => { location.hash = ""; });
$("block").addEventListener("click", () => toggleBlock($("block").dataset.blocked === "1"));
$("commands").addEventListener("click", toggleCommandMenu);
$("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
$("toast").addEventListener("click", () => { $("toast").hidden = true; });
window.addEventListener("hashchange", route);
route();
