// The fleet page: reads /api/page and /api/targets, redraws on server-sent "change" events.
// Read-only; every text from the server goes through textContent (never innerHTML).
"use strict";

const STATE_ICON = {
  Synced: "✓", OutOfSync: "↻", Progressing: "…", Drifted: "≠", Failed: "✗",
  InvalidConfig: "✗", Unreachable: "⚠", Paused: "⏸", Held: "✋",
};
const params = new URLSearchParams(location.search);
const view = {
  filters: {
    app: params.get("app") || "",
    cluster: params.get("cluster") || "",
    label: params.get("label") || "",
    group_by: params.get("group_by") || "",
  },
  target: params.get("target") || "", // "app/cluster"
  version: null,
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "width") el.style.width = v; // CSSOM, which the page's CSP allows
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmtTime(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  const ago = secs < 60 ? `${Math.max(secs, 0)}s ago` : secs < 3600 ? `${Math.round(secs / 60)}m ago`
    : secs < 86400 ? `${Math.round(secs / 3600)}h ago` : `${Math.round(secs / 86400)}d ago`;
  return `${iso.replace("T", " ").replace("Z", " UTC")} (${ago})`;
}

function fmtValue(v) {
  if (v === null || v === undefined) return "(unset)";
  if (v === "(masked)") return v; // a Secret value: never sent, only that it changed
  const text = JSON.stringify(v);
  return text.length > 120 ? text.slice(0, 119) + "…" : text;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function badge(kind, value, count) {
  return h("span", { class: `badge ${kind}-${value}`, "data-state": value },
    kind === "s" && STATE_ICON[value] ? STATE_ICON[value] + " " : "", value,
    count !== undefined ? h("span", { class: "n" }, ` ${count}`) : null);
}

function query(extra) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...view.filters, ...(extra || {}) })) if (v) q.set(k, v);
  return q;
}

function syncUrl() {
  const q = query(view.target ? { target: view.target } : {});
  const s = q.toString();
  history.replaceState(null, "", s ? `?${s}` : location.pathname);
}

// ---- source, summary ------------------------------------------------------------------------

function renderSource(data) {
  const el = document.getElementById("source");
  const src = data.source;
  const rev = data.revision;
  el.replaceChildren();
  if (!src) { el.append("No fetch of the config repo yet."); }
  else {
    el.append("Source ", h("b", { class: "mono" }, src.location), " · branch ",
      h("b", {}, src.branch || "(default)"));
    if (rev) {
      el.append(" · revision ", h("b", { class: "mono", title: rev.sha }, rev.sha.slice(0, 12)),
        rev.valid ? "" : h("span", { class: "badge s-InvalidConfig" }, "invalid, not applied"));
    }
    el.append(" · last fetch ", h("b", {}, fmtTime(src.last_success_at)));
  }
  if (!data.daemon_ready) el.append(" · ", h("span", { class: "badge s-OutOfSync" }, "not ready"));
  const banner = document.getElementById("source-error");
  const problems = [];
  if (src && src.consecutive_failures > 0) {
    problems.push(`Fetch failing since ${fmtTime(src.failing_since)} (${src.consecutive_failures} attempts): ${src.last_error || ""}`);
  }
  if (rev && !rev.valid && rev.error) problems.push(`Revision ${rev.sha.slice(0, 12)} is invalid: ${rev.error}`);
  banner.hidden = problems.length === 0;
  banner.replaceChildren(...problems.map((p) => h("div", {}, p)));
}

function renderSummary(m) {
  const el = document.getElementById("summary");
  const s = m.summary;
  el.replaceChildren(
    h("strong", {}, plural(s.targets, "target")),
    h("span", { class: "label" }, `${plural(m.apps.length, "app")} × ${m.shown_clusters} of ${plural(m.cluster_count, "cluster")}`),
    h("span", { class: "label" }, "Sync:"),
    ...Object.entries(s.states).map(([k, n]) => badge("s", k, n)),
  );
  if (Object.keys(s.health).length) {
    el.append(h("span", { class: "label" }, "Health:"), ...Object.entries(s.health).map(([k, n]) => badge("h", k, n)));
  }
  if (Object.keys(s.phases).length) {
    el.append(h("span", { class: "label" }, "Rollout:"),
      ...Object.entries(s.phases).map(([k, n]) => h("span", { class: "badge s-Paused" }, `${k} ${n}`)));
  }
}

// ---- filters --------------------------------------------------------------------------------

function fillSelect(select, options, current) {
  const first = select.options[0];
  select.replaceChildren(first, ...options.map(([value, text]) => h("option", { value }, text)));
  if (current && !options.some(([v]) => v === current)) select.append(h("option", { value: current }, current));
  select.value = current;
}

