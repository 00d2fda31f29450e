// prefswift web: Runs, Compare, Chat and Arena pages over the server's JSON + server-sent events API.
// Everything here comes from this server (no CDN); every text from a run is set as textContent, never as HTML.
"use strict";

const $page = document.getElementById("page");
let source = null;          // the open EventSource (one per page)
let runsCache = [];

// ------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}
const apiKey = () => localStorage.getItem("prefswift_key") || "";
function withKey(url) {
  const k = apiKey();
  return k ? url + (url.includes("?") ? "&" : "?") + "key=" + encodeURIComponent(k) : url;
}
async function api(path, body) {
  const opts = {headers: {"Content-Type": "application/json"}};
  if (apiKey()) opts.headers.Authorization = "Bearer " + apiKey();
  if (body !== undefined) { opts.method = "POST"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (r.status === 401) showKeyBox();
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : {};
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}
function showKeyBox() { document.getElementById("keybox").classList.remove("hidden"); }
document.getElementById("keysave").addEventListener("click", () => {
  localStorage.setItem("prefswift_key", document.getElementById("keyinput").value);
  document.getElementById("keybox").classList.add("hidden");
  route();
});
function errorBox(msg) { return el("div", {class: "error"}, msg); }
function num(v, digits) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  return digits !== undefined ? v.toFixed(digits) : fmt(v);
}
function badge(state, host) {  // a run whose lock names another machine: "running (on HOST)", "unknown (on HOST)"
  return el("span", {class: "badge " + state, "data-state": state}, host ? `${state} (on ${host})` : state);
}
function live(text) { document.getElementById("live").textContent = text; }
function listen(url, handlers) {
  if (source) source.close();
  source = new EventSource(withKey(url));
  source.onopen = () => live("live");
  source.onerror = () => live("reconnecting…");
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, ev => fn(JSON.parse(ev.data)));
  }
}
function bestEval(b) {
  if (!b) return "";
  const acc = b["eval_rewards/accuracies"];
  return `loss ${num(b.eval_loss)}` + (acc !== undefined ? `  acc ${num(acc, 3)}` : "") + `  (step ${b.step})`;
}

// ------------------------------------------------------------------ curves
const METRICS = [
  ["loss", ["loss", "eval_loss"]],
  ["reward accuracy", ["rewards/accuracies", "eval_rewards/accuracies"]],
  ["reward margin", ["rewards/margins", "eval_rewards/margins"]],
  ["log-probs: chosen / rejected", ["logps/chosen", "logps/rejected", "eval_logps/chosen", "eval_logps/rejected"]],
  ["learning rate", ["learning_rate"]],
  ["tokens/s", ["tokens/s"]],
  ["peak memory (MB)", ["peak_memory_mb"]],
  ["gradient norm", ["grad_norm"]],
];
function seriesOf(rows, key) {
  if (key === "tokens/s") {   // from the tokens seen and seconds each train row records
    const out = []; let prev = null;
    for (const r of rows) {
      if (r.num_input_tokens_seen === undefined || r.elapsed_s === undefined) continue;
      if (prev && r.elapsed_s > prev.elapsed_s && r.num_input_tokens_seen >= prev.num_input_tokens_seen) {
        out.push([r.step, (r.num_input_tokens_seen - prev.num_input_tokens_seen) / (r.elapsed_s - prev.elapsed_s)]);
      }
      prev = r;
    }
    return out;
  }
  return rows.filter(r => typeof r[key] === "number" && typeof r.step === "number").map(r => [r.step, r[key]]);
}
function drawCharts(box, runs) {   // runs: [{name, rows}]
  box.replaceChildren();
  for (const [title, keys] of METRICS) {
    const series = [];
    for (const run of runs) {
      for (const k of keys) {
        const pts = seriesOf(run.rows, k);
        if (pts.length) series.push({name: runs.length > 1 ? `${run.name}: ${k}` : k, points: pts});
      }
    }
    if (series.length || title === "loss") box.appendChild(lineChart(title, series));
  }
}

