// The index: the filter box (rows whose app name does not contain the text are hidden), and
// "last seen" as "3 min ago" (the exact UTC time stays in the cell's title).
"use strict";
(function () {
  const filter = document.getElementById("filter");
  const rows = Array.from(document.querySelectorAll("#apps tbody tr[data-name]"));
  const none = document.getElementById("nomatch");
  function apply() {
    const text = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      const match = row.dataset.name.includes(text);
      row.classList.toggle("hidden", !match);
      if (match) shown++;
    }
    none.classList.toggle("hidden", shown > 0 || rows.length === 0);
  }
  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 10) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function relative() {
    for (const t of document.querySelectorAll("#apps time[datetime]")) {
      const ms = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(ms)) t.textContent = ago(ms);
    }
  }
  filter.addEventListener("input", apply);
  apply();
  relative();
  setInterval(relative, 30000);
})();