function renderFilters(m) {
  document.getElementById("apps").replaceChildren(...m.all_apps.map((a) => h("option", { value: a })));
  const labels = [];
  for (const [k, values] of Object.entries(m.label_keys)) for (const v of values) labels.push([`${k}=${v}`, `${k}=${v}`]);
  fillSelect(document.getElementById("f-label"), labels, view.filters.label);
  fillSelect(document.getElementById("f-group"), Object.keys(m.label_keys).map((k) => [k, k]), view.filters.group_by);
  for (const [id, key] of [["f-app", "app"], ["f-cluster", "cluster"]]) {
    const input = document.getElementById(id);
    if (document.activeElement !== input) input.value = view.filters[key];
  }
}

// ---- the matrix -----------------------------------------------------------------------------

function clusterCell(app, column, cell, m) {
  const key = `${app}/${column.id}`;
  const meta = [];
  if (cell.health) meta.push(h("span", { class: `hl h-${cell.health}` }, cell.health + (cell.ready ? ` ${cell.ready}` : "")));
  if (cell.phase) meta.push(h("span", { class: "phase" }, `rollout ${cell.phase}`));
  if (cell.pinned) meta.push(h("span", { class: "phase" }, `pinned @${cell.pinned}`));
  else if (cell.revision) meta.push(h("span", { class: "mono" }, `@${cell.revision}`));
  const parts = [];
  meta.forEach((node, i) => { if (i) parts.push(" · "); parts.push(node); });
  const title = [cell.state, cell.health && `health ${cell.health}${cell.health_reason ? ": " + cell.health_reason : ""}`,
    cell.phase && `rollout ${cell.phase}${cell.phase_reason ? ": " + cell.phase_reason : ""}`, cell.message].filter(Boolean).join("\n");
  return h("button", {
    type: "button", class: `cell s-${cell.state} hd-${cell.health || "none"}${view.target === key ? " selected" : ""}`,
    "data-app": app, "data-cluster": column.id, "data-state": cell.state, "data-health": cell.health || "",
    title, onclick: () => openTarget(app, column.id),
  }, h("span", { class: "state" }, `${STATE_ICON[cell.state] || ""} ${cell.state}`), h("span", { class: "meta" }, parts));
}

function groupCell(app, column, cell) {
  const bar = h("span", { class: "bar" });
  const counts = h("span", { class: "counts" });
  for (const [state, n] of Object.entries(cell.counts)) {
    bar.append(h("span", { class: `s-${state}`, width: `${Math.max((100 * n) / cell.total, 3)}%` }));
    counts.append(h("span", {}, `${n} ${state}`));
  }
  for (const [health, n] of Object.entries(cell.health || {})) counts.append(h("span", { class: `hl h-${health}` }, `${n} ${health}`));
  return h("button", {
    type: "button", class: `group-cell w-${cell.worst}`, "data-app": app, "data-group": column.id, "data-worst": cell.worst || "",
    title: `${app} on ${column.clusters} clusters with ${column.key}=${column.name}: click to show them`,
    onclick: () => { view.filters.label = column.id; view.filters.app = app; view.filters.group_by = ""; refresh(); },
  }, h("strong", {}, plural(cell.total, "target")), bar, counts);
}

function renderMatrix(m) {
  const table = document.getElementById("matrix");
  const note = document.getElementById("matrix-note");
  const grouped = m.mode === "groups";
  note.textContent = grouped
    ? `${m.shown_clusters} clusters grouped by label “${m.group_by}” (counts per sync state). Click a column to see its clusters.`
    : "";
  if (m.hidden_columns) note.textContent += ` ${m.hidden_columns} more columns not shown: use the filters to narrow.`;
  const head = h("tr", {}, h("th", { class: "app" }, grouped ? `app \\ ${m.group_by}` : "app \\ cluster"),
    ...m.columns.map((c) => grouped
      ? h("th", { class: "group", "data-group": c.id, title: `Show the ${c.clusters} clusters with ${c.id}`,
          onclick: () => { view.filters.label = c.id; view.filters.group_by = ""; refresh(); } },
          c.name, h("span", { class: "labels" }, plural(c.clusters, "cluster")))
      : h("th", { "data-cluster": c.id }, c.name, c.paused ? " (paused)" : "",
          h("span", { class: "labels" }, Object.entries(c.labels).map(([k, v]) => h("span", {}, `${k}=${v}`))))));
  const rolloutOf = (app) => {
    const r = (m.rollouts || {})[app];
    if (!r) return null;
    const text = [`rollout ${r.phase}`, r.stage && `stage ${r.stage}`, r.paused && "paused"].filter(Boolean).join(" · ");
    return h("span", { class: "rollout", title: r.reason || text }, text);
  };
  const body = m.apps.map((app) => h("tr", { "data-app": app }, h("th", { class: "app" }, app, rolloutOf(app)),
    ...m.columns.map((c) => {
      const cell = (m.cells[app] || {})[c.id];
      if (!cell) return h("td", { class: "none", title: `${app} is not placed here` }, "–");
      return h("td", {}, grouped ? groupCell(app, c, cell) : clusterCell(app, c, cell, m));
    })));
  if (!m.apps.length) {
    body.push(h("tr", {}, h("td", { colspan: m.columns.length + 1, class: "none" },
      m.cluster_count ? "No target matches the filters." : "No status recorded yet.")));
  }
  table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
}

