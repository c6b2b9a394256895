/* tlspeek's flow browser: the list of flows (live over Server-Sent Events) and
 * the detail of one flow. Plain JavaScript, no build step: the binary embeds
 * this file as it is. The API it talks to is described in proxy/web/README.md.
 *
 * Flow content (URLs, heads, bodies, certificate names, handshake summaries)
 * comes from the network and is never parsed as HTML: every piece of it goes
 * into the page as a text node (el() below sets textContent only). */
'use strict';

const ROW_H = 24;          /* px; must match .row height in app.css */
const OVERSCAN = 8;        /* rows rendered above and below the visible ones */
const HIGHLIGHT_MAX = 256 * 1024; /* longer bodies are shown without highlighting */
const HEXDUMP_MAX = 64 * 1024;    /* bytes shown as a hexdump before "N more bytes" */

const token = new URLSearchParams(location.search).get('token') || '';

const state = {
  info: null,
  flows: [],          /* SUMMARY objects in list order */
  index: new Map(),   /* id -> position in flows */
  seq: 0,             /* the highest seq seen: /api/flows?after=SEQ catches up from it */
  filter: '',
  paused: false,
  buffered: [],       /* flow batches that came while paused */
  dropped: 0,
  selected: null,     /* id of the selected flow */
  detail: null,       /* DETAIL of the selected flow */
  tab: 'headers',
  bodySide: 'response',
  bodyRaw: false,
  source: null,       /* EventSource */
  waiting: new Map(), /* list id -> {flow, side, since, origin}: held by --intercept */
  icptFor: null,      /* list id the intercept editor was filled for */
  icptOrig: null,     /* what it was filled with: {method, url, headers, body} */
  detailTimer: 0,
  renderQueued: false,
};

/* ---- small helpers ------------------------------------------------------- */

const $ = (id) => document.getElementById(id);

/* An element with text content (never HTML) and optional class. */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/* Percent-encoded (a space as %20, never '+'), so that any query decoder
 * reads the filter expression back as it was typed. */
function apiUrl(path, params) {
  const q = ['token=' + encodeURIComponent(token)];
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') {
      q.push(k + '=' + encodeURIComponent(String(v)));
    }
  }
  return path + '?' + q.join('&');
}

/* fetch() of an /api path with the token; resolves to {status, json} or
 * rejects with an Error whose message names the path and the cause. */
async function api(path, params, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  o.headers['X-Tlspeek-Token'] = token;
  let r;
  try {
    r = await fetch(apiUrl(path, params), o);
  } catch (e) {
    throw new Error(path + ': tlspeek is not reachable (' + e.message + ')');
  }
  let json = null;
  try {
    json = await r.json();
  } catch (e) {
    throw new Error(path + ': HTTP ' + r.status + ' without a JSON answer');
  }
  if (r.status === 403) throw new Error(path + ': ' + (json && json.error || 'refused') +
                                        ' (open the URL tlspeek printed at start)');
  return { status: r.status, json: json };
}

function showStatus(msg) {
  const s = $('status-line');
  s.textContent = msg || '';
  s.hidden = !msg;
}

function fmtBytes(n) {
  if (n === null || n === undefined || n < 0) return '';
  if (n < 1000) return n + ' B';
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[u];
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 10) return ms.toFixed(1) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 10000) return (ms / 1000).toFixed(2) + ' s';
  if (ms < 100000) return (ms / 1000).toFixed(1) + ' s';
  return Math.round(ms / 1000) + ' s';
}

function statusText(f) {
  switch (f.state) {
    case 'pending': return 'pending';
    case 'aborted': return 'client aborted';
    case 'error': return 'error' + (f.error ? ': ' + f.error : '');
    default: return f.status === null || f.status === undefined ? 'done' : String(f.status);
  }
}

function statusClass(f) {
  if (f.state === 'pending') return 's-pending';
  if (f.state === 'aborted') return 's-aborted';
  if (f.state === 'error') return 's-error';
  const c = f.status || 0;
  if (c >= 500) return 's-5xx';
  if (c >= 400) return 's-4xx';
  if (c >= 300) return 's-3xx';
  return 's-2xx';
}

function hostText(f) {
  if (!f.scheme && !f.host) return '';
  let h = (f.scheme ? f.scheme + '://' : '') + (f.host || '');
  const dflt = f.scheme === 'https' ? 443 : f.scheme === 'http' ? 80 : null;
  if (f.port && f.port !== dflt) h += ':' + f.port;
  return h;
}

function sizeText(f) {
  const s = fmtBytes(f.size);
  const w = fmtBytes(f.wire);
  if (s && w) return s + ' / ' + w;
  return s || (w ? '? / ' + w : '');
}

/* ---- the list ------------------------------------------------------------ */

const COLS = [
  ['c-method', (f) => f.method || ''],
  ['c-host', hostText],
  ['c-path', (f) => f.path || ''],
  ['c-status', statusText],
  ['c-type', (f) => f.type || ''],
  ['c-size', sizeText],
  ['c-dur', (f) => fmtMs(f.duration)],
  ['c-proto', (f) => f.proto || ''],
  ['c-tls', (f) => f.tls || ''],
];

const rowPool = [];  /* row elements reused while scrolling */

function makeRow() {
  const r = el('div', 'row');
  r.setAttribute('role', 'row');
  for (const [cls] of COLS) r.appendChild(el('span', cls));
  r.addEventListener('click', () => select(Number(r.dataset.id)));
  return r;
}

function fillRow(r, f, pos) {
  r.dataset.id = f.id;
  r.dataset.state = f.state;
  r.className = 'row ' + statusClass(f) + (f.id === state.selected ? ' selected' : '') +
                (pos % 2 ? ' odd' : '') + (state.waiting.has(f.id) ? ' waiting' : '');
  r.style.transform = 'translateY(' + (pos * ROW_H) + 'px)';
  for (let i = 0; i < COLS.length; i++) {
    const t = COLS[i][1](f);
    const cell = r.children[i];
    if (cell.textContent !== t) {
      cell.textContent = t;
      cell.title = t;
    }
  }
}

/* Renders only the rows in view (plus OVERSCAN): 10,000 flows cost as much
 * DOM as 50. Called through queueRender() at most once per frame. */