// ------------------------------------------------------------------ Runs
function runsTable(runs) {
  if (!runs.length) return el("p", {class: "muted"}, "No runs under this folder yet (a run is a folder with the " +
    "args.json of a prefswift training command).");
  return el("table", {id: "runs-table"},
    el("tr", {}, ["run", "state", "algorithm", "model", "step", "best eval", "notes"].map(h => el("th", {}, h))),
    runs.map(r => el("tr", {"data-run": r.name},
      el("td", {}, el("a", {href: "#/run/" + encodeURIComponent(r.name)}, r.name)),
      el("td", {title: r.state_note}, badge(r.state, r.host)),
      el("td", {}, r.algorithm || ""),
      el("td", {}, r.model),
      el("td", {class: "num step"}, r.max_steps && r.max_steps > 0 ? `${r.step} / ${r.max_steps}` : String(r.step)),
      el("td", {}, bestEval(r.best_eval)),
      el("td", {class: "muted"}, r.notes.length ? `${r.notes.length} note(s)` : ""))));
}
function pageRuns() {
  const holder = el("div", {}, el("p", {class: "muted"}, "loading…"));
  $page.replaceChildren(el("h2", {}, "Runs"), holder);
  listen("/api/events", {runs: runs => { runsCache = runs; holder.replaceChildren(runsTable(runs)); }});
}

function pageRun(name) {
  $page.replaceChildren(el("h2", {}, "Run ", el("span", {id: "run-name"}, name)),
    el("p", {class: "muted"}, "loading…"));
  api("/api/run?name=" + encodeURIComponent(name)).then(run => {
    const rows = run.rows;
    const head = el("div", {class: "row"});
    const notes = el("div", {class: "notes", id: "notes"});
    const charts = el("div", {class: "charts", id: "charts"});
    const ckpts = el("div", {id: "checkpoints"});
    const fillHead = info => {
      head.replaceChildren(...[badge(info.state, info.host), el("span", {class: "muted"}, info.state_note),
        el("span", {}, `${info.algorithm || ""} · ${info.model} · step `),
        el("b", {id: "run-step", class: "step"}, String(info.step)),
        info.max_steps > 0 ? el("span", {}, ` / ${info.max_steps}`) : null,
        info.processes ? el("span", {class: "muted"}, ` · ${info.processes} process(es)`) : null].filter(Boolean));
      notes.replaceChildren(...info.notes.map(n => el("div", {class: "note"}, n)));
      ckpts.replaceChildren(info.checkpoints.length ? el("table", {},
        el("tr", {}, ["checkpoint", "whole", "processes", "problem"].map(h => el("th", {}, h))),
        info.checkpoints.map(c => el("tr", {}, el("td", {}, c.name), el("td", {}, c.whole ? "yes" : "no"),
          el("td", {}, c.world_size ? String(c.world_size) : ""), el("td", {}, c.problem || ""))))
        : el("p", {class: "muted"}, "no checkpoints"));
    };
    fillHead(run);
    drawCharts(charts, [{name, rows}]);
    const evals = run.eval_results.length ? run.eval_results.map(e => el("div", {},
      el("h4", {}, `${e.mode} — ${e.file}`),
      el("table", {}, Object.entries(e.numbers).map(([k, v]) => el("tr", {}, el("td", {}, k),
        el("td", {class: "num"}, num(v)))))))
      : [el("p", {class: "muted"}, "no `prefswift eval` results saved under this run yet")];
    $page.replaceChildren(el("h2", {}, "Run ", el("span", {id: "run-name"}, name)), head, notes, charts,
      el("h3", {}, "Eval results"), ...evals,
      el("h3", {}, "Checkpoints"), ckpts,
      el("details", {}, el("summary", {}, "Arguments (args.json)"),
        el("table", {id: "args"}, Object.entries(run.args).map(([k, v]) => el("tr", {}, el("td", {}, k),
          el("td", {}, JSON.stringify(v)))))));
    listen(`/api/events?run=${encodeURIComponent(name)}&rows=${rows.length}`, {
      rows: data => { rows.push(...data.rows); drawCharts(charts, [{name, rows}]); },
      run: info => fillHead(info),
    });
  }).catch(e => $page.replaceChildren(el("h2", {}, "Run " + name), errorBox(e.message)));
}