// ---- drift ----------------------------------------------------------------------------------

function fieldRows(record) {
  if (!record.fields.length) {
    const what = { missing: "the object is missing from the cluster", unmanaged: "carries our label but is not in Git" };
    return [h("span", {}, what[record.kind] || record.kind)];
  }
  return record.fields.map((f) => h("div", { class: "mono field" }, f.path, ": ",
    h("span", { class: "git", title: "value in Git" }, `Git ${fmtValue(f.before)}`), h("span", { class: "arrow" }, "→"),
    h("span", { class: "live-v", title: "live value" }, `live ${fmtValue(f.after)}`),
    f.manager ? h("span", { class: "count" }, ` by ${f.manager}`) : null));
}

function renderDrift(d) {
  document.getElementById("drift-count").textContent = d.total > d.records.length
    ? `(${d.records.length} newest of ${d.total})` : `(${d.total})`;
  const table = document.getElementById("drift");
  if (!d.records.length) {
    table.replaceChildren(h("tbody", {}, h("tr", {}, h("td", { class: "empty" }, "No open drift."))));
    return;
  }
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["app", "cluster", "object", "drift", "field: Git → live, manager", "detected"].map((t) => h("th", {}, t)))),
    h("tbody", {}, d.records.map((r) => h("tr", { "data-app": r.app, "data-cluster": r.cluster, "data-object": r.object },
      h("td", {}, r.app), h("td", {}, r.cluster), h("td", { class: "mono" }, r.object),
      h("td", {}, h("span", { class: `kind kind-${r.kind}` }, r.kind)), h("td", {}, fieldRows(r)),
      h("td", {}, fmtTime(r.detected_at))))));
}

// ---- detail ---------------------------------------------------------------------------------

async function openTarget(app, cluster) {
  view.target = `${app}/${cluster}`;
  syncUrl();
  document.querySelectorAll(".cell.selected").forEach((el) => el.classList.remove("selected"));
  document.querySelectorAll(".cell").forEach((el) => {
    if (el.dataset.app === app && el.dataset.cluster === cluster) el.classList.add("selected");
  });
  await renderDetail();
}