function renderList() {
  state.renderQueued = false;
  const vp = $('viewport');
  const n = state.flows.length;
  /* the head row stays aligned with the rows whether or not a scrollbar shows */
  $('list-head').style.paddingRight = (vp.offsetWidth - vp.clientWidth) + 'px';
  $('spacer').style.height = (n * ROW_H) + 'px';
  $('empty').hidden = n > 0;
  const first = Math.max(0, Math.floor(vp.scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(n, Math.ceil((vp.scrollTop + vp.clientHeight) / ROW_H) + OVERSCAN);
  let used = 0;
  for (let i = first; i < last; i++, used++) {
    if (used === rowPool.length) {
      const r = makeRow();
      rowPool.push(r);
      vp.appendChild(r);
    }
    const r = rowPool[used];
    r.hidden = false;
    fillRow(r, state.flows[i], i);
  }
  for (let i = used; i < rowPool.length; i++) {
    rowPool[i].hidden = true;
    delete rowPool[i].dataset.id;
  }
  renderCount();
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(renderList);
}

function renderCount() {
  let t = state.flows.length + (state.flows.length === 1 ? ' flow' : ' flows');
  if (state.filter) t += ' matching';
  if (state.paused) t += ' · paused, ' + state.buffered.reduce((a, b) => a + b.length, 0) +
                         ' updates waiting';
  $('count').textContent = t;
}

function resetList(flows) {
  state.flows = [];
  state.index = new Map();
  applyFlows(flows);
  $('viewport').scrollTop = 0;
}

function trimToMax() {
  const max = state.info && state.info.max_flows;
  if (!max || state.flows.length <= max) return;
  state.flows.splice(0, state.flows.length - max);
  state.index = new Map();
  state.flows.forEach((f, i) => state.index.set(f.id, i));
}

/* Adds new flows at the end and replaces the rows of flows already shown. */
function applyFlows(list) {
  const vp = $('viewport');
  const atBottom = vp.scrollTop + vp.clientHeight >= vp.scrollHeight - ROW_H;
  let selectedChanged = false;
  for (const f of list) {
    if (f.seq > state.seq) state.seq = f.seq;
    const at = state.index.get(f.id);
    if (at === undefined) {
      state.index.set(f.id, state.flows.length);
      state.flows.push(f);
    } else {
      state.flows[at] = f;
    }
    if (f.id === state.selected) selectedChanged = true;
  }
  trimToMax();
  renderList();
  if (atBottom && list.length) vp.scrollTop = vp.scrollHeight;
  if (selectedChanged) refreshDetailSoon();
}

function setDropped(n) {
  state.dropped = n;
  const note = $('dropped-note');
  note.hidden = !n;
  const max = state.info && state.info.max_flows;
  note.textContent = n ? n + ' older flow' + (n === 1 ? ' was' : 's were') +
    ' dropped: tlspeek keeps the last ' + (max || 'N') + ' (--web-flows).' : '';
}

/* ---- live updates -------------------------------------------------------- */

function setLive(s) {
  const d = $('live');
  d.className = 'live ' + s;
  d.title = { on: 'live: new flows appear as they come', off: 'live: not connected',
              paused: 'live: paused (updates are kept)' }[s] || '';
}

function onFlowsEvent(ev) {
  let list;
  try {
    list = JSON.parse(ev.data);
  } catch (e) {
    return;
  }
  if (state.paused) {
    state.buffered.push(list);
    renderCount();
    return;
  }
  applyFlows(list);
}

function connectEvents() {
  if (state.source) state.source.close();
  state.source = null;
  if (!state.info || state.info.mode !== 'live') return;
  /* after=SEQ: only what changed since the list was loaded; a reconnection
   * resumes from the last event's id (Last-Event-ID) on its own. */
  const es = new EventSource(apiUrl('/api/events', { filter: state.filter, after: state.seq }));
  state.source = es;
  es.addEventListener('open', () => {
    setLive(state.paused ? 'paused' : 'on');
    catchUp();
  });
  es.addEventListener('error', () => setLive('off'));
  es.addEventListener('flows', onFlowsEvent);
  es.addEventListener('intercepts', onIntercepts);
  es.addEventListener('dropped', (ev) => {
    try { setDropped(JSON.parse(ev.data).dropped); } catch (e) { /* ignore */ }
  });
  es.addEventListener('clear', () => {
    state.buffered = [];
    resetList([]);
    setDropped(0);
    select(null);
  });
}

/* What changed between the list load and the stream's (re)connection. */
async function catchUp() {
  try {
    const r = await api('/api/flows', { filter: state.filter, after: state.seq });
    if (r.status !== 200) return;
    if (state.paused) state.buffered.push(r.json.flows);
    else applyFlows(r.json.flows);
    if (typeof r.json.dropped === 'number') setDropped(r.json.dropped);
  } catch (e) {
    showStatus(e.message);
  }
}

async function loadFlows() {
  const r = await api('/api/flows', { filter: state.filter });
  if (r.status !== 200) throw new Error(r.json.error || 'cannot list flows');
  state.seq = 0;
  resetList(r.json.flows);
  if (typeof r.json.seq === 'number') state.seq = Math.max(state.seq, r.json.seq);
  setDropped(r.json.dropped || 0);
}

function togglePause() {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'Resume' : 'Pause';
  $('pause').classList.toggle('on', state.paused);
  if (!state.paused) {
    const batches = state.buffered;
    state.buffered = [];
    for (const b of batches) applyFlows(b);
  }
  if (state.source) setLive(state.source.readyState === 1 ? (state.paused ? 'paused' : 'on')
                                                          : 'off');
  renderCount();
}

async function clearFlows() {
  try {
    const r = await api('/api/clear', null, { method: 'POST' });
    if (!r.json.ok) throw new Error(r.json.error || 'clear failed');
    state.buffered = [];
    resetList([]);
    setDropped(0);
    select(null);
  } catch (e) {
    showStatus(e.message);
  }
}

/* ---- the filter ---------------------------------------------------------- */

/* The server reports the error position as a byte offset into the UTF-8
 * expression; the caret goes under the character that byte belongs to. */
function byteToCharIndex(s, pos) {
  const enc = new TextEncoder();
  let bytes = 0;
  let i = 0;
  for (const ch of s) {
    if (bytes >= pos) return i;
    bytes += enc.encode(ch).length;
    i += ch.length;
  }
  return i;
}

function showFilterError(expr, msg, pos) {
  $('filter-error').hidden = !msg;
  $('filter').classList.toggle('bad', !!msg);
  $('filter-message').textContent = msg || '';
  const caret = $('filter-caret');
  clear(caret);
  if (!msg || pos === undefined || pos === null || pos < 0) return;
  const at = byteToCharIndex(expr, pos);
  caret.appendChild(el('span', 'expr', expr));
  caret.appendChild(document.createTextNode('\n' + ' '.repeat([...expr.slice(0, at)].length)));
  caret.appendChild(el('span', 'mark', '^'));
}

async function applyFilter() {
  const expr = $('filter').value.trim();
  try {
    if (expr) {
      const r = await api('/api/filter', null, {
        method: 'POST', body: expr, headers: { 'Content-Type': 'text/plain' } });
      if (!r.json.ok) {
        showFilterError(expr, r.json.error || 'not a filter expression', r.json.pos);
        return;
      }
    }
    showFilterError(expr, '', -1);
    state.filter = expr;
    state.buffered = [];
    await loadFlows();
    connectEvents();
    showStatus('');
  } catch (e) {
    showStatus(e.message);
  }
}

/* ---- the detail ---------------------------------------------------------- */

function select(id) {
  state.selected = id;
  state.detail = null;
  for (const r of rowPool) r.classList.toggle('selected', Number(r.dataset.id) === id);
  const has = id !== null && id !== undefined;
  $('act-curl').disabled = !has;
  $('act-resend').disabled = !has || !state.info || state.info.mode !== 'live';
  $('act-har').classList.toggle('disabled', !has);
  $('act-har').href = has ? apiUrl('/api/har', { ids: id }) : '#';
  $('curl-box').hidden = true;
  $('resend-box').hidden = true;
  if (!has) {
    renderDetail();
    return;
  }
  loadDetail();
}

function refreshDetailSoon() {
  if (state.detailTimer) return;
  state.detailTimer = setTimeout(() => {
    state.detailTimer = 0;
    if (state.selected !== null) loadDetail();
  }, 300);
}

async function loadDetail() {
  const id = state.selected;
  try {
    const r = await api('/api/flows/' + id);
    if (state.selected !== id) return;
    if (r.status !== 200) {
      state.detail = null;
      renderDetail(r.json.error || 'no such flow');
      return;
    }
    state.detail = r.json;
    renderDetail();
  } catch (e) {
    renderDetail(e.message);
  }
}

function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll('#tabs .tab')) {
    b.classList.toggle('active', b.dataset.tab === name);
  }
  for (const p of document.querySelectorAll('.pane')) {
    p.hidden = !state.detail || p.dataset.pane !== name;
  }
}