// ------------------------------------------------------------------ Compare
function pageCompare(params) {
  const chosen = new Set((params.get("runs") || "").split(",").filter(Boolean));
  const checks = el("div", {class: "checks"});
  const charts = el("div", {class: "charts", id: "charts"});
  const evals = el("div", {id: "compare-evals"});
  $page.replaceChildren(el("h2", {}, "Compare"), el("p", {class: "muted"}, "Pick two or more runs:"), checks,
    charts, el("h3", {}, "Eval results side by side"), evals);
  const refresh = async () => {
    const names = [...chosen];
    history.replaceState(null, "", "#/compare?runs=" + names.map(encodeURIComponent).join(","));
    const runs = await Promise.all(names.map(n => api("/api/run?name=" + encodeURIComponent(n))));
    drawCharts(charts, runs.map(r => ({name: r.name, rows: r.rows})));
    const latest = runs.map(r => {   // the newest result per mode
      const by = {};
      for (const e of r.eval_results) if (!(e.mode in by)) by[e.mode] = e;
      return by;
    });
    const keys = [];
    latest.forEach(by => Object.entries(by).forEach(([mode, e]) => Object.keys(e.numbers).forEach(k => {
      const key = mode + ": " + k;
      if (!keys.includes(key)) keys.push(key);
    })));
    evals.replaceChildren(keys.length ? el("table", {id: "eval-table"},
      el("tr", {}, el("th", {}, "metric"), runs.map(r => el("th", {}, r.name))),
      keys.map(key => {
        const [mode, k] = key.split(": ");
        return el("tr", {}, el("td", {}, key),
          latest.map(by => el("td", {class: "num"}, by[mode] ? num(by[mode].numbers[k]) : "")));
      })) : el("p", {class: "muted"}, "none of these runs has `prefswift eval` results yet"));
  };
  api("/api/runs").then(data => {
    checks.replaceChildren(...data.runs.map(r => el("label", {},
      el("input", {type: "checkbox", value: r.name, ...(chosen.has(r.name) ? {checked: ""} : {}),
        onchange: ev => { ev.target.checked ? chosen.add(r.name) : chosen.delete(r.name); refresh(); }}),
      " " + r.name)));
    if (chosen.size) refresh();
  }).catch(e => checks.replaceChildren(errorBox(e.message)));
  listen("/api/events", {});
}

