// Refreshes the overview's rows without a page reload; pauses while the tab is hidden.
(() => {
  "use strict";
  const live = document.getElementById("live");
  const note = document.getElementById("refresh-state");
  if (!live || !window.fetch) return;
  const url = live.dataset.refreshUrl;
  const period = Math.max(2, Number(live.dataset.refreshSeconds) || 15) * 1000;
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  let timer = null;
  let busy = false;

  function say(text) {
    if (note) note.textContent = text;
  }

  function schedule() {
    clearTimeout(timer);
    timer = document.hidden ? null : setTimeout(refresh, period);
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.status === 401 || response.status === 403) {
        say("Signed out: reload the page to sign in again.");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      live.innerHTML = await response.text();  // server-rendered and escaped
      if (window.localTimes) window.localTimes(live);
      const tabs = live.querySelector("[data-errors]");
      const errors = tabs ? Number(tabs.dataset.errors) : 0;
      document.title = (errors ? "(" + errors + ") " : "") + baseTitle;
      say("Updated " + new Date().toLocaleTimeString() + ".");
      schedule();
    } catch (error) {
      say("Refresh failed (" + error.message + "); retrying.");
      schedule();
    } finally {
      busy = false;
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else {
      refresh();
    }
  });
  schedule();
})();
