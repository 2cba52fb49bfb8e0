// quarry explorer: one page, views by URL fragment (#/, #/block/H, #/tx/T, #/address/A,
// #/mempool). Every figure comes from the nodes' HTTP APIs (docs/PROTOCOL.md §12c), listed
// by the explorer's /config.json; each node's /api/events stream triggers a refresh.
'use strict';

const WINDOW = 10;           // heights shown in the fork tree (one /api/blocks page)
const state = {
  nodes: [],                 // [{name, api}]
  info: {},                  // name -> {node, peers, tips, blocks, error}
  blocks: new Map(),         // hash -> block summary (immutable, cached)
  reorgs: new Map(),         // key -> {node, ...reorg event}
  links: new Map(),          // "a|b" -> "up" | "cut"
};

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const short = (h) => (h ? h.slice(0, 8) + '…' + h.slice(-6) : '');
const coins = (v) => (v == null ? '?' : (v / 1e8).toFixed(8));
const when = (t) => (t ? new Date(t * 1000).toISOString().replace('T', ' ').replace(/\..*/, '') : '');
const link = (kind, id, text) => `<a href="#/${kind}/${esc(id)}">${esc(text ?? id)}</a>`;

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const body = await r.text();
  if (!r.ok) throw new Error(body.trim() || `HTTP ${r.status}`);
  try { return JSON.parse(body); } catch (_) { return body.trim(); }
}

// The first node that has the resource (a stale block may be on one node only).
async function fromAny(path) {
  let last = new Error('no nodes');
  for (const n of state.nodes) {
    try { return { node: n, data: await getJSON(n.api + path) }; } catch (e) { last = e; }
  }
  throw last;
}

async function block(hash, node) {
  if (state.blocks.has(hash)) return state.blocks.get(hash);
  const b = node ? await getJSON(node.api + '/api/block/' + hash) : (await fromAny('/api/block/' + hash)).data;
  state.blocks.set(hash, b);
  return b;
}

// ---- data for the network view ----

async function loadNode(n) {
  try {
    const [node, peers, tips, blocks, reorgs] = await Promise.all([
      getJSON(n.api + '/api/node'), getJSON(n.api + '/api/peers'), getJSON(n.api + '/api/chaintips'),
      getJSON(n.api + '/api/blocks'), getJSON(n.api + '/api/reorgs'),
    ]);
    for (const b of blocks) state.blocks.set(b.id, { ...b, confirmations: undefined });
    for (const r of reorgs) addReorg(n.name, r);
    state.info[n.name] = { node, peers, tips, active: blocks.map((b) => b.id), error: null };
  } catch (e) {
    state.info[n.name] = { ...(state.info[n.name] || {}), error: String(e.message || e) };
  }
}

function addReorg(node, r) {
  state.reorgs.set(`${node}|${r.old_tip}|${r.new_tip}`, { node, ...r });
}

// Stale tips' branches: walk back from each valid-fork tip into the window.
async function loadBranches(minHeight) {
  for (const n of state.nodes) {
    const info = state.info[n.name];
    if (!info || !info.tips) continue;
    for (const t of info.tips) {
      if (t.status === 'active' || t.height < minHeight) continue;
      let h = t.hash;
      for (let i = 0; i <= t.branchlen && h; i++) {
        let b;
        try { b = await block(h, n); } catch (_) { break; }
        if (b.height == null || b.height < minHeight) break;
        h = b.previousblockhash;
      }
    }
  }
}

async function refresh() {
  await Promise.all(state.nodes.map(loadNode));
  const heights = Object.values(state.info).filter((i) => i.node).map((i) => i.node.height);
  const top = heights.length ? Math.max(...heights) : 0;
  await loadBranches(Math.max(0, top - WINDOW + 1));
  for (const [h, b] of state.blocks) if (b.height == null || b.height < top - 5 * WINDOW) state.blocks.delete(h);
  updateLinks();
  if (route().view === 'home') renderHome();
}

