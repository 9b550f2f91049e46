// The setup page: this server's own host name in every example.
"use strict";
(function () {
  const host = location.hostname || "stackd-host";
  for (const el of document.querySelectorAll(".host")) el.textContent = host;
})();