function renderDetail(error) {
  const d = state.detail;
  $('no-selection').hidden = !!d;
  $('no-selection').textContent = error ||
    'Select a flow to see its heads, bodies, TLS handshakes, wire records and timing.';
  $('detail-title').textContent = d ? '#' + d.summary.id + ' ' + (d.summary.method || '') +
    ' ' + (d.summary.url || '') : '';
  if (d) {
    renderHeaders($('pane-headers'), d);
    renderBody($('pane-body'), d);
    renderTls($('pane-tls'), d);
    renderWire($('pane-wire'), d);
    renderTiming($('pane-timing'), d);
  }
  syncIntercept();
  showTab(state.tab);
}

function section(parent, title) {
  const s = el('section', 'block');
  s.appendChild(el('h3', null, title));
  parent.appendChild(s);
  return s;
}

function kvTable(parent, rows) {
  const t = el('table', 'kv');
  for (const [k, v] of rows) {
    if (v === undefined) continue;
    const tr = el('tr');
    tr.appendChild(el('th', null, k));
    tr.appendChild(el('td', null, v === null ? '—' : v));
    t.appendChild(tr);
  }
  parent.appendChild(t);
  return t;
}

function headerList(parent, startLine, headers) {
  const pre = el('pre', 'head-block');
  pre.appendChild(el('span', 'start-line', startLine + '\n'));
  for (const h of headers || []) {
    pre.appendChild(el('span', 'h-name', h.name));
    pre.appendChild(document.createTextNode(': '));
    pre.appendChild(el('span', 'h-value', h.value));
    pre.appendChild(document.createTextNode('\n'));
  }
  parent.appendChild(pre);
}

function renderHeaders(pane, d) {
  clear(pane);
  const rec = d.record || {};
  const s = d.summary;
  const q = rec.request;
  const sq = section(pane, 'Request');
  if (q) {
    let target = s.path || '/';
    headerList(sq, (s.method || rec.method || '') + ' ' + target + ' ' +
               (q.httpVersion || ''), q.headers);
  } else {
    sq.appendChild(el('p', 'muted', 'not recorded'));
  }
  if (rec.requestReceived) {
    const r = section(pane, 'Request as received (before --set-header / --remove-header)');
    headerList(r, '', rec.requestReceived.headers || rec.requestReceived);
  }
  for (const i of rec.interim || []) {
    headerList(section(pane, 'Interim response'), (i.httpVersion || '') + ' ' + i.status +
               ' ' + (i.reason || ''), i.headers);
  }
  const sr = section(pane, 'Response');
  const p = rec.response;
  if (p) {
    headerList(sr, (p.httpVersion || '') + ' ' + (rec.status !== undefined ? rec.status :
               s.status) + ' ' + (rec.reason || ''), p.headers);
  } else if (s.state === 'pending') {
    sr.appendChild(el('p', 'muted', 'pending: no response yet'));
  } else {
    sr.appendChild(el('p', 'muted', statusText(s)));
  }
  if (rec.responseReceived) {
    const r = section(pane, 'Response as received');
    headerList(r, '', rec.responseReceived.headers || rec.responseReceived);
  }
  const err = rec.error || s.error;
  if (err) section(pane, 'Error').appendChild(el('p', 'err', err));
  const meta = section(pane, 'Connection');
  kvTable(meta, [['connection', s.conn === undefined ? null : '#' + s.conn],
                 ['client', rec.client || (d.conn && d.conn.client) || null],
                 ['server', rec.server || (d.conn && d.conn.server) || null],
                 ['started', s.started ? new Date(s.started).toISOString() : null],
                 ['protocol', s.proto || null]]);
}

/* ---- bodies ------------------------------------------------------------ */

function headerValue(msg, name) {
  for (const h of (msg && msg.headers) || []) {
    if (h.name.toLowerCase() === name) return h.value;
  }
  return null;
}

function bodyBytes(msg) {
  if (!msg || msg.body === undefined || msg.body === null) return null;
  if (msg.bodyEncoding === 'base64') {
    const bin = atob(msg.body);
    const b = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    return b;
  }
  return new TextEncoder().encode(msg.body);
}

function kindOf(ctype, text) {
  const t = (ctype || '').toLowerCase();
  if (t.startsWith('image/')) return 'image';
  if (t.includes('json')) return 'json';
  if (t.includes('html') || t.includes('xml') || t.includes('svg')) return 'markup';
  if (t.includes('javascript') || t.includes('ecmascript')) return 'js';
  if (t.includes('css')) return 'css';
  if (text !== null) {
    const s = text.trimStart();
    if (s.startsWith('{') || s.startsWith('[')) return 'json';
    if (s.startsWith('<')) return 'markup';
    return 'text';
  }
  return 'binary';
}