// ------------------------------------------------------------------ Chat
async function streamPost(path, body, onEvent) {   // POST that answers with server-sent events
  const headers = {"Content-Type": "application/json"};
  if (apiKey()) headers.Authorization = "Bearer " + apiKey();
  const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
  if (!r.ok) { const d = await r.json().catch(() => ({})); throw new Error(d.error || `HTTP ${r.status}`); }
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buf += dec.decode(value, {stream: true});
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block), data = /^data: (.*)$/m.exec(block);
      if (ev && data) onEvent(ev[1], JSON.parse(data[1]));
    }
  }
}
function modelSelect(id, names) { return el("select", {id}, names.map(n => el("option", {value: n}, n))); }
function optionsRow(prefix) {
  return el("span", {},
    "max new tokens ", el("input", {id: prefix + "-max", type: "number", value: 64, min: 1, style: "width:70px"}),
    " temperature ", el("input", {id: prefix + "-temp", type: "number", value: 0.7, step: 0.1, min: 0,
      style: "width:70px"}),
    " ", el("label", {}, el("input", {id: prefix + "-sample", type: "checkbox"}), " sample"),
    " top k ", el("input", {id: prefix + "-topk", type: "number", value: 0, min: 0, style: "width:60px"}),
    " repetition penalty ", el("input", {id: prefix + "-rep", type: "number", value: 1, step: 0.05, min: 0.05,
      style: "width:60px"}));
}
function readOptions(prefix) {
  return {max_new_tokens: Number(document.getElementById(prefix + "-max").value),
    temperature: Number(document.getElementById(prefix + "-temp").value),
    do_sample: document.getElementById(prefix + "-sample").checked,
    top_k: Number(document.getElementById(prefix + "-topk").value),
    repetition_penalty: Number(document.getElementById(prefix + "-rep").value)};
}
function pageChat() {
  const log = el("div", {class: "chatlog", id: "chatlog"});
  const status = el("div", {id: "chat-status"});
  const messages = [];
  $page.replaceChildren(el("h2", {}, "Chat"), el("p", {class: "muted"}, "loading runs…"));
  api("/api/models").then(data => {
    if (!data.models.length) { $page.replaceChildren(el("h2", {}, "Chat"),
      el("p", {class: "muted"}, "No run has an adapter, final model or whole checkpoint to chat with yet.")); return; }
    const input = el("textarea", {id: "chat-input", placeholder: "Your message"});
    const system = el("input", {id: "chat-system", placeholder: "system prompt (optional)", style: "width:100%"});
    const send = el("button", {id: "chat-send"}, "Send");
    const clear = el("button", {class: "secondary", onclick: () => { messages.length = 0; log.replaceChildren(); }},
      "Clear");
    send.addEventListener("click", async () => {
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      messages.push({role: "user", content: text});
      log.appendChild(el("div", {class: "msg user"}, el("b", {}, "you: "), text));
      const out = el("span", {class: "reply"});
      log.appendChild(el("div", {class: "msg assistant"}, el("b", {}, "model: "), out));
      send.disabled = true; status.replaceChildren();
      const sys = system.value.trim() ? [{role: "system", content: system.value.trim()}] : [];
      try {
        await streamPost("/api/chat", {run: document.getElementById("chat-run").value,
          messages: [...sys, ...messages], options: readOptions("chat")}, (kind, data) => {
          if (kind === "piece") out.textContent += data.text;
          if (kind === "replace") out.textContent = data.text;
          if (kind === "error") status.replaceChildren(errorBox(data.text));
        });
        messages.push({role: "assistant", content: out.textContent});
      } catch (e) { status.replaceChildren(errorBox(e.message)); messages.pop(); }
      send.disabled = false;
    });
    $page.replaceChildren(el("h2", {}, "Chat"),
      el("div", {class: "row"}, "run ", modelSelect("chat-run", data.models), optionsRow("chat")),
      system, log, input, el("div", {class: "row"}, send, clear), status);
  }).catch(e => $page.replaceChildren(el("h2", {}, "Chat"), errorBox(e.message)));
  listen("/api/events", {});
}