async function renderDetail() {
  const panel = document.getElementById("detail");
  if (!view.target) { panel.hidden = true; return; }
  const [app, cluster] = view.target.split("/");
  const response = await fetch(`/api/targets/${encodeURIComponent(app)}/${encodeURIComponent(cluster)}`);
  if (!response.ok) { panel.hidden = true; return; }
  const d = await response.json();
  const t = d.target;
  const bad = ["Failed", "InvalidConfig", "Unreachable"].includes(t.state);
  const warn = ["Drifted", "OutOfSync", "Held", "Progressing"].includes(t.state);
  const rows = [
    ["Sync", badge("s", t.state)],
    d.health ? ["Health", h("span", {}, badge("h", d.health), d.ready ? ` ${d.ready} ready` : "", d.health_reason ? ` — ${d.health_reason}` : "")] : null,
    d.app_rollout ? ["App rollout", h("span", {}, [d.app_rollout.phase, d.app_rollout.stage && `stage ${d.app_rollout.stage}`,
      d.app_rollout.revision && `to @${d.app_rollout.revision}`].filter(Boolean).join(" · "), d.app_rollout.reason ? ` — ${d.app_rollout.reason}` : "")] : null,
    d.phase ? ["Here", h("span", {}, `rollout ${d.phase}`, d.phase_reason ? ` — ${d.phase_reason}` : "")] : null,
    t.pin ? ["Pinned", h("span", { class: "mono" }, `${String(t.pin.revision).slice(0, 12)}`, ` by ${t.pin.user || "?"} ${fmtTime(t.pin.at)}`)] : null,
    ["Revision", h("span", { class: "mono" }, t.revision ? t.revision.slice(0, 12) : "none")],
    d.desired && d.desired !== t.revision ? ["Should run", h("span", { class: "mono" }, d.desired.slice(0, 12))] : null,
    ["Last applied", d.applied ? h("span", {}, h("span", { class: "mono" }, d.applied.slice(0, 12)), ` ${fmtTime(d.applied_at)}`) : "never"],
    ["Last synced", fmtTime(t.last_synced_at)],
    ["Updated", fmtTime(t.updated_at)],
  ].filter(Boolean);
  const open = d.drift; // the open records only, newest first; drift_total counts them all
  const openCount = d.drift_total > open.length ? `${open.length} newest of ${d.drift_total}` : `${open.length}`;
  panel.replaceChildren(
    h("header", {}, h("h2", {}, `${app} on ${cluster}`),
      h("button", { type: "button", class: "close", title: "Close", "aria-label": "Close",
        onclick: () => { view.target = ""; syncUrl(); panel.hidden = true; document.querySelectorAll(".cell.selected").forEach((el) => el.classList.remove("selected")); } }, "×")),
    h("div", { class: "tags" }, Object.entries(d.labels).map(([k, v]) => h("span", {}, `${k}=${v}`))),
    h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h3", {}, bad ? "Last error" : "Last message"),
    h("div", { class: `message${bad ? " bad" : warn ? " warn" : ""}`, id: "detail-message" }, t.message || "—"),
    h("h3", {}, `Objects${d.objects ? ` (${d.objects.length})` : ""}`,
      d.objects && d.objects.length ? h("span", { class: "count" }, ` · ${{ Git: "as the running revision renders them", health: "as their health was last assessed" }[d.objects_from] || "of the last apply"}`) : null),
    d.objects && d.objects.length ? h("ul", { class: "mono", id: "detail-objects" }, d.objects.map((o) => {
      const oh = (d.object_health || {})[o];
      return h("li", {}, o, oh ? h("span", { class: `hl h-${oh.health}`, title: oh.reason }, ` ${oh.health}${oh.ready ? " " + oh.ready : ""}`) : null,
        oh && oh.reason && oh.health !== "Healthy" ? h("span", { class: "count" }, ` — ${oh.reason}`) : null);
    }))
      : h("div", { class: "count" }, "none applied yet"),
    h("h3", { id: "detail-drift-count" }, `Open drift (${openCount})`),
    open.length ? h("div", {}, open.map((r) => h("div", {}, h("div", { class: "mono" }, r.object, " ", h("span", { class: `kind kind-${r.kind}` }, r.kind)), fieldRows(r))))
      : h("div", { class: "count" }, "none"),
  );
  panel.hidden = false;
}

// ---- loading --------------------------------------------------------------------------------

let loading = null;
let again = false;

async function refresh() {
  syncUrl();
  if (loading) { again = true; return loading; }
  loading = (async () => {
    try {
      const response = await fetch(`/api/page?${query().toString()}`);
      if (!response.ok) throw new Error(`${response.status}`);
      const data = await response.json();
      view.version = data.version;
      renderSource(data);
      renderFilters(data.matrix);
      renderSummary(data.matrix);
      renderMatrix(data.matrix);
      renderDrift(data.drift);
      await renderDetail();
      document.body.dataset.version = data.version;
    } catch (err) {
      setLive("off", "cannot reach the daemon");
    } finally {
      loading = null;
      if (again) { again = false; refresh(); }
    }
  })();
  return loading;
}

function setLive(cls, text) {
  const el = document.getElementById("live");
  el.className = `live ${cls}`;
  document.getElementById("live-text").textContent = text;
}

function listen() {
  if (!window.EventSource) { setInterval(refresh, 5000); setLive("on", "polling"); return; }
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => setLive("on", "live"));
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) { setLive("off", "reconnecting"); return; }
    // Refused (the daemon serves only so many streams at once): poll, try a stream again later.
    setLive("on", "polling");
    const poll = setInterval(() => { if (!loading) refresh(); }, 5000);
    setTimeout(() => { clearInterval(poll); listen(); }, 30000);
  });
  source.addEventListener("change", (e) => { if (e.data !== view.version) refresh(); });
}

function bindFilters() {
  let timer = null;
  const form = document.getElementById("filters");
  form.addEventListener("submit", (e) => e.preventDefault());
  for (const [id, key] of [["f-app", "app"], ["f-cluster", "cluster"]]) {
    document.getElementById(id).addEventListener("input", (e) => {
      view.filters[key] = e.target.value.trim();
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    });
  }
  for (const [id, key] of [["f-label", "label"], ["f-group", "group_by"]]) {
    document.getElementById(id).addEventListener("change", (e) => { view.filters[key] = e.target.value; refresh(); });
  }
  document.getElementById("f-clear").addEventListener("click", () => {
    view.filters = { app: "", cluster: "", label: "", group_by: "" };
    document.getElementById("f-app").value = "";
    document.getElementById("f-cluster").value = "";
    refresh();
  });
}

bindFilters();
refresh();
listen();
setInterval(() => { if (!loading) refresh(); }, 60000); // times "ago" stay fresh