function hexdump(bytes, max) {
  const n = Math.min(bytes.length, max);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    let hex = '';
    let asc = '';
    for (let i = 0; i < 16; i++) {
      if (off + i < n) {
        const b = bytes[off + i];
        hex += b.toString(16).padStart(2, '0');
        asc += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else {
        hex += '  ';
      }
      if (i % 2 === 1) hex += ' ';
    }
    lines.push(off.toString(16).padStart(8, '0') + ': ' + hex + ' ' + asc);
  }
  if (bytes.length > n) lines.push('… ' + (bytes.length - n) + ' more bytes');
  return lines.join('\n');
}

function textOf(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return null;
  }
}

/* JSON as a tree whose objects and arrays fold on click. */
function jsonNode(v, key, last) {
  const line = el('div', 'j-line');
  if (key !== null) {
    line.appendChild(el('span', 'j-key', JSON.stringify(key)));
    line.appendChild(document.createTextNode(': '));
  }
  const comma = last ? '' : ',';
  if (v !== null && typeof v === 'object') {
    const isArr = Array.isArray(v);
    const keys = isArr ? v.map((_, i) => i) : Object.keys(v);
    const toggle = el('span', 'j-toggle', isArr ? '[' : '{');
    line.appendChild(toggle);
    const kids = el('div', 'j-kids');
    keys.forEach((k, i) => kids.appendChild(jsonNode(v[k], isArr ? null : k,
                                                     i === keys.length - 1)));
    const summary = el('span', 'j-summary', ' ' + keys.length + (isArr ? ' items ' : ' keys '));
    line.appendChild(summary);
    line.appendChild(kids);
    line.appendChild(el('span', 'j-close', (isArr ? ']' : '}') + comma));
    toggle.addEventListener('click', () => line.classList.toggle('folded'));
    summary.addEventListener('click', () => line.classList.toggle('folded'));
    return line;
  }
  const cls = v === null ? 'j-null' : 'j-' + typeof v;
  line.appendChild(el('span', cls, JSON.stringify(v)));
  if (comma) line.appendChild(document.createTextNode(comma));
  return line;
}

/* Light highlighting: a regex splits the text into tokens, each a text node
 * or a <span> whose textContent is the token. Nothing is parsed as HTML. */
const HL = {
  markup: /(<!--[\s\S]*?-->)|(<\/?[A-Za-z][\w:-]*)|("[^"]*"|'[^']*')|(\/?>)/g,
  js: /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|\b(const|let|var|function|return|if|else|for|while|do|switch|case|break|continue|new|class|extends|import|export|from|async|await|try|catch|finally|throw|typeof|instanceof|this|null|undefined|true|false)\b|\b(\d+(?:\.\d+)?)\b/g,
  css: /(\/\*[\s\S]*?\*\/)|("[^"]*"|'[^']*')|([.#]?[A-Za-z_-][\w-]*)(?=\s*[{,])|([\w-]+)(?=\s*:)/g,
};
const HL_CLASS = {
  markup: ['hl-comment', 'hl-tag', 'hl-string', 'hl-tag'],
  js: ['hl-comment', 'hl-string', 'hl-keyword', 'hl-number'],
  css: ['hl-comment', 'hl-string', 'hl-tag', 'hl-keyword'],
};

function highlighted(text, kind) {
  const pre = el('pre', 'code');
  const re = HL[kind];
  if (!re || text.length > HIGHLIGHT_MAX) {
    pre.textContent = text;
    return pre;
  }
  re.lastIndex = 0;
  let at = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[0].length === 0) { re.lastIndex++; continue; }
    if (m.index > at) pre.appendChild(document.createTextNode(text.slice(at, m.index)));
    let cls = '';
    for (let g = 1; g < m.length; g++) if (m[g] !== undefined) { cls = HL_CLASS[kind][g - 1]; break; }
    pre.appendChild(el('span', cls, m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) pre.appendChild(document.createTextNode(text.slice(at)));
  return pre;
}

function bodyView(d, side, msg, raw) {
  const box = el('div', 'body-view');
  const ctype = headerValue(msg, 'content-type');
  const url = apiUrl('/api/flows/' + d.summary.id + '/body/' + side, raw ? { raw: 1 } : null);
  const bar = el('div', 'body-bar');
  const bytes = bodyBytes(msg);
  const notes = [];
  if (ctype) notes.push(ctype);
  if (bytes) notes.push(fmtBytes(bytes.length) + (raw ? ' as received' : ' decoded'));
  const enc = headerValue(msg, 'content-encoding');
  if (enc) notes.push('Content-Encoding: ' + enc);
  if (msg.bodyTruncated) notes.push('cut at --body-cap');
  bar.appendChild(el('span', 'muted', notes.join(' · ')));
  const dl = el('a', 'button', 'Download');
  dl.href = apiUrl('/api/flows/' + d.summary.id + '/body/' + side,
                   Object.assign({ download: 1 }, raw ? { raw: 1 } : {}));
  dl.className = 'button body-download';
  bar.appendChild(dl);
  box.appendChild(bar);
  if (msg.decodeError) box.appendChild(el('p', 'err', 'not decoded: ' + msg.decodeError));
  const content = el('div', 'body-content');
  box.appendChild(content);
  if (raw) {
    /* The bytes as they came (still content-encoded): fetched, then shown as
     * text when they are UTF-8 text, else as a hexdump. */
    content.appendChild(el('p', 'muted', 'loading…'));
    fetch(url, { headers: { 'X-Tlspeek-Token': token } }).then((r) => {
      if (r.status === 404) return null;
      return r.arrayBuffer();
    }).then((buf) => {
      clear(content);
      if (!buf) { content.appendChild(el('p', 'muted', 'no body')); return; }
      const b = new Uint8Array(buf);
      const t = textOf(b);
      content.appendChild(el('pre', t !== null ? 'code' : 'hexdump',
                             t !== null ? t : hexdump(b, HEXDUMP_MAX)));
    }).catch((e) => { clear(content); content.appendChild(el('p', 'err', e.message)); });
    return box;
  }
  if (!bytes || bytes.length === 0) {
    content.appendChild(el('p', 'muted', 'no body'));
    return box;
  }
  const text = msg.bodyEncoding === 'base64' ? textOf(bytes) : msg.body;
  const kind = kindOf(ctype, text);
  if (kind === 'image') {
    const img = el('img', 'body-image');
    img.alt = 'response image';
    img.src = url;
    content.appendChild(img);
  } else if (kind === 'json' && text !== null) {
    let v;
    let ok = true;
    try { v = JSON.parse(text); } catch (e) { ok = false; }
    if (ok) {
      const tree = el('div', 'json-tree');
      tree.appendChild(jsonNode(v, null, true));
      content.appendChild(tree);
    } else {
      content.appendChild(el('pre', 'code', text));
    }
  } else if (text !== null && kind !== 'binary' && kind !== 'image') {
    content.appendChild(highlighted(text, kind));
  } else {
    content.appendChild(el('pre', 'hexdump', hexdump(bytes, HEXDUMP_MAX)));
  }
  return box;
}