// ------------------------------------------------------------------ Arena
function winTable(stats) {
  if (!stats.table.length) return el("p", {class: "muted"}, "No votes between two different runs yet.");
  return el("table", {id: "winrate-table"},
    el("tr", {}, ["run", "vs", "votes", "wins", "ties", "of which both bad", "losses", "win rate", "95% CI"]
      .map(h => el("th", {}, h))),
    stats.table.map(t => el("tr", {}, el("td", {}, t.run), el("td", {}, t.opponent),
      el("td", {class: "num"}, String(t.prompts)), el("td", {class: "num"}, String(t.wins)),
      el("td", {class: "num"}, String(t.ties)), el("td", {class: "num"}, String(t.both_bad)),
      el("td", {class: "num"}, String(t.losses)), el("td", {class: "num"}, num(t.win_rate, 3)),
      el("td", {class: "num"}, `${num(t.ci95_low, 3)} – ${num(t.ci95_high, 3)}`))));
}
function pageArena() {
  const stats = el("div", {id: "arena-stats"});
  const status = el("div", {id: "arena-status"});
  const answers = el("div", {id: "arena-answers"});
  let matchId = null;
  const loadStats = () => api("/api/arena/stats").then(s => stats.replaceChildren(
    el("p", {class: "muted"}, `${s.votes} vote(s) in ${s.file}: A ${s.counts.model_a}, B ${s.counts.model_b}, ` +
      `tie ${s.counts.tie}, both bad ${s.counts["tie (bothbad)"]} (ties and both-bad are kept in the file and ` +
      "skipped by training)"), winTable(s)));
  api("/api/models").then(data => {
    const annotator = el("input", {id: "annotator", placeholder: "your name",
      value: localStorage.getItem("prefswift_annotator") || ""});
    annotator.addEventListener("change", () => localStorage.setItem("prefswift_annotator", annotator.value));
    const prompt = el("textarea", {id: "arena-prompt", placeholder: "A prompt for both runs"});
    const draw = el("button", {id: "arena-draw", class: "secondary", onclick: () => api("/api/arena/prompt")
      .then(d => { prompt.value = d.prompt; }).catch(e => status.replaceChildren(errorBox(e.message)))},
      "Draw from prompt file");
    const go = el("button", {id: "arena-go"}, "Get answers");
    const vote = choice => async () => {
      if (!matchId) return;
      try {
        const r = await api("/api/arena/vote", {id: matchId, choice, annotator: annotator.value});
        matchId = null;
        answers.querySelectorAll(".votes button").forEach(b => { b.disabled = true; });
        status.replaceChildren(el("div", {class: "note", id: "reveal"},
          `Recorded (${r.winner}). A was ${r.A}, B was ${r.B}.`));
        loadStats();
      } catch (e) { status.replaceChildren(errorBox(e.message)); }
    };
    go.addEventListener("click", async () => {
      go.disabled = true; status.replaceChildren(el("p", {class: "muted"}, "generating both answers…"));
      answers.replaceChildren();
      try {
        const m = await api("/api/arena/match", {run_a: document.getElementById("arena-a").value,
          run_b: document.getElementById("arena-b").value, prompt: prompt.value, options: readOptions("arena")});
        matchId = m.id;
        status.replaceChildren();
        answers.replaceChildren(el("div", {class: "answers"},
          el("div", {class: "answer"}, el("h4", {}, "A"), el("div", {id: "answer-a"}, m.A)),
          el("div", {class: "answer"}, el("h4", {}, "B"), el("div", {id: "answer-b"}, m.B))),
          el("div", {class: "row votes"},
            el("button", {id: "vote-A", onclick: vote("A")}, "A is better"),
            el("button", {id: "vote-B", onclick: vote("B")}, "B is better"),
            el("button", {id: "vote-tie", class: "secondary", onclick: vote("tie")}, "Tie"),
            el("button", {id: "vote-both_bad", class: "secondary", onclick: vote("both_bad")}, "Both bad")));
      } catch (e) { status.replaceChildren(errorBox(e.message)); }
      go.disabled = false;
    });
    const b = modelSelect("arena-b", data.models);
    if (data.models.length > 1) b.value = data.models[1];
    $page.replaceChildren(el("h2", {}, "Arena"),
      el("p", {class: "muted"}, "Two runs (or the same run twice: two samples) answer one prompt; which is A and " +
        "which is B is drawn at random and shown only after you vote."),
      el("div", {class: "row"}, "annotator ", annotator),
      el("div", {class: "row"}, "run ", modelSelect("arena-a", data.models), " vs ", b, optionsRow("arena")),
      prompt, el("div", {class: "row"}, go, draw), status, answers, el("h3", {}, "Win rates"), stats);
    loadStats();
  }).catch(e => $page.replaceChildren(el("h2", {}, "Arena"), errorBox(e.message)));
  listen("/api/events", {});
}

// ------------------------------------------------------------------ routing
function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "runs";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const page = path.split("/")[0];
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active",
    a.dataset.page === (page === "run" ? "runs" : page)));
  if (page === "run") pageRun(decodeURIComponent(path.slice(4)));
  else if (page === "compare") pageCompare(params);
  else if (page === "chat") pageChat();
  else if (page === "arena") pageArena();
  else pageRuns();
}
window.addEventListener("hashchange", route);
route();
