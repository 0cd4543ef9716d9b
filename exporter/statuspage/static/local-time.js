// Shows scheduled times in the viewer's own time zone and language. The server writes them in
// the monitor's zone (or UTC), which is what the page shows with JavaScript off.
(() => {
  "use strict";
  const format = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
  });

  function localize(root) {
    for (const element of root.querySelectorAll("[data-local-time]")) {
      const moment = new Date(element.dataset.localTime);
      if (Number.isNaN(moment.getTime())) continue;
      if (!element.title) element.title = element.textContent;
      element.textContent = format.format(moment);
      element.classList.add("localized");
    }
  }

  window.localTimes = localize;  // the overview's refresh calls it on the new rows
  localize(document);
})();