function renderBody(pane, d) {
  clear(pane);
  const rec = d.record || {};
  const bar = el('div', 'subtabs');
  for (const side of ['response', 'request']) {
    const b = el('button', 'subtab' + (state.bodySide === side ? ' active' : ''), side);
    b.type = 'button';
    b.dataset.side = side;
    b.addEventListener('click', () => { state.bodySide = side; renderBody(pane, d); });
    bar.appendChild(b);
  }
  const rawLabel = el('label', 'raw-toggle');
  const raw = el('input');
  raw.type = 'checkbox';
  raw.id = 'raw-toggle';
  raw.checked = state.bodyRaw;
  raw.addEventListener('change', () => { state.bodyRaw = raw.checked; renderBody(pane, d); });
  rawLabel.appendChild(raw);
  rawLabel.appendChild(document.createTextNode(' raw (as received, still encoded)'));
  bar.appendChild(rawLabel);
  pane.appendChild(bar);
  const msg = rec[state.bodySide];
  if (!msg) {
    pane.appendChild(el('p', 'muted', d.summary.state === 'pending' && state.bodySide ===
                        'response' ? 'pending: no response yet' : 'not recorded'));
    return;
  }
  pane.appendChild(bodyView(d, state.bodySide, msg, state.bodyRaw));
}

/* ---- TLS: the ladder ------------------------------------------------------ */

/* Both legs' messages in the order they happened. With a time per message
 * ("t") that order is exact; without it, the order tlspeek follows for an
 * intercepted connection: it holds the client after its ClientHello, does the
 * whole upstream handshake, then answers the client. */
function ladderOrder(legs) {
  const c = (legs.client && legs.client.handshake || []).map((m) => Object.assign({ leg: 'client' }, m));
  const u = (legs.upstream && legs.upstream.handshake || []).map((m) => Object.assign({ leg: 'upstream' }, m));
  const all = c.concat(u);
  if (all.length && all.every((m) => typeof m.t === 'number')) {
    return all.sort((a, b) => a.t - b.t || (a.leg === b.leg ? a.i - b.i : 0));
  }
  /* "i" numbers the connection's messages across both legs when no two share one */
  if (new Set(all.map((m) => m.i)).size === all.length) return all.sort((a, b) => a.i - b.i);
  let cut = c.findIndex((m) => m.dir === 'in');
  cut = cut < 0 ? 0 : cut + 1;
  return c.slice(0, cut).concat(u, c.slice(cut));
}

function arrowFor(m) {
  /* lanes: client | tlspeek | server */
  if (m.leg === 'client') return m.dir === 'in' ? ['left', 'right'] : ['left', 'left'];
  return m.dir === 'out' ? ['right', 'right'] : ['right', 'left'];
}

function renderLadder(parent, conn) {
  const msgs = ladderOrder(conn.legs || {});
  const wrap = el('div', 'ladder-wrap');
  const lad = el('div', 'ladder');
  lad.id = 'ladder';
  const head = el('div', 'ladder-head');
  head.appendChild(el('span', 'party', 'client' + (conn.client ? ' ' + conn.client : '')));
  head.appendChild(el('span', 'party mid', 'tlspeek'));
  head.appendChild(el('span', 'party', 'server' + (conn.server ? ' ' + conn.server : '') +
                      (conn.sni ? ' (' + conn.sni + ')' : '')));
  lad.appendChild(head);
  const explain = el('div', 'explain');
  explain.id = 'explain';
  explain.textContent = 'Click a message for what it does.';
  msgs.forEach((m, n) => {
    const [lane, way] = arrowFor(m);
    const row = el('div', 'msg lane-' + lane + ' to-' + way);
    row.dataset.leg = m.leg;
    row.dataset.type = m.type || '';
    row.tabIndex = 0;
    const arrow = el('div', 'arrow');
    const label = el('div', 'label');
    label.appendChild(el('span', 'step', m.step === null || m.step === undefined ? '·' : m.step));
    label.appendChild(el('span', 'mtype', m.type || ('content type ' + m.content_type)));
    label.appendChild(el('span', 'mlen', fmtBytes(m.len)));
    arrow.appendChild(label);
    row.appendChild(arrow);
    const tip = (m.step ? 'step ' + m.step + ': ' : '') + (m.explain || '') +
                (m.summary ? (m.explain ? '\n' : '') + m.summary : '');
    row.title = tip;
    const show = () => {
      for (const x of lad.querySelectorAll('.msg.active')) x.classList.remove('active');
      row.classList.add('active');
      clear(explain);
      explain.appendChild(el('div', 'explain-title', (n + 1) + '. ' + (m.type || '') + ' · ' +
        (m.leg === 'client' ? (m.dir === 'in' ? 'client → tlspeek' : 'tlspeek → client')
                            : (m.dir === 'out' ? 'tlspeek → server' : 'server → tlspeek')) +
        (m.step ? ' · step ' + m.step : '')));
      if (m.explain) explain.appendChild(el('p', null, m.explain));
      if (m.summary) explain.appendChild(el('p', 'mono', m.summary));
      if (m.detail) explain.appendChild(el('pre', 'msg-detail', m.detail));
    };
    row.addEventListener('click', show);
    row.addEventListener('mouseenter', show);
    row.addEventListener('focus', show);
    lad.appendChild(row);
  });
  if (!msgs.length) lad.appendChild(el('p', 'muted', 'no handshake messages recorded'));
  wrap.appendChild(lad);
  wrap.appendChild(explain);
  parent.appendChild(wrap);
}

function certList(parent, certs) {
  if (!certs || !certs.length) {
    parent.appendChild(el('p', 'muted', 'no certificates recorded'));
    return;
  }
  certs.forEach((c, i) => {
    const box = el('div', 'cert');
    box.appendChild(el('div', 'cert-title', (i === 0 ? 'leaf: ' : 'chain ' + i + ': ') +
                       (c.subject || '')));
    kvTable(box, [['issuer', c.issuer || null], ['valid', (c.not_before || '?') + ' → ' +
                  (c.not_after || '?')], ['names', (c.san || []).join(', ') || null],
                  ['SHA-256', c.sha256 || null]]);
    parent.appendChild(box);
  });
}