function peerName(peerId) {
  const n = state.nodes.find((x) => state.info[x.name]?.node?.peer_id === peerId);
  return n ? n.name : null;
}

function updateLinks() {
  const now = new Set();
  for (const n of state.nodes) {
    for (const p of state.info[n.name]?.peers || []) {
      const other = peerName(p.peer_id);
      if (other) now.add([n.name, other].sort().join('|'));
    }
  }
  for (const k of state.links.keys()) if (!now.has(k)) state.links.set(k, 'cut');
  for (const k of now) state.links.set(k, 'up');
}

// ---- the fork tree ----

// Branches (leaf blocks in the window) with their blocks, active nodes and stale flag.
function forkTree() {
  const heights = Object.values(state.info).filter((i) => i.node).map((i) => i.node.height);
  const top = heights.length ? Math.max(...heights) : 0;
  const min = Math.max(0, top - WINDOW + 1);
  const inWin = [...state.blocks.values()].filter((b) => b.height != null && b.height >= min && b.height <= top);
  const byHash = new Map(inWin.map((b) => [b.id, b]));
  const hasChild = new Set(inWin.map((b) => b.previousblockhash));
  const activeOn = new Map();   // hash -> [node names whose active chain holds it]
  const tipOf = new Map();      // hash -> [node names whose tip it is]
  for (const n of state.nodes) {
    const info = state.info[n.name];
    if (!info?.active) continue;
    info.active.forEach((h, i) => {
      if (!activeOn.has(h)) activeOn.set(h, []);
      activeOn.get(h).push(n.name);
      if (i === 0) { if (!tipOf.has(h)) tipOf.set(h, []); tipOf.get(h).push(n.name); }
    });
  }
  const leaves = inWin.filter((b) => !hasChild.has(b.id));
  leaves.sort((a, b) => (tipOf.get(b.id)?.length || 0) - (tipOf.get(a.id)?.length || 0)
    || (activeOn.has(b.id) ? 1 : 0) - (activeOn.has(a.id) ? 1 : 0) || b.height - a.height);
  const column = new Map();     // hash -> column index
  const branches = leaves.map((leaf, col) => {
    const blocks = [];
    for (let b = leaf; b && !column.has(b.id); b = byHash.get(b.previousblockhash)) {
      column.set(b.id, col);
      blocks.push(b);
    }
    return { tip: leaf, blocks, nodes: tipOf.get(leaf.id) || [], stale: !activeOn.has(leaf.id) };
  });
  return { top, min, branches, activeOn, tipOf, column };
}

function renderForkTree() {
  const { top, min, branches, activeOn, tipOf } = forkTree();
  if (!branches.length) return '<p>No blocks yet.</p>';
  const cols = branches.length;
  let cells = `<div class="h"></div>` + branches.map((br) =>
    `<div class="branchhead branch" data-tip="${br.tip.id}" data-nodes="${esc(br.nodes.join(','))}" data-stale="${br.stale}">`
    + (br.stale ? '<span class="stale-tag">stale branch</span>' : (br.nodes.length ? br.nodes.map((n) => `<span class="badge">${esc(n)}</span>`).join('') : 'branch'))
    + '</div>').join('');
  for (let h = top; h >= min; h--) {
    cells += `<div class="h">${h}</div>`;
    for (let c = 0; c < cols; c++) {
      const b = branches[c].blocks.find((x) => x.height === h);
      if (!b) { cells += '<div></div>'; continue; }
      const stale = !activeOn.has(b.id);
      const nodes = tipOf.get(b.id) || [];
      cells += `<div class="blk${stale ? ' stale' : ''}" data-hash="${b.id}" data-height="${h}" data-stale="${stale}" data-nodes="${esc(nodes.join(','))}">`
        + link('block', b.id, short(b.id)) + ' ' + nodes.map((n) => `<span class="badge">${esc(n)}</span>`).join('')
        + (stale ? ' <span class="stale-tag">stale</span>' : '')
        + `<div class="branchhead">${b.tx_count} tx · ${esc(short(b.miner || ''))}</div></div>`;
    }
  }
  return `<div class="tree" style="grid-template-columns: 3em repeat(${cols}, minmax(13em, 1fr))">${cells}</div>`;
}

