// Polls /api/mesh and redraws the tables. Data goes into the page only as
// text (textContent), never as markup.
"use strict";

const refresh = Number(document.body.dataset.refresh) || 2000;

function age(s) {
  if (s < 0) return "never";
  if (s < 90) return Math.round(s) + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function row(cells, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}

function list(id, items) {
  const sec = document.getElementById(id);
  sec.hidden = !items || items.length === 0;
  sec.querySelector("ul").replaceChildren(...(items || []).map((t) => {
    const li = document.createElement("li");
    li.textContent = t;
    return li;
  }));
}

function draw(v) {
  const nodes = v.nodes || [], tunnels = v.tunnels || [];
  const up = tunnels.filter((t) => t.healthy).length;
  const failing = (v.failures || []).length;
  document.getElementById("summary").textContent =
    nodes.length + " nodes · " + up + "/" + tunnels.length + " tunnels up · " +
    (failing ? failing + " of " + v.checks + " checks failing" : "all " + v.checks + " checks pass") +
    (v.live ? "" : " · standby controller: no live handshakes");
  document.getElementById("updated").textContent = "updated " + new Date(v.time).toLocaleTimeString();
  fill("nodes", nodes.map((n) => {
    const drops = Object.entries(n.drops || {}).map(([k, c]) => k + " " + c).join(", ");
    return row([n.name, n.endpoint || "-", n.backend || "-", n.peersUp + "/" + n.peersWanted, n.keyGeneration || "-",
      n.rotationPhase || "-", n.connected ? "yes" : "no", n.ready ? "yes" : "no", age(n.lastSeenSeconds), drops || "0", n.note],
      n.healthy ? "ok" : (n.note === "isolated" ? "bad" : "warn"));
  }));
  fill("tunnels", tunnels.map((t) => row([t.a + " ⟷ " + t.b, t.healthy ? "up" : "degraded", age(t.handshakeA), age(t.handshakeB),
    bytes(t.rxBytes), bytes(t.txBytes)], t.healthy ? "ok" : "warn")));
  fill("policies", (v.policies || []).map((p) => row([p.kind + "/" + p.name, p.applied + "/" + p.nodes, p.ready ? "yes" : "no", p.message],
    p.ready ? "ok" : "warn")));
  fill("rotations", (v.rotations || []).map((r) => row([r.name, r.schedule + (r.suspend ? " (suspended)" : ""), r.lastRun || "-",
    r.nextRun || "-", r.node || "-", r.phase || "-"])));
  list("failures", v.failures);
  list("problems", v.problems);
}

async function poll() {
  try {
    const res = await fetch("/api/mesh", { credentials: "same-origin", cache: "no-store" });
    if (res.status === 401) { location.href = "/login"; return; }
    if (!res.ok) throw new Error(await res.text());
    draw(await res.json());
  } catch (e) {
    document.getElementById("summary").textContent = "cannot read the mesh: " + e.message;
  }
  setTimeout(poll, refresh);
}

poll();
