// The index's filter box: rows whose app name does not contain the text are hidden.
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
  filter.addEventListener("input", apply);
  apply();
})();