// ---- views ----

function renderNetwork() {
  const names = state.nodes.map((n) => n.name);
  const R = 95, cx = 160, cy = 125;
  const pos = {};
  names.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, names.length) - Math.PI / 2;
    pos[n] = [cx + R * Math.cos(a), cy + R * Math.sin(a)];
  });
  let svg = '';
  for (const [k, s] of state.links) {
    const [a, b] = k.split('|');
    if (pos[a] && pos[b]) svg += `<line class="${s}" x1="${pos[a][0]}" y1="${pos[a][1]}" x2="${pos[b][0]}" y2="${pos[b][1]}"/>`;
  }
  for (const n of names) svg += `<circle cx="${pos[n][0]}" cy="${pos[n][1]}" r="9"/><text x="${pos[n][0] + 12}" y="${pos[n][1] + 4}">${esc(n)}</text>`;
  const rows = state.nodes.map((n) => {
    const i = state.info[n.name] || {};
    if (i.error && !i.node) return `<tr class="node" data-node="${esc(n.name)}"><td>${esc(n.name)}</td><td colspan="5" class="bad">${esc(i.error)}</td></tr>`;
    const peers = (i.peers || []).map((p) => esc(peerName(p.peer_id) || short(p.peer_id))).join(', ');
    return `<tr class="node" data-node="${esc(n.name)}" data-tip="${i.node?.tip || ''}"><td>${esc(n.name)}</td><td>${i.node?.height ?? ''}</td>`
      + `<td class="hash">${i.node ? link('block', i.node.tip, short(i.node.tip)) : ''}</td><td>${(i.peers || []).length}</td><td>${peers}</td>`
      + `<td>${i.error ? `<span class="bad">${esc(i.error)}</span>` : 'up'}</td></tr>`;
  }).join('');
  const links = [...state.links].map(([k, s]) => `<li class="link" data-a="${esc(k.split('|')[0])}" data-b="${esc(k.split('|')[1])}" data-state="${s}">${esc(k.replace('|', ' — '))}: ${s === 'up' ? 'connected' : '<span class="bad">cut</span>'}</li>`).join('');
  return `<div class="grid2"><div><table id="nodes"><tr><th>node</th><th>height</th><th>tip</th><th>peers</th><th>connected to</th><th>status</th></tr>${rows}</table>`
    + `<ul id="links">${links}</ul></div><svg id="netmap" viewBox="0 0 320 250">${svg}</svg></div>`;
}

function renderReorgs() {
  const list = [...state.reorgs.values()].sort((a, b) => b.seen - a.seen);
  if (!list.length) return '<p id="reorglog-empty">No reorganisation seen yet.</p>';
  return '<table><tr><th>time</th><th>node</th><th>depth</th><th>old tip</th><th>new tip</th><th>fork at</th></tr>'
    + list.map((r) => `<tr class="reorg" data-node="${esc(r.node)}" data-depth="${r.depth}" data-old="${r.old_tip}" data-new="${r.new_tip}">`
      + `<td>${when(r.seen)}</td><td>${esc(r.node)}</td><td>${r.depth}</td><td class="hash">${link('block', r.old_tip, r.old_height + ' ' + short(r.old_tip))}</td>`
      + `<td class="hash">${link('block', r.new_tip, r.new_height + ' ' + short(r.new_tip))}</td><td>${r.fork_height ?? '?'}</td></tr>`).join('')
    + '</table>';
}

function renderHome() {
  $('#view').innerHTML = `<h2>Network</h2><section id="network">${renderNetwork()}</section>`
    + `<h2>Fork tree (last ${WINDOW} heights, all nodes)</h2><section id="forktree">${renderForkTree()}</section>`
    + `<h2>Reorg log</h2><section id="reorglog">${renderReorgs()}</section>`;
}