function renderTls(pane, d) {
  clear(pane);
  const conn = d.conn;
  const fileMode = state.info && state.info.mode === 'file';
  const tls = (d.record && d.record.tls) || null;
  const recorded = conn && conn.recorded !== false && conn.legs &&
                   (conn.legs.client || conn.legs.upstream);
  if (!recorded) {
    pane.appendChild(el('p', 'muted notrec', fileMode || (conn && conn.recorded === false)
      ? 'Handshakes: not recorded in this transcript.'
      : d.summary.tls ? 'Handshakes: not recorded for this connection.'
      : 'No TLS on this connection: it travelled as plain ' + (d.summary.scheme || 'text') +
        ', readable by anyone on the path.'));
    if (tls) {
      kvTable(section(pane, 'What the transcript holds'), [
        ['client leg', [tls.version, tls.cipher, tls.alpn].filter(Boolean).join(', ') || null],
        ['upstream leg', tls.upstream ? [tls.upstream.version, tls.upstream.cipher,
          tls.upstream.alpn].filter(Boolean).join(', ') || null : null],
        ['SNI', tls.sni || null], ['JA3', tls.ja3 || null], ['JA4', tls.ja4 || null]]);
    }
    return;
  }
  const top = el('div', 'tls-top');
  const legs = el('div', 'legs');
  for (const [name, title] of [['client', 'leg 1 · client ⇄ tlspeek'],
                               ['upstream', 'leg 2 · tlspeek ⇄ server']]) {
    const leg = conn.legs[name];
    const s = section(legs, title);
    s.classList.add('leg');
    if (!leg) { s.appendChild(el('p', 'muted', 'no TLS on this leg')); continue; }
    kvTable(s, [['version', leg.version || null], ['cipher', leg.cipher || null],
                ['ALPN', leg.alpn || null]]);
  }
  kvTable(section(legs, 'fingerprints'), [['SNI', conn.sni || null], ['JA3', conn.ja3 || null],
          ['JA4', conn.ja4 || null], ['JA3S', conn.ja3s || null]]);
  top.appendChild(legs);
  pane.appendChild(top);
  renderLadder(section(pane, 'Handshakes (both legs, in order)'), conn);
  const certs = section(pane, 'Certificates');
  const c1 = el('div', 'certs');
  c1.appendChild(el('h4', null, 'leg 1: the certificate tlspeek minted for the client'));
  certList(c1, conn.legs.client && conn.legs.client.certs);
  c1.appendChild(el('h4', null, 'leg 2: the chain the server sent'));
  certList(c1, conn.legs.upstream && conn.legs.upstream.certs);
  certs.appendChild(c1);
}

/* ---- wire ------------------------------------------------------------------ */

function spacedHex(hex) {
  return (hex || '').replace(/(..)/g, '$1 ').replace(/((?:.. ){16})/g, '$1\n').trim();
}

function renderWire(pane, d) {
  clear(pane);
  const conn = d.conn;
  if (!conn || !conn.wire || conn.recorded === false) {
    pane.appendChild(el('p', 'muted notrec', (state.info && state.info.mode === 'file') ||
                                             (conn && conn.recorded === false)
      ? 'Wire records: not recorded in this transcript.' : 'No wire records for this connection.'));
    return;
  }
  pane.appendChild(el('p', 'muted', 'What a sniffer on each leg captures (first 64 bytes of ' +
    'each record) beside the plaintext tlspeek saw inside it. Connection #' + conn.id + '.'));
  const t = el('table', 'wire');
  t.id = 'wire-table';
  const hr = el('tr');
  for (const h of ['ms', 'leg', 'direction', 'record', 'bytes', 'on the wire (hex)', 'plaintext it carried']) {
    hr.appendChild(el('th', null, h));
  }
  t.appendChild(hr);
  for (const w of conn.wire) {
    const tr = el('tr', 'k-' + (w.kind || 'plain'));
    tr.appendChild(el('td', 'num', typeof w.t === 'number' ? w.t.toFixed(1) : ''));
    tr.appendChild(el('td', null, w.leg));
    const dir = w.leg === 'client' ? (w.dir === 'in' ? 'client → tlspeek' : 'tlspeek → client')
                                   : (w.dir === 'out' ? 'tlspeek → server' : 'server → tlspeek');
    tr.appendChild(el('td', 'dir', dir));
    tr.appendChild(el('td', 'kind', w.kind));
    tr.appendChild(el('td', 'num', w.len));
    tr.appendChild(el('td', null)).appendChild(el('pre', 'hex', spacedHex(w.hex)));
    const plain = el('td', null);
    if (w.plain === null || w.plain === undefined) {
      const none = el('span', 'muted', '—');
      none.title = 'no plaintext recorded for these bytes (in TLS 1.3 the first ' +
                   'application_data records carry the encrypted rest of the handshake)';
      plain.appendChild(none);
    } else {
      /* CR LF escapes as a visible mark and a real line end; long ones folded
       * to a few lines until clicked */
      const text = w.plain.replace(/\\x0d\\x0a/g, '\u21b5\n').replace(/\\x0a/g, '\u21b5\n');
      const pre = el('pre', 'plain' + (text.length > 240 ? ' clamp' : ''), text);
      pre.addEventListener('click', () => pre.classList.toggle('clamp'));
      plain.appendChild(pre);
    }
    tr.appendChild(plain);
    t.appendChild(tr);
  }
  pane.appendChild(t);
  if (conn.wire_dropped) {
    pane.appendChild(el('p', 'muted', conn.wire_dropped + ' more records not kept (200 per connection).'));
  }
}

/* ---- timing ---------------------------------------------------------------- */

