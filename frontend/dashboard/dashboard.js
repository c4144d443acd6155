// The live page: every pair's price pushed by its stream, the selected pair's quotes and candles.
// Plain script, no dependency, so the binary carries all of it and the page works offline.
'use strict';

// A browser opens at most 6 HTTP/1.1 connections to a host: the streams keep one free for the
// candle requests; a pair beyond them is read every few seconds instead (HTTP/2 lifts this).
const MAX_STREAMS = 5;
const POLL_MS = 5000;
// The API's own threshold (STALE_AFTER's default): older prices are answered 503.
const STALE_SECONDS = 30;
// A source quoted within this long but absent from the newest round is shown as failing.
const FAILING_MEMORY_MS = 10 * 60 * 1000;
const INTERVAL_MS = { '1m': 60e3, '5m': 300e3, '1h': 3600e3, '1d': 86400e3 };
const CANDLES_REFRESH_MS = 30e3;

const pairs = new Map();
const chart = { interval: '1m', candles: [], loadedAt: 0, pair: null, request: 0 };
let selected = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatPrice(value, currency) {
  const digits = value >= 1000 ? 2 : value >= 1 ? 4 : 6;
  const number = value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits });
  return currency ? `${number} ${currency}` : number;
}

function formatAge(ms, suffix = ' ago') {
  const seconds = Math.max(0, ms / 1000);
  if (seconds < 10) return `${seconds.toFixed(1)} s${suffix}`;
  if (seconds < 120) return `${Math.round(seconds)} s${suffix}`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min${suffix}`;
  return `${Math.round(seconds / 3600)} h${suffix}`;
}

function showAge(node, since, suffix = ' ago') {
  if (!since) { node.textContent = ''; return; }
  const age = Date.now() - since;
  node.textContent = formatAge(age, suffix);
  node.classList.toggle('stale', age > STALE_SECONDS * 1000);
}

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// ---- pairs and their cards ----

function addPair(info) {
  const card = element('button', 'card');
  card.type = 'button';
  card.dataset.pair = info.pair;
  card.setAttribute('aria-pressed', 'false');
  const head = element('div', 'card-head');
  head.append(element('span', 'pair', info.pair));
  const priceAge = element('span', 'age', 'waiting…');
  head.append(priceAge);
  const price = element('div', 'price', '–');
  price.dataset.role = 'price';
  const average = element('div', 'line');
  const band = element('div', 'line');
  card.append(head, price, average, band);
  card.addEventListener('click', () => select(info.pair));
  document.getElementById('pairs').append(card);

  const pair = { info, card, price, priceAge, average, band, tick: null, avg: null, seen: new Map(), source: null };
  pairs.set(info.pair, pair);
  return pair;
}

function onTick(pair, tick, sequence) {
  const previous = pair.tick;
  pair.tick = tick;
  pair.tickAt = Date.parse(tick.oldest_quote_time);
  for (const quote of tick.sources) pair.seen.set(quote.source, { quote, at: Date.parse(tick.time) });

  pair.price.textContent = formatPrice(tick.price, tick.currency);
  pair.price.dataset.price = String(tick.price);
  if (sequence !== undefined) pair.price.dataset.sequence = sequence;
  if (previous && previous.price !== tick.price) {
    const direction = tick.price > previous.price ? 'up' : 'down';
    pair.price.classList.remove('up', 'down');
    void pair.price.offsetWidth; // restarts the flash
    pair.price.classList.add(direction);
  }
  const { low, high, used } = tick.dispersion;
  pair.band.replaceChildren('band ', element('b', '', `${formatPrice(low, '')} – ${formatPrice(high, '')}`),
    ` · ${used} used`);
  if (selected === pair) {
    showQuotes(pair);
    liveCandle(tick);
  }
  refreshAges();
}

function onAverage(pair, average) {
  pair.avg = average;
  pair.avgAt = Date.parse(average.to);
  pair.average.replaceChildren('10-min avg ', element('b', '', formatPrice(average.time_weighted_average, average.currency)),
    average.complete ? '' : ' · partial');
  pair.average.title = `time-weighted over ${average.samples} ticks; prices cover ${Math.round(average.covered_seconds)} s `
    + `of the ${average.window_seconds} s window`;
  if (selected === pair) drawChart();
}

// ---- where the prices come from ----

function stream(pair) {
  const source = new EventSource(`${pair.info.price_path}/stream`);
  pair.source = source;
  source.addEventListener('price', (event) => onTick(pair, JSON.parse(event.data), event.lastEventId));
  source.addEventListener('average', (event) => onAverage(pair, JSON.parse(event.data)));
  source.addEventListener('gap', (event) => setStatus(`${pair.info.pair}: ${JSON.parse(event.data).message}`, true));
  source.addEventListener('open', refreshStatus);
  // The browser reconnects by itself, sending Last-Event-ID: the stream resumes with no gap.
  source.addEventListener('error', refreshStatus);
}

function poll(pair) {
  const read = async () => {
    try {
      onTick(pair, await getJson(pair.info.price_path));
      onAverage(pair, await getJson(pair.info.average_path));
    } catch (error) {
      pair.priceAge.textContent = 'no price yet';
    }
  };
  read();
  setInterval(read, POLL_MS);
}

function setStatus(text, down) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.classList.toggle('live', !down);
  status.classList.toggle('down', down);
}

function refreshStatus() {
  const streams = [...pairs.values()].filter((pair) => pair.source);
  const open = streams.filter((pair) => pair.source.readyState === EventSource.OPEN).length;
  const polled = pairs.size - streams.length;
  const text = `${open} of ${streams.length} streams live` + (polled ? ` · ${polled} pairs read every ${POLL_MS / 1000} s` : '');
  setStatus(open === streams.length ? text : `${text} · reconnecting…`, open < streams.length);
}

// ---- the selected pair: quotes and dispersion band ----

function select(name) {
  selected = pairs.get(name);
  for (const pair of pairs.values()) pair.card.setAttribute('aria-pressed', String(pair === selected));
  document.getElementById('quotes-title').textContent = `Quotes · ${name}`;
  document.getElementById('quotes-currency').textContent = `(${selected.info.currency})`;
  document.getElementById('chart-title').textContent = `Candles · ${name}`;
  showQuotes(selected);
  loadCandles();
}

function quoteRows(pair) {
  const newest = new Set(pair.tick ? pair.tick.sources.map((quote) => quote.source) : []);
  const rows = [];
  for (const [source, { quote, at }] of pair.seen) {
    if (newest.has(source)) rows.push({ ...quote, failing: false });
    else if (Date.now() - at < FAILING_MEMORY_MS) rows.push({ ...quote, status: 'failing', failing: true });
  }
  return rows.sort((a, b) => a.source.localeCompare(b.source));
}

function showQuotes(pair) {
  const body = document.querySelector('#quotes tbody');
  if (!pair || !pair.tick) { body.replaceChildren(); document.getElementById('band').replaceChildren(); return; }
  const rows = quoteRows(pair);
  body.replaceChildren(...rows.map((row) => {
    const tr = element('tr', row.failing ? 'failing' : '');
    const age = element('td', 'num age');
    age.dataset.since = String(Date.parse(row.quote_time));
    tr.append(element('td', '', row.source), element('td', 'num', formatPrice(row.price, '')),
      element('td', `status-${row.status}`, row.status), age);
    return tr;
  }));
  drawBand(pair.tick, rows);
}

function drawBand(tick, rows) {
  const band = document.getElementById('band');
  const prices = rows.map((row) => row.price).concat(tick.dispersion.low, tick.dispersion.high, tick.price);
  let low = Math.min(...prices);
  let high = Math.max(...prices);
  const pad = Math.max((high - low) * 0.08, tick.price * 1e-5);
  low -= pad;
  high += pad;
  const at = (price) => `${((price - low) / (high - low)) * 100}%`;
  const spread = element('div', 'spread');
  spread.style.left = at(tick.dispersion.low);
  spread.style.width = `calc(${at(tick.dispersion.high)} - ${at(tick.dispersion.low)})`;
  const consensus = element('div', 'consensus');
  consensus.style.left = at(tick.price);
  consensus.title = `consensus ${formatPrice(tick.price, tick.currency)}`;
  const dots = rows.map((row) => {
    const dot = element('div', `quote ${row.status}`);
    dot.style.left = at(row.price);
    dot.title = `${row.source} ${formatPrice(row.price, tick.currency)} (${row.status})`;
    return dot;
  });
  const label = (price) => { const node = element('div', 'label', formatPrice(price, '')); node.style.left = at(price); return node; };
  const labels = [label(tick.dispersion.low)];
  if (tick.dispersion.high !== tick.dispersion.low) labels.push(label(tick.dispersion.high));
  band.replaceChildren(element('div', 'track'), spread, ...dots, consensus, ...labels);
}

// ---- the candle chart ----

async function loadCandles() {
  if (!selected) return;
  const { info } = selected;
  const interval = chart.interval;
  const request = ++chart.request;
  const canvas = document.getElementById('chart');
  const limit = Math.max(20, Math.min(240, Math.floor(canvas.clientWidth / 8)));
  try {
    const page = await getJson(`${info.price_path}/candles?interval=${interval}&limit=${limit}`);
    if (request !== chart.request) return; // a newer choice won
    chart.pair = info.pair;
    chart.limit = limit;
    chart.candles = page.candles.map((candle) => ({ ...candle, startMs: Date.parse(candle.start) }));
    chart.loadedAt = Date.now();
    drawChart();
  } catch (error) {
    if (request === chart.request) document.getElementById('chart-age').textContent = `candles unavailable (${error.message})`;
  }
}

// The open candle follows the stream between loads, as the aggregator's would.
function liveCandle(tick) {
  if (chart.pair !== tick.pair) return;
  const length = INTERVAL_MS[chart.interval];
  const time = Date.parse(tick.time);
  const startMs = Math.floor(time / length) * length;
  const last = chart.candles[chart.candles.length - 1];
  if (last && last.startMs === startMs) {
    last.high = Math.max(last.high, tick.price);
    last.low = Math.min(last.low, tick.price);
    last.close = tick.price;
  } else if (!last || startMs > last.startMs) {
    if (last) last.closed = true;
    chart.candles.push({ startMs, open: tick.price, high: tick.price, low: tick.price, close: tick.price, closed: false });
    chart.candles = chart.candles.slice(-chart.limit);
  }
  drawChart();
}

function drawChart() {
  const canvas = document.getElementById('chart');
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  ctx.fillStyle = color('--panel');
  ctx.fillRect(0, 0, width, height);

  const candles = chart.candles;
  canvas.dataset.interval = chart.interval;
  canvas.dataset.candles = String(candles.length);
  ctx.font = '12px system-ui, sans-serif';
  if (!candles.length) {
    ctx.fillStyle = color('--muted');
    ctx.fillText(`No ${chart.interval} candles yet: they appear as ticks arrive.`, 16, height / 2);
    return;
  }
  const pair = chart.pair && pairs.get(chart.pair);
  const average = pair && pair.avg ? pair.avg.time_weighted_average : null;
  const lows = candles.map((c) => c.low).concat(average ?? []);
  const highs = candles.map((c) => c.high).concat(average ?? []);
  let low = Math.min(...lows);
  let high = Math.max(...highs);
  const pad = Math.max((high - low) * 0.08, high * 1e-5);
  low -= pad;
  high += pad;

  const [axis, top, bottom] = [84, 10, 22];
  const plotWidth = width - axis;
  const plotHeight = height - bottom - top;
  const y = (price) => top + ((high - price) / (high - low)) * plotHeight;
  // The newest candle at the right edge; a short history gets wider candles, up to 60 slots.
  const slot = plotWidth / Math.max(candles.length, Math.min(chart.limit || 60, 60));
  const x = (index) => plotWidth - (candles.length - index) * slot + slot / 2;

  ctx.strokeStyle = color('--line');
  ctx.fillStyle = color('--muted');
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const price = low + ((high - low) * i) / 4;
    const row = Math.round(y(price)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(0, row);
    ctx.lineTo(plotWidth, row);
    ctx.stroke();
    ctx.fillText(formatPrice(price, ''), plotWidth + 6, row);
  }
  ctx.textBaseline = 'alphabetic';
  // A time label every 90 px or more, so that they never overlap.
  const labelEvery = Math.max(1, Math.ceil(90 / slot));
  candles.forEach((candle, index) => {
    if ((candles.length - 1 - index) % labelEvery === 0) {
      const when = new Date(candle.startMs);
      const text = chart.interval === '1d' ? when.toLocaleDateString() : when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      ctx.fillText(text, Math.max(0, x(index) - 16), height - 6);
    }
  });

  const body = Math.max(1, Math.min(12, slot * 0.7));
  candles.forEach((candle, index) => {
    const rising = candle.close >= candle.open;
    ctx.strokeStyle = ctx.fillStyle = color(rising ? '--up' : '--down');
    ctx.globalAlpha = candle.closed ? 1 : 0.6;
    const center = Math.round(x(index)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(center, y(candle.high));
    ctx.lineTo(center, y(candle.low));
    ctx.stroke();
    const top = y(Math.max(candle.open, candle.close));
    ctx.fillRect(center - body / 2, top, body, Math.max(1, y(Math.min(candle.open, candle.close)) - top));
  });
  ctx.globalAlpha = 1;

  const line = (price, name, label, right) => {
    const row = Math.round(y(price)) + 0.5;
    ctx.strokeStyle = ctx.fillStyle = color(name);
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(0, row);
    ctx.lineTo(plotWidth, row);
    ctx.stroke();
    ctx.setLineDash([]);
    // The average's label at the left, the last price's at the right: they never overlap.
    ctx.textAlign = right ? 'right' : 'left';
    ctx.fillText(label, right ? plotWidth - 6 : 6, row - 4);
    ctx.textAlign = 'left';
  };
  if (average !== null) line(average, '--reference', `10-min avg ${formatPrice(average, '')}`);
  const last = candles[candles.length - 1];
  line(last.close, '--accent', `last ${formatPrice(last.close, '')}`, true);
}

// ---- how fresh each figure is ----

function refreshAges() {
  for (const pair of pairs.values()) showAge(pair.priceAge, pair.tickAt);
  if (selected) showAge(document.getElementById('quotes-age'), selected.tickAt);
  for (const cell of document.querySelectorAll('#quotes td[data-since]')) showAge(cell, Number(cell.dataset.since), '');
  const chartAge = document.getElementById('chart-age');
  if (chart.loadedAt) chartAge.textContent = `loaded ${formatAge(Date.now() - chart.loadedAt)}, open candle live`;
}

async function main() {
  for (const button of document.querySelectorAll('.intervals button')) {
    button.addEventListener('click', () => {
      chart.interval = button.dataset.interval;
      for (const other of document.querySelectorAll('.intervals button')) {
        other.setAttribute('aria-pressed', String(other === button));
      }
      chart.candles = [];
      loadCandles();
    });
  }
  let list;
  try {
    list = await getJson('/pairs');
  } catch (error) {
    setStatus(`cannot list the pairs (${error.message}); reload to try again`, true);
    return;
  }
  list.pairs.forEach((info, index) => {
    const pair = addPair(info);
    if (index < MAX_STREAMS) stream(pair);
    else poll(pair);
  });
  if (list.pairs.length) select(list.pairs[0].pair);
  refreshStatus();
  setInterval(refreshAges, 500);
  setInterval(loadCandles, CANDLES_REFRESH_MS);
  window.addEventListener('resize', drawChart);
}

main();