function kv(rows) {
  return '<table class="kv">' + rows.map(([k, v, f]) => `<tr><th>${esc(k)}</th><td data-field="${f || k}">${v}</td></tr>`).join('') + '</table>';
}

async function renderBlock(hash) {
  const { node, data: b } = await fromAny('/api/block/' + hash);
  const txs = await getJSON(node.api + '/api/block/' + hash + '/txs');
  const onNodes = state.nodes.filter((n) => state.info[n.name]?.active?.includes(b.id)).map((n) => n.name);
  $('#view').innerHTML = `<h2 id="block-page" data-hash="${b.id}">Block ${b.height ?? ''}</h2>` + kv([
    ['hash', `<span class="hash">${b.id}</span>`],
    ['height', b.height],
    ['confirmations', b.confirmations < 0 ? '<span class="stale-tag">stale: not in the active chain of ' + esc(node.name) + '</span>' : b.confirmations],
    ['previous', b.previousblockhash ? link('block', b.previousblockhash) : ''],
    ['next', b.nextblockhash ? link('block', b.nextblockhash) : ''],
    ['time', `${b.timestamp} (${when(b.timestamp)})`],
    ['bits', '0x' + (b.bits >>> 0).toString(16)], ['nonce', b.nonce], ['version', b.version],
    ['merkle root', `<span class="hash">${b.merkle_root}</span>`, 'merkle_root'],
    ['size', b.size + ' bytes'], ['transactions', b.tx_count, 'tx_count'],
    ['reward', coins(b.reward)], ['fees', coins(b.fees)],
    ['miner', b.miner ? link('address', b.miner) : 'unknown'],
    ['active on', onNodes.map((n) => `<span class="badge">${esc(n)}</span>`).join('') || 'no node (in view)', 'active_on'],
  ]) + `<h2>Transactions</h2><table id="block-txs"><tr><th>txid</th><th>inputs</th><th>outputs</th><th>value out</th><th>fee</th></tr>`
    + txs.map((t) => `<tr class="tx" data-txid="${t.txid}"><td class="hash">${link('tx', t.txid)}</td><td>${t.is_coinbase ? 'coinbase' : t.vin.length}</td><td>${t.vout.length}</td><td>${coins(t.value_out)}</td><td>${t.fee == null ? '' : coins(t.fee)}</td></tr>`).join('')
    + '</table>' + (b.tx_count > txs.length ? `<p>${txs.length} of ${b.tx_count} shown.</p>` : '');
}

function hexToBytes(h) { const a = new Uint8Array(h.length / 2); for (let i = 0; i < a.length; i++) a[i] = parseInt(h.substr(2 * i, 2), 16); return a; }
function bytesToHex(a) { return [...a].map((x) => x.toString(16).padStart(2, '0')).join(''); }
// Displayed ids are the internal bytes reversed (as Bitcoin prints them).
const internal = (id) => hexToBytes(id).reverse();
async function sha256d(bytes) {
  const once = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return new Uint8Array(await crypto.subtle.digest('SHA-256', once));
}

// Recomputes the Merkle root from the txid and the proof's siblings (docs/PROTOCOL.md §4).
async function merkleRoot(txid, pos, siblings) {
  let cur = internal(txid);
  let i = pos;
  for (const s of siblings) {
    const sib = internal(s);
    const buf = new Uint8Array(64);
    if (i % 2 === 1) { buf.set(sib, 0); buf.set(cur, 32); } else { buf.set(cur, 0); buf.set(sib, 32); }
    cur = await sha256d(buf);
    i = Math.floor(i / 2);
  }
  return bytesToHex(cur.reverse());
}