/* HAR timings: ssl is part of connect; -1 or null means "does not apply". */
function renderTiming(pane, d) {
  clear(pane);
  const t = (d.record && d.record.timings) || null;
  if (!t) {
    pane.appendChild(el('p', 'muted', d.summary.state === 'pending' ? 'pending: timings come when the flow ends'
      : 'no timings recorded'));
    return;
  }
  const v = (k) => (typeof t[k] === 'number' && t[k] >= 0 ? t[k] : 0);
  const phases = [];
  let at = 0;
  phases.push(['dns', at, v('dns')]); at += v('dns');
  phases.push(['connect', at, v('connect')]);
  phases.push(['ssl', at + v('connect') - v('ssl'), v('ssl')]); at += v('connect');
  phases.push(['send', at, v('send')]); at += v('send');
  phases.push(['wait', at, v('wait')]); at += v('wait');
  phases.push(['receive', at, v('receive')]); at += v('receive');
  const total = Math.max(at, typeof t.total === 'number' ? t.total : 0) || 1;
  const wf = el('div', 'waterfall');
  wf.id = 'waterfall';
  for (const [name, start, len] of phases) {
    const row = el('div', 'wf-row');
    row.appendChild(el('span', 'wf-name', name === 'ssl' ? 'TLS (ssl)' : name));
    const track = el('span', 'wf-track');
    const bar = el('span', 'wf-bar wf-' + name);
    bar.style.left = (100 * start / total) + '%';
    bar.style.width = Math.max(0.3, 100 * len / total) + '%';
    if (!len) bar.classList.add('zero');
    track.appendChild(bar);
    row.appendChild(track);
    row.appendChild(el('span', 'wf-ms', len ? fmtMs(len) : '—'));
    wf.appendChild(row);
  }
  const tot = el('div', 'wf-row total');
  tot.appendChild(el('span', 'wf-name', 'total'));
  tot.appendChild(el('span', 'wf-track'));
  tot.appendChild(el('span', 'wf-ms', fmtMs(total)));
  wf.appendChild(tot);
  pane.appendChild(wf);
  pane.appendChild(el('p', 'muted', 'dns and connect are 0 when the flow reused a connection; ' +
    'TLS (ssl) is the part of connect spent on the upstream handshake.'));
}

/* ---- actions --------------------------------------------------------------- */

async function copyAsCurl() {
  if (state.selected === null) return;
  const box = $('curl-box');
  $('resend-box').hidden = true;
  try {
    const r = await api('/api/flows/' + state.selected + '/curl');
    if (r.status !== 200) throw new Error(r.json.error || 'no curl command');
    $('curl-text').value = r.json.command;
    $('curl-note').textContent = r.json.complete === false
      ? 'the body was cut or is binary: the command reads it from standard input (@-)' : '';
    box.hidden = false;
    $('curl-text').focus();
    $('curl-text').select();
  } catch (e) {
    showStatus(e.message);
  }
}

async function copyText() {
  const ta = $('curl-text');
  try {
    await navigator.clipboard.writeText(ta.value);
    $('curl-copy').textContent = 'Copied';
  } catch (e) {
    ta.select();
    $('curl-copy').textContent = document.execCommand('copy') ? 'Copied' : 'Select and copy';
  }
  setTimeout(() => { $('curl-copy').textContent = 'Copy'; }, 1500);
}

function openResend() {
  const d = state.detail;
  if (!d) return;
  $('curl-box').hidden = true;
  const q = (d.record && d.record.request) || {};
  $('resend-method').value = d.summary.method || 'GET';
  $('resend-url').value = d.summary.url || '';
  $('resend-headers').value = (q.headers || []).map((h) => h.name + ': ' + h.value).join('\n');
  $('resend-body').value = q.bodyEncoding === 'base64' ? '' : (q.body || '');
  $('resend-body').placeholder = q.bodyEncoding === 'base64' ? 'binary body: left as recorded' : 'body';
  $('resend-result').textContent = '';
  $('resend-box').hidden = false;
}

async function sendResend(ev) {
  ev.preventDefault();
  const d = state.detail;
  if (!d) return;
  const q = (d.record && d.record.request) || {};
  const req = { id: d.summary.id };
  const method = $('resend-method').value.trim();
  const url = $('resend-url').value.trim();
  if (method && method !== d.summary.method) req.method = method;
  if (url && url !== d.summary.url) req.url = url;
  const hdrText = $('resend-headers').value;
  const orig = (q.headers || []).map((h) => h.name + ': ' + h.value).join('\n');
  if (hdrText !== orig) {
    req.headers = [];
    for (const line of hdrText.split('\n')) {
      if (!line.trim()) continue;
      const c = line.indexOf(':');
      if (c <= 0) {
        $('resend-result').textContent = 'not a header line (Name: value): ' + line;
        return;
      }
      req.headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
    }
  }
  const body = $('resend-body').value;
  if (q.bodyEncoding !== 'base64' && body !== (q.body || '')) req.body = body;
  $('resend-result').textContent = 'sending…';
  try {
    const r = await api('/api/resend', null, {
      method: 'POST', body: JSON.stringify(req), headers: { 'Content-Type': 'application/json' } });
    $('resend-result').textContent = r.json.ok ? 'sent: the new flow appears in the list'
      : 'not sent: ' + (r.json.error || 'refused');
  } catch (e) {
    $('resend-result').textContent = e.message;
  }
}

/* ---- --intercept: flows that wait for a decision ------------------------------- */

function onIntercepts(ev) {
  let list;
  try {
    list = JSON.parse(ev.data);
  } catch (e) {
    return;
  }
  state.waiting = new Map(list.map((w) => [w.id, w]));
  const n = state.waiting.size;
  $('waiting').hidden = n === 0;
  $('waiting').textContent = n + ' waiting';
  $('waiting').title = n ? 'flows held by --intercept: click to open the oldest' : '';
  for (const r of rowPool) r.classList.toggle('waiting', state.waiting.has(Number(r.dataset.id)));
  /* Nothing selected: show the first one that waits. */
  if (n && (state.selected === null || state.selected === undefined)) select(list[0].id);
  else syncIntercept();
}

const BODY_NOTES = {
  pending: 'the body is still arriving…',
  too_large: 'body larger than tlspeek holds for editing: type a new one to replace it',
  chunked: 'chunked body: not shown; type a new one to replace it',
  binary: 'binary body: not shown; type a new one to replace it',
};

/* Shows the editor for the selected flow while it waits, filled once from
 * the request as tlspeek would forward it (GET /api/flows/ID/intercept). */
