// ai-router dashboard: polls GET /dashboard/stats and draws small canvas charts. No dependencies, no
// inline code (the page is served under a strict Content-Security-Policy). Every value from the server is
// written with textContent, never as HTML.
(function () {
  "use strict";

  var KEY_STORE = "ai-router-admin-key";
  var params = new URLSearchParams(location.search);
  var REFRESH_MS = Math.max(250, parseInt(params.get("refresh") || "2000", 10) || 2000);
  var statsUrl = location.pathname.replace(/\/+$/, "") + "/stats";
  var key = sessionStorage.getItem(KEY_STORE) || "";
  var timer = null;
  var C = {};

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function $(id) { return document.getElementById(id); }
  function fmt(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    return Number(v).toFixed(digits === undefined ? 2 : digits);
  }
  function usd(v) {
    if (v === null || v === undefined) return "–";
    return v >= 1 ? v.toFixed(2) : v >= 0.01 ? v.toFixed(4) : v.toPrecision(3);
  }

  // ---------------------------------------------------------------- canvas helpers

  function setup(canvas) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 300, h = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx: ctx, w: w, h: h, left: 44, right: 8, top: 8, bottom: 20 };
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function axes(g, yMax, yFmt) {
    var ctx = g.ctx, plotH = g.h - g.top - g.bottom;
    ctx.strokeStyle = C.grid; ctx.fillStyle = C.muted; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (var i = 0; i <= 4; i++) {
      var y = g.top + plotH - (plotH * i) / 4;
      ctx.beginPath(); ctx.moveTo(g.left, y); ctx.lineTo(g.w - g.right, y); ctx.stroke();
      ctx.fillText(yFmt((yMax * i) / 4), g.left - 4, y);
    }
  }

  function legend(g, items) {
    var ctx = g.ctx, x = g.left + 4;
    ctx.textAlign = "left"; ctx.textBaseline = "top";
    items.forEach(function (it) {
      ctx.fillStyle = it.color; ctx.fillRect(x, g.top, 10, 10);
      ctx.fillStyle = C.text; ctx.fillText(it.label, x + 14, g.top);
      x += 24 + ctx.measureText(it.label).width;
    });
  }

  // Lines over time: series = [{label, color, values}], xs = timestamps (s).
  function lineChart(canvas, xs, series, opts) {
    var g = setup(canvas), ctx = g.ctx, points = 0;
    var max = opts.yMax || 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    max = opts.yMax || niceMax(max * 1.1);
    axes(g, max, opts.yFmt || function (v) { return fmt(v, v < 10 ? 1 : 0); });
    var plotW = g.w - g.left - g.right, plotH = g.h - g.top - g.bottom;
    if (xs.length < 1) { canvas.dataset.points = "0"; return; }
    var x0 = xs[0], x1 = xs[xs.length - 1], span = Math.max(1, x1 - x0);
    function X(t) { return g.left + ((t - x0) / span) * plotW; }
    function Y(v) { return g.top + plotH - (Math.min(v, max) / max) * plotH; }
    series.forEach(function (s) {
      ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
      var started = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) { started = false; return; }
        points++;
        if (!started) { ctx.moveTo(X(xs[i]), Y(v)); started = true; } else { ctx.lineTo(X(xs[i]), Y(v)); }
      });
      ctx.stroke();
      if (s.fill) {
        ctx.lineTo(X(xs[xs.length - 1]), Y(0)); ctx.lineTo(X(xs[0]), Y(0)); ctx.closePath();
        ctx.globalAlpha = 0.15; ctx.fillStyle = s.color; ctx.fill(); ctx.globalAlpha = 1;
      }
    });
    ctx.fillStyle = C.muted; ctx.textAlign = "left"; ctx.textBaseline = "bottom";
    ctx.fillText(Math.round(span) + " s", g.left, g.h - 2);
    legend(g, series);
    canvas.dataset.points = String(points);
  }

  // Grouped bars: cats = names, groups = [{label, color, values}].
  function barChart(canvas, cats, groups, yFmt) {
    var g = setup(canvas), ctx = g.ctx, points = 0, max = 0;
    groups.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    max = niceMax(max * 1.1);
    axes(g, max, yFmt);
    var plotW = g.w - g.left - g.right, plotH = g.h - g.top - g.bottom;
    var slot = plotW / Math.max(1, cats.length), bw = Math.min(28, (slot * 0.7) / groups.length);
    cats.forEach(function (cat, i) {
      var cx = g.left + slot * i + slot / 2;
      groups.forEach(function (s, j) {
        var v = s.values[i];
        if (v === null || v === undefined) return;
        points++;
        var bh = (Math.min(v, max) / max) * plotH;
        ctx.fillStyle = s.color;
        ctx.fillRect(cx - (bw * groups.length) / 2 + j * bw, g.top + plotH - bh, bw - 2, bh);
      });
      ctx.fillStyle = C.muted; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
      ctx.fillText(cat || "(none)", cx, g.h - 2);
    });
    legend(g, groups);
    canvas.dataset.points = String(points);
  }

  // Spend vs budget: one horizontal bar per tenant, a tick at the budget.
  function spendChart(canvas, tenants) {
    var g = setup(canvas), ctx = g.ctx, points = 0, max = 0;
    tenants.forEach(function (t) {
      max = Math.max(max, t.spend_usd, t.budget_usd || 0, t.savings_usd || 0);
    });
    max = niceMax(max * 1.1);
    var left = 90, plotW = g.w - left - g.right, rowH = Math.min(28, (g.h - g.top - g.bottom) / Math.max(1, tenants.length));
    ctx.textBaseline = "middle";
    tenants.forEach(function (t, i) {
      var y = g.top + 14 + i * rowH;
      ctx.fillStyle = C.text; ctx.textAlign = "right";
      ctx.fillText((t.tenant || "(no tenant)").slice(0, 14), left - 6, y + rowH / 4);
      var bw = (t.spend_usd / max) * plotW;
      ctx.fillStyle = C.cloud; ctx.fillRect(left, y, Math.max(1, bw), rowH / 2 - 2);
      if (t.savings_usd !== null && t.savings_usd !== undefined) {
        ctx.fillStyle = C.local;
        ctx.fillRect(left, y + rowH / 2 - 1, Math.max(1, (t.savings_usd / max) * plotW), rowH / 4);
      }
      if (t.budget_usd) {
        var bx = left + (t.budget_usd / max) * plotW;
        ctx.strokeStyle = C.err; ctx.lineWidth = 2; ctx.beginPath();
        ctx.moveTo(bx, y - 3); ctx.lineTo(bx, y + rowH / 2 + 1); ctx.stroke();
      }
      ctx.fillStyle = C.muted; ctx.textAlign = "left";
      ctx.fillText(usd(t.spend_usd) + (t.budget_usd ? " / " + usd(t.budget_usd) + " " + t.budget_window : ""),
        left + Math.max(1, bw) + 6, y + rowH / 4);
      points++;
    });
    legend({ ctx: ctx, left: left - 4, top: 0 }, [{ label: "spend", color: C.cloud }, { label: "savings", color: C.local },
      { label: "budget", color: C.err }]);
    canvas.dataset.points = String(points);
  }

  // ---------------------------------------------------------------- rendering

  function td(text, cls) {
    var c = document.createElement("td");
    c.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) c.className = cls;
    return c;
  }

  function render(d) {
    var s = d.series, t = d.totals, last = s.rps.length ? s.rps[s.rps.length - 1] : null;
    $("n-requests").textContent = fmt(t.requests, 0);
    $("n-rps").textContent = fmt(last, 1);
    var share = t.local + t.cloud > 0 ? (100 * t.local) / (t.local + t.cloud) : null;
    $("n-local").textContent = share === null ? "–" : share.toFixed(0) + " %";
    $("n-cost").textContent = usd(t.cost_usd);
    $("n-savings").textContent = t.savings_usd === undefined ? "n/a" : usd(t.savings_usd);
    $("n-promotions").textContent = fmt(t.promotions, 0);
    $("n-errors").textContent = fmt(t.errors, 0);

    lineChart($("c-rps"), s.t, [{ label: "req/s", color: C.cloud, values: s.rps, fill: true }], {});
    lineChart($("c-share"), s.t, [
      { label: "local", color: C.local, values: s.local_share.map(function (v) { return v === null ? null : 100 * v; }), fill: true },
      { label: "cloud", color: C.cloud, values: s.local_share.map(function (v) { return v === null ? null : 100 - 100 * v; }) },
    ], { yMax: 100, yFmt: function (v) { return v.toFixed(0) + "%"; } });
    var tiers = d.tiers.map(function (x) { return x.tier; });
    var secs = function (v) { return v < 0.1 ? v.toFixed(3) : v.toFixed(2); };
    barChart($("c-latency"), tiers, [
      { label: "p50", color: C.cloud, values: d.tiers.map(function (x) { return x.p50_s; }) },
      { label: "p95", color: C.p95, values: d.tiers.map(function (x) { return x.p95_s; }) },
    ], secs);
    barChart($("c-ttft"), tiers, [
      { label: "p50", color: C.local, values: d.tiers.map(function (x) { return x.ttft_p50_s; }) },
      { label: "p95", color: C.p95, values: d.tiers.map(function (x) { return x.ttft_p95_s; }) },
    ], secs);
    spendChart($("c-spend"), d.tenants);
    var ev = [
      { label: "promotions/s", color: C.p95, values: s.promotions_ps },
      { label: "errors/s", color: C.err, values: s.errors_ps },
    ];
    if (s.spillovers_ps) ev.splice(1, 0, { label: "spill-overs/s", color: C.cloud, values: s.spillovers_ps });
    lineChart($("c-events"), s.t, ev, {});

    var box = $("backends");
    box.textContent = "";
    d.backends.forEach(function (b) {
      var el = document.createElement("div");
      el.className = "backend " + b.state;
      el.dataset.state = b.state;
      var n = document.createElement("div"); n.className = "name"; n.textContent = b.backend + " · " + b.state;
      var m = document.createElement("div"); m.className = "meta";
      m.textContent = b.location + " · in flight " + b.in_flight + " · queued " + b.queued +
        (b.latency_ms !== null ? " · first byte ~" + fmt(b.latency_ms, 1) + " ms" : "");
      el.appendChild(n); el.appendChild(m); box.appendChild(el);
    });

    var body = $("decisions").tBodies[0];
    body.textContent = "";
    d.decisions.forEach(function (x) {
      var tr = document.createElement("tr");
      if (x.status >= 400) tr.className = "err";
      [new Date(x.ts * 1000).toLocaleTimeString(), x.tenant, x.endpoint + (x.stream ? " (stream)" : ""), x.task,
        x.complexity, x.tokens, x.tier, x.model, (x.attempts || []).join(" → "), x.status + (x.error ? " " + x.error : ""),
        fmt(x.latency_ms, 1), x.cost_usd === null ? "" : usd(x.cost_usd)].forEach(function (v) { tr.appendChild(td(v)); });
      var why = (x.reasons || []).slice();
      if (x.redacted) {
        why.push("redacted " + Object.keys(x.redacted).map(function (k) { return k + " x" + x.redacted[k]; }).join(", "));
      }
      tr.appendChild(td(why.join("; "), "reasons"));
      body.appendChild(tr);
    });

    var st = $("status");
    st.className = "status";
    st.textContent = "updated " + new Date(d.now * 1000).toLocaleTimeString() + " · up " + Math.round(d.uptime_s) +
      " s · " + d.workers;
    document.body.dataset.ready = "1";
    document.body.dataset.updates = String((parseInt(document.body.dataset.updates || "0", 10) || 0) + 1);
  }

  // ---------------------------------------------------------------- polling and the key

  function askKey(status, message) {
    $("main").hidden = true;
    $("keyform").hidden = false;
    $("keymsg").textContent = message || (status === 401
      ? "This router has keys configured: enter the admin key to see its statistics."
      : "Not allowed.");
    var st = $("status"); st.className = "status bad"; st.textContent = status === 401 ? "admin key needed" : "forbidden";
  }

  function poll() {
    var headers = key ? { Authorization: "Bearer " + key } : {};
    fetch(statsUrl, { headers: headers, cache: "no-store", credentials: "omit" }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        return r.json().then(function (e) { askKey(r.status, e && e.error && e.error.message); },
          function () { askKey(r.status); });
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json().then(function (d) {
        $("keyform").hidden = true; $("main").hidden = false;
        render(d);
        timer = setTimeout(poll, REFRESH_MS);
      });
    }).catch(function (e) {
      var st = $("status"); st.className = "status bad"; st.textContent = "unreachable (" + e.message + ")";
      timer = setTimeout(poll, REFRESH_MS * 2);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    ["bg", "panel", "text", "muted", "local", "cloud", "p95", "err", "grid"].forEach(function (n) { C[n] = css("--" + n); });
    $("keyform").addEventListener("submit", function (ev) {
      ev.preventDefault();
      key = $("key").value.trim();
      sessionStorage.setItem(KEY_STORE, key);
      if (timer) clearTimeout(timer);
      poll();
    });
    poll();
  });
})();