async function renderTx(txid) {
  const { node, data: t } = await fromAny('/api/tx/' + txid);
  let proof = '<span>unconfirmed: no proof</span>';
  if (t.status.confirmed) {
    try {
      const p = await getJSON(node.api + '/api/tx/' + txid + '/merkle-proof');
      const header = await getJSON(node.api + '/api/block/' + p.block_hash);
      const root = await merkleRoot(t.txid, p.pos, p.merkle);
      const ok = root === header.merkle_root;
      proof = `<span class="${ok ? 'ok' : 'bad'}" data-ok="${ok}">${ok ? 'valid' : 'INVALID'}</span>: leaf ${p.pos} of ${p.leaf_count}, ${p.merkle.length} siblings; `
        + `computed root <span class="hash">${root}</span> ${ok ? '=' : '≠'} the header's merkle root of block ${link('block', p.block_hash, short(p.block_hash))}`;
    } catch (e) { proof = `<span class="bad" data-ok="false">cannot check: ${esc(e.message)}</span>`; }
  }
  const s = t.status;
  const ins = t.vin.map((i, n) => `<tr class="vin"><td>${n}</td><td>${i.is_coinbase ? 'coinbase' : link('tx', i.txid, short(i.txid)) + ':' + i.vout}</td>`
    + `<td>${i.prevout ? coins(i.prevout.value) : ''}</td><td>${i.prevout?.scriptpubkey_address ? link('address', i.prevout.scriptpubkey_address) : ''}</td>`
    + `<td><code>${esc(i.scriptsig_asm)}</code></td></tr>`).join('');
  const outs = t.vout.map((o, n) => `<tr class="vout" data-n="${n}" data-value="${o.value}"><td>${n}</td><td>${coins(o.value)}</td><td>${esc(o.scriptpubkey_type)}</td>`
    + `<td>${o.scriptpubkey_address ? link('address', o.scriptpubkey_address) : ''}</td><td><code>${esc(o.scriptpubkey_asm)}</code></td></tr>`).join('');
  $('#view').innerHTML = `<h2 id="tx-page" data-txid="${t.txid}">Transaction</h2>` + kv([
    ['txid', `<span class="hash">${t.txid}</span>`],
    ['status', s.confirmed ? `confirmed in ${link('block', s.block_hash, (s.block_height ?? '') + ' ' + short(s.block_hash))}` : 'in the mempool'],
    ['confirmations', s.confirmed ? s.confirmations : 0],
    ['size', t.size + ' bytes'], ['version', t.version], ['lock time', t.locktime, 'locktime'],
    ['value out', coins(t.value_out), 'value_out'], ['fee', t.fee == null ? (t.is_coinbase ? 'coinbase' : 'unknown') : coins(t.fee)],
    ['Merkle proof', proof, 'merkle'],
  ]) + `<h2>Inputs</h2><table id="inputs"><tr><th>#</th><th>spends</th><th>value</th><th>address</th><th>unlock script</th></tr>${ins}</table>`
    + `<h2>Outputs</h2><table id="outputs"><tr><th>#</th><th>value</th><th>type</th><th>address</th><th>lock script</th></tr>${outs}</table>`;
}

async function renderAddress(addr) {
  const { data: a } = await fromAny('/api/address/' + addr);
  $('#view').innerHTML = `<h2 id="address-page" data-address="${esc(a.address)}">Address</h2>` + kv([
    ['address', `<span class="hash">${esc(a.address)}</span>`],
    ['balance', coins(a.balance)], ['unspent outputs', a.utxo_count, 'utxo_count'], ['transactions', a.tx_count, 'tx_count'],
    ['lock script', `<code>${esc(a.scriptpubkey_asm)}</code>`, 'script'],
  ]) + '<h2>History</h2><table><tr><th>height</th><th>txid</th></tr>'
    + a.txs.map((t) => `<tr><td>${t.height}</td><td class="hash">${link('tx', t.txid)}</td></tr>`).join('') + '</table>'
    + '<h2>Unspent</h2><table><tr><th>output</th><th>value</th><th>height</th></tr>'
    + a.utxos.map((u) => `<tr><td class="hash">${link('tx', u.txid, short(u.txid))}:${u.vout}</td><td>${coins(u.value)}${u.coinbase ? ' (coinbase)' : ''}</td><td>${u.height}</td></tr>`).join('') + '</table>';
}