async function syncIntercept() {
  const d = state.detail;
  const id = state.selected;
  const waits = d && state.waiting.has(id) && d.summary.id === id;
  $('icpt-box').hidden = !waits;
  if (!waits) {
    state.icptFor = null;
    return;
  }
  if (state.icptFor === id) return;
  state.icptFor = id;
  $('icpt-result').textContent = 'loading…';
  $('resend-box').hidden = true;
  $('curl-box').hidden = true;
  let m = null;
  for (let tries = 0; tries < 50 && state.icptFor === id; tries++) {
    try {
      const r = await api('/api/flows/' + id + '/intercept');
      if (r.status !== 200) break;
      m = r.json;
    } catch (e) {
      break;
    }
    if (m.body_state !== 'pending') break;
    await new Promise((done) => setTimeout(done, 200));
  }
  if (state.icptFor !== id) return;
  if (!m) {
    $('icpt-result').textContent = 'this flow no longer waits';
    return;
  }
  const response = m.side === 'response';
  const orig = { response: response, method: response ? String(m.status) : m.method,
                 url: response ? d.summary.url : m.url,
                 headers: m.headers.map((h) => h[0] + ': ' + h[1]).join('\n'),
                 body: m.body === null ? '' : m.body };
  state.icptOrig = orig;
  $('icpt-title').textContent = response
    ? 'Intercepted: the response (' + m.status + ' ' + m.reason + ') waits for you (--intercept with ~s)'
    : 'Intercepted: this request waits for you (--intercept)';
  $('icpt-method').value = orig.method;
  $('icpt-method').setAttribute('aria-label', response ? 'status' : 'method');
  $('icpt-url').value = orig.url;
  $('icpt-url').readOnly = response;
  $('icpt-headers').value = orig.headers;
  $('icpt-body').value = orig.body;
  $('icpt-body').placeholder = BODY_NOTES[m.body_state] || 'no body';
  $('icpt-result').textContent = BODY_NOTES[m.body_state] || '';
}

/* The edits as /api/flows/ID/resume takes them: only what changed. */
function interceptEdits() {
  const o = state.icptOrig || {};
  const edits = {};
  const method = $('icpt-method').value.trim();
  const url = $('icpt-url').value.trim();
  if (o.response && method !== o.method) {
    if (!/^[0-9]{3}$/.test(method)) throw new Error('status: give a number such as 200');
    edits.status = Number(method);
  } else if (!o.response && method && method !== o.method) {
    edits.method = method;
  }
  if (!o.response && url && url !== o.url) edits.url = url;
  const hdrText = $('icpt-headers').value;
  if (hdrText !== o.headers) {
    edits.headers = [];
    for (const line of hdrText.split('\n')) {
      if (!line.trim()) continue;
      const c = line.indexOf(':');
      if (c <= 0) throw new Error('not a header line (Name: value): ' + line);
      edits.headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
    }
  }
  if ($('icpt-body').value !== o.body) edits.body = $('icpt-body').value;
  return edits;
}

async function decideIntercept(kill, ev) {
  if (ev) ev.preventDefault();
  const id = state.selected;
  if (!state.waiting.has(id)) return;
  let body = '';
  try {
    body = kill ? '' : JSON.stringify(interceptEdits());
  } catch (e) {
    $('icpt-result').textContent = e.message;
    return;
  }
  $('icpt-result').textContent = kill ? 'killing…' : 'resuming…';
  try {
    const r = await api('/api/flows/' + id + (kill ? '/kill' : '/resume'), null, {
      method: 'POST', body: body, headers: { 'Content-Type': 'application/json' } });
    $('icpt-result').textContent = r.status === 200 ? (kill ? 'killed' : 'resumed')
      : 'refused: ' + (r.json.error || 'HTTP ' + r.status);
  } catch (e) {
    $('icpt-result').textContent = e.message;
  }
}

/* "waiting 12 s" for the flow in the editor (its `since` is tlspeek's clock). */
function updateWaited() {
  const w = state.waiting.get(state.selected);
  $('icpt-waited').textContent = w && !$('icpt-box').hidden
    ? 'waiting ' + Math.max(0, Math.floor((Date.now() - w.since) / 1000)) + ' s' : '';
}

function openOldestWaiting() {
  const first = state.waiting.keys().next();
  if (!first.done) select(first.value);
}

/* ---- keyboard ------------------------------------------------------------------ */

function moveSelection(delta) {
  if (!state.flows.length) return;
  let at = state.selected === null ? -1 : state.index.get(state.selected);
  if (at === undefined) at = -1;
  at = Math.max(0, Math.min(state.flows.length - 1, at + delta));
  select(state.flows[at].id);
  const vp = $('viewport');
  if (at * ROW_H < vp.scrollTop) vp.scrollTop = at * ROW_H;
  else if ((at + 1) * ROW_H > vp.scrollTop + vp.clientHeight) {
    vp.scrollTop = (at + 1) * ROW_H - vp.clientHeight;
  }
  renderList();
}

/* ---- start ------------------------------------------------------------------- */

function wire() {
  $('viewport').addEventListener('scroll', queueRender, { passive: true });
  window.addEventListener('resize', queueRender);
  $('viewport').addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'j') { moveSelection(1); e.preventDefault(); }
    if (e.key === 'ArrowUp' || e.key === 'k') { moveSelection(-1); e.preventDefault(); }
  });
  $('filter-form').addEventListener('submit', (e) => { e.preventDefault(); applyFilter(); });
  $('pause').addEventListener('click', togglePause);
  $('clear').addEventListener('click', clearFlows);
  $('har-all').href = apiUrl('/api/har');
  for (const b of document.querySelectorAll('#tabs .tab')) {
    b.addEventListener('click', () => showTab(b.dataset.tab));
  }
  $('act-curl').addEventListener('click', copyAsCurl);
  $('curl-copy').addEventListener('click', copyText);
  $('curl-close').addEventListener('click', () => { $('curl-box').hidden = true; });
  $('act-resend').addEventListener('click', openResend);
  $('resend-close').addEventListener('click', () => { $('resend-box').hidden = true; });
  $('resend-box').addEventListener('submit', sendResend);
  $('icpt-box').addEventListener('submit', (e) => decideIntercept(false, e));
  $('icpt-kill').addEventListener('click', () => decideIntercept(true));
  $('waiting').addEventListener('click', openOldestWaiting);
  setInterval(updateWaited, 1000);
  $('act-har').addEventListener('click', (e) => {
    if ($('act-har').classList.contains('disabled')) e.preventDefault();
  });
}

async function start() {
  wire();
  if (!token) {
    showStatus('No token in the address: open the URL tlspeek printed at start ' +
               '(…/?token=…).');
  }
  try {
    const r = await api('/api/info');
    state.info = r.json;
    const file = state.info.mode === 'file';
    document.body.classList.toggle('file-mode', file);
    $('live').hidden = file;
    $('source').textContent = file ? 'transcript ' + (state.info.file || '')
      : 'proxy ' + (state.info.proxy || '') + ' · tlspeek ' + (state.info.version || '');
    $('pause').hidden = file;
    $('clear').hidden = file;
    if (file) $('act-resend').title = 'resend needs a live proxy (tlspeek --web)';
    await loadFlows();
    connectEvents();
  } catch (e) {
    showStatus(e.message);
  }
  renderDetail();
}

document.addEventListener('DOMContentLoaded', start);