async function renderMempool() {
  const parts = await Promise.all(state.nodes.map(async (n) => {
    try {
      const m = await getJSON(n.api + '/api/mempool');
      const max = Math.max(1, ...m.fee_histogram.map((b) => b.count));
      const bars = m.fee_histogram.map((b) => `<div class="bar"><code>${b.min_rate}${b.max_rate == null ? '+' : '–' + b.max_rate}</code>`
        + `<span class="fill" style="width:${Math.round((200 * b.count) / max)}px"></span>${b.count} tx, ${b.bytes} B</div>`).join('');
      return `<h2>${esc(n.name)}</h2><div class="mempool" data-node="${esc(n.name)}" data-count="${m.count}">`
        + kv([['transactions', m.count, 'count'], ['bytes', m.bytes], ['total fees', coins(m.total_fee)], ['min fee rate', m.min_fee_rate + ' per kB']])
        + `<p>Fee rate (base units per byte):</p><div class="bars">${bars}</div></div>`;
    } catch (e) { return `<h2>${esc(n.name)}</h2><p class="error">${esc(e.message)}</p>`; }
  }));
  $('#view').innerHTML = `<section id="mempool-page">${parts.join('')}</section>`;
}

// ---- routing, search, live updates ----

function route() {
  const [, view, arg] = (location.hash || '#/').split('/');
  return { view: view || 'home', arg: decodeURIComponent(arg || '') };
}

async function show() {
  const { view, arg } = route();
  try {
    if (view === 'block') await renderBlock(arg);
    else if (view === 'tx') await renderTx(arg);
    else if (view === 'address') await renderAddress(arg);
    else if (view === 'mempool') await renderMempool();
    else renderHome();
  } catch (e) {
    $('#view').innerHTML = `<p class="error" id="error">${esc(view)} ${esc(arg)}: ${esc(e.message || e)}</p>`;
  }
}

async function search(q) {
  q = q.trim();
  if (/^\d+$/.test(q)) {
    try { location.hash = '#/block/' + (await fromAny('/api/block-height/' + q)).data; } catch (e) { location.hash = '#/block/height-' + q; }
  } else if (/^[0-9a-fA-F]{64}$/.test(q)) {
    try { await fromAny('/api/block/' + q); location.hash = '#/block/' + q; } catch (_) { location.hash = '#/tx/' + q; }
  } else {
    location.hash = '#/address/' + q;
  }
}

let pending = null;
function soon() {
  if (pending) return;
  pending = setTimeout(async () => { pending = null; await refresh(); }, 150);
}

function listen() {
  let open = 0;
  for (const n of state.nodes) {
    const es = new EventSource(n.api + '/api/events');
    es.onopen = () => { open++; $('#live').textContent = `live (${open}/${state.nodes.length})`; $('#live').className = 'on'; };
    es.onerror = () => { $('#live').textContent = 'reconnecting'; $('#live').className = ''; };
    es.addEventListener('tip', soon);
    es.addEventListener('reorg', (ev) => { try { addReorg(n.name, JSON.parse(ev.data)); } catch (_) {} soon(); });
  }
}

async function main() {
  const cfg = await getJSON('/config.json');
  state.nodes = cfg.nodes;
  $('#search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('#search').value); });
  window.addEventListener('hashchange', show);
  await refresh();
  await show();
  listen();
  // Peers and connections change without a chain event: refresh every 2 s as well.
  setInterval(soon, 2000);
  document.body.dataset.ready = 'true';
}

main().catch((e) => { $('#view').innerHTML = `<p class="error">cannot start: ${esc(e.message || e)}</p>`; });
